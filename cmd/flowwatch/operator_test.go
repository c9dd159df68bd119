package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// TestOperatorActionsThroughRun: `flowwatch run --operator-api` with a real Alertmanager and
// NATS JetStream. An operator cancels a stuck order: its alert resolves in Alertmanager and no
// command follows — its action's second attempt, due 10s after the first, never comes, while
// that of an order placed with it (Z) does, and the detector has delivered everything it
// handed its NATS worker. An operator unblocks another: the manual command arrives once on
// NATS, recorded with trigger manual.
func TestOperatorActionsThroughRun(t *testing.T) {
	am := testsvc.AlertmanagerT(t)
	ns := testNATS(t)
	o := &runOptions{flows: "testdata/e2e", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		alertmanagers: stringList{am.URL()}, nats: ns.ClientURL(), operatorAPI: true, token: "op-token"}
	ri, stop := startAllInOne(t, o)
	defer stop()
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}

	// Every command that reaches NATS, by message id and by key.
	type arrival struct {
		ce detector.CloudEvent
		at time.Time
	}
	var mu sync.Mutex
	got := map[string]int{}
	byKey := map[string][]arrival{}
	var manual []detector.CloudEvent
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	consumeCommands(ctx, t, ri.NATS, "ops", "pay.retry", func(id string, ce detector.CloudEvent) {
		mu.Lock()
		got[id]++
		byKey[ce.Data.Key] = append(byKey[ce.Data.Key], arrival{ce, time.Now()})
		if ce.Trigger == detector.TriggerManual {
			manual = append(manual, ce)
		}
		mu.Unlock()
	})

	t0 := time.Now()
	for _, k := range []string{"X", "Y", "Z"} {
		svc.span("shop", "POST /checkout", trace.SpanKindServer, t0, []attribute.KeyValue{attribute.String("order.id", k)})
	}
	api := ri.API + "/api/v1"
	call := func(method, path, body string) (int, []byte) { return apiCall(t, method, api+path, "op-token", body) }
	status := func(key string) string {
		_, b := call("GET", "/flows/checkout/instances/"+key+"?tenant=shop-eu", "")
		var in struct{ Status string }
		_ = json.Unmarshal(b, &in)
		return in.Status
	}
	amFiring := func(key string) bool {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		getJSON(t, am.URL()+"/api/v2/alerts", &alerts)
		for _, a := range alerts {
			if a.Labels["key"] == key {
				return true
			}
		}
		return false
	}
	poll(t, "X and Y stuck and alerted", 30*time.Second, func() bool {
		return status("X") == "stuck" && status("Y") == "stuck" && amFiring("X") && amFiring("Y")
	})
	// paid's action (2 attempts, 10s apart) has been sent once each by now.
	autoAttempt := func(key string, n int) (detector.CloudEvent, bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range byKey[key] {
			if a.ce.Trigger != detector.TriggerManual && a.ce.Data.Attempt == n {
				return a.ce, true
			}
		}
		return detector.CloudEvent{}, false
	}
	poll(t, "the first automatic commands", 10*time.Second, func() bool {
		_, x := autoAttempt("X", 1)
		_, y := autoAttempt("Y", 1)
		_, z := autoAttempt("Z", 1)
		return x && y && z
	})

	cancelledAt := time.Now()
	if code, b := call("POST", "/flows/checkout/instances/X/cancel?tenant=shop-eu", `{"reason":"customer called","by":"ann"}`); code != 202 {
		t.Fatalf("cancel: %d %s", code, b)
	}
	poll(t, "X cancelled", 10*time.Second, func() bool { return status("X") == "cancelled" })
	poll(t, "X's alert to resolve in Alertmanager", 30*time.Second, func() bool { return !amFiring("X") })
	if code, b := call("POST", "/flows/checkout/instances/X/unblock?tenant=shop-eu", `{"checkpoint":"paid","by":"ann"}`); code != 409 {
		t.Fatalf("unblock of a cancelled instance: %d %s", code, b)
	}

	if code, b := call("POST", "/flows/checkout/instances/Y/unblock?tenant=shop-eu", `{"checkpoint":"paid","by":"bob"}`); code != 202 {
		t.Fatalf("unblock: %d %s", code, b)
	}
	poll(t, "the manual command on NATS", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(manual) == 1 })

	// X's second attempt would have been due 10s after its first; Z's is due no earlier than
	// that (Z's first came no earlier than X's), so once it is on NATS the detector has judged
	// past X's. Then every command the detector handed its NATS worker has been delivered
	// (its queue is empty) and has reached the consumer (as many as the detector sent).
	x1, _ := autoAttempt("X", 1)
	z1, _ := autoAttempt("Z", 1)
	if z1.Time.Before(x1.Time) {
		t.Fatalf("Z's first attempt (%s) came before X's (%s): Z cannot mark X's second", z1.Time, x1.Time)
	}
	poll(t, "Z's second automatic attempt", 30*time.Second, func() bool { _, ok := autoAttempt("Z", 2); return ok })
	poll(t, "every command the detector sent to reach the consumer", 10*time.Second, func() bool {
		queued, ok1 := metricValue(t, ri.API+"/metrics", `flowwatch_detector_delivery_queue{receiver="nats"}`)
		sent, ok2 := metricValue(t, ri.API+"/metrics", `flowwatch_detector_commands_total{outcome="sent",sink="nats"}`)
		mu.Lock()
		defer mu.Unlock()
		return ok1 && ok2 && queued == 0 && int(sent) == len(got)
	})
	mu.Lock()
	defer mu.Unlock()
	if xs := byKey["X"]; len(xs) != 1 || xs[0].ce.Data.Attempt != 1 || !xs[0].at.Before(cancelledAt) {
		for _, a := range xs {
			t.Errorf("X, cancelled at %s: command attempt %d (%s) arrived at %s", cancelledAt.Format(time.StampMilli), a.ce.Data.Attempt, a.ce.Trigger, a.at.Format(time.StampMilli))
		}
		t.Fatalf("want X's first attempt only, before its cancel")
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("command %s arrived %d times", id, n)
		}
	}
	if len(manual) != 1 || manual[0].Data.Key != "Y" || manual[0].Data.Checkpoint != "paid" {
		t.Fatalf("manual commands: %+v", manual)
	}
	_, b := call("GET", "/commands?flow=checkout&tenant=shop-eu&key=Y", "")
	var recs struct {
		Commands []struct{ ID, Trigger, Outcome, Key string } `json:"commands"`
	}
	_ = json.Unmarshal(b, &recs)
	manualRecs := 0
	for _, r := range recs.Commands {
		if r.Key != "Y" {
			t.Fatalf("the key filter let through %+v", r)
		}
		if r.Trigger == "manual" && r.ID == manual[0].ID {
			manualRecs++
		}
	}
	if manualRecs != 1 {
		t.Fatalf("the manual command's record: %s", b)
	}
}

// The token can come from the environment, so it does not show in ps; the flag wins.
func TestRunTokenFromEnvironment(t *testing.T) {
	t.Setenv("FLOWWATCH_TOKEN", "from-env")
	o, err := parseRunFlags(nil, io.Discard)
	if err != nil || o.token != "from-env" {
		t.Fatalf("token = %q, %v", o.token, err)
	}
	if o, err = parseRunFlags([]string{"--token", "from-flag"}, io.Discard); err != nil || o.token != "from-flag" {
		t.Fatalf("token = %q, %v", o.token, err)
	}
}

// metricValue reads one series of a Prometheus text exposition at url ("name{labels}" as
// exposed, labels in order), and whether it is there.
func metricValue(t *testing.T, url, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// apiCall makes a request of the query API with a bearer token and a JSON body, and returns
// the status and the answer.
func apiCall(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp.StatusCode, b
}
