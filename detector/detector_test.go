package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// clock is an injected clock: tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// recorder is a Notifier that keeps what it was sent and can be told to fail.
type recorder struct {
	mu     sync.Mutex
	fail   error
	alerts [][]Alert
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Notify(_ context.Context, alerts []Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.alerts = append(r.alerts, append([]Alert(nil), alerts...))
	return nil
}
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.alerts)
}
func (r *recorder) last() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.alerts) == 0 {
		return nil
	}
	return r.alerts[len(r.alerts)-1]
}

// sinkRec is a command Sink that records.
type sinkRec struct {
	name string
	mu   sync.Mutex
	fail error
	cmds []Command
}

func (s *sinkRec) Name() string { return s.name }
func (s *sinkRec) Send(_ context.Context, c Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.cmds = append(s.cmds, c)
	return nil
}
func (s *sinkRec) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.cmds) }

type fixture struct {
	t     *testing.T
	store *storagetest.Memory
	clk   *clock
	set   *model.Set
	am    *recorder
	nats  *sinkRec
	seq   int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	set, err := model.Load("../model/testdata/flows")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	// The store ingests on the fixture's clock, as on a real store's: the rows the detector
	// writes itself (children checkpoints reached) are read back in ingest order.
	return &fixture{t: t, store: &storagetest.Memory{Now: clk.Now}, clk: clk, set: set, am: &recorder{}, nats: &sinkRec{name: "nats"}}
}

func (f *fixture) detector(mut ...func(*Config)) *Detector {
	f.t.Helper()
	cfg := Config{
		Flows: func() *model.Set { return f.set }, Store: f.store, Now: f.clk.Now,
		Alerting: AlertConfig{Notifiers: []Notifier{f.am}, Resend: time.Minute},
		Sinks:    []SinkConfig{{Sink: f.nats}},
	}
	for _, m := range mut {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(d.Close)
	if err := d.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// emit writes one checkpoint event as the exporter would, ingested now.
func (f *fixture) emit(flow, cp, key, keyAttr string, at time.Duration, mods ...func(*storage.CheckpointEvent)) {
	f.t.Helper()
	f.seq++
	e := storage.CheckpointEvent{EventID: fmt.Sprintf("%016x", f.seq), Tenant: "acme", Flow: flow, Checkpoint: cp,
		Key: key, KeyAttr: keyAttr, Time: t0.Add(at), IngestTime: f.clk.Now(), TraceID: fmt.Sprintf("trace-%d", f.seq),
		SpanID: "span", Service: "svc", Name: cp, Status: "ok"}
	for _, m := range mods {
		m(&e)
	}
	if err := f.store.WriteEvents(context.Background(), []storage.CheckpointEvent{e}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) tick(d *Detector, at time.Duration) {
	f.t.Helper()
	f.clk.Set(t0.Add(at))
	if err := d.Tick(context.Background()); err != nil {
		f.t.Fatalf("tick at %s: %v", at, err)
	}
	// The tick's read-backs and deliveries run on the workers: wait for their results.
	if err := d.Settle(context.Background()); err != nil {
		f.t.Fatalf("settle at %s: %v", at, err)
	}
}

func (f *fixture) state(flow, key string) flowstate.Document {
	f.t.Helper()
	st, err := f.store.Instance(context.Background(), "acme", flow, key)
	if err != nil || st == nil {
		f.t.Fatalf("no state for %s/%s: %v", flow, key, err)
	}
	in, err := flowstate.Parse(*st)
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

func TestStuckExplainedAlertedAndResolved(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", 30*time.Second)
	f.emit("order-fulfilment", "", "o-1", "order.id", 40*time.Second, func(e *storage.CheckpointEvent) {
		e.Service, e.Name, e.Status, e.Message = "payments", "authorize", "error", "card issuer timeout"
	})
	f.tick(d, time.Minute)
	if st := f.state("order-fulfilment", "o-1"); st.Status != "running" || len(st.Expected) != 1 || st.Expected[0].Checkpoint != "paid" {
		t.Fatalf("at 1m: %+v", st)
	}
	if len(f.am.alerts) != 0 {
		t.Fatal("alert before the deadline")
	}
	// The deadline of paid is 2m; at 2m+1s the instance is stuck, explained, and alerted.
	f.tick(d, 2*time.Minute+time.Second)
	st := f.state("order-fulfilment", "o-1")
	if st.Status != "stuck" || st.Reason == nil {
		t.Fatalf("want stuck with a reason: %+v", st)
	}
	r := st.Reason
	if r.Checkpoint != "paid" || r.Service != "payments" || r.LastCheckpoint != "stock_reserved" ||
		r.LastError == nil || r.LastError.Message != "card issuer timeout" || len(r.TraceIDs) != 3 ||
		time.Duration(r.Overdue) != time.Second {
		t.Fatalf("reason = %+v", r)
	}
	alerts := f.am.last()
	if len(alerts) != 1 {
		t.Fatalf("alerts = %+v", f.am.alerts)
	}
	l := alerts[0].Labels
	if l["alertname"] != "FlowStuck" || l["flow"] != "order-fulfilment" || l["flow_version"] != "1" ||
		l["checkpoint"] != "paid" || l["key"] != "o-1" || l["tenant"] != "acme" || l["reason"] != ReasonError || alerts[0].EndsAt != nil {
		t.Fatalf("labels = %v", l)
	}
	if !strings.Contains(alerts[0].Annotations["summary"], "card issuer timeout") || alerts[0].Annotations["trace_ids"] == "" {
		t.Fatalf("annotations = %v", alerts[0].Annotations)
	}
	// Re-sent while firing, not before Resend.
	f.tick(d, 2*time.Minute+30*time.Second)
	if len(f.am.alerts) != 1 {
		t.Fatalf("re-sent too early: %d", len(f.am.alerts))
	}
	f.tick(d, 3*time.Minute+2*time.Second)
	if len(f.am.alerts) != 2 {
		t.Fatalf("not re-sent while firing: %d", len(f.am.alerts))
	}
	// The payment arrives: the alert resolves, the state moves on.
	f.emit("order-fulfilment", "paid", "o-1", "order.id", 3*time.Minute)
	f.tick(d, 3*time.Minute+5*time.Second)
	alerts = f.am.last()
	if len(alerts) != 1 || alerts[0].EndsAt == nil || !alerts[0].EndsAt.Equal(t0.Add(3*time.Minute+5*time.Second)) {
		t.Fatalf("want resolved alert, got %+v", alerts)
	}
	if st := f.state("order-fulfilment", "o-1"); st.Status != "running" || st.Reason != nil || st.Expected[0].Checkpoint != "settled" {
		t.Fatalf("after payment: %+v", st)
	}
	recs, _ := f.store.Alerts(context.Background(), storage.AuditFilter{Limit: 100})
	if len(recs) != 2 || recs[0].State != "resolved" || recs[1].State != "firing" {
		t.Fatalf("audit = %+v", recs)
	}
}

func TestCompletedAndFailedAreWrittenAndForgotten(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	for i, cp := range []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"} {
		f.emit("order-fulfilment", cp, "o-ok", "order.id", time.Duration(i)*time.Second)
	}
	f.emit("order-fulfilment", "placed", "o-x", "order.id", 0)
	f.emit("order-fulfilment", "cancelled", "o-x", "order.id", time.Second)
	f.tick(d, 10*time.Second)
	if st := f.state("order-fulfilment", "o-ok"); st.Status != "completed" || st.LastCheckpoint != "delivered" {
		t.Fatalf("o-ok: %+v", st)
	}
	if st := f.state("order-fulfilment", "o-x"); st.Status != "failed" {
		t.Fatalf("o-x: %+v", st)
	}
	if s := d.Stats(); s.Open != 0 || s.Completed != 1 || s.Failed != 1 {
		t.Fatalf("stats = %+v", s)
	}
	// A late duplicate of the start event (a replayed queue, new event id) does not reopen it.
	f.emit("order-fulfilment", "placed", "o-ok", "order.id", 0, func(e *storage.CheckpointEvent) { e.EventID = "00000000000000ff" }) // another id
	f.tick(d, time.Hour)
	if st := f.state("order-fulfilment", "o-ok"); st.Status != "completed" {
		t.Fatalf("reopened: %+v", st)
	}
}

func TestLateEventFromAnotherCollectorIsNotMissed(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-1", "order.id", 0)
	f.tick(d, 10*time.Second)
	// A row written by another collector lands with an ingest time older than the cursor.
	f.clk.Set(t0.Add(-5 * time.Second))
	f.emit("order-fulfilment", "stock_reserved", "o-1", "order.id", time.Second)
	f.tick(d, 11*time.Second)
	st := f.state("order-fulfilment", "o-1")
	if len(st.Expected) != 1 || st.Expected[0].Checkpoint != "paid" {
		t.Fatalf("late row inside the overlap window was missed: %+v", st)
	}
	// And it is applied once, however many ticks re-read it.
	f.tick(d, 12*time.Second)
	f.tick(d, 13*time.Second)
	if n := d.m; n == nil {
		t.Fatal("no metrics")
	}
}

func TestOutOfOrderFirstEventReadsTheInstanceBack(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "paid", "o-2", "payment.order_id", 2*time.Second)
	f.tick(d, 3*time.Second)
	f.emit("order-fulfilment", "placed", "o-2", "order.id", 0)
	f.tick(d, 4*time.Second)
	st := f.state("order-fulfilment", "o-2")
	if st.Status != "running" || st.StartedAt != t0 {
		t.Fatalf("state = %+v", st)
	}
	got := map[string]bool{}
	for _, x := range st.Expected {
		got[x.Checkpoint] = true
	}
	if !got["settled"] || !got["stock_reserved"] || got["paid"] {
		t.Fatalf("expected = %+v", st.Expected)
	}
}

func TestAliasResolvesToTheOrder(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-3", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-3", "order.id", time.Second)
	f.emit("order-fulfilment", "paid", "o-3", "payment.order_id", 2*time.Second)
	// The ledger only knows the payment id.
	f.emit("order-fulfilment", "settled", "pay-3", "payment.id", 3*time.Second)
	f.tick(d, 4*time.Second)
	if st := f.state("order-fulfilment", "o-3"); st.Expected[0].Checkpoint != "settled" {
		t.Fatalf("settled applied before its alias is known: %+v", st)
	}
	// The alias row arrives later (another collector): the pending event is retried.
	if err := f.store.WriteAliases(context.Background(), []storage.Alias{{Tenant: "acme", Flow: "order-fulfilment",
		Attr: "payment.id", Value: "pay-3", Key: "o-3", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	f.tick(d, 5*time.Second)
	if st := f.state("order-fulfilment", "o-3"); len(st.Expected) != 1 || st.Expected[0].Checkpoint != "shipped" {
		t.Fatalf("alias not resolved: %+v", st)
	}
}

func TestCommandsAttemptsOutcomesAndRestart(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-4", "order.id", 0)
	f.emit("order-fulfilment", "stock_reserved", "o-4", "order.id", time.Second)
	// paid: within 2m, action after 10s, max 3 attempts, backoff 30s.
	f.tick(d, 2*time.Minute+5*time.Second)
	if f.nats.count() != 0 {
		t.Fatal("command sent inside the grace period")
	}
	f.tick(d, 2*time.Minute+10*time.Second)
	if f.nats.count() != 1 {
		t.Fatalf("want the first attempt at deadline+after, got %d", f.nats.count())
	}
	var ce CloudEvent
	if err := json.Unmarshal(f.nats.cmds[0].Body, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.SpecVersion != "1.0" || ce.ID != CommandID("acme", "order-fulfilment", "o-4", "paid", 0, 1) ||
		ce.Type != "dev.flowwatch.unblock" || ce.Subject != "order-fulfilment/o-4" || ce.CorrelationID != "o-4" ||
		ce.Data.Attempt != 1 || ce.Data.Checkpoint != "paid" || ce.Data.Reason == nil || ce.Data.Payload["action"] != "retry-payment" ||
		f.nats.cmds[0].Subject != "payments.retry" {
		t.Fatalf("command = %+v", ce)
	}
	// Backoff passes with no payment: no_effect, and attempt 2.
	f.tick(d, 2*time.Minute+40*time.Second)
	if f.nats.count() != 2 {
		t.Fatalf("want attempt 2, got %d", f.nats.count())
	}
	// The detector restarts: it must not send attempt 2 again, nor attempt 1.
	d2 := f.detector()
	f.tick(d2, 2*time.Minute+50*time.Second)
	if f.nats.count() != 2 {
		t.Fatalf("restarted detector re-sent a recorded command: %d", f.nats.count())
	}
	// The payment arrives: attempt 2 is recorded as succeeded.
	f.emit("order-fulfilment", "paid", "o-4", "payment.order_id", 2*time.Minute+55*time.Second)
	f.tick(d2, 3*time.Minute)
	recs, _ := f.store.Commands(context.Background(), storage.AuditFilter{Tenant: "acme", Flow: "order-fulfilment", Limit: 100})
	outcome := map[string]string{}
	for i := len(recs) - 1; i >= 0; i-- {
		outcome[recs[i].ID] = recs[i].Outcome
	}
	id1 := CommandID("acme", "order-fulfilment", "o-4", "paid", 0, 1)
	id2 := CommandID("acme", "order-fulfilment", "o-4", "paid", 0, 2)
	if outcome[id1] != OutcomeNoEffect || outcome[id2] != OutcomeSucceeded {
		t.Fatalf("outcomes = %v", outcome)
	}
}

func TestCommandDeliveryFailureIsRetriedAndDryRunSendsNothing(t *testing.T) {
	f := newFixture(t)
	f.nats.fail = errors.New("nats: no servers available for connection")
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-5", "order.id", 0)
	f.tick(d, 2*time.Minute+10*time.Second)
	if f.nats.count() != 0 {
		t.Fatal("sent while failing")
	}
	f.nats.mu.Lock()
	f.nats.fail = nil
	f.nats.mu.Unlock()
	f.tick(d, 2*time.Minute+12*time.Second)
	if f.nats.count() != 1 {
		t.Fatalf("not retried after the sink came back: %d", f.nats.count())
	}
	var ce CloudEvent
	_ = json.Unmarshal(f.nats.cmds[0].Body, &ce)
	if ce.Data.Attempt != 1 {
		t.Fatalf("a failed delivery must not consume an attempt: %+v", ce.Data)
	}

	g := newFixture(t)
	dd := g.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: g.nats, DryRun: true}} })
	g.emit("order-fulfilment", "placed", "o-6", "order.id", 0)
	g.tick(dd, 2*time.Minute+10*time.Second)
	recs, _ := g.store.Commands(context.Background(), storage.AuditFilter{Limit: 10})
	if g.nats.count() != 0 || len(recs) != 1 || recs[0].Outcome != OutcomeDryRun {
		t.Fatalf("dry run: sent %d, records %+v", g.nats.count(), recs)
	}
	// The payment arrives: a dry run claims no effect either way.
	g.emit("order-fulfilment", "paid", "o-6", "payment.order_id", 2*time.Minute+20*time.Second)
	g.tick(dd, 2*time.Minute+25*time.Second)
	recs, _ = g.store.Commands(context.Background(), storage.AuditFilter{Limit: 10})
	if len(recs) != 1 || recs[0].Outcome != OutcomeDryRun {
		t.Fatalf("dry run after the checkpoint arrived: %+v", recs)
	}
}

func TestRateLimitPerSink(t *testing.T) {
	f := newFixture(t)
	d := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: f.nats, Rate: 1, Burst: 2}} })
	for i := 0; i < 5; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-r%d", i), "order.id", 0)
	}
	f.tick(d, 2*time.Minute+10*time.Second)
	if f.nats.count() != 2 {
		t.Fatalf("burst 2: sent %d", f.nats.count())
	}
	f.tick(d, 2*time.Minute+11*time.Second)
	if f.nats.count() != 3 {
		t.Fatalf("rate 1/s: sent %d", f.nats.count())
	}
}

func TestAlertDeliveryFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	f.am.fail = errors.New("POST http://am/api/v2/alerts: 500 Internal Server Error")
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-7", "order.id", 0)
	f.tick(d, 2*time.Minute+time.Second)
	f.tick(d, 2*time.Minute+3*time.Second)
	f.am.mu.Lock()
	f.am.fail = nil
	f.am.mu.Unlock()
	f.tick(d, 2*time.Minute+30*time.Second)
	// paid and stock_reserved are both overdue: two alerts, both delivered once it answers.
	if a := f.am.last(); len(a) != 2 || a[0].Labels["key"] != "o-7" || a[1].Labels["key"] != "o-7" {
		t.Fatalf("alert lost after failures: %+v", f.am.alerts)
	}
	recs, _ := f.store.Alerts(context.Background(), storage.AuditFilter{Limit: 100})
	failed := 0
	for _, r := range recs {
		if r.Error != "" {
			failed++
		}
	}
	if failed == 0 || recs[0].Error != "" {
		t.Fatalf("audit must show the failures and the delivery: %+v", recs)
	}
}

func TestGroupByCheckpoint(t *testing.T) {
	f := newFixture(t)
	d := f.detector(func(c *Config) { c.Alerting.GroupByCheckpoint = true })
	for i := 0; i < 3; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-g%d", i), "order.id", 0)
		f.emit("order-fulfilment", "stock_reserved", fmt.Sprintf("o-g%d", i), "order.id", time.Second)
	}
	f.tick(d, 2*time.Minute+time.Second)
	a := f.am.last()
	if len(a) != 1 || a[0].Labels["key"] != "" || a[0].Annotations["instances"] != "3" {
		t.Fatalf("want one grouped alert for 3 instances: %+v", a)
	}
	for i := 0; i < 3; i++ {
		f.emit("order-fulfilment", "paid", fmt.Sprintf("o-g%d", i), "payment.order_id", 2*time.Minute)
	}
	f.tick(d, 2*time.Minute+2*time.Second)
	if a := f.am.last(); len(a) != 1 || a[0].EndsAt == nil {
		t.Fatalf("group not resolved when every instance moved on: %+v", a)
	}
}

func TestShardsSplitInstancesExactlyOnce(t *testing.T) {
	f := newFixture(t)
	var ds []*Detector
	sinks := []*sinkRec{{name: "nats"}, {name: "nats"}, {name: "nats"}}
	for i := 0; i < 3; i++ {
		i := i
		ds = append(ds, f.detector(func(c *Config) {
			c.Shard, c.Shards = i, 3
			c.Sinks = []SinkConfig{{Sink: sinks[i]}}
		}))
	}
	const n = 60
	for i := 0; i < n; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-s%d", i), "order.id", 0)
	}
	for _, d := range ds {
		f.tick(d, 2*time.Minute+10*time.Second)
	}
	total, cmds := 0, 0
	for i, d := range ds {
		s := d.Stats()
		if s.Open == 0 || s.Open == n {
			t.Fatalf("shard %d holds %d of %d instances: no split", i, s.Open, n)
		}
		total += s.Open
		cmds += sinks[i].count()
	}
	if total != n || cmds != n {
		t.Fatalf("instances held %d, commands %d; want %d each (exactly once)", total, cmds, n)
	}
	// A restarted shard rebuilds only its own part.
	before := ds[1].Stats().Open
	re := f.detector(func(c *Config) { c.Shard, c.Shards = 1, 3; c.Sinks = []SinkConfig{{Sink: sinks[1]}} })
	if got := re.Stats().Open; got != before {
		t.Fatalf("restarted shard rebuilt %d instances, want %d", got, before)
	}
	if sinks[1].count() != ds[1].Stats().Open {
		t.Fatalf("restarted shard re-sent commands")
	}
}

func TestMaxOpenIsCounted(t *testing.T) {
	f := newFixture(t)
	d := f.detector(func(c *Config) { c.MaxOpen = 2 })
	for i := 0; i < 5; i++ {
		f.emit("order-fulfilment", "placed", fmt.Sprintf("o-m%d", i), "order.id", 0)
	}
	f.tick(d, time.Second)
	if s := d.Stats(); s.Open != 2 {
		t.Fatalf("open = %d", s.Open)
	}
}

func TestStoreDownIsRetried(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-8", "order.id", 0)
	f.store.Fail = func(string) error { return errors.New("connection refused") }
	f.clk.Set(t0.Add(time.Second))
	if err := d.Tick(context.Background()); err == nil {
		t.Fatal("want the read error")
	}
	f.store.Fail = nil
	f.tick(d, 2*time.Second)
	if st := f.state("order-fulfilment", "o-8"); st.Status != "running" {
		t.Fatalf("event lost while the store was down: %+v", st)
	}
}

// TestReloadedDefinitionsKeepInstancesWorking: a reload builds new definitions; an instance
// opened before it still gets stuck, explained and acted on.
func TestReloadedDefinitionsKeepInstancesWorking(t *testing.T) {
	f := newFixture(t)
	d := f.detector()
	f.emit("order-fulfilment", "placed", "o-rl", "order.id", 0)
	f.tick(d, time.Second)
	set, err := model.Load("../model/testdata/flows")
	if err != nil {
		t.Fatal(err)
	}
	f.set = set
	f.tick(d, 2*time.Minute+time.Second)
	f.tick(d, 2*time.Minute+10*time.Second)
	if f.nats.count() != 1 || d.Stats().Stuck != 1 {
		t.Fatalf("after a reload: commands %d, stats %+v", f.nats.count(), d.Stats())
	}
}
