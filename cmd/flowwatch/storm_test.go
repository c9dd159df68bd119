package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestStormThroughRun is an outage through `flowwatch run --tick 200ms`: 3,000 orders whose
// next checkpoint is due in the same second are all stuck in the API and alerted within 5s of
// their deadline; an instance started during the storm is judged within 1s of its own
// deadline; a second alert webhook that never answers changes neither figure.
func TestStormThroughRun(t *testing.T) {
	const n = 3000
	var mu sync.Mutex
	alerted := map[string]time.Time{} // key → first firing alert received
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		mu.Lock()
		for _, a := range msg.Alerts {
			if _, ok := alerted[a.Labels["key"]]; !ok && a.Status == "firing" {
				alerted[a.Labels["key"]] = now
			}
		}
		mu.Unlock()
	}))
	defer hook.Close()
	hung := make(chan struct{})
	var deadCalls atomic.Int32
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadCalls.Add(1)
		select { // never answers while the test runs
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer dead.Close()
	defer close(hung)

	o := &runOptions{flows: "testdata/storm", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		webhooks: stringList{hook.URL, dead.URL}}
	ri, stop := startAllInOne(t, o)
	defer stop()

	// 3,000 orders placed in the same second, sent as a busy shop's SDK would, in batches.
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(o.otlpGRPC), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(512), sdktrace.WithMaxQueueSize(2*n)), sdktrace.WithResource(svc.res("shop")))
	placed := time.Now().Truncate(time.Second).Add(time.Second)
	for i := 0; i < n; i++ {
		_, sp := tp.Tracer("shop").Start(ctx, "place", trace.WithTimestamp(placed.Add(-20*time.Millisecond)),
			trace.WithAttributes(attribute.String("order.id", fmt.Sprintf("s-%04d", i))))
		sp.End(trace.WithTimestamp(placed.Add(time.Duration(i%1000) * time.Microsecond)))
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := placed.Add(15 * time.Second) // every order's, within a millisecond

	// During the storm, a ticket opens; it is due 3s later.
	time.Sleep(time.Until(deadline.Add(-time.Second)))
	opened := time.Now()
	svc.span("desk", "open", trace.SpanKindServer, opened.Add(-50*time.Millisecond), []attribute.KeyValue{attribute.String("ticket.id", "T-1")})
	ticketDue := opened.Add(3 * time.Second)

	// Watch the API: when each order shows as stuck, and when the ticket does.
	stuckAt := map[string]time.Time{}
	var ticketStuck time.Time
	api := ri.API + "/api/v1/instances?status=stuck&limit=1000"
	for end := deadline.Add(20 * time.Second); time.Now().Before(end) && (len(stuckAt) < n || ticketStuck.IsZero()); time.Sleep(100 * time.Millisecond) {
		cursor := ""
		for {
			var page struct {
				Instances []struct {
					Flow, Key string
				} `json:"instances"`
				NextCursor string `json:"next_cursor"`
			}
			if code := getJSON(t, api+"&cursor="+url.QueryEscape(cursor), &page); code != 200 {
				t.Fatalf("list stuck: %d", code)
			}
			now := time.Now()
			for _, in := range page.Instances {
				switch {
				case in.Flow == "quick" && ticketStuck.IsZero():
					ticketStuck = now
				case in.Flow == "storm":
					if _, ok := stuckAt[in.Key]; !ok {
						stuckAt[in.Key] = now
					}
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	if len(stuckAt) != n {
		t.Fatalf("%d of %d orders stuck in the API 20s after their deadline", len(stuckAt), n)
	}
	var lastStuck time.Time
	for _, at := range stuckAt {
		if at.After(lastStuck) {
			lastStuck = at
		}
	}
	poll(t, "every order's alert", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(alerted) >= n })
	var lastAlert time.Time
	mu.Lock()
	for _, at := range alerted {
		if at.After(lastAlert) {
			lastAlert = at
		}
	}
	mu.Unlock()
	t.Logf("storm of %d: all stuck in the API %s after the deadline, all alerted %s after; the ticket stuck %s after its own",
		n, lastStuck.Sub(deadline).Round(time.Millisecond), lastAlert.Sub(deadline).Round(time.Millisecond),
		ticketStuck.Sub(ticketDue).Round(time.Millisecond))
	if lag := lastStuck.Sub(deadline); lag > 5*time.Second {
		t.Errorf("the last order showed stuck %s after its deadline; want within 5s", lag)
	}
	if lag := lastAlert.Sub(deadline); lag > 5*time.Second {
		t.Errorf("the last order was alerted %s after its deadline; want within 5s", lag)
	}
	if deadCalls.Load() == 0 {
		t.Error("the webhook that never answers was never tried")
	}
	if ticketStuck.IsZero() {
		t.Fatal("the ticket started during the storm never showed stuck")
	}
	if lag := ticketStuck.Sub(ticketDue); lag > time.Second {
		t.Errorf("the ticket started during the storm showed stuck %s after its deadline; want within 1s", lag)
	}
}
