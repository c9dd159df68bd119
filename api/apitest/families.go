package apitest

import (
	"context"
	"slices"
	"sort"

	"github.com/flowwatch/flowwatch/storage"
)

// ChildKeys returns the keys of the instances of flow whose rows carry one of parentKeys in
// storage.AttrParentKey, by parent key, sorted.
func (s *Store) ChildKeys(_ context.Context, tenant, flow string, parentKeys []string) (map[string][]string, error) {
	if err := s.fail("ChildKeys"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, e := range s.events {
		p := e.Attributes[storage.AttrParentKey]
		if e.Tenant != tenant || e.Flow != flow || p == "" || !slices.Contains(parentKeys, p) || slices.Contains(out[p], e.Key) {
			continue
		}
		out[p] = append(out[p], e.Key)
	}
	for _, keys := range out {
		sort.Strings(keys)
	}
	return out, nil
}

// ParentKeys returns the parent key the rows of each instance of flow carry (the earliest row's).
func (s *Store) ParentKeys(_ context.Context, tenant, flow string, keys []string) (map[string]string, error) {
	if err := s.fail("ParentKeys"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, e := range s.sortedEvents(func(e *storage.CheckpointEvent) bool {
		return e.Tenant == tenant && e.Flow == flow && e.Attributes[storage.AttrParentKey] != "" && slices.Contains(keys, e.Key)
	}) {
		if _, ok := out[e.Key]; !ok {
			out[e.Key] = e.Attributes[storage.AttrParentKey]
		}
	}
	return out, nil
}
