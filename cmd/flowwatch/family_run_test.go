package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// familyInstance is what the test reads of an instance detail.
type familyInstance struct {
	Status   string `json:"status"`
	Expected []struct {
		Checkpoint  string `json:"checkpoint"`
		Compensates string `json:"compensates"`
	} `json:"expected"`
	Reason *struct {
		Checkpoint  string `json:"checkpoint"`
		Compensates string `json:"compensates"`
		Failure     *struct {
			Checkpoint string `json:"checkpoint"`
			Child      *struct {
				Flow, Key, Checkpoint string
			} `json:"child"`
		} `json:"failure"`
		Children *struct {
			Flow   string         `json:"flow"`
			Counts map[string]int `json:"counts"`
			Stuck  []struct {
				Key, Checkpoint string
			} `json:"stuck"`
		} `json:"children"`
		Summary string `json:"summary"`
	} `json:"reason"`
	Parent *struct {
		Flow, Key string
	} `json:"parent"`
	Children []struct {
		Key, Status string
	} `json:"children"`
	Violations []struct {
		Kind, Checkpoint string
	} `json:"violations"`
}

// TestFamiliesThroughRun is the end-to-end test of sub-flows and compensations through
// `flowwatch run`: real OTLP from the OTel SDK into the collector, the embedded store, the
// detector, a real Alertmanager and NATS JetStream. Order F ships two parcels and one is lost:
// the shipment is stuck, and so is the order at all_delivered, which explains itself through
// its children; both are alerted. Order R is cancelled once paid: its refund is overdue, the
// reason names the compensation and the step, it is alerted, and the refund retried by the
// command comes: R is compensated.
func TestFamiliesThroughRun(t *testing.T) {
	am := testsvc.AlertmanagerT(t)
	ns := testNATS(t)
	o := &runOptions{flows: "testdata/family", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		alertmanagers: stringList{am.URL()}, nats: ns.ClientURL()}
	ri, stop := startAllInOne(t, o)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}

	// The payments service consumes refund retries: it refunds.
	var mu sync.Mutex
	var refunds []detector.CloudEvent
	alerted := make(chan struct{}) // the refund waits until its alert is seen firing
	consumeCommands(ctx, t, ri.NATS, "pay", "pay.refund", func(_ string, ce detector.CloudEvent) {
		mu.Lock()
		refunds = append(refunds, ce)
		mu.Unlock()
		select {
		case <-alerted:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		key := []attribute.KeyValue{attribute.String("order.id", ce.Data.Key)}
		svc.span("pay", "refund", trace.SpanKindConsumer, now, key, withEvent("refund.completed", now.Add(10*time.Millisecond), key...))
	})

	t0 := time.Now()
	order := func(key string, parcels int) []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("order.id", key), attribute.Int("order.parcel_count", parcels)}
	}
	paid := func(key string, at time.Time) {
		k := []attribute.KeyValue{attribute.String("order.id", key)}
		svc.span("pay", "authorize", trace.SpanKindClient, at, k, withEvent("payment.authorized", at.Add(10*time.Millisecond), k...))
	}
	// F: two parcels shipped, F-2 lost in transit. The courier names only the shipment.
	svc.span("shop", "POST /checkout", trace.SpanKindServer, t0, order("F", 2))
	paid("F", t0.Add(100*time.Millisecond))
	svc.span("shipping", "ship order", trace.SpanKindInternal, t0.Add(200*time.Millisecond), order("F", 2))
	for _, s := range []string{"F-1", "F-2"} {
		svc.span("shipping", "dispatch parcel", trace.SpanKindInternal, t0.Add(300*time.Millisecond),
			[]attribute.KeyValue{attribute.String("shipment.id", s), attribute.String("order.id", "F")})
	}
	svc.span("courier", "POST /tracking/events", trace.SpanKindServer, t0.Add(time.Second),
		[]attribute.KeyValue{attribute.String("shipment.id", "F-1")}, withEvent("parcel.delivered", t0.Add(time.Second)))
	// R: paid, then cancelled: its refund is due, and missed.
	svc.span("shop", "POST /checkout", trace.SpanKindServer, t0, order("R", 1))
	paid("R", t0.Add(100*time.Millisecond))
	svc.span("shop", "cancel", trace.SpanKindInternal, t0.Add(500*time.Millisecond), order("R", 1))

	api := ri.API + "/api/v1"
	instance := func(flow, key string) familyInstance {
		var in familyInstance
		getJSON(t, api+"/flows/"+flow+"/instances/"+key+"?tenant=shop-eu", &in)
		return in
	}
	var f, r familyInstance
	poll(t, "F stuck at its children, R stuck at its refund", 30*time.Second, func() bool {
		f, r = instance("order", "F"), instance("order", "R")
		return f.Status == "stuck" && f.Reason != nil && f.Reason.Children != nil && len(f.Reason.Children.Stuck) == 1 &&
			r.Status == "stuck" && r.Reason != nil
	})
	if c := f.Reason.Children; f.Reason.Checkpoint != "all_delivered" || c.Flow != "shipment" || c.Counts["completed"] != 1 ||
		c.Counts["stuck"] != 1 || c.Stuck[0].Key != "F-2" || c.Stuck[0].Checkpoint != "delivered" ||
		!strings.Contains(f.Reason.Summary, "expected from its shipment children") {
		t.Fatalf("F's reason: %+v", f.Reason)
	}
	if len(f.Children) != 2 || f.Children[0].Key != "F-1" || f.Children[0].Status != "completed" ||
		f.Children[1].Key != "F-2" || f.Children[1].Status != "stuck" {
		t.Fatalf("F's children: %+v", f.Children)
	}
	if lost := instance("shipment", "F-2"); lost.Status != "stuck" || lost.Parent == nil || lost.Parent.Flow != "order" ||
		lost.Parent.Key != "F" || lost.Reason == nil || lost.Reason.Checkpoint != "delivered" {
		t.Fatalf("F-2: %+v", lost)
	}
	if rr := r.Reason; rr.Checkpoint != "refunded" || rr.Compensates != "paid" || rr.Failure == nil ||
		rr.Failure.Checkpoint != "cancelled" || !strings.Contains(rr.Summary, `compensation "refunded" (of "paid")`) {
		t.Fatalf("R's reason: %+v", r.Reason)
	}

	// Alertmanager holds an alert for the lost shipment, its order and the late refund.
	firing := func() map[string]bool {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		getJSON(t, am.URL()+"/api/v2/alerts?active=true", &alerts)
		out := map[string]bool{}
		for _, al := range alerts {
			if al.Labels["alertname"] == "FlowStuck" && al.Labels["tenant"] == "shop-eu" {
				out[al.Labels["flow"]+"/"+al.Labels["key"]+"/"+al.Labels["checkpoint"]] = true
			}
		}
		return out
	}
	poll(t, "the three alerts firing in Alertmanager", 30*time.Second, func() bool {
		a := firing()
		return a["shipment/F-2/delivered"] && a["order/F/all_delivered"] && a["order/R/refunded"]
	})
	close(alerted)

	// The refund retried by the command comes: R is compensated, its alert resolves, the
	// command succeeded.
	poll(t, "R compensated", 30*time.Second, func() bool { return instance("order", "R").Status == "compensated" })
	poll(t, "R's alert to resolve", 30*time.Second, func() bool { return !firing()["order/R/refunded"] })
	poll(t, "the refund command recorded as succeeded", 30*time.Second, func() bool {
		var rec struct {
			Commands []struct{ Key, Checkpoint, Outcome string } `json:"commands"`
		}
		getJSON(t, api+"/commands?flow=order&tenant=shop-eu", &rec)
		for _, x := range rec.Commands {
			if x.Key == "R" && x.Checkpoint == "refunded" && x.Outcome == "succeeded" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	if len(refunds) != 1 || refunds[0].Data.Checkpoint != "refunded" || refunds[0].Data.Flow != "order" {
		t.Errorf("refund commands: %+v", refunds)
	}
	mu.Unlock()

	// The lost parcel turns up: the shipment completes, then its order reaches all_delivered.
	svc.span("courier", "POST /tracking/events", trace.SpanKindServer, time.Now(),
		[]attribute.KeyValue{attribute.String("shipment.id", "F-2")}, withEvent("parcel.delivered", time.Now()))
	poll(t, "F to move on", 30*time.Second, func() bool {
		f := instance("order", "F")
		return f.Status == "running" && len(f.Expected) == 0 && instance("shipment", "F-2").Status == "completed"
	})
	poll(t, "F's alerts to resolve", 30*time.Second, func() bool {
		a := firing()
		return !a["order/F/all_delivered"] && !a["shipment/F-2/delivered"]
	})
}
