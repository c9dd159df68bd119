package main

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/demo"
)

// TestSustainedLoadThroughRun feeds `flowwatch run` with the demo at 150 orders/s (about 1k
// checkpoint events/s, 10 % payment errors healed by NATS commands, 2 % lost hops that stay
// stuck) and holds the detector to its promise: every stuck instance is written within 3s of
// its deadline (p95, from the detector's detection-lag histogram), and the detector keeps up
// with the stream (its read lag stays within a few seconds). FLOWWATCH_LOAD_RATE and
// FLOWWATCH_LOAD_SECONDS change the rate and the length (default 60s) for measurements.
func TestSustainedLoadThroughRun(t *testing.T) {
	rate, seconds := 150.0, 60
	if v := os.Getenv("FLOWWATCH_LOAD_RATE"); v != "" {
		rate, _ = strconv.ParseFloat(v, 64)
	}
	if v := os.Getenv("FLOWWATCH_LOAD_SECONDS"); v != "" {
		seconds, _ = strconv.Atoi(v)
	}
	ns := testNATS(t)
	// The example flows' actions use the sinks "nats" and "webhook": the webhook takes
	// commands (and alerts) and answers at once.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	o := &runOptions{flows: "../../examples/flows", data: filepath.Join(t.TempDir(), "data"), tick: time.Second, nats: ns.ClientURL(),
		webhooks: stringList{hook.URL}}
	ri, stop := startAllInOne(t, o)
	defer stop()
	dc := demo.DefaultConfig()
	dc.OTLP, dc.NATS, dc.Rate, dc.ErrorRate, dc.Drop, dc.ReportEvery = o.otlpGRPC, ns.ClientURL(), rate, 0.1, 0.02, 0
	dc.Duration = time.Duration(seconds) * time.Second
	dm, err := demo.New(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	if err := dm.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // the last deadlines of the run pass and are judged

	m := scrape(t, ri.API+"/metrics")
	count := m["flowwatch_detector_detection_lag_seconds_count"]
	within3 := m[`flowwatch_detector_detection_lag_seconds_bucket{le="3"}`]
	within1 := m[`flowwatch_detector_detection_lag_seconds_bucket{le="1"}`]
	s := ri.Detector.Stats()
	t.Logf("%.0f orders/s for %ds: %d orders; %.0f checkpoints became overdue, %.1f%% written within 1s, %.1f%% within 3s; "+
		"read lag %.1fs; %d running, %d stuck, %d completed, %d failed; %d commands sent",
		rate, seconds, dm.Stats().Orders, count, 100*within1/count, 100*within3/count, m["flowwatch_detector_read_lag_seconds"],
		s.Running, s.Stuck, s.Completed, s.Failed, s.CommandsSent)
	if count < 50 {
		t.Fatalf("only %.0f overdue checkpoints were seen: the load test saw too little", count)
	}
	if within3/count < 0.95 {
		t.Errorf("only %.1f%% of stuck instances were written within 3s of their deadline; want p95 ≤ 3s", 100*within3/count)
	}
	if lag := m["flowwatch_detector_read_lag_seconds"]; lag > 10 {
		t.Errorf("the detector reads %.1fs behind the stream", lag)
	}
}

// scrape reads a Prometheus text exposition into name{labels} → value (no label sorting: the
// names as exposed).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
