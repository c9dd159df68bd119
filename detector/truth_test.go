package detector

import (
	"strings"
	"testing"
	"time"
)

// A stuck instance whose actions are exhausted stays stuck, and alerted, however long: its
// alert resolves only when something true changes. A restarted detector takes it back from
// its stored state even when it started before the rebuild window.
func TestStuckStaysStuckAndAlertedPastTheRebuildWindow(t *testing.T) {
	f := newFixture(t)
	window := func(c *Config) { c.RebuildWindow = time.Hour }
	d := f.detector(window)
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	for _, at := range []time.Duration{time.Second, 2*time.Minute + 11*time.Second, 2*time.Minute + 42*time.Second,
		3*time.Minute + 13*time.Second, 3*time.Minute + 44*time.Second} {
		f.tick(d, at) // stuck; paid's three attempts, 30s apart, and the verdict on the last
	}
	if f.nats.count() != 3 {
		t.Fatalf("%d commands, want 3", f.nats.count())
	}
	f.tick(d, 3*time.Hour) // far past the rebuild window, nothing new
	if s := d.Stats(); s.Stuck != 1 || s.Open != 1 {
		t.Fatalf("after 3h: %+v", s)
	}
	last := f.am.last()
	if len(last) != 1 || last[0].EndsAt != nil {
		t.Fatalf("the alert of a stuck instance resolved: %+v", last)
	}
	if in := f.state("order-fulfilment", "o-1"); in.Status != "stuck" {
		t.Fatalf("stored %s", in.Status)
	}
	d.Close()

	// A restart 5h later: the instance is older than the rebuild window; it is taken back.
	f.clk.Set(t0.Add(5 * time.Hour))
	d2 := f.detector(window)
	f.tick(d2, 5*time.Hour+time.Second)
	if s := d2.Stats(); s.Stuck != 1 {
		t.Fatalf("after a restart past the rebuild window: %+v", s)
	}
	last = f.am.last()
	if len(last) != 1 || last[0].EndsAt != nil || last[0].Labels["key"] != "o-1" {
		t.Fatalf("not alerted after the restart: %+v", last)
	}
	if f.nats.count() != 3 {
		t.Fatalf("the restart sent commands again: %d", f.nats.count())
	}
	// It moves on: now the alert resolves.
	f.emit("order-fulfilment", "paid", "o-1", "payment.order_id", 5*time.Hour+2*time.Second)
	f.tick(d2, 5*time.Hour+3*time.Second)
	if last := f.am.last(); len(last) != 1 || last[0].EndsAt == nil {
		t.Fatalf("the alert did not resolve when paid arrived: %+v", last)
	}
}

// Each re-send of a firing alert carries how overdue it is at that moment.
func TestOverdueAnnotationIsCurrentAtEveryResend(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	f.tick(d, 2*time.Minute+time.Second)
	if a := f.am.last(); len(a) != 1 || a[0].Annotations["overdue"] != "1s" {
		t.Fatalf("first send: %+v", a)
	}
	f.tick(d, 12*time.Minute) // resend every minute: a re-send is due
	a := f.am.last()
	if len(a) != 1 || a[0].Annotations["overdue"] != "10m0s" {
		t.Fatalf("re-send 10m later: overdue = %q", a[0].Annotations["overdue"])
	}
	if want := "overdue by 10m0s"; !strings.Contains(a[0].Annotations["summary"], want) {
		t.Fatalf("summary %q lacks %q", a[0].Annotations["summary"], want)
	}
}
