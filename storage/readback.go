package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reads of many instances at once, for the detector: explaining a storm of stuck instances
// and restarting take one query per batch, never one per instance.

func (s *store) InstancesEvents(ctx context.Context, tenant, flow string, keys []string) (map[string][]CheckpointEvent, error) {
	out := make(map[string][]CheckpointEvent, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	what := fmt.Sprintf("events of %d instances of %s/%s", len(keys), tenant, flow)
	where := "tenant = " + quote(tenant) + " AND flow = " + quote(flow)
	inKeys := quoteList(keys)
	// Alias values that belong to these instances: by the first mapping of each value, as
	// ResolveAliases and InstanceEvents resolve them.
	type aliasRef struct{ attr, value string }
	owners := map[aliasRef]string{}
	if s.d.joinsAliases() && s.hasAliases(ctx, where) {
		q := "SELECT attr, value, k FROM (SELECT attr, value, argMin(key, time) AS k FROM " + s.table("aliases") +
			" WHERE " + where + " AND (attr, value) " + s.global() + "IN (SELECT attr, value FROM " + s.table("aliases") +
			" WHERE " + where + " AND key IN (" + inKeys + ")) GROUP BY attr, value) WHERE k IN (" + inKeys + ")"
		if err := s.each(ctx, q, func(r rows) error {
			var a aliasRef
			var k string
			if err := r.Scan(&a.attr, &a.value, &k); err != nil {
				return err
			}
			owners[a] = k
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%s: aliases: %w", what, err)
		}
	}
	cond := "key IN (" + inKeys + ")"
	if len(owners) > 0 {
		tuples := make([]string, 0, len(owners))
		for a := range owners {
			tuples = append(tuples, "("+quote(a.attr)+", "+quote(a.value)+")")
		}
		cond = "(" + cond + " OR (key_attr, key) IN (" + strings.Join(tuples, ", ") + "))"
	}
	q := "SELECT " + s.eventColumns() + " FROM " + s.table("checkpoint_events") + " WHERE " + where + " AND " + cond +
		" ORDER BY time, event_id LIMIT 1 BY event_id"
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	evs, err := s.scanEvents(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	wanted := make(map[string]bool, len(keys))
	for _, k := range keys {
		wanted[k] = true
	}
	for _, e := range evs {
		// A row belongs to the instance of its key, and to the instance its alias value
		// names (both, in the rare case they differ), as InstanceEvents would return it.
		if wanted[e.Key] {
			out[e.Key] = append(out[e.Key], e)
		}
		if k, ok := owners[aliasRef{e.KeyAttr, e.Key}]; ok && k != e.Key {
			out[k] = append(out[k], e)
		}
	}
	return out, nil
}

// hasAliases reports whether the flow has any alias row (a lookup on the table's key prefix):
// most flows declare none, and the alias query is then spared.
func (s *store) hasAliases(ctx context.Context, where string) bool {
	found := true // on an error, ask the full question
	_ = s.each(ctx, "SELECT count() FROM (SELECT 1 FROM "+s.table("aliases")+" WHERE "+where+" LIMIT 1)", func(r rows) error {
		var n uint64
		if err := r.Scan(&n); err != nil {
			return err
		}
		found = n > 0
		return nil
	})
	return found
}

func (s *store) CommandsSince(ctx context.Context, since time.Time) ([]CommandRecord, error) {
	if err := s.d.unsupported("commands since"); err != nil {
		return nil, err
	}
	return s.commands(ctx, " WHERE time >= "+s.d.ts(since)+" ORDER BY time, id",
		"read commands since "+since.Format(time.RFC3339))
}

func (s *store) CommandsOf(ctx context.Context, tenant, flow string, keys []string) ([]CommandRecord, error) {
	if err := s.d.unsupported("commands of instances"); err != nil || len(keys) == 0 {
		return nil, err
	}
	return s.commands(ctx, " WHERE tenant = "+quote(tenant)+" AND flow = "+quote(flow)+" AND key IN ("+quoteList(keys)+") ORDER BY time, id",
		fmt.Sprintf("read commands of %d instances of %s/%s", len(keys), tenant, flow))
}

// EventRef is an event's identity and when it was ingested.
type EventRef struct {
	EventID    string
	IngestTime time.Time
}

func (s *store) EventRefs(ctx context.Context, from, to time.Time) ([]EventRef, error) {
	q := "SELECT DISTINCT event_id, " + s.d.ns("ingest_time") + " FROM " + s.table("checkpoint_events") +
		" WHERE ingest_time >= " + s.d.ts(from) + " AND ingest_time <= " + s.d.ts(to)
	var out []EventRef
	if err := s.each(ctx, q, func(r rows) error {
		var id uint64
		var ns int64
		if err := r.Scan(&id, &ns); err != nil {
			return err
		}
		out = append(out, EventRef{EventID: formatEventID(id), IngestTime: unixNano(ns)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("event ids ingested from %s to %s: %w", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), err)
	}
	return out, nil
}

// CountEvents counts rows, not distinct ids: a replayed row not merged yet counts twice, which
// only makes the detector read the window's ids once more (it dedups them).
func (s *store) CountEvents(ctx context.Context, from, to time.Time) (uint64, error) {
	var n uint64
	q := "SELECT count() FROM " + s.table("checkpoint_events") +
		" WHERE ingest_time >= " + s.d.ts(from) + " AND ingest_time <= " + s.d.ts(to)
	if err := s.each(ctx, q, func(r rows) error { return r.Scan(&n) }); err != nil {
		return 0, fmt.Errorf("count events ingested from %s to %s: %w", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), err)
	}
	return n, nil
}

func (s *store) EventsAmong(ctx context.Context, since time.Time, ids []string) ([]CheckpointEvent, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	nums := make([]string, 0, len(ids))
	for _, id := range ids {
		v, err := strconv.ParseUint(id, 16, 64)
		if err != nil || len(id) != 16 {
			return nil, fmt.Errorf("read events by id: %w: event id %q is not 16 hex digits", ErrInvalid, id)
		}
		nums = append(nums, strconv.FormatUint(v, 10))
	}
	q := "SELECT " + s.eventColumns() + " FROM " + s.table("checkpoint_events") +
		" WHERE ingest_time >= " + s.d.ts(since) + " AND event_id IN (" + strings.Join(nums, ", ") + ")" +
		" ORDER BY ingest_time, event_id LIMIT 1 BY event_id"
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %d events by id: %w", len(ids), err)
	}
	evs, err := s.scanEvents(r)
	if err != nil {
		return nil, fmt.Errorf("read %d events by id: %w", len(ids), err)
	}
	return evs, nil
}

// StuckCount is how many instances are stuck expecting a checkpoint, by whether they carry an
// error: the size of a checkpoint's grouped alert, the same whichever shard asks.
type StuckCount struct {
	Tenant, Flow string
	Version      int
	Checkpoint   string
	ErrorSeen    bool
	Count        uint64
}

func (s *store) StuckCounts(ctx context.Context, now time.Time) ([]StuckCount, error) {
	if err := s.d.unsupported("stuck counts"); err != nil {
		return nil, err
	}
	overdue := "arrayMap(x -> JSONExtractString(x, 'checkpoint'), arrayFilter(x -> " +
		"parseDateTime64BestEffort(JSONExtractString(x, 'deadline'), 9, 'UTC') < " + s.d.ts(now) +
		", JSONExtractArrayRaw(expected)))"
	q := "SELECT tenant, flow, toUInt64(version), cp, toUInt64(err), count() FROM (SELECT tenant, flow, version, " +
		"JSONHas(reason, 'last_error') AS err, arrayJoin(" + overdue + ") AS cp FROM " + s.table("instance_states") +
		" FINAL WHERE status = 'stuck') GROUP BY tenant, flow, version, cp, err ORDER BY tenant, flow, version, cp, err"
	var out []StuckCount
	if err := s.each(ctx, q, func(r rows) error {
		var c StuckCount
		var v, e uint64
		if err := r.Scan(&c.Tenant, &c.Flow, &v, &c.Checkpoint, &e, &c.Count); err != nil {
			return err
		}
		c.Version, c.ErrorSeen = int(v), e != 0
		out = append(out, c)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count stuck instances: %w", err)
	}
	return out, nil
}
