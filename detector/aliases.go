package detector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

func aliasKey(tenant, flow, attr, value string) string {
	return tenant + "\x00" + flow + "\x00" + attr + "\x00" + value
}

// resolveAliases looks up, in one query per (tenant, flow, attribute), the alias values of
// events keyed by an alias that the cache does not know.
func (d *Detector) resolveAliases(ctx context.Context, set *model.Set, events []storage.CheckpointEvent) error {
	type group struct{ tenant, flow, attr string }
	want := map[group][]string{}
	asked := map[string]bool{}
	for i := range events {
		e := &events[i]
		if !flowstate.IsAlias(set.Versions(e.Flow), e.KeyAttr) {
			continue
		}
		k := aliasKey(e.Tenant, e.Flow, e.KeyAttr, e.Key)
		if _, ok := d.aliases[k]; ok || asked[k] {
			continue
		}
		asked[k] = true
		g := group{e.Tenant, e.Flow, e.KeyAttr}
		want[g] = append(want[g], e.Key)
	}
	var errs []error
	for g, values := range want {
		// In bounded queries: a backlog of values (after a store outage) never makes one
		// query too big to run.
		for chunk := range slices.Chunk(values, d.cfg.ReadBatch) {
			got, err := d.cfg.Store.ResolveAliases(ctx, g.tenant, g.flow, g.attr, chunk)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve %d %s aliases of %s: %w", len(chunk), g.attr, g.flow, err))
				continue
			}
			if len(d.aliases) > 4*d.cfg.MaxOpen {
				clear(d.aliases) // a cache: bounded, refilled from the store on demand
			}
			for v, k := range got {
				d.aliases[aliasKey(g.tenant, g.flow, g.attr, v)] = k
			}
		}
	}
	if len(errs) > 0 {
		d.m.readErrors.Inc()
		return fmt.Errorf("resolve aliases: %w", errors.Join(errs...))
	}
	return nil
}

// resolveKey turns an alias-keyed event into its instance's key. It reports false when the
// alias row is not known yet: the event waits (another collector may not have written it
// yet) for AliasWait, then is given up, counted.
func (d *Detector) resolveKey(e *storage.CheckpointEvent, versions []*model.Flow, now time.Time) bool {
	if !flowstate.IsAlias(versions, e.KeyAttr) {
		return true
	}
	key, ok := d.aliases[aliasKey(e.Tenant, e.Flow, e.KeyAttr, e.Key)]
	if !ok {
		if now.Sub(e.IngestTime) < AliasWait && len(d.unresolved) < maxUnresolved {
			d.unresolved = append(d.unresolved, *e)
		} else {
			d.m.unresolvedAlias.Inc()
		}
		return false
	}
	e.Key, e.KeyAttr = key, ""
	return true
}
