package storage

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// familyEvents are two orders' shipments: o-1 has s-1 (its start carries the parent key, its
// delivery does not) and s-2; o-2 has s-3; s-4 carries no parent; another tenant's s-1 belongs
// to its own o-1; and a row of the parent flow that carries the attribute is not a link of
// the shipment flow.
func familyEvents() []CheckpointEvent {
	ev := func(tenant, flow, key, parent string, at time.Duration) CheckpointEvent {
		e := CheckpointEvent{Tenant: tenant, Flow: flow, Checkpoint: "packed", Key: key, KeyAttr: "shipment.id",
			Time: t0.Add(at), TraceID: fmt.Sprintf("%032x", int64(at)), Service: "warehouse", Name: "pack", Status: "ok"}
		if parent != "" {
			e.Attributes = map[string]string{AttrParentKey: parent}
		}
		return e
	}
	delivered := ev("acme", "shipment", "s-1", "", 5*time.Minute)
	delivered.Checkpoint = "delivered"
	return []CheckpointEvent{
		ev("acme", "shipment", "s-1", "o-1", 0), delivered,
		ev("acme", "shipment", "s-2", "o-1", time.Minute),
		ev("acme", "shipment", "s-3", "o-2", 2*time.Minute),
		ev("acme", "shipment", "s-4", "", 3*time.Minute),
		ev("globex", "shipment", "s-1", "o-9", 0),
		ev("acme", "order", "o-1", "o-0", 0),
	}
}

func TestEmbeddedFamilies(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "suite_families")
	if err := s.WriteEvents(ctx, familyEvents()); err != nil {
		t.Fatal(err)
	}
	// Written again (a replayed batch): the links stay one per child.
	if err := s.WriteEvents(ctx, familyEvents()); err != nil {
		t.Fatal(err)
	}
	kids, err := s.ChildKeys(ctx, "acme", "shipment", []string{"o-1", "o-2", "o-3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"o-1": {"s-1", "s-2"}, "o-2": {"s-3"}}; !reflect.DeepEqual(kids, want) {
		t.Fatalf("children = %v, want %v", kids, want)
	}
	parents, err := s.ParentKeys(ctx, "acme", "shipment", []string{"s-1", "s-3", "s-4", "s-9"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"s-1": "o-1", "s-3": "o-2"}; !reflect.DeepEqual(parents, want) {
		t.Fatalf("parents = %v, want %v", parents, want)
	}
	if got, err := s.ParentKeys(ctx, "globex", "shipment", []string{"s-1"}); err != nil || got["s-1"] != "o-9" {
		t.Fatalf("another tenant's parent = %v, %v", got, err)
	}
	if got, err := s.ChildKeys(ctx, "acme", "shipment", nil); err != nil || len(got) != 0 {
		t.Fatalf("no parent asked: %v, %v", got, err)
	}
}
