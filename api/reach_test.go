package api

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// A children checkpoint is reached by the children, never by an item of the parent's: the
// graph counts it, and the edges into and out of it, from the row the detector records for
// it; the series by checkpoint and the instance's events show it. An operator's cancel is no
// checkpoint: no series shows it.
func TestGraphCountsTheChildrenCheckpoint(t *testing.T) {
	at := t0.Add(10 * time.Minute)
	for name, rw := range map[string]readWriter{"memory": &storagetest.Memory{Now: func() time.Time { return at }}, "chdb": openEmbedded(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			set := testflows.FamilySet(t)
			ev := func(id, flow, cp, key string, d time.Duration, attrs map[string]string) storage.CheckpointEvent {
				return storage.CheckpointEvent{EventID: id, Tenant: "default", Flow: flow, Checkpoint: cp, Key: key, Time: t0.Add(d),
					Service: "svc", Name: cp, Status: "ok", Attributes: attrs}
			}
			parent := map[string]string{model.AttrParentKey: "o-1"}
			rows := []storage.CheckpointEvent{
				ev("00000000000000a1", "order", "placed", "o-1", 0, map[string]string{"order.parcel_count": "2"}),
				ev("00000000000000a2", "order", "paid", "o-1", time.Minute, nil),
				ev("00000000000000a3", "order", "shipped", "o-1", 2*time.Minute, nil),
				ev("00000000000000b1", "shipment", "packed", "s-1", 3*time.Minute, parent),
				ev("00000000000000b2", "shipment", "delivered", "s-1", 4*time.Minute, nil),
				ev("00000000000000c1", "shipment", "packed", "s-2", 3*time.Minute, parent),
				ev("00000000000000c2", "shipment", "delivered", "s-2", 6*time.Minute, nil),
				ev("00000000000000a4", "order", "closed", "o-1", 8*time.Minute, nil),
				ev("00000000000000d1", "order", "placed", "o-2", 0, nil),
				flowstate.OperatorEvent("default", "order", "o-2", model.OperatorCancel, "", "ann", "test", t0.Add(time.Minute)),
			}
			if err := rw.WriteEvents(ctx, rows); err != nil {
				t.Fatal(err)
			}
			d, err := detector.New(detector.Config{Flows: func() *model.Set { return set }, Store: rw, Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			h := New(Config{Reader: rw, Flows: func() *model.Set { return set }, Now: func() time.Time { return at },
				Registerer: prometheus.NewRegistry()})

			var g Graph
			get(t, h, "/api/v1/flows/order/graph?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", 200).decode(t, &g)
			nodes := map[string]uint64{}
			for _, n := range g.Nodes {
				nodes[n.ID] = n.Count
			}
			if nodes["shipped"] != 1 || nodes["all_delivered"] != 1 || nodes["closed"] != 1 || nodes["placed"] != 2 {
				t.Fatalf("nodes: %+v", g.Nodes)
			}
			edges := map[[2]string]GraphEdge{}
			for _, e := range g.Edges {
				edges[[2]string{e.Source, e.Target}] = e
			}
			// Reached when the last parcel was delivered, 4m after shipped; closed 2m later.
			in, out := edges[[2]string{"shipped", "all_delivered"}], edges[[2]string{"all_delivered", "closed"}]
			if in.Count != 1 || in.P50MS != 4*60e3 || out.Count != 1 || out.P50MS != 2*60e3 {
				t.Fatalf("edges into and out of all_delivered: %+v, %+v", in, out)
			}

			var s SeriesList
			get(t, h, "/api/v1/flows/order/series?from=2026-11-26T10:00:00Z&to=2026-11-26T10:10:00Z&step=1m&by=checkpoint", 200).decode(t, &s)
			for _, sr := range s.Series {
				if sr.Name == model.OperatorCancel || sr.Name == model.OperatorUnblock {
					t.Fatalf("series by checkpoint shows the operator's %s: %+v", sr.Name, s.Series)
				}
				if sr.Name == "all_delivered" && (len(sr.Points) != 10 || sr.Points[6][1] != 1) {
					t.Fatalf("all_delivered series: %+v", sr.Points)
				}
			}

			var o InstanceDetail
			get(t, h, "/api/v1/flows/order/instances/o-1", 200).decode(t, &o)
			seen := false
			for _, e := range o.Events {
				seen = seen || e.Checkpoint == "all_delivered" && e.Time.Equal(t0.Add(6*time.Minute))
			}
			if o.Status != "completed" || !seen || len(o.Violations) != 0 {
				t.Fatalf("o-1: %s, events %+v, violations %+v", o.Status, o.Events, o.Violations)
			}
		})
	}
}
