package detector

import (
	"context"
	"fmt"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// versions makes a flow version without active_from active from when a detector first loaded
// it, as recorded in the store: loading v2 never re-pins the instances v1 started, after a
// restart and a read-back either.
type versions struct {
	src     *model.Set            // the definitions as loaded
	set     *model.Set            // the same, activated
	loaded  map[string]time.Time  // flow\x00version → first loaded
	pending []storage.FlowVersion // first loads not written yet
}

func versionKey(flow string, version int) string { return fmt.Sprintf("%s\x00%d", flow, version) }

// loadVersions reads when the versions were first loaded.
func (d *Detector) loadVersions(ctx context.Context) error {
	vs, err := d.cfg.Store.FlowVersions(ctx)
	if err != nil {
		if isUnsupported(err) {
			return nil
		}
		return fmt.Errorf("read flow versions: %w", err)
	}
	d.vers.loaded = make(map[string]time.Time, len(vs))
	for _, v := range vs {
		d.vers.loaded[versionKey(v.Flow, v.Version)] = v.LoadedAt
	}
	d.vers.src = nil
	return nil
}

// flows returns the current definitions, activated: each version without active_from is
// active from its first load, recorded now when it is new.
func (d *Detector) flows() *model.Set {
	src := d.cfg.Flows()
	if src == d.vers.src {
		return d.vers.set
	}
	if d.vers.loaded == nil {
		d.vers.loaded = map[string]time.Time{}
	}
	now := d.cfg.Now().UTC()
	for _, f := range src.Flows {
		k := versionKey(f.Name, f.Version)
		if _, ok := d.vers.loaded[k]; !ok && f.ActiveFrom.IsZero() {
			d.vers.loaded[k] = now
			d.vers.pending = append(d.vers.pending, storage.FlowVersion{Flow: f.Name, Version: f.Version, LoadedAt: now})
		}
	}
	d.vers.src = src
	d.vers.set = src.Activated(func(name string, version int) (time.Time, bool) {
		t, ok := d.vers.loaded[versionKey(name, version)]
		return t, ok
	})
	return d.vers.set
}

// flushVersions writes the first loads not written yet.
func (d *Detector) flushVersions(ctx context.Context) error {
	if len(d.vers.pending) == 0 {
		return nil
	}
	if err := d.cfg.Store.WriteFlowVersions(ctx, d.vers.pending); err != nil && !isUnsupported(err) {
		d.m.writeErrors.Inc()
		return fmt.Errorf("record %d flow versions first loaded: %w", len(d.vers.pending), err)
	}
	d.vers.pending = nil
	return nil
}
