package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/testsvc"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fixedIDs makes the SDK reuse given IDs, so a test can send the very same span twice.
type fixedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

func (f fixedIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID)  { return f.trace, f.span }
func (f fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return f.span }

// services sends telemetry like real services do: one tracer and logger provider per service,
// OTLP over gRPC for traces and over HTTP for logs.
type services struct {
	t        *testing.T
	grpcAddr string
	httpAddr string
}

func (s *services) res(service string) *resource.Resource {
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service), attribute.String("tenant.id", "shop-eu"))
}

// span sends one root span (its own trace, as after a message broker hop) and flushes it.
func (s *services) span(service, name string, kind trace.SpanKind, start time.Time, attrs []attribute.KeyValue, opts ...func(trace.Span)) {
	s.spanWithIDs(service, name, kind, start, attrs, nil, opts...)
}

func (s *services) spanWithIDs(service, name string, kind trace.SpanKind, start time.Time, attrs []attribute.KeyValue, ids sdktrace.IDGenerator, opts ...func(trace.Span)) {
	s.t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		s.t.Fatal(err)
	}
	po := []sdktrace.TracerProviderOption{sdktrace.WithSyncer(exp), sdktrace.WithResource(s.res(service))}
	if ids != nil {
		po = append(po, sdktrace.WithIDGenerator(ids))
	}
	tp := sdktrace.NewTracerProvider(po...)
	_, sp := tp.Tracer(service).Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	for _, o := range opts {
		o(sp)
	}
	sp.End(trace.WithTimestamp(start.Add(50 * time.Millisecond)))
	if err := tp.Shutdown(ctx); err != nil {
		s.t.Fatalf("send span %s/%s: %v", service, name, err)
	}
}

// logEvent sends one log record with an event name.
func (s *services) logEvent(service, event string, at time.Time, attrs ...attribute.KeyValue) {
	s.t.Helper()
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(s.httpAddr), otlploghttp.WithInsecure())
	if err != nil {
		s.t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)), sdklog.WithResource(s.res(service)))
	var r otellog.Record
	r.SetEventName(event)
	r.SetTimestamp(at)
	r.SetSeverity(otellog.SeverityInfo)
	r.SetBody(attribute.StringValue(event))
	r.AddAttributes(attrs...)
	lp.Logger(service).Emit(ctx, r)
	if err := lp.Shutdown(ctx); err != nil {
		s.t.Fatalf("send log %s/%s: %v", service, event, err)
	}
}

func withEvent(name string, at time.Time, attrs ...attribute.KeyValue) func(trace.Span) {
	return func(sp trace.Span) { sp.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attrs...)) }
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("decode %s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode
}

type apiInstance struct {
	Status         string `json:"status"`
	LastCheckpoint string `json:"last_checkpoint"`
	Reason         *struct {
		Checkpoint string   `json:"checkpoint"`
		Service    string   `json:"service"`
		TraceIDs   []string `json:"trace_ids"`
		LastError  *struct {
			Service string `json:"service"`
			Message string `json:"message"`
		} `json:"last_error"`
	} `json:"reason"`
	Events []struct {
		Checkpoint string `json:"checkpoint"`
	} `json:"events"`
	Violations []struct {
		Kind string `json:"kind"`
	} `json:"violations"`
}

func poll(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}

// startAllInOne starts the all-in-one with fresh loopback ports, again with new ones when a
// port was taken between choosing it and listening (other test packages run in parallel).
// It returns what it runs on and a stop function that waits for a clean stop.
func startAllInOne(t *testing.T, o *runOptions) (runtimeInfo, func()) {
	t.Helper()
	return startAllInOneLogged(t, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startAllInOneLogged is startAllInOne logging to log.
func startAllInOneLogged(t *testing.T, o *runOptions, log *slog.Logger) (runtimeInfo, func()) {
	t.Helper()
	for try := 0; ; try++ {
		o.otlpGRPC, o.otlpHTTP, o.http = freeAddr(t), freeAddr(t), freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		info := make(chan runtimeInfo, 1)
		done := make(chan error, 1)
		go func() { done <- allInOne(ctx, o, io.Discard, log, func(ri runtimeInfo) { info <- ri }) }()
		select {
		case ri := <-info:
			return ri, func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("all-in-one stopped with %v", err)
				}
			}
		case err := <-done:
			cancel()
			if try < 3 && err != nil && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			t.Fatalf("all-in-one did not start: %v", err)
		case <-time.After(60 * time.Second):
			cancel()
			t.Fatal("all-in-one did not start within 60s")
		}
	}
}

// testNATS starts an embedded NATS server with JetStream on a free loopback port, shut down
// when the test ends.
func testNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestAllInOne is the end-to-end test of `flowwatch run`: real OTLP from the OTel SDK into the
// in-process collector, the embedded chDB store, the detector, a real Alertmanager, NATS
// JetStream, and a consumer that acts on the unblock command.
func TestAllInOne(t *testing.T) {
	am := testsvc.AlertmanagerT(t)
	ns := testNATS(t)

	o := &runOptions{flows: "testdata/e2e", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		alertmanagers: stringList{am.URL()}, nats: ns.ClientURL()}
	ri, stop := startAllInOne(t, o)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}

	// The consumer of unblock commands: on a payment retry it authorizes the payment and the
	// order ships.
	var mu sync.Mutex
	var commands []detector.CloudEvent
	alertSeen := make(chan struct{}) // the consumer heals only once the alert is seen firing
	consumerReady := consumeCommands(ctx, t, ri.NATS, "shop", "pay.retry", func(_ string, ce detector.CloudEvent) {
		mu.Lock()
		commands = append(commands, ce)
		mu.Unlock()
		select {
		case <-alertSeen:
		case <-ctx.Done():
			return
		}
		now := time.Now()
		svc.span("pay", "authorize", trace.SpanKindClient, now, []attribute.KeyValue{attribute.String("order.id", ce.Data.Key)},
			withEvent("payment.authorized", now.Add(10*time.Millisecond), attribute.String("order.id", ce.Data.Key)))
		svc.span("shipping", "ship parcel", trace.SpanKindInternal, now.Add(100*time.Millisecond), []attribute.KeyValue{attribute.String("order.id", ce.Data.Key)})
	})

	t0 := time.Now()
	// Order A completes: several traces, out of order (shipped first), the placed span twice.
	a := []attribute.KeyValue{attribute.String("order.id", "A")}
	svc.span("shipping", "ship parcel", trace.SpanKindInternal, t0.Add(300*time.Millisecond), a)
	svc.logEvent("warehouse", "order.packed", t0.Add(200*time.Millisecond), attribute.String("order.id", "A"))
	svc.span("pay", "authorize", trace.SpanKindClient, t0.Add(100*time.Millisecond), a, withEvent("payment.authorized", t0.Add(120*time.Millisecond), a...))
	ids := fixedIDs{trace: trace.TraceID{1, 2, 3}, span: trace.SpanID{4, 5, 6}}
	for i := 0; i < 2; i++ {
		svc.spanWithIDs("shop", "POST /checkout", trace.SpanKindServer, t0, a, ids)
	}
	// Order B is cancelled.
	b := []attribute.KeyValue{attribute.String("order.id", "B")}
	svc.span("shop", "POST /checkout", trace.SpanKindServer, t0, b)
	svc.span("shop", "cancel", trace.SpanKindInternal, t0.Add(time.Second), b)
	// Order C: packed, but the card issuer times out and no payment is authorized.
	c := []attribute.KeyValue{attribute.String("order.id", "C")}
	svc.span("shop", "POST /checkout", trace.SpanKindServer, t0, c)
	svc.logEvent("warehouse", "order.packed", t0.Add(200*time.Millisecond), attribute.String("order.id", "C"))
	svc.span("pay", "authorize", trace.SpanKindClient, t0.Add(300*time.Millisecond), c, func(sp trace.Span) {
		sp.SetStatus(codes.Error, "card issuer timeout")
	})

	api := ri.API + "/api/v1"
	instance := func(key string) apiInstance {
		var in apiInstance
		getJSON(t, api+"/flows/checkout/instances/"+key+"?tenant=shop-eu", &in)
		return in
	}
	poll(t, "A to complete and B to fail", 30*time.Second, func() bool {
		return instance("A").Status == "completed" && instance("B").Status == "failed"
	})
	inA := instance("A")
	if len(inA.Events) != 4 || len(inA.Violations) != 0 || inA.LastCheckpoint != "shipped" {
		t.Fatalf("A: want 4 events (the duplicate dropped), no violations: %+v", inA)
	}

	<-consumerReady
	// C is stuck at paid within 3s + a tick, explained, alerted; the command heals it.
	var stuck apiInstance
	poll(t, "C to be stuck and explained", 30*time.Second, func() bool {
		stuck = instance("C")
		return stuck.Status == "stuck"
	})
	{
		r := stuck.Reason
		if r == nil || r.Checkpoint != "paid" || r.Service != "pay" || r.LastError == nil ||
			r.LastError.Message != "card issuer timeout" || len(r.TraceIDs) != 2 { // the log record has no trace
			t.Fatalf("stuck reason = %+v", r)
		}
	}
	amHasC := func() bool {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		getJSON(t, am.URL()+"/api/v2/alerts", &alerts)
		for _, al := range alerts {
			if al.Labels["key"] == "C" && al.Labels["checkpoint"] == "paid" && al.Labels["tenant"] == "shop-eu" &&
				al.Labels["flow"] == "checkout" && al.Labels["alertname"] == "FlowStuck" {
				return true
			}
		}
		return false
	}
	poll(t, "the alert firing in Alertmanager", 30*time.Second, amHasC)
	close(alertSeen)
	poll(t, "C to complete after the command", 30*time.Second, func() bool { return instance("C").Status == "completed" })
	poll(t, "the alert to resolve in Alertmanager", 30*time.Second, func() bool { return !amHasC() })
	poll(t, "the command recorded as succeeded", 30*time.Second, func() bool {
		var rec struct {
			Commands []struct {
				Key, Checkpoint, Outcome string
				Attempt                  int
			} `json:"commands"`
		}
		getJSON(t, api+"/commands?flow=checkout&tenant=shop-eu", &rec)
		for _, x := range rec.Commands {
			if x.Key == "C" && x.Checkpoint == "paid" && x.Outcome == "succeeded" && x.Attempt == 1 {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	if len(commands) != 1 || commands[0].Data.Key != "C" || commands[0].Data.Checkpoint != "paid" ||
		!strings.HasPrefix(commands[0].Subject, "checkout/") {
		t.Fatalf("consumer got %+v", commands)
	}
	var list struct {
		Instances []struct{ Key, Status string } `json:"instances"`
	}
	getJSON(t, api+"/instances?flow=checkout&tenant=shop-eu", &list)
	got := map[string]string{}
	for _, in := range list.Instances {
		got[in.Key] = in.Status
	}
	if fmt.Sprint(got) != "map[A:completed B:failed C:completed]" {
		t.Fatalf("instances = %v", got)
	}
}

// TestRunStopLosesNothing: spans accepted by the OTLP receiver just before a stop are stored,
// whether the collector's queue drains on the way down or replays from disk on the next start.
func TestRunStopLosesNothing(t *testing.T) {
	// The flows' actions need a NATS sink to start with; none is sent here.
	o := &runOptions{flows: "testdata/e2e", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		nats: testNATS(t).ClientURL()}
	start := func() (runtimeInfo, func()) { return startAllInOne(t, o) }
	_, stop := start()
	svc := &services{t: t, grpcAddr: o.otlpGRPC, httpAddr: o.otlpHTTP}
	const n = 20
	now := time.Now()
	for i := 0; i < n; i++ {
		svc.span("shop", "POST /checkout", trace.SpanKindServer, now, []attribute.KeyValue{attribute.String("order.id", fmt.Sprintf("k%02d", i))})
	}
	stop() // right after the receiver accepted them: they sit in the queue (on disk) or its batcher

	ri, stop := start()
	defer stop()
	poll(t, "every accepted span stored and seen after the restart", 30*time.Second, func() bool {
		var list struct {
			Instances []struct{ Key string } `json:"instances"`
		}
		getJSON(t, ri.API+"/api/v1/instances?flow=checkout&tenant=shop-eu&limit=100", &list)
		return len(list.Instances) == n
	})
}

// TestRunConsoleFlags: --trace-url and --operator-api reach the console; a template that
// cannot link a trace is a usage error.
func TestRunConsoleFlags(t *testing.T) {
	o, err := parseRunFlags([]string{"--trace-url", "https://jaeger.example/trace/{trace_id}", "--operator-api"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.consoleConfig(); c.TraceURL != "https://jaeger.example/trace/{trace_id}" || !c.OperatorAPI {
		t.Fatalf("console configuration = %+v", c)
	}
	if o, err = parseRunFlags(nil, io.Discard); err != nil || o.consoleConfig().OperatorAPI || o.consoleConfig().TraceURL != "" {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, bad := range []string{"https://jaeger.example/trace/", "/trace/{trace_id}"} {
		if _, err := parseRunFlags([]string{"--trace-url", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "--trace-url") {
			t.Errorf("--trace-url %q: %v", bad, err)
		}
	}
}
