package detector

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// emitOperator writes an operator action as the query API does.
func (f *fixture) emitOperator(action, key, checkpoint string, at time.Duration) {
	f.t.Helper()
	ev := flowstate.OperatorEvent("acme", "order-fulfilment", key, action, checkpoint, "ann", "test", t0.Add(at))
	ev.IngestTime = f.clk.Now()
	if err := f.store.WriteEvents(context.Background(), []storage.CheckpointEvent{ev}); err != nil {
		f.t.Fatal(err)
	}
}

// A cancelled instance is closed as cancelled: its alerts resolve and no further command is
// sent; a restart reads the cancel again and agrees.
func TestCancelResolvesAlertsAndStopsCommands(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, 2*time.Minute+time.Second) // stuck at paid and stock_reserved
	if f.am.count() == 0 || d.Stats().Stuck != 1 {
		t.Fatalf("not alerted: %d notifications, %+v", f.am.count(), d.Stats())
	}
	f.emitOperator(model.OperatorCancel, "o-1", "", 2*time.Minute+2*time.Second)
	f.tick(d, 2*time.Minute+3*time.Second)
	if in := f.state("order-fulfilment", "o-1"); in.Status != "cancelled" || len(in.Expected) != 0 || in.Reason != nil {
		t.Fatalf("after cancel: %+v", in)
	}
	for _, a := range f.am.last() {
		if a.EndsAt == nil {
			t.Fatalf("an alert still fires after the cancel: %v", a.Labels)
		}
	}
	f.tick(d, 10*time.Minute) // paid's action (after 10s) would have been due long ago
	if f.nats.count() != 0 {
		t.Fatalf("%d commands sent for a cancelled instance", f.nats.count())
	}
	if s := d.Stats(); s.Open != 0 || s.Stuck != 0 {
		t.Fatalf("stats %+v", s)
	}
	d.Close()
	d2 := f.detector()
	f.tick(d2, 11*time.Minute)
	if d2.Stats().Open != 0 || f.state("order-fulfilment", "o-1").Status != "cancelled" {
		t.Fatalf("after restart: %+v, %s", d2.Stats(), f.state("order-fulfilment", "o-1").Status)
	}
}

// An unblock sends the next attempt of the overdue checkpoint's action now, past max_attempts,
// recorded with trigger manual; read again after a restart, it is not served twice.
func TestUnblockSendsTheNextAttemptNow(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	f.tick(d, 2*time.Minute+time.Second)
	// An unblock before paid's action is due (after 10s): sent at once.
	f.emitOperator(model.OperatorUnblock, "o-1", "paid", 2*time.Minute+2*time.Second)
	f.tick(d, 2*time.Minute+3*time.Second)
	if f.nats.count() != 1 {
		t.Fatalf("%d commands after the unblock", f.nats.count())
	}
	var ce CloudEvent
	if err := json.Unmarshal(f.nats.cmds[0].Body, &ce); err != nil || ce.Trigger != TriggerManual || ce.Data.Attempt != 1 {
		t.Fatalf("command = %+v, %v", ce, err)
	}
	// The automatic attempts follow their backoff (30s) from there: 2 and 3.
	for _, at := range []time.Duration{2*time.Minute + 34*time.Second, 3*time.Minute + 5*time.Second, 4 * time.Minute} {
		f.tick(d, at)
	}
	if f.nats.count() != 3 {
		t.Fatalf("%d commands, want 3 (max_attempts)", f.nats.count())
	}
	// Exhausted; an operator asks again: a fourth attempt, manual.
	f.emitOperator(model.OperatorUnblock, "o-1", "paid", 4*time.Minute+time.Second)
	f.tick(d, 4*time.Minute+2*time.Second)
	if f.nats.count() != 4 {
		t.Fatalf("%d commands after an unblock past max_attempts", f.nats.count())
	}
	if err := json.Unmarshal(f.nats.cmds[3].Body, &ce); err != nil || ce.Trigger != TriggerManual || ce.Data.Attempt != 4 ||
		f.nats.cmds[3].ID != CommandID("acme", "order-fulfilment", "o-1", "paid", 0, 4) {
		t.Fatalf("fourth command = %+v", ce)
	}
	// An unblock of a checkpoint that is not overdue does nothing.
	f.emitOperator(model.OperatorUnblock, "o-1", "stock_reserved", 4*time.Minute+3*time.Second)
	f.tick(d, 4*time.Minute+4*time.Second)
	d.Close()
	// A restart reads both unblocks again: nothing is sent twice.
	d2 := f.detector()
	f.tick(d2, 4*time.Minute+5*time.Second)
	f.tick(d2, 4*time.Minute+40*time.Second)
	if f.nats.count() != 4 {
		t.Fatalf("%d commands after a restart read the unblocks again", f.nats.count())
	}
	recs, _ := f.store.Commands(context.Background(), storage.AuditFilter{Key: "o-1"})
	if len(recs) != 4 {
		t.Fatalf("%d records for o-1: %+v", len(recs), recs)
	}
}
