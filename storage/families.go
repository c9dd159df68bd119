package storage

import (
	"context"
	"fmt"
	"sort"
)

// AttrParentKey is the attribute of a child instance's rows that holds its parent's key
// (model.AttrParentKey): the family_links view reads it (schema/004_families.sql).
const AttrParentKey = "flow.parent_key"

// Reads of families (sub-flows), from the family_links table. The legacy tables have none.

func (s *store) ChildKeys(ctx context.Context, tenant, flow string, parentKeys []string) (map[string][]string, error) {
	if err := s.d.unsupported("children of instances"); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	if len(parentKeys) == 0 {
		return out, nil
	}
	q := "SELECT DISTINCT parent_key, key FROM " + s.table("family_links") + " WHERE tenant = " + quote(tenant) +
		" AND flow = " + quote(flow) + " AND parent_key IN (" + quoteList(parentKeys) + ")"
	if err := s.each(ctx, q, func(r rows) error {
		var parent, key string
		if err := r.Scan(&parent, &key); err != nil {
			return err
		}
		out[parent] = append(out[parent], key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("children of %d instances in %s/%s: %w", len(parentKeys), tenant, flow, err)
	}
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out, nil
}

func (s *store) ParentKeys(ctx context.Context, tenant, flow string, keys []string) (map[string]string, error) {
	if err := s.d.unsupported("parents of instances"); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	// A child has one parent; should its rows disagree, the earliest wins, as for aliases.
	q := "SELECT key, argMin(parent_key, time) FROM " + s.table("family_links") + " WHERE tenant = " + quote(tenant) +
		" AND flow = " + quote(flow) + " AND key IN (" + quoteList(keys) + ") GROUP BY key"
	if err := s.each(ctx, q, func(r rows) error {
		var key, parent string
		if err := r.Scan(&key, &parent); err != nil {
			return err
		}
		out[key] = parent
		return nil
	}); err != nil {
		return nil, fmt.Errorf("parents of %d instances of %s/%s: %w", len(keys), tenant, flow, err)
	}
	return out, nil
}

// ChildrenEvents returns the rows of the children of parents in a child flow: by parent key,
// what InstancesEvents returns for each of its children (ChildKeys). The children of all the
// parents are read together, batch children a query — never a query a parent. Parents without
// children are absent.
func ChildrenEvents(ctx context.Context, r Reader, tenant, flow string, parentKeys []string, batch int) (map[string]map[string][]CheckpointEvent, error) {
	byParent, err := r.ChildKeys(ctx, tenant, flow, parentKeys)
	if err != nil {
		return nil, err
	}
	if batch <= 0 {
		batch = 1000
	}
	var keys []string
	for _, kids := range byParent {
		keys = append(keys, kids...)
	}
	rows := make(map[string][]CheckpointEvent, len(keys))
	for start := 0; start < len(keys); start += batch {
		got, err := r.InstancesEvents(ctx, tenant, flow, keys[start:min(start+batch, len(keys))])
		if err != nil {
			return nil, fmt.Errorf("rows of the children of %d instances of %s: %w", len(byParent), tenant, err)
		}
		for k, evs := range got {
			rows[k] = evs
		}
	}
	out := make(map[string]map[string][]CheckpointEvent, len(byParent))
	for parent, kids := range byParent {
		m := make(map[string][]CheckpointEvent, len(kids))
		for _, k := range kids {
			if evs, ok := rows[k]; ok {
				m[k] = evs
			}
		}
		out[parent] = m
	}
	return out, nil
}
