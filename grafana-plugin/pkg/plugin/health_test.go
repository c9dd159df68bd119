package plugin

import (
	"net"
	"net/http"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// closedURL is an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestCheckHealth(t *testing.T) {
	c := startPlugin(t)
	api := serve(t, fakeAPI(testToken)).URL
	html := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><html><title>Grafana</title></html>"))
	})).URL
	otherJSON := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})).URL
	notFound := serve(t, http.NotFoundHandler()).URL
	failing := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"store unavailable: connection refused"}`))
	})).URL
	empty := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"flows":[]}`))
	})).URL

	cases := []struct {
		name     string
		settings *backend.DataSourceInstanceSettings
		ok       bool
		want     []string
	}{
		{"ok", dsSettings(10, api, testToken, nil), true, []string{"Connected to flowwatch", "2 flow(s): order-fulfilment, refund"}},
		{"no flows", dsSettings(11, empty, "", nil), true, []string{"no flows loaded"}},
		{"unreachable", dsSettings(12, closedURL(t), testToken, nil), false, []string{"Cannot reach the flowwatch API", "Check the URL and that flowwatch is running"}},
		{"bad token", dsSettings(13, api, "wrong", nil), false, []string{"refused the API token", "HTTP 401"}},
		{"no token", dsSettings(14, api, "", nil), false, []string{"requires a token", "Set the API token"}},
		{"html page", dsSettings(15, html, testToken, nil), false, []string{"not as flowwatch does", "not at Grafana"}},
		{"other json", dsSettings(16, otherJSON, testToken, nil), false, []string{"not as flowwatch does", `no "flows" list`}},
		{"404", dsSettings(17, notFound, testToken, nil), false, []string{"has no flowwatch API", "HTTP 404"}},
		{"500", dsSettings(18, failing, testToken, nil), false, []string{"failed (HTTP 500: store unavailable", "logs"}},
		{"no url", dsSettings(19, "", "", nil), false, []string{"Fix the data source settings", "URL is empty", "http://localhost:8080"}},
		{"bad url", dsSettings(20, "localhost:8080", "", nil), false, []string{"not an http(s) URL"}},
		{"bad trace template", dsSettings(21, api, testToken, map[string]any{"traceUrl": "http://jaeger/trace/"}), false, []string{"must contain ${traceId}"}},
		{"unresolvable host", dsSettings(22, "http://flowwatch.invalid:8080", testToken, nil), false, []string{"does not resolve", "flowwatch.invalid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := checkHealth(t, c, tc.settings)
			if got := res.Status == backend.HealthStatusOk; got != tc.ok {
				t.Errorf("status %v (%s), want ok=%v", res.Status, res.Message, tc.ok)
			}
			wantContains(t, "message", res.Message, tc.want...)
		})
	}
}

// A server that never answers is reported with the timeout, in words.
func TestCheckHealthTimeout(t *testing.T) {
	c := startPlugin(t)
	hang := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	res := checkHealth(t, c, dsSettings(30, hang.URL, testToken, map[string]any{"timeoutSeconds": 1}))
	if res.Status != backend.HealthStatusError {
		t.Fatalf("status %v, want error", res.Status)
	}
	wantContains(t, "message", res.Message, "did not answer within 1s")
}
