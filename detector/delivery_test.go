package detector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// hangingNotifier never answers until released.
type hangingNotifier struct {
	release chan struct{}
	calls   atomic.Int32
}

func (h *hangingNotifier) Name() string { return "hanging" }
func (h *hangingNotifier) Notify(ctx context.Context, _ []Alert) error {
	h.calls.Add(1)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hangingSink never answers until released.
type hangingSink struct {
	name    string
	release chan struct{}
	calls   atomic.Int32
}

func (h *hangingSink) Name() string { return h.name }
func (h *hangingSink) Send(ctx context.Context, _ Command) error {
	h.calls.Add(1)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// designFlow is DESIGN.md's order example, cut to what the tests need: stock_reserved is due
// before paid, and only paid has an on_stuck action.
const designFlow = `apiVersion: flowwatch/v1
kind: Flow
name: order-fulfilment
version: 1
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: orders, span: "POST /orders" } }
  - name: paid
    after: [placed]
    within: 15m
    match: { service: payments, event: payment.authorized }
    on_stuck:
      - { sink: nats, subject: payments.retry, after: 5m, max_attempts: 3 }
  - { name: stock_reserved, after: [placed], within: 10m, match: { service: inventory, span: reserve } }
  - { name: shipped, after: [paid, stock_reserved], within: 48h, match: { service: shipping, span: "ship *" } }
  - { name: delivered, after: [shipped], terminal: success, match: { service: shipping, event: delivered } }
`

func designSet(t *testing.T) *model.Set {
	t.Helper()
	flows, probs := model.Parse("design.yaml", []byte(designFlow))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	return model.NewSet(flows)
}

// One notifier or sink that never answers delays no other receiver and no detection.
func TestHungReceiverDelaysNobody(t *testing.T) {
	f := newFixture(t)
	hn := &hangingNotifier{release: make(chan struct{})}
	hs := &hangingSink{name: "webhook", release: make(chan struct{})}
	defer close(hn.release)
	defer close(hs.release)
	f.set = designSet(t)
	d := f.detector(func(c *Config) {
		c.Alerting.Notifiers = []Notifier{hn, f.am}
		c.Sinks = []SinkConfig{{Sink: hs}, {Sink: f.nats}}
	})
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	// The detector runs as in production: its loop ticks (every 10ms of wall time, judging by
	// the injected clock) and takes the workers' results back as they come.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	f.clk.Set(t0.Add(21 * time.Minute)) // paid overdue by 6m: its action is due; stock_reserved overdue too
	waitFor(t, "the healthy notifier's alerts", func() bool { return f.am.count() > 0 })
	waitFor(t, "the command on the healthy sink", func() bool { return f.nats.count() == 1 })
	if hn.calls.Load() != 1 {
		t.Fatalf("hung notifier called %d times", hn.calls.Load())
	}
	// Still hung: later instances are detected and alerted all the same.
	f.emit("order-fulfilment", "placed", "o-2", "order.id", 21*time.Minute)
	f.clk.Set(t0.Add(36*time.Minute + time.Second))
	waitFor(t, "o-2 stuck in the store", func() bool {
		st, err := f.store.Instance(context.Background(), "acme", "order-fulfilment", "o-2")
		return err == nil && st != nil && st.Status == "stuck"
	})
	waitFor(t, "o-2's alerts on the healthy notifier", func() bool {
		for _, a := range f.am.last() {
			if a.Labels["key"] == "o-2" {
				return true
			}
		}
		return false
	})
	if hn.calls.Load() != 1 {
		t.Fatalf("the hung notifier was handed a second batch while the first hangs: %d", hn.calls.Load())
	}
}

// A sink that fails backs off as a whole: ten stuck instances make one attempt, not ten, until
// the backoff passes; the commands are not lost.
func TestFailingSinkBacksOffAsAWhole(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	failing := &funcSink{name: "nats", send: func() error {
		calls.Add(1)
		return errors.New("503 Service Unavailable")
	}}
	d := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: failing}} })
	for i := 0; i < 10; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-%d", i), "order.id", 0)
	}
	f.tick(d, time.Second)
	f.tick(d, 2*time.Minute+11*time.Second) // every paid action is due
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d sends while the sink fails; want 1 (then backoff)", n)
	}
	f.tick(d, 2*time.Minute+11*time.Second+500*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d sends within the backoff", n)
	}
	recs, _ := f.store.Commands(context.Background(), storage.AuditFilter{Limit: 100})
	failed := 0
	for _, r := range recs {
		if r.Outcome == OutcomeFailed {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed records, want 1: %+v", failed, recs)
	}
	f.tick(d, 2*time.Minute+13*time.Second) // past the first backoff: one more try, not ten
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d sends after the backoff; want 2", n)
	}
}

// A command's intent is durable before it is sent.
func TestIntentRecordedBeforeSending(t *testing.T) {
	f := newFixture(t)
	var problems []string
	var mu sync.Mutex
	sink := &funcSink{name: "nats"}
	sink.send = func() error { return nil }
	checked := &checkingSink{store: f.store, inner: sink, problems: func(p string) { mu.Lock(); problems = append(problems, p); mu.Unlock() }}
	d := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: checked}} })
	for i := 0; i < 20; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-%d", i), "order.id", 0)
	}
	f.tick(d, time.Second)
	f.tick(d, 2*time.Minute+11*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if checked.sent.Load() != 20 || len(problems) > 0 {
		t.Fatalf("sent %d, problems %v", checked.sent.Load(), problems)
	}
	recs, _ := f.store.Commands(context.Background(), storage.AuditFilter{Limit: 100})
	for _, r := range recs {
		if r.Outcome != OutcomeSent {
			t.Fatalf("after delivery, record %s is %s", r.ID, r.Outcome)
		}
	}
}

// checkingSink checks, when asked to send, that the store already records the intent.
type checkingSink struct {
	store interface {
		CommandsSince(context.Context, time.Time) ([]storage.CommandRecord, error)
	}
	inner    Sink
	sent     atomic.Int32
	problems func(string)
}

func (c *checkingSink) Name() string { return c.inner.Name() }
func (c *checkingSink) Send(ctx context.Context, cmd Command) error {
	recs, err := c.store.CommandsSince(ctx, time.Time{})
	if err != nil {
		return err
	}
	found := false
	for _, r := range recs {
		if r.ID == cmd.ID && r.Outcome == OutcomeSending {
			found = true
		}
	}
	if !found {
		c.problems("no intent recorded before sending " + cmd.ID)
	}
	c.sent.Add(1)
	return c.inner.Send(ctx, cmd)
}

// An attempt recorded as being sent when a detector died is never sent again under its id; a
// failed one is; the action goes on with its next attempt.
func TestRestartNeverResendsAnIntent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := func(key string, attempt int) string {
		return CommandID("acme", "order-fulfilment", key, "paid", 0, attempt)
	}
	for _, k := range []string{"o-sending", "o-failed"} {
		f.emit("order-fulfilment", "placed", k, "order.id", 0)
	}
	at := t0.Add(2*time.Minute + 10*time.Second)
	if err := f.store.WriteCommands(ctx, []storage.CommandRecord{
		{ID: id("o-sending", 1), Time: at, Tenant: "acme", Flow: "order-fulfilment", Key: "o-sending", Checkpoint: "paid", Attempt: 1, Sink: "nats", Outcome: OutcomeSending, Payload: "{}"},
		{ID: id("o-failed", 1), Time: at, Tenant: "acme", Flow: "order-fulfilment", Key: "o-failed", Checkpoint: "paid", Attempt: 1, Sink: "nats", Outcome: OutcomeFailed},
	}); err != nil {
		t.Fatal(err)
	}
	f.clk.Set(at.Add(time.Second))
	d := f.detector()
	f.tick(d, 2*time.Minute+12*time.Second)
	got := map[string]int{}
	for _, c := range f.nats.cmds {
		got[c.ID]++
	}
	if got[id("o-sending", 1)] != 0 || got[id("o-failed", 1)] != 1 {
		t.Fatalf("after restart: %v", got)
	}
	f.tick(d, 2*time.Minute+41*time.Second) // backoff 30s after the interrupted attempt
	if got := f.nats.count(); got != 2 || f.nats.cmds[1].ID != id("o-sending", 2) {
		t.Fatalf("the interrupted action's next attempt: %d sent, %v", got, f.nats.cmds)
	}
}

// Every overdue checkpoint is its own alert and runs its own on_stuck actions: in DESIGN.md's
// order example, while stock_reserved is late (and due first), paid's payments.retry is sent.
func TestEveryOverdueCheckpointActs(t *testing.T) {
	f := newFixture(t)
	f.set = designSet(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, time.Second)
	f.tick(d, 10*time.Minute+time.Second) // stock_reserved overdue
	if a := f.am.last(); len(a) != 1 || a[0].Labels["checkpoint"] != "stock_reserved" {
		t.Fatalf("alerts = %v", a)
	}
	f.tick(d, 20*time.Minute+time.Second) // paid overdue by 5m too: its action is due
	if f.nats.count() != 1 || f.nats.cmds[0].Subject != "payments.retry" {
		t.Fatalf("paid's action while stock_reserved is the earliest overdue: %v", f.nats.cmds)
	}
	cps := map[string]bool{}
	for _, a := range f.am.last() {
		cps[a.Labels["checkpoint"]] = a.EndsAt == nil
	}
	if !cps["paid"] || !cps["stock_reserved"] {
		t.Fatalf("firing alerts by checkpoint: %v", cps)
	}
	// stock arrives: its alert resolves; paid's fires on.
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", 20*time.Minute+2*time.Second)
	f.tick(d, 20*time.Minute+3*time.Second)
	for _, a := range f.am.last() {
		if a.Labels["checkpoint"] == "stock_reserved" && a.EndsAt == nil {
			t.Fatal("stock_reserved's alert still fires after it arrived")
		}
	}
	in := f.state("order-fulfilment", "o-1")
	if in.Status != "stuck" || in.Reason.Checkpoint != "paid" {
		t.Fatalf("state = %+v", in)
	}
}

// The commands a detector keeps in memory after Start are its shard's, of open instances.
func TestRecordedCommandsAreThisShardsOpenOnes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var recs []storage.CommandRecord
	for i := 0; i < 40; i++ {
		key := fmt.Sprintf("o-%d", i)
		f.emit("order-fulfilment", "placed", key, "order.id", 0)
		if i%2 == 0 { // half of them closed since
			f.emit("order-fulfilment", "paid", key, "payment.order_id", time.Minute)
			f.emit("order-fulfilment", "stock_reserved", key, "order.id", time.Minute)
			f.emit("order-fulfilment", "settled", key, "payment.id", 2*time.Minute, func(e *storage.CheckpointEvent) { e.KeyAttr = "order.id" })
			f.emit("order-fulfilment", "shipped", key, "order.id", 3*time.Minute)
			f.emit("order-fulfilment", "delivered", key, "order.id", 4*time.Minute)
		}
		recs = append(recs, storage.CommandRecord{ID: CommandID("acme", "order-fulfilment", key, "paid", 0, 1),
			Time: t0.Add(2 * time.Minute), Tenant: "acme", Flow: "order-fulfilment", Key: key, Checkpoint: "paid",
			Attempt: 1, Sink: "nats", Outcome: OutcomeNoEffect})
	}
	if err := f.store.WriteCommands(ctx, recs); err != nil {
		t.Fatal(err)
	}
	f.clk.Set(t0.Add(5 * time.Minute))
	d := f.detector(func(c *Config) { c.Shard, c.Shards = 1, 2 })
	held := 0
	for id, rs := range d.recorded {
		if d.open.get(id) == nil {
			t.Fatalf("commands of an instance that is not open are held: %d", len(rs))
		}
		tenant, flow, key := d.fams.split(id)
		if ShardOf(tenant, flow, key, 2) != 1 {
			t.Fatalf("commands of another shard's instance %s are held", key)
		}
		held += len(rs)
	}
	if held == 0 || held >= 20 {
		t.Fatalf("held %d records; want this shard's share of the 20 open ones", held)
	}
}
