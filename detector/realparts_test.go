package detector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// amAlert is what Alertmanager's GET /api/v2/alerts returns of an alert.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls a real service (not a deadline: the detector's time is injected) until cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRealAlertmanager sends to Debian's Alertmanager through a proxy that answers 500 for a
// while: the alert arrives with the right labels, and resolves when the flow moves on.
func TestRealAlertmanager(t *testing.T) {
	am := testsvc.AlertmanagerT(t)
	target, _ := url.Parse(am.URL())
	var failing atomic.Int32
	failing.Store(3) // the first three posts get a 500
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && failing.Add(-1) >= 0 {
			http.Error(w, "alertmanager is having a bad day", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	f := newFixture(t)
	// Alertmanager judges endsAt by its own clock: run the detector's injected clock in the
	// real past so a resolution is already over for it.
	base := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)
	f.clk.Set(base)
	tick := func(d *Detector, at time.Duration) {
		t.Helper()
		f.clk.Set(base.Add(at))
		if err := d.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := d.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	emit := func(cp, key, attr string, at time.Duration) {
		f.seq++
		e := storage.CheckpointEvent{EventID: fmt.Sprintf("%016x", 0xa0000+f.seq), Tenant: "acme", Flow: "order-fulfilment",
			Checkpoint: cp, Key: key, KeyAttr: attr, Time: base.Add(at), IngestTime: f.clk.Now(), Service: "svc", TraceID: "abc123"}
		if err := f.store.WriteEvents(context.Background(), []storage.CheckpointEvent{e}); err != nil {
			t.Fatal(err)
		}
	}
	d := f.detector(func(c *Config) {
		c.Alerting.Notifiers = []Notifier{&Alertmanager{URLs: []string{front.URL}}}
	})
	emit("placed", "o-am", "order.id", 0)
	emit("stock_reserved", "o-am", "order.id", time.Second)
	tick(d, 2*time.Minute+time.Second) // stuck: first post fails
	for i := 2; i <= 6; i++ {          // retried with backoff until accepted
		tick(d, 2*time.Minute+time.Duration(i*4)*time.Second)
	}
	waitFor(t, "the alert in Alertmanager", func() bool { return len(amAlerts(t, am.URL())) == 1 })
	a := amAlerts(t, am.URL())[0]
	want := map[string]string{"alertname": "FlowStuck", "flow": "order-fulfilment", "flow_version": "1",
		"checkpoint": "paid", "key": "o-am", "tenant": "acme", "reason": ReasonOverdue}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Fatalf("label %s = %q, want %q (all: %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.Annotations["summary"] == "" || a.Annotations["trace_ids"] != "abc123" || a.Status.State != "active" {
		t.Fatalf("alert = %+v", a)
	}
	if failing.Load() >= 0 {
		t.Fatal("the 500s were never exercised")
	}
	emit("paid", "o-am", "payment.order_id", 3*time.Minute)
	tick(d, 3*time.Minute+time.Second)
	waitFor(t, "the alert to resolve", func() bool { return len(amAlerts(t, am.URL())) == 0 })
}

func startNATS(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	return natsServer(t, &server.Options{StoreDir: dir, Port: port})
}

// TestNATSExactlyOnce: a consumer receives each command once even when the detector is
// restarted and its attempt is published again; NATS down → retried until it is back.
func TestNATSExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, dir, -1)
	port := ns.Addr().(interface{ String() string }).String()
	_, p, _ := splitHostPort(port)
	sink, err := NewNATSSink("nats", ns.ClientURL(), "", []string{"payments.>"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	f := newFixture(t)
	d := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: sink}} })
	f.emit("order-fulfilment", "placed", "o-n", "order.id", 0)
	f.tick(d, 2*time.Minute+10*time.Second)
	// Publish the same attempt again, as a detector that crashed before recording would.
	var ce CloudEvent
	recs, _ := f.store.Commands(context.Background(), storage.AuditFilter{Limit: 10})
	if len(recs) != 1 || recs[0].Outcome != OutcomeSent {
		t.Fatalf("records = %+v", recs)
	}
	if err := json.Unmarshal([]byte(recs[0].Payload), &ce); err != nil {
		t.Fatal(err)
	}
	if err := sink.Send(context.Background(), Command{ID: recs[0].ID, Subject: "payments.retry", Body: []byte(recs[0].Payload)}); err != nil {
		t.Fatal(err)
	}
	// A restarted detector does not publish it either.
	d2 := f.detector(func(c *Config) { c.Sinks = []SinkConfig{{Sink: sink}} })
	f.tick(d2, 2*time.Minute+20*time.Second)

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, DefaultCommandStream, jetstream.ConsumerConfig{Durable: "test", FilterSubject: "payments.retry"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	var got []CloudEvent
	for m := range batch.Messages() {
		var e CloudEvent
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatal(err)
		}
		if m.Headers().Get(nats.MsgIdHdr) != e.ID {
			t.Fatalf("Nats-Msg-Id %q != id %q", m.Headers().Get(nats.MsgIdHdr), e.ID)
		}
		got = append(got, e)
		_ = m.Ack()
	}
	if len(got) != 1 || got[0].ID != ce.ID || got[0].Data.Key != "o-n" {
		t.Fatalf("consumer got %d commands, want exactly 1: %+v", len(got), got)
	}

	// NATS goes down: the next attempt fails and is retried once it is back.
	ns.Shutdown()
	ns.WaitForShutdown()
	f.tick(d2, 2*time.Minute+45*time.Second) // attempt 2 due (backoff 30s): fails
	failed := 0
	r0, _ := f.store.Commands(context.Background(), storage.AuditFilter{Limit: 10})
	for _, x := range r0 {
		if x.Outcome == OutcomeFailed && x.Attempt == 2 {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("want a failed delivery of attempt 2 recorded, got %+v", r0)
	}
	portNum := 0
	fmt.Sscan(p, &portNum)
	ns2 := startNATS(t, dir, portNum)
	defer ns2.Shutdown()
	waitFor(t, "the sink to reconnect", func() bool { return sink.conn.IsConnected() })
	f.tick(d2, 2*time.Minute+50*time.Second)
	var sent int
	r, _ := f.store.Commands(context.Background(), storage.AuditFilter{Limit: 10})
	for _, x := range r {
		if x.Outcome == OutcomeSent && x.Attempt == 2 {
			sent++
		}
	}
	if sent != 1 {
		t.Fatalf("attempt 2 not delivered after NATS came back: %+v", r)
	}
}

func splitHostPort(addr string) (string, string, error) {
	u, err := url.Parse("tcp://" + addr)
	if err != nil {
		return "", "", err
	}
	return u.Hostname(), u.Port(), nil
}

var _ = model.StatusStuck
var _ = storagetest.Memory{}

func TestSubjectCovers(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"payments.>", "payments.retry", true}, {"payments.>", "payments.>", true}, {"payments.>", "payments", false},
		{"payments.*", "payments.retry", true}, {"payments.*", "payments.retry.x", false}, {"payments.*", "payments.>", false},
		{"flowwatch.>", "payments.retry", false}, {"a.b", "a.b", true}, {">", "x.y", true},
	} {
		if got := subjectCovers(c.pattern, c.s); got != c.want {
			t.Errorf("subjectCovers(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}
