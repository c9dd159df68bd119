package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDetectorCommand runs `flowwatch detector --config` on the embedded store and checks its
// probes and metrics.
func TestDetectorCommand(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "detector.yaml")
	flows, _ := filepath.Abs("../../examples/flows")
	body := fmt.Sprintf("store: { embedded: %q }\nflows: [%q]\ntick: 100ms\nlisten: %q\ntoken: t0ken\n"+
		"alerting: { alertmanagers: [\"http://127.0.0.1:1\"] }\nsinks: [{ name: webhook, type: webhook, url: \"http://127.0.0.1:1/cmd\" }, { name: nats, type: nats, url: \"nats://127.0.0.1:1\" }]\n"+
		"trace_url: \"https://tempo.example/trace/{trace_id}\"\noperator_api: true\n", filepath.Join(dir, "store"), flows, addr)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr lockedBuffer
	go func() {
		done <- dispatch(ctx, []string{"detector", "--config", cfg, "--log-format", "json"}, io.Discard, &stderr)
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready in 30s: %s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	code, metrics := get("/metrics")
	for _, m := range []string{"flowwatch_detector_open_instances", "flowwatch_detector_read_lag_seconds", "flowwatch_detector_instances_rejected_total",
		"flowwatch_detector_events_read_total", "flowwatch_detector_tick_seconds",
		`flowwatch_detector_alerts_sent_total{notifier="alertmanager"} 0`, `flowwatch_detector_alerts_failed_total{notifier="alertmanager"} 0`,
		`flowwatch_detector_commands_total{outcome="failed",sink="webhook"} 0`, `flowwatch_detector_open_instances{status="stuck"} 0`} {
		if code != 200 || !strings.Contains(metrics, m) {
			t.Errorf("/metrics (%d) lacks %s", code, m)
		}
	}
	if code, _ := get("/api/v1/flows"); code != 401 {
		t.Errorf("the API without the token answered %d, want 401", code)
	}
	// The console beside the API, told the configuration's trace links and operator API.
	if code, page := get("/"); code != 200 || !strings.Contains(page, "console/app.js") {
		t.Errorf("GET / = %d %.200s, want the console", code, page)
	}
	if code, conf := get("/console/config.json"); code != 200 || conf != `{"trace_url":"https://tempo.example/trace/{trace_id}","operator_api":true,"token_required":true,"refresh_ms":5000}` {
		t.Errorf("GET /console/config.json = %d %s", code, conf)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("--log-format json wrote %q", l)
		}
	}
	// A bad configuration is a clear error, exit 1; no --config is a usage error, exit 2.
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("store: {}\n"), 0o600)
	var errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"detector", "--config", bad}, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "'store' needs exactly one") {
		t.Fatalf("bad config: exit %d: %s", code, errOut.String())
	}
	_ = os.WriteFile(bad, []byte(strings.Replace(body, "https://tempo.example/trace/{trace_id}", "tempo.example/trace", 1)), 0o600)
	errOut.Reset()
	if code := dispatch(context.Background(), []string{"detector", "--config", bad}, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "has no {trace_id}") {
		t.Fatalf("bad trace_url: exit %d: %s", code, errOut.String())
	}
	if code := dispatch(context.Background(), []string{"detector"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("no --config: exit %d", code)
	}
}
