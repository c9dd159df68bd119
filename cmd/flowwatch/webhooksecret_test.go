package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/detector"
)

// webhookDelivery is one request a test webhook receiver got.
type webhookDelivery struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
	err    error // the receiver's verification with the secret it shares with the sender
}

// TestRunSignsWebhooks: `flowwatch run --webhook URL` with the secret in
// FLOWWATCH_WEBHOOK_SECRET signs what it sends there — the alert of a stuck order and the
// command of the webhook sink — so that a receiver holding the secret verifies both (and
// answers 2xx, the command is recorded as sent, not refused), while the same deliveries do not verify
// under another secret.
func TestRunSignsWebhooks(t *testing.T) {
	const (
		secret = "whsec_Zmxvd3dhdGNoLXJ1bi1zaWducy13ZWJob29rcw==" // "flowwatch-run-signs-webhooks"
		wrong  = "whsec_YW5vdGhlci1zZWNyZXQtZW50aXJlbHk="         // "another-secret-entirely"
	)
	var mu sync.Mutex
	var got []webhookDelivery
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := webhookDelivery{path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()}
		d.err = detector.VerifyWebhook(secret, r.Header, body, d.at)
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		if d.err != nil {
			http.Error(w, d.err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	t.Setenv("FLOWWATCH_WEBHOOK_SECRET", secret)
	o, err := parseRunFlags([]string{"--flows", "testdata/webhook", "--data", filepath.Join(t.TempDir(), "data"),
		"--tick", "200ms", "--webhook", hook.URL}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ri, stop := startAllInOne(t, o)
	defer stop()
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}
	svc.span("shop", "POST /checkout", trace.SpanKindServer, time.Now(), []attribute.KeyValue{attribute.String("order.id", "W")})

	// The alert goes to the webhook's own path, the command to its path plus the subject.
	const alertPath, commandPath = "/", "/pay.retry"
	byPath := func() map[string][]webhookDelivery {
		mu.Lock()
		defer mu.Unlock()
		m := map[string][]webhookDelivery{}
		for _, d := range got {
			m[d.path] = append(m[d.path], d)
		}
		return m
	}
	poll(t, "an alert and a command at the webhook", 30*time.Second, func() bool {
		m := byPath()
		return len(m[alertPath]) > 0 && len(m[commandPath]) > 0
	})
	for path, ds := range byPath() {
		for i, d := range ds {
			if d.err != nil {
				t.Errorf("%s delivery %d: the receiver does not verify it with the secret: %v (headers %v)", path, i, d.err, d.header)
			}
			if err := detector.VerifyWebhook(wrong, d.header, d.body, d.at); err == nil {
				t.Errorf("%s delivery %d: verifies under another secret too", path, i)
			}
		}
	}
	{
		d := byPath()[alertPath][0]
		var msg detector.WebhookMessage
		if err := json.Unmarshal(d.body, &msg); err != nil || len(msg.Alerts) == 0 || msg.Alerts[0].Labels["key"] != "W" {
			t.Fatalf("alert delivery: %v: %s", err, d.body)
		}
		c := byPath()[commandPath][0]
		var ce detector.CloudEvent
		if err := json.Unmarshal(c.body, &ce); err != nil || ce.Data.Key != "W" || ce.Data.Checkpoint != "paid" {
			t.Fatalf("command delivery: %v: %s", err, c.body)
		}
		if c.header.Get("webhook-id") != ce.ID {
			t.Errorf("command delivery: webhook-id %q, command id %q", c.header.Get("webhook-id"), ce.ID)
		}
	}
	// The receiver's 2xx reached the detector: the command is recorded as sent (a 401 would
	// record it refused).
	var outcome string
	poll(t, "the command's delivery recorded", 30*time.Second, func() bool {
		var rec struct {
			Commands []struct{ Key, Checkpoint, Outcome string } `json:"commands"`
		}
		getJSON(t, ri.API+"/api/v1/commands?flow=checkout&tenant=shop-eu", &rec)
		for _, x := range rec.Commands {
			if x.Key == "W" && x.Checkpoint == "paid" && (x.Outcome == detector.OutcomeSent || x.Outcome == detector.OutcomeRefused) {
				outcome = x.Outcome
				return true
			}
		}
		return false
	})
	if outcome != detector.OutcomeSent {
		t.Fatalf("the command is recorded %s, want %s", outcome, detector.OutcomeSent)
	}
}
