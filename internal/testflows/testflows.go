// Package testflows holds the flow definitions and evaluated states that tests of several
// packages share (the stored documents, the API), so that none keeps its own copy.
package testflows

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

// OrderYAML is a small flow with a parallel split, an AND-join and both terminals.
const OrderYAML = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - name: placed
    start: true
    match: { service: orders, span: "POST /orders" }
  - name: paid
    after: [placed]
    within: 2m
    key: payment.order_id
    aliases: [payment.id]
    match: { service: payments, event: payment.authorized }
    on_stuck:
      - { sink: nats, subject: payments.retry, after: 10s }
  - name: reserved
    after: [placed]
    within: 5m
    match: { service: inventory, span: reserve }
  - name: settled
    after: [paid]
    within: 5m
    key: payment.id
    match: { service: ledger, event: payment.settled }
  - name: shipped
    after: [settled, reserved]
    within: 10m
    match: { service: shipping, span: "ship *" }
  - name: delivered
    after: [shipped]
    terminal: success
    match: { service: shipping, event: delivered }
  - name: cancelled
    after: [placed]
    terminal: failure
    match: { service: orders, span: cancel }
`

// T0 is the tests' reference time.
var T0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// OrderSet parses OrderYAML.
func OrderSet(t testing.TB) *model.Set {
	t.Helper()
	flows, probs := model.Parse("order.yaml", []byte(OrderYAML))
	if len(probs) > 0 {
		t.Fatalf("parse test flow: %v", probs)
	}
	return model.NewSet(flows)
}

// StuckOrder evaluates an instance that is stuck on "paid", has an error note, and a
// duplicate checkpoint violation; times are in a non-UTC zone with nanoseconds.
func StuckOrder(t testing.TB) model.State {
	t.Helper()
	zone := time.FixedZone("CET", 3600)
	base := T0.In(zone).Add(123456789 * time.Nanosecond)
	in := model.NewInstance(OrderSet(t).Versions("order"), "acme", "o-1")
	in.Apply(model.Event{ID: "e1", Checkpoint: "placed", Time: base, Service: "orders", Name: "POST /orders", TraceID: "t1", SpanID: "s1", Status: "ok"})
	in.Apply(model.Event{ID: "e2", Checkpoint: "reserved", Time: base.Add(10 * time.Second), Service: "inventory", Name: "reserve", TraceID: "t2", SpanID: "s2", Status: "ok"})
	in.Apply(model.Event{ID: "e3", Checkpoint: "reserved", Time: base.Add(20 * time.Second), Service: "inventory", Name: "reserve", TraceID: "t3", SpanID: "s3", Status: "ok"})
	in.Apply(model.Event{ID: "e4", Time: base.Add(30 * time.Second), Service: "payments", Name: "authorize", TraceID: "t4", SpanID: "s4", Status: "error", Message: "card declined"})
	st := in.Evaluate(T0.Add(5 * time.Minute))
	if st.Status != model.StatusStuck || st.Reason == nil || st.LastError == nil || len(st.Violations) != 1 {
		t.Fatalf("test state is not what the test needs: %+v", st)
	}
	return st
}

// FamilyYAML is the order flow's family: an order whose parcels are shipments (a children
// checkpoint, complete: all, expecting order.parcel_count of them) and whose payment is
// refunded when it fails after paying (a compensation).
const FamilyYAML = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - name: placed
    start: true
    match: { service: orders, span: "POST /orders" }
  - name: paid
    after: [placed]
    within: 2m
    match: { service: payments, event: payment.authorized }
  - name: shipped
    after: [paid]
    within: 10m
    match: { service: shipping, span: "ship *" }
  - name: all_delivered
    after: [shipped]
    within: 1h
    children: { flow: shipment, complete: all, expect: order.parcel_count }
  - name: closed
    after: [all_delivered]
    terminal: success
    match: { service: orders, span: close }
  - name: cancelled
    after: [placed]
    terminal: failure
    match: { service: orders, span: cancel }
  - name: refunded
    compensates: paid
    within: 30m
    match: { service: payments, event: refund.completed }
    on_stuck:
      - { sink: nats, subject: payments.refund, after: 10s, max_attempts: 2, backoff: 1m }
---
apiVersion: flowwatch/v1
kind: Flow
name: shipment
version: 1
key: shipment.id
parent: { flow: order, key: order.id }
checkpoints:
  - name: packed
    start: true
    match: { service: warehouse, span: pack }
  - name: delivered
    after: [packed]
    within: 20m
    terminal: success
    match: { service: courier, event: delivered }
  - name: lost
    after: [packed]
    terminal: failure
    match: { service: courier, event: lost }
`

// FamilySet loads FamilyYAML, with the checks across flows that Load makes.
func FamilySet(t testing.TB) *model.Set {
	t.Helper()
	path := filepath.Join(t.TempDir(), "family.yaml")
	if err := os.WriteFile(path, []byte(FamilyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := model.Load(path)
	if err != nil {
		t.Fatalf("load test family: %v", err)
	}
	return set
}
