package detector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// A child is sharded by its parent's key, which its start row carries (model.AttrParentKey);
// its other rows may not. The shard that owns a child knows its parent while it is open (its
// link to its family); every other shard remembers, in a bounded cache, the parent keys of the
// children it reads a start of and does not own, so that it can tell their other rows are not
// its own; what neither tells is asked of the store (Reader.ParentKeys, ReadBatch children a
// query per tenant and child flow), as alias-keyed rows are.

// resolveParents caches the parent keys the rows of other shards' children carry — "" for a
// child whose start carries none: it has no parent, and is judged alone, by its own key —
// then looks up, ReadBatch children a query per tenant and child flow, those of the rows of
// children still unknown.
func (d *Detector) resolveParents(ctx context.Context, set *model.Set, events []storage.CheckpointEvent) error {
	type group struct{ tenant, flow string }
	type wanted struct {
		group
		key string
	}
	var want map[group][]string
	var seen map[wanted]struct{}
	// inRows: the parent keys that this shard's children's starts among the rows carry ("" for
	// none): their other rows in the same read need no lookup (a rebuild reads thousands).
	var inRows map[wanted]string
	for pass := 0; pass < 2; pass++ {
		for i := range events {
			e := &events[i]
			pl := set.Parent(e.Flow)
			if e.Checkpoint == "" || pl == nil {
				continue
			}
			if pass == 0 {
				if pk := e.Attributes[model.AttrParentKey]; pk != "" {
					if ShardOf(e.Tenant, pl.Flow, pk, d.cfg.Shards) != d.cfg.Shard {
						d.cacheParent(e.Tenant, e.Flow, e.Key, pk)
					} else {
						inRows = noteInRows(inRows, wanted{group{e.Tenant, e.Flow}, e.Key}, pk)
					}
				} else if isStart(set.Versions(e.Flow), e.Checkpoint) {
					if ShardOf(e.Tenant, e.Flow, e.Key, d.cfg.Shards) != d.cfg.Shard {
						if _, known := d.fam.parents[parentCacheKey(e.Tenant, e.Flow, e.Key)]; !known {
							d.cacheParent(e.Tenant, e.Flow, e.Key, "")
						}
					} else if _, known := inRows[wanted{group{e.Tenant, e.Flow}, e.Key}]; !known {
						inRows = noteInRows(inRows, wanted{group{e.Tenant, e.Flow}, e.Key}, "")
					}
				}
				continue
			}
			if _, ok := d.parentOf(e, nil); ok {
				continue
			}
			if pk, ok := inRows[wanted{group{e.Tenant, e.Flow}, e.Key}]; ok {
				// Its start is among these rows: what the store would answer. Cached, so that
				// a row of it read before its start finds it too.
				d.cacheParent(e.Tenant, e.Flow, e.Key, pk)
				continue
			}
			if want == nil {
				want, seen = map[group][]string{}, map[wanted]struct{}{}
			}
			g := group{e.Tenant, e.Flow}
			if _, dup := seen[wanted{g, e.Key}]; !dup { // a set: a tick may carry thousands
				seen[wanted{g, e.Key}] = struct{}{}
				want[g] = append(want[g], e.Key)
			}
		}
	}
	var errs []error
	for g, keys := range want {
		for start := 0; start < len(keys); start += d.cfg.ReadBatch { // bounded queries
			part := keys[start:min(start+d.cfg.ReadBatch, len(keys))]
			got, err := d.cfg.Store.ParentKeys(ctx, g.tenant, g.flow, part)
			if err != nil {
				if !errors.Is(err, storage.ErrUnsupported) {
					errs = append(errs, fmt.Errorf("parents of %d %s instances: %w", len(part), g.flow, err))
				}
				break
			}
			for k, pk := range got {
				d.cacheParent(g.tenant, g.flow, k, pk)
			}
		}
	}
	if len(errs) > 0 {
		d.m.readErrors.Inc()
		return fmt.Errorf("resolve parents: %w", errors.Join(errs...))
	}
	return nil
}

// shardOf tells whether this shard owns the instance of an event, and — for a child — its
// parent's key ("" for a child without a parent). ok is false when the event is not this
// shard's, or when its parent is not known yet: then the event waits (for AliasWait), as an
// alias-keyed one does, for the row that links it.
func (d *Detector) shardOf(e *storage.CheckpointEvent, set *model.Set, now time.Time, idBuf []byte) (parentFlow, parent string, ok bool) {
	pl := set.Parent(e.Flow)
	if pl == nil {
		return "", "", ShardOf(e.Tenant, e.Flow, e.Key, d.cfg.Shards) == d.cfg.Shard
	}
	pk, known := d.parentOf(e, idBuf)
	switch {
	case !known && e.Checkpoint == "":
		return "", "", false // an error note opens nothing; a read-back finds it when it matters
	case !known:
		if now.Sub(e.IngestTime) < AliasWait && len(d.unresolved) < maxUnresolved {
			d.unresolved = append(d.unresolved, *e)
		} else {
			d.m.unresolvedParent.Inc()
		}
		return "", "", false
	case pk == "":
		return "", "", ShardOf(e.Tenant, e.Flow, e.Key, d.cfg.Shards) == d.cfg.Shard
	}
	return pl.Flow, pk, ShardOf(e.Tenant, pl.Flow, pk, d.cfg.Shards) == d.cfg.Shard
}

func noteInRows[K comparable](m map[K]string, k K, parent string) map[K]string {
	if m == nil {
		m = map[K]string{}
	}
	m[k] = parent
	return m
}
