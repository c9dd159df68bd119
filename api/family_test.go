package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// seedFamily writes an order shipped in two parcels, s-1 delivered and s-2 overdue, and the
// states the detector writes: the order stuck at all_delivered, s-1 completed, s-2 stuck.
func seedFamily(t *testing.T, w readWriter, at time.Time) *model.Set {
	t.Helper()
	ctx := context.Background()
	set := testflows.FamilySet(t)
	ev := func(id, flow, cp, key string, d time.Duration, attrs map[string]string) storage.CheckpointEvent {
		return storage.CheckpointEvent{EventID: id, Tenant: "default", Flow: flow, Checkpoint: cp, Key: key, Time: t0.Add(d),
			IngestTime: t0.Add(d), Service: "svc", Name: cp, Status: "ok", Attributes: attrs}
	}
	parent := map[string]string{model.AttrParentKey: "o-1"}
	rows := []storage.CheckpointEvent{
		ev("00000000000000a1", "order", "placed", "o-1", 0, map[string]string{"order.parcel_count": "2"}),
		ev("00000000000000a2", "order", "paid", "o-1", time.Minute, nil),
		ev("00000000000000a3", "order", "shipped", "o-1", 2*time.Minute, nil),
		ev("00000000000000b1", "shipment", "packed", "s-1", 3*time.Minute, parent),
		ev("00000000000000b2", "shipment", "delivered", "s-1", 4*time.Minute, nil),
		ev("00000000000000c1", "shipment", "packed", "s-2", 3*time.Minute, parent),
	}
	if err := w.WriteEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var states []storage.InstanceState
	byKey := map[string][]storage.CheckpointEvent{}
	for _, r := range rows {
		byKey[r.Flow+"/"+r.Key] = append(byKey[r.Flow+"/"+r.Key], r)
	}
	kids := flowstate.Children(set.Versions("shipment"), "default",
		map[string][]storage.CheckpointEvent{"s-1": byKey["shipment/s-1"], "s-2": byKey["shipment/s-2"]}, at)
	for _, id := range []string{"order/o-1", "shipment/s-1", "shipment/s-2"} {
		r := byKey[id]
		in, _ := flowstate.Rebuild(set.Versions(r[0].Flow), "default", r[0].Key, r, nil)
		if r[0].Flow == "order" {
			in.SetChildren(kids)
		}
		row := flowstate.Row(in.Evaluate(at))
		row.UpdatedAt = at
		states = append(states, row)
	}
	if err := w.WriteStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	return set
}

// A parent's detail lists its children, evaluated with it, and its reason tells how they
// fare; a child's detail names its parent; the graph serves the child flow like any flow.
func TestInstanceDetailOfAFamily(t *testing.T) {
	at := t0.Add(2 * time.Hour)
	for name, rw := range map[string]readWriter{"memory": &storagetest.Memory{}, "chdb": openEmbedded(t)} {
		t.Run(name, func(t *testing.T) {
			set := seedFamily(t, rw, at)
			h := New(Config{Reader: rw, Flows: func() *model.Set { return set }, Now: func() time.Time { return at },
				Registerer: prometheus.NewRegistry()})
			var o InstanceDetail
			get(t, h, "/api/v1/flows/order/instances/o-1", 200).decode(t, &o)
			if o.Status != "stuck" || len(o.Children) != 2 || o.Children[0].Key != "s-1" || o.Children[0].Status != "completed" ||
				o.Children[0].Checkpoint != "delivered" || o.Children[1].Key != "s-2" || o.Children[1].Status != "stuck" || o.Children[1].Summary == "" {
				t.Fatalf("parent: %+v", o)
			}
			r := o.Reason
			if r == nil || r.Checkpoint != "all_delivered" || r.Children == nil || r.Children.Counts["stuck"] != 1 ||
				len(r.Children.Stuck) != 1 || r.Children.Stuck[0].Key != "s-2" || len(o.Expected) != 1 || o.Expected[0].Children != "shipment" {
				t.Fatalf("reason: %+v", o.Reason)
			}
			if o.Parent != nil {
				t.Fatalf("a parent has no parent: %+v", o.Parent)
			}
			var c InstanceDetail
			get(t, h, "/api/v1/flows/shipment/instances/s-2", 200).decode(t, &c)
			if c.Parent == nil || c.Parent.Flow != "order" || c.Parent.Key != "o-1" || c.Children != nil {
				t.Fatalf("child: %+v", c)
			}
			var g Graph
			get(t, h, "/api/v1/flows/shipment/graph?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", 200).decode(t, &g)
			if len(g.Nodes) != 3 || g.Nodes[0].Count != 2 || len(g.Edges) != 2 || g.Edges[0].Count != 1 {
				t.Fatalf("child flow graph: %+v", g)
			}
			var fl FlowList
			get(t, h, "/api/v1/flows", 200).decode(t, &fl)
			for _, f := range fl.Flows {
				if f.Name == "shipment" && (f.Parent == nil || f.Parent.Flow != "order") {
					t.Fatalf("shipment: %+v", f)
				}
				if f.Name == "order" && (f.Checkpoints[3].Children == nil || f.Checkpoints[6].Compensates != "paid") {
					t.Fatalf("order: %+v", f)
				}
			}
		})
	}
}

// An operator may cancel a compensating instance (giving its compensations up), not a
// compensated one.
func TestOperatorActsOnCompensatingInstances(t *testing.T) {
	at := t0.Add(time.Hour)
	store := &storagetest.Memory{}
	set := testflows.FamilySet(t)
	for key, status := range map[string]model.Status{"o-c": model.StatusCompensating, "o-d": model.StatusCompensated} {
		if err := store.WriteStates(context.Background(), []storage.InstanceState{{Tenant: "default", Flow: "order", Version: 1,
			Key: key, Status: string(status), StartedAt: t0, LastSeen: t0, UpdatedAt: at}}); err != nil {
			t.Fatal(err)
		}
	}
	h := New(Config{Reader: store, Writer: store, Flows: func() *model.Set { return set }, Now: func() time.Time { return at },
		Registerer: prometheus.NewRegistry(), OperatorAPI: true})
	for key, want := range map[string]int{"o-c": 202, "o-d": 409} {
		if a := doBody(t, h, http.MethodPost, "/api/v1/flows/order/instances/"+key+"/cancel", `{"reason":"give up the refund","by":"ann"}`); a.status != want {
			t.Errorf("cancel %s: %d, want %d: %s", key, a.status, want, a.body)
		}
	}
}
