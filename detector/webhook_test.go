package detector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/flowwatch/flowwatch/storage"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// delivery is one request a webhook receiver got.
type delivery struct {
	path   string
	header http.Header
	body   []byte
}

// hookReceiver verifies every request with the official Standard Webhooks library, as a
// receiver would, and answers 500 to the first failAlerts alert messages.
type hookReceiver struct {
	mu         sync.Mutex
	secret     string
	failAlerts int
	got        []delivery
	problems   []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(h.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	if err != nil {
		h.problems = append(h.problems, r.URL.Path+": "+err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	h.got = append(h.got, delivery{path: r.URL.Path, header: r.Header.Clone(), body: body})
	if h.failAlerts > 0 && r.URL.Path == "/alerts" {
		h.failAlerts--
		http.Error(w, "busy", http.StatusInternalServerError)
	}
}

func (h *hookReceiver) deliveries(path string) []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []delivery
	for _, d := range h.got {
		if d.path == path || strings.HasPrefix(d.path, path+"/") {
			out = append(out, d)
		}
	}
	return out
}

// Alerts and commands sent to webhooks verify with the Standard Webhooks library, with a
// whsec_ secret and with a bare base64 one (which the library decodes too); a retried message
// keeps its webhook-id; the alert payload is Alertmanager's version 4 with all its fields and
// Alertmanager's fingerprints.
func TestWebhooksVerifyWithStandardWebhooksLibrary(t *testing.T) {
	for _, secret := range []string{
		"whsec_" + base64.StdEncoding.EncodeToString([]byte("a secret of thirty-two bytes....")),
		base64.StdEncoding.EncodeToString([]byte("another secret, no whsec_ prefix")),
	} {
		t.Run(secret[:6], func(t *testing.T) {
			rcv := &hookReceiver{secret: secret, failAlerts: 1}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			f := newFixture(t)
			d := f.detector(func(c *Config) {
				c.Alerting.Notifiers = []Notifier{&WebhookAlerts{URL: srv.URL + "/alerts", Secret: secret,
					ExternalURL: "https://flowwatch.example"}}
				c.Sinks = []SinkConfig{{Sink: &HTTPSink{SinkName: "nats", URL: srv.URL + "/commands", Secret: secret}}}
			})
			f.emit("order-fulfilment", "placed", "o-w", "order.id", 0)
			f.tick(d, 2*time.Minute+10*time.Second) // paid and stock_reserved overdue; the first POST gets a 500
			f.tick(d, 2*time.Minute+15*time.Second) // past the notifier's backoff: sent again
			if len(rcv.problems) > 0 {
				t.Fatal(rcv.problems)
			}

			cmds := rcv.deliveries("/commands")
			wantID := CommandID("acme", "order-fulfilment", "o-w", "paid", 0, 1)
			if len(cmds) != 1 {
				t.Fatalf("%d commands delivered, want 1", len(cmds))
			}
			for _, c := range cmds {
				if c.path != "/commands/payments.retry" || c.header.Get("Idempotency-Key") != wantID || c.header.Get("webhook-id") != wantID {
					t.Fatalf("command %s: Idempotency-Key %q, webhook-id %q; want %q", c.path,
						c.header.Get("Idempotency-Key"), c.header.Get("webhook-id"), wantID)
				}
			}

			alerts := rcv.deliveries("/alerts")
			// Two groups (one per overdue checkpoint), the first of them failed once.
			if len(alerts) < 3 {
				t.Fatalf("%d alert deliveries, want the two groups and a retry", len(alerts))
			}
			ids := map[string][]string{} // groupKey → webhook-ids, in order
			for _, a := range alerts {
				var m WebhookMessage
				if err := json.Unmarshal(a.body, &m); err != nil {
					t.Fatal(err)
				}
				ids[m.GroupKey] = append(ids[m.GroupKey], a.header.Get("webhook-id"))
			}
			for gk, seen := range ids {
				for _, id := range seen[1:] {
					if id != seen[0] {
						t.Fatalf("group %s: the retried message changed its webhook-id: %v", gk, seen)
					}
				}
			}

			var raw map[string]any
			if err := json.Unmarshal(alerts[len(alerts)-1].body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
				"commonLabels", "commonAnnotations", "externalURL", "alerts"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("webhook payload has no %q: %s", k, alerts[0].body)
				}
			}
			for _, k := range []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} {
				if _, ok := raw["alerts"].([]any)[0].(map[string]any)[k]; !ok {
					t.Errorf("webhook alert has no %q", k)
				}
			}
			var m WebhookMessage
			if err := json.Unmarshal(alerts[len(alerts)-1].body, &m); err != nil {
				t.Fatal(err)
			}
			if m.Version != "4" || m.Status != "firing" || m.Receiver != DefaultWebhookReceiver || m.TruncatedAlerts != 0 ||
				m.ExternalURL != "https://flowwatch.example" || len(m.Alerts) != 1 {
				t.Fatalf("webhook message = %+v", m)
			}
			cp := m.Alerts[0].Labels["checkpoint"]
			wantKey := `{}:{alertname="FlowStuck", checkpoint="` + cp + `", flow="order-fulfilment", tenant="acme"}`
			if m.GroupKey != wantKey || m.GroupLabels["checkpoint"] != cp || m.GroupLabels["key"] != "" ||
				m.CommonLabels["key"] != "o-w" || m.CommonAnnotations["summary"] == "" {
				t.Fatalf("groupKey %q (want %q), groupLabels %v, commonLabels %v", m.GroupKey, wantKey, m.GroupLabels, m.CommonLabels)
			}
			ls := prommodel.LabelSet{}
			for k, v := range m.Alerts[0].Labels {
				ls[prommodel.LabelName(k)] = prommodel.LabelValue(v)
			}
			if m.Alerts[0].Fingerprint != ls.Fingerprint().String() {
				t.Fatalf("fingerprint %q, Alertmanager's is %q", m.Alerts[0].Fingerprint, ls.Fingerprint())
			}
			recs, _ := f.store.Alerts(context.Background(), storage.AuditFilter{Limit: 10})
			for _, r := range recs {
				if r.Checkpoint == cp && r.Fingerprint != m.Alerts[0].Fingerprint {
					t.Fatalf("the audit records fingerprint %q, the webhook %q", r.Fingerprint, m.Alerts[0].Fingerprint)
				}
			}
		})
	}
}

// Messages groups per checkpoint, truncates past max_alerts as Alertmanager does and keeps
// only what every alert shares in commonLabels and commonAnnotations.
func TestWebhookMessages(t *testing.T) {
	end := t0.Add(time.Hour)
	alert := func(key, cp string, resolved bool) Alert {
		a := Alert{Labels: map[string]string{"alertname": AlertName, "tenant": "acme", "flow": "f", "checkpoint": cp, "key": key},
			Annotations: map[string]string{"summary": key + " is stuck", "service": "payments"}, StartsAt: t0}
		if resolved {
			a.EndsAt = &end
		}
		return a
	}
	w := &WebhookAlerts{MaxAlerts: 2, Receiver: "ops"}
	msgs, ids := w.Messages([]Alert{alert("k1", "paid", false), alert("k2", "paid", true), alert("k3", "paid", false),
		alert("k4", "shipped", true)})
	if len(msgs) != 2 || len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("messages %+v, ids %v", msgs, ids)
	}
	paid, shipped := msgs[0], msgs[1]
	if paid.GroupLabels["checkpoint"] != "paid" || len(paid.Alerts) != 2 || paid.TruncatedAlerts != 1 || paid.Status != "firing" ||
		paid.Receiver != "ops" {
		t.Fatalf("paid message = %+v", paid)
	}
	if paid.CommonLabels["key"] != "" || paid.CommonLabels["checkpoint"] != "paid" || paid.CommonAnnotations["summary"] != "" ||
		paid.CommonAnnotations["service"] != "payments" {
		t.Fatalf("common labels %v, annotations %v", paid.CommonLabels, paid.CommonAnnotations)
	}
	if paid.Alerts[1].Status != "resolved" || !paid.Alerts[1].EndsAt.Equal(end) || !paid.Alerts[0].EndsAt.IsZero() {
		t.Fatalf("alerts = %+v", paid.Alerts)
	}
	if shipped.Status != "resolved" || shipped.CommonLabels["key"] != "k4" {
		t.Fatalf("shipped message = %+v", shipped)
	}
	// The same alerts make the same ids; a status change makes another.
	_, again := w.Messages([]Alert{alert("k1", "paid", false), alert("k2", "paid", true), alert("k3", "paid", false),
		alert("k4", "shipped", true)})
	_, changed := w.Messages([]Alert{alert("k1", "paid", true), alert("k2", "paid", true), alert("k3", "paid", false)})
	if again[0] != ids[0] || changed[0] == ids[0] {
		t.Fatalf("ids %v, again %v, changed %v", ids, again, changed)
	}
}

// VerifyWebhook agrees with the Standard Webhooks library and rejects replays: a delivery
// whose timestamp is more than five minutes from now, however well signed.
func TestVerifyWebhook(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	body := []byte(`{"specversion":"1.0"}`)
	now := time.Now()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", "v1,bm90IGl0 "+sig) // several signatures (rotated keys): any may match
	if err := VerifyWebhook(secret, h, body, now); err != nil {
		t.Fatalf("the library's signature: %v", err)
	}
	for _, c := range []struct {
		name, secret string
		body         []byte
		at           time.Time
		want         string
	}{
		{"replayed later", secret, body, now.Add(WebhookTolerance + time.Second), "away from now"},
		{"from the future", secret, body, now.Add(-WebhookTolerance - time.Second), "away from now"},
		{"another body", secret, []byte(`{}`), now, "does not verify"},
		{"another secret", "whsec_" + base64.StdEncoding.EncodeToString([]byte("other")), body, now, "does not verify"},
		{"a secret that is not base64", "plain text!", body, now, "not a Standard Webhooks secret"},
	} {
		if err := VerifyWebhook(c.secret, h, c.body, c.at); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// What we sign, the library verifies.
	hdr, err := webhookHeaders(secret, func() time.Time { return now }, "msg_2", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, hdr); err != nil {
		t.Fatalf("the library rejects our signature: %v", err)
	}
	if _, err := webhookHeaders("not base64!", nil, "x", body); err == nil || !IsPermanent(err) {
		t.Fatalf("a bad secret must fail for good: %v", err)
	}
}
