package storage

import (
	"context"
	"fmt"
	"time"
)

// FlowVersion records when a flow version was first loaded by a detector: a version without
// active_from is active from then.
type FlowVersion struct {
	Flow     string
	Version  int
	LoadedAt time.Time
}

func (s *store) WriteFlowVersions(ctx context.Context, vs []FlowVersion) error {
	if err := s.d.unsupported("write flow versions"); err != nil || len(vs) == 0 {
		return err
	}
	if err := CheckFlowVersions(vs); err != nil {
		return err
	}
	rs := make([][]any, len(vs))
	for i, v := range vs {
		rs[i] = []any{v.Flow, uint32(v.Version), s.d.timeValue(v.LoadedAt)}
	}
	if err := s.b.insert(ctx, s.table("flow_versions"), []string{"flow", "version", "loaded_at"}, rs); err != nil {
		return fmt.Errorf("write %d flow versions: %w", len(vs), err)
	}
	return nil
}

func (s *store) FlowVersions(ctx context.Context) ([]FlowVersion, error) {
	if err := s.d.unsupported("flow versions"); err != nil {
		return nil, err
	}
	q := "SELECT flow, toUInt64(version), toUnixTimestamp64Nano(min(loaded_at)) FROM " + s.table("flow_versions") +
		" GROUP BY flow, version ORDER BY flow, version"
	var out []FlowVersion
	if err := s.each(ctx, q, func(r rows) error {
		var v FlowVersion
		var n uint64
		var ns int64
		if err := r.Scan(&v.Flow, &n, &ns); err != nil {
			return err
		}
		v.Version, v.LoadedAt = int(n), unixNano(ns)
		out = append(out, v)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read flow versions: %w", err)
	}
	return out, nil
}
