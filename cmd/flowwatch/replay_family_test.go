package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// A stored family is re-judged as a whole under new definitions: order o-1 waits for two
// parcels (all) and one is overdue; under definitions where one parcel is enough (any) and a
// delivery may take three hours, the order and its late shipment both run again, while a
// parcel lost in transit still fails its order (o-2).
func TestReplayFamily(t *testing.T) {
	ctx := context.Background()
	store := &storagetest.Memory{}
	old := testflows.FamilySet(t)
	at := rt0.Add(2 * time.Hour)
	parent := func(o string) map[string]string { return map[string]string{model.AttrParentKey: o} }
	rows := map[string][]storage.CheckpointEvent{}
	add := func(flow, key, cp string, d time.Duration, attrs map[string]string) {
		e := storage.CheckpointEvent{Tenant: "default", Flow: flow, Checkpoint: cp, Key: key, Time: rt0.Add(d),
			IngestTime: rt0.Add(d), Service: "svc", Name: cp, Status: "ok", Attributes: attrs}
		e.EventID = storage.EventID("default", flow, cp, key, "", "", e.Time.UnixNano(), cp)
		rows[flow+"/"+key] = append(rows[flow+"/"+key], e)
	}
	for _, o := range []string{"o-1", "o-2"} {
		add("order", o, "placed", 0, nil)
		add("order", o, "paid", time.Minute, nil)
		add("order", o, "shipped", 2*time.Minute, nil)
	}
	add("shipment", "s-1", "packed", 3*time.Minute, parent("o-1"))
	add("shipment", "s-1", "delivered", 5*time.Minute, nil)
	add("shipment", "s-2", "packed", 3*time.Minute, parent("o-1"))
	add("shipment", "s-3", "packed", 3*time.Minute, parent("o-2"))
	add("shipment", "s-3", "lost", 4*time.Minute, nil)
	add("order", "o-2", "refunded", 10*time.Minute, nil)
	for _, rs := range rows {
		if err := store.WriteEvents(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	// The states the detector wrote under the old definitions.
	judge := func(set *model.Set, id string) model.State {
		rs := rows[id]
		in, _ := flowstate.Rebuild(set.Versions(rs[0].Flow), "default", rs[0].Key, rs, nil)
		if err := replayChildren(ctx, store, set, in, at); err != nil {
			t.Fatal(err)
		}
		return in.Evaluate(at)
	}
	for id := range rows {
		st := flowstate.Row(judge(old, id))
		st.UpdatedAt = at
		if err := store.WriteStates(ctx, []storage.InstanceState{st}); err != nil {
			t.Fatal(err)
		}
	}
	if st := judge(old, "order/o-1"); st.Status != model.StatusStuck || st.Reason.Checkpoint != "all_delivered" {
		t.Fatalf("o-1 under the old definitions: %+v", st)
	}
	if st := judge(old, "order/o-2"); st.Status != model.StatusCompensated {
		t.Fatalf("o-2 under the old definitions: %+v", st)
	}
	newYAML := strings.NewReplacer("complete: all, expect: order.parcel_count", "complete: any",
		"within: 20m", "within: 3h").Replace(testflows.FamilyYAML)
	flows, probs := model.Parse("new.yaml", []byte(newYAML))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	var out bytes.Buffer
	sum, err := replay(ctx, store, model.NewSet(flows), replayOptions{At: at}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"default/order/o-1: stuck -> running", "default/shipment/s-2: stuck -> running",
		"replayed 5 instances of 2 flows"} {
		if !strings.Contains(got, want) {
			t.Errorf("replay lacks %q:\n%s", want, got)
		}
	}
	if sum.Changed != 2 {
		t.Errorf("changed = %d:\n%s", sum.Changed, got)
	}
}
