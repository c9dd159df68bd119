package apitest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// The fake answers ChildKeys and ParentKeys as the store does (storage's TestEmbeddedFamilies).
func TestFamilies(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	ev := func(id, tenant, flow, key, parent string, at time.Duration) storage.CheckpointEvent {
		e := storage.CheckpointEvent{EventID: id, Tenant: tenant, Flow: flow, Checkpoint: "packed", Key: key, Time: t0.Add(at)}
		if parent != "" {
			e.Attributes = map[string]string{storage.AttrParentKey: parent}
		}
		return e
	}
	s := &Store{}
	if err := s.WriteEvents(ctx, []storage.CheckpointEvent{
		ev("1", "acme", "shipment", "s-1", "o-1", 0), ev("2", "acme", "shipment", "s-1", "", time.Minute),
		ev("3", "acme", "shipment", "s-2", "o-1", time.Minute), ev("4", "acme", "shipment", "s-3", "o-2", 0),
		ev("5", "acme", "shipment", "s-4", "", 0), ev("6", "globex", "shipment", "s-1", "o-9", 0),
		ev("7", "acme", "order", "o-1", "o-0", 0),
	}); err != nil {
		t.Fatal(err)
	}
	kids, err := s.ChildKeys(ctx, "acme", "shipment", []string{"o-1", "o-2", "o-3"})
	if want := map[string][]string{"o-1": {"s-1", "s-2"}, "o-2": {"s-3"}}; err != nil || !reflect.DeepEqual(kids, want) {
		t.Fatalf("children = %v, %v; want %v", kids, err, want)
	}
	parents, err := s.ParentKeys(ctx, "acme", "shipment", []string{"s-1", "s-3", "s-4", "s-9"})
	if want := map[string]string{"s-1": "o-1", "s-3": "o-2"}; err != nil || !reflect.DeepEqual(parents, want) {
		t.Fatalf("parents = %v, %v; want %v", parents, err, want)
	}
}
