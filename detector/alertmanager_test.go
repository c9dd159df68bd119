package detector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// secureAMAlert is what Alertmanager's GET /api/v2/alerts says of an alert, fingerprint
// included.
type secureAMAlert struct {
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
}

// TestRealAlertmanagerTLSAndBasicAuth: Debian's Alertmanager serving its API over TLS only,
// requiring a client certificate and basic auth (--web.config.file), is reached through
// http_config from a detector configuration file with the password in the environment. The
// fingerprint Alertmanager computes for the alert is the one flowwatch sends and records.
func TestRealAlertmanagerTLSAndBasicAuth(t *testing.T) {
	am := testsvc.SecureAlertmanagerT(t)
	sec := am.Secure
	t.Setenv("FW_AM_PASSWORD", sec.Password)
	cfg, err := LoadConfig(writeConfig(t, fmt.Sprintf(`
store: { embedded: ./data }
flows: [f]
alerting:
  alertmanagers:
    - url: %s
      http_config:
        basic_auth: { username: %s, password: "${env:FW_AM_PASSWORD}" }
        tls_config: { ca_file: %q, cert_file: %q, key_file: %q }
`, am.URL(), sec.Username, sec.PKI.CAFile, sec.ClientCert, sec.ClientKey)))
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(cfg.Alerting.Alertmanagers[0].HTTPConfig)
	if err != nil {
		t.Fatal(err)
	}
	notifier := &Alertmanager{Targets: []AlertmanagerTarget{{URL: am.URL(), Client: client}}}

	f := newFixture(t)
	base := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second) // Alertmanager's clock judges endsAt
	f.clk.Set(base)
	d := f.detector(func(c *Config) { c.Alerting.Notifiers = []Notifier{notifier} })
	e := storage.CheckpointEvent{EventID: "00000000000007e1", Tenant: "acme", Flow: "order-fulfilment", Checkpoint: "placed",
		Key: "o-tls", KeyAttr: "order.id", Time: base, IngestTime: base, Service: "orders", TraceID: "abc123"}
	if err := f.store.WriteEvents(context.Background(), []storage.CheckpointEvent{e}); err != nil {
		t.Fatal(err)
	}
	f.clk.Set(base.Add(3 * time.Minute)) // paid and stock_reserved are overdue
	if err := d.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.AlertsSent != 2 || st.AlertsFailed != 0 {
		t.Fatalf("alerts sent %d, failed %d", st.AlertsSent, st.AlertsFailed)
	}
	var got []secureAMAlert
	waitFor(t, "both alerts in Alertmanager", func() bool {
		resp, err := am.Get(context.Background(), "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = nil
		return json.NewDecoder(resp.Body).Decode(&got) == nil && len(got) == 2
	})
	recs, _ := f.store.Alerts(context.Background(), storage.AuditFilter{Limit: 10})
	for _, a := range got {
		if a.Labels["key"] != "o-tls" || a.Fingerprint == "" {
			t.Fatalf("alert in Alertmanager = %+v", a)
		}
		if fp := labelsFingerprint(a.Labels); fp != a.Fingerprint {
			t.Fatalf("Alertmanager's fingerprint %s, ours %s (labels %v)", a.Fingerprint, fp, a.Labels)
		}
		found := false
		for _, r := range recs {
			found = found || r.Checkpoint == a.Labels["checkpoint"] && r.Fingerprint == a.Fingerprint
		}
		if !found {
			t.Fatalf("no audit record with Alertmanager's fingerprint %s: %+v", a.Fingerprint, recs)
		}
	}

	// Without the password, or without the client certificate, Alertmanager refuses.
	alerts := []Alert{{Labels: map[string]string{"alertname": AlertName, "flow": "x"}, StartsAt: base}}
	noAuth := *cfg.Alerting.Alertmanagers[0].HTTPConfig
	noAuth.BasicAuth = nil
	c2, err := NewHTTPClient(&noAuth)
	if err != nil {
		t.Fatal(err)
	}
	err = (&Alertmanager{Targets: []AlertmanagerTarget{{URL: am.URL(), Client: c2}}}).Notify(context.Background(), alerts)
	if err == nil || !strings.Contains(err.Error(), "401") || !IsPermanent(err) {
		t.Fatalf("without basic auth: %v", err)
	}
	noCert := *cfg.Alerting.Alertmanagers[0].HTTPConfig
	noCert.TLSConfig.CertFile, noCert.TLSConfig.KeyFile = "", ""
	c3, err := NewHTTPClient(&noCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Alertmanager{Targets: []AlertmanagerTarget{{URL: am.URL(), Client: c3}}}).Notify(context.Background(), alerts); err == nil {
		t.Fatal("Alertmanager took alerts from a client without a certificate")
	}
	if err != nil && strings.Contains(err.Error(), sec.Password) {
		t.Fatalf("an error shows the password: %v", err)
	}
}

// http_config's headers and credentials reach a webhook receiver (X-Scope-OrgID, as Mimir and
// Grafana Cloud want it; a bearer token).
func TestHTTPConfigReachesReceiver(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer srv.Close()
	t.Setenv("FW_TOKEN", "t0ken")
	cfg, err := LoadConfig(writeConfig(t, `
store: { embedded: ./data }
flows: [f]
sinks:
  - name: ops
    type: webhook
    url: `+srv.URL+`
    http_config:
      authorization: { credentials: "${env:FW_TOKEN}" }
      http_headers:
        X-Scope-OrgID: { values: [tenant-1] }
`))
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(cfg.Sinks[0].HTTPConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&HTTPSink{SinkName: "ops", URL: srv.URL, Client: client}).Send(context.Background(), Command{ID: "c1", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	h := <-got
	if h.Get("X-Scope-OrgID") != "tenant-1" || h.Get("Authorization") != "Bearer t0ken" || h.Get("User-Agent") != UserAgent {
		t.Fatalf("headers = %v", h)
	}
}
