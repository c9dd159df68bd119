package detector

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// failOnce makes the named store method fail n times.
func failOnce(f *fixture, method string, n int) {
	f.store.Fail = func(m string) error {
		if m == method && n > 0 {
			n--
			return errors.New("store unavailable")
		}
		return nil
	}
}

// A failed read-back at the moment an instance goes overdue is retried: it is still alerted
// and acted on.
func TestStuckReadBackFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, time.Second)
	failOnce(f, "InstanceEvents", 1)
	f.clk.Set(t0.Add(2*time.Minute + time.Second))
	_ = d.Tick(context.Background())
	f.tick(d, 2*time.Minute+3*time.Second)
	f.tick(d, 2*time.Minute+15*time.Second)
	if d.Stats().Stuck != 1 || len(f.am.alerts) == 0 || f.nats.count() != 1 {
		t.Fatalf("stats %+v, alerts %d, commands %d", d.Stats(), len(f.am.alerts), f.nats.count())
	}
}

// When the read-back knows more than the compact state (a row read late), the instance is
// judged again on it and its next deadline is still watched.
func TestReadBackThatMovedOnKeepsWatching(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("customer-onboarding", "signed_up", "c-1", "customer.id", 0)
	f.tick(d, time.Minute)
	// email_confirmed lands with an ingest time behind the overlap window: never read.
	f.clk.Set(t0.Add(-time.Hour))
	f.emit("customer-onboarding", "email_confirmed", "c-1", "customer.id", 71*time.Hour)
	f.tick(d, 3*24*time.Hour+time.Minute) // the compact state says stuck; the store says running
	if st := f.state("customer-onboarding", "c-1"); st.Status != "running" {
		t.Fatalf("at 3d: %+v", st)
	}
	f.tick(d, 5*24*time.Hour) // credit_checked was due at 71h+1.5d
	if st := f.state("customer-onboarding", "c-1"); st.Status != "stuck" || st.Reason == nil || st.Reason.Checkpoint != "credit_checked" {
		t.Fatalf("the next deadline was not watched: %+v", st)
	}
}

// An error arriving while stuck changes the alert's reason label: the alert under the old
// labels resolves instead of firing forever.
func TestReasonChangeResolvesTheOldAlert(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, 2*time.Minute+time.Second)
	f.emit("order-fulfilment", "", "o-1", "order.id", 2*time.Minute+2*time.Second, func(e *storage.CheckpointEvent) {
		e.Service, e.Name, e.Status, e.Message = "payments", "authorize", "error", "boom"
	})
	f.tick(d, 2*time.Minute+5*time.Second)
	f.emit("order-fulfilment", "paid", "o-1", "payment.order_id", 2*time.Minute+6*time.Second)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", 2*time.Minute+6*time.Second)
	for i := 0; i < 4; i++ { // settled is due at 7m6s: stop before
		f.tick(d, time.Duration(3+i)*time.Minute)
	}
	for _, s := range d.alerts {
		if !s.resolved {
			t.Fatalf("an alert still fires: %v", s.labels)
		}
	}
	if f.am.last()[0].EndsAt == nil {
		t.Fatalf("the last notification is not a resolution: %+v", f.am.last())
	}
}

// A flow file edited in place (same version, a checkpoint added) while instances are open
// neither crashes the detector nor mixes the definitions.
func TestSameVersionEditedInPlace(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, time.Second)
	edited := `apiVersion: flowwatch/v1
kind: Flow
name: order-fulfilment
version: 1
key: order.id
checkpoints:
  - {name: placed, start: true, match: {service: orders}}
  - {name: a1, after: [placed], match: {service: x}}
  - {name: a2, after: [placed], match: {service: x}}
  - {name: a3, after: [placed], match: {service: x}}
  - {name: paid, after: [placed], within: 2m, match: {service: payments, event: payment.authorized}}
  - {name: extra, after: [placed], match: {service: y}}
  - {name: stock_reserved, after: [placed], within: 2m, match: {service: inventory}}
  - {name: delivered, after: [paid], terminal: success, match: {service: shipping}}
`
	flows, probs := model.Parse("edited.yaml", []byte(edited))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	f.set = model.NewSet(flows)
	f.emit("order-fulfilment", "extra", "o-1", "order.id", 2*time.Second)
	f.tick(d, 3*time.Minute) // stuck: read back under the new set
	if d.Stats().Stuck != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
}

// Events whose read-back failed are read back again on the next tick.
func TestFailedReadBackInIngestIsRetried(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	// Out of order: the first event seen is not a start, so the instance is read back.
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, 2*time.Second)
	f.emit("order-fulfilment", "paid", "o-2", "payment.order_id", time.Second)
	failOnce(f, "InstanceEvents", 1)
	f.clk.Set(t0.Add(3 * time.Second))
	_ = d.Tick(context.Background())
	f.emit("order-fulfilment", "placed", "o-2", "order.id", 0) // would be the only thing seen otherwise
	f.tick(d, 4*time.Second)
	st := f.state("order-fulfilment", "o-2")
	for _, x := range st.Expected {
		if x.Checkpoint == "paid" {
			t.Fatalf("paid was lost with the failed read-back: %+v", st)
		}
	}
}

// A failed start is retried without moving the cursor back or counting twice.
func TestStartRetryDoesNotCountTwice(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 5; i++ {
		for j, cp := range []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"} {
			f.emit("order-fulfilment", cp, fmt.Sprintf("o-%d", i), "order.id", time.Duration(j)*time.Second)
		}
	}
	d, err := New(Config{Flows: func() *model.Set { return f.set }, Store: f.store, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	failOnce(f, "EventsSince", 1)
	if err := d.Start(context.Background()); err == nil {
		t.Fatal("want the read error")
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats(); s.Completed != 5 {
		t.Fatalf("completed %d, want 5", s.Completed)
	}
}

// Failed command deliveries back off (1s, 2s, 4s...), and a refused command (4xx) is not
// retried.
func TestCommandRetryBacksOffAndStopsOnRefusal(t *testing.T) {
	f := newFixture(t)
	var attempts []time.Duration
	sink := &funcSink{name: "nats", send: func() error {
		attempts = append(attempts, f.clk.Now().Sub(t0))
		return errors.New("connection refused")
	}}
	d := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: sink}} })
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	for s := 130; s < 150; s++ {
		f.tick(d, time.Duration(s)*time.Second)
	}
	want := []time.Duration{130, 131, 133, 137, 145}
	if len(attempts) != len(want) {
		t.Fatalf("attempts at %v, want at %v s", attempts, want)
	}
	for i := range want {
		if attempts[i] != want[i]*time.Second {
			t.Fatalf("attempts at %v, want at %v s", attempts, want)
		}
	}
	g := newFixture(t)
	n := 0
	refused := &funcSink{name: "nats", send: func() error { n++; return permanentError{errors.New("400 Bad Request")} }}
	dd := g.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: refused}} })
	g.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	for s := 130; s < 200; s++ {
		g.tick(dd, time.Duration(s)*time.Second)
	}
	if n != 1 {
		t.Fatalf("a refused command was sent %d times", n)
	}
}

type funcSink struct {
	name string
	send func() error
}

func (s *funcSink) Name() string                        { return s.name }
func (s *funcSink) Send(context.Context, Command) error { return s.send() }

// An instance with nothing left to wait for and no event for the rebuild window is no longer
// tracked (counted), so memory does not fill with abandoned instances.
func TestIdleInstancesAreEvicted(t *testing.T) {
	f := newFixture(t)
	d := f.detector(func(c *Config) { c.RebuildWindow = 24 * time.Hour })
	for i, cp := range []string{"placed", "paid", "stock_reserved", "settled", "shipped"} {
		f.emit("order-fulfilment", cp, "o-1", "order.id", time.Duration(i)*time.Second) // delivered is optional
	}
	f.tick(d, time.Minute)
	if d.Stats().Open != 1 {
		t.Fatalf("open %d", d.Stats().Open)
	}
	f.tick(d, 25*time.Hour)
	if d.Stats().Open != 0 {
		t.Fatalf("idle instance still open: %+v", d.Stats())
	}
}
