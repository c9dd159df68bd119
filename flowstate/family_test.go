package flowstate

import (
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// The model reads a child's parent key from the attribute the store's family_links view reads.
func TestParentKeyAttributeIsOne(t *testing.T) {
	if model.AttrParentKey != storage.AttrParentKey {
		t.Fatalf("model %q, storage %q", model.AttrParentKey, storage.AttrParentKey)
	}
}

// Children rebuilds and judges each child from its rows, by key; a key with only error notes
// is no child yet.
func TestChildren(t *testing.T) {
	set := testflows.FamilySet(t)
	t0 := testflows.T0
	row := func(key, cp string, at time.Duration) storage.CheckpointEvent {
		return storage.CheckpointEvent{EventID: key + cp, Tenant: "acme", Flow: "shipment", Checkpoint: cp, Key: key,
			Time: t0.Add(at), Attributes: map[string]string{storage.AttrParentKey: "o-1"}}
	}
	rows := map[string][]storage.CheckpointEvent{
		"s-2": {row("s-2", "packed", 0)},
		"s-1": {row("s-1", "packed", 0), row("s-1", "delivered", time.Minute)},
		"s-3": {{EventID: "note", Tenant: "acme", Flow: "shipment", Key: "s-3", Time: t0, Status: "error"}},
	}
	got := Children(set.Versions("shipment"), "acme", rows, t0.Add(time.Hour))
	if len(got) != 2 || got[0].Key != "s-1" || got[0].Outcome != model.TerminalSuccess || got[0].EndedAt != t0.Add(time.Minute) ||
		got[1].Key != "s-2" || got[1].Status != model.StatusStuck || got[1].Reason == nil {
		t.Fatalf("children = %+v", got)
	}
}
