package distribution

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/collector/flowattr"
)

func TestComponents(t *testing.T) {
	f, err := Components()
	require.NoError(t, err)
	require.NotNil(t, f.Telemetry)
	for _, r := range []string{"otlp"} {
		assert.Contains(t, f.Receivers, component.MustNewType(r))
	}
	for _, p := range []string{"memory_limiter", "batch", "resource", "flow"} {
		assert.Contains(t, f.Processors, component.MustNewType(p))
	}
	for _, e := range []string{"debug", "otlp", "otlphttp", "flow"} {
		assert.Contains(t, f.Exporters, component.MustNewType(e))
	}
	for _, e := range []string{"file_storage", "health_check", "pprof", "zpages"} {
		assert.Contains(t, f.Extensions, component.MustNewType(e))
	}
}

// sinkFactory is a test-only exporter that hands what it receives to consumertest sinks, one
// pair per component ID, so a test can assert on what came out of a pipeline.
type sinkFactory struct {
	mu     sync.Mutex
	traces map[component.ID]*consumertest.TracesSink
	logs   map[component.ID]*consumertest.LogsSink
}

type sinkTraces struct {
	component.StartFunc
	component.ShutdownFunc
	*consumertest.TracesSink
}

type sinkLogs struct {
	component.StartFunc
	component.ShutdownFunc
	*consumertest.LogsSink
}

type sinkConfig struct{}

func (s *sinkFactory) tracesSink(id component.ID) *consumertest.TracesSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.traces[id] == nil {
		s.traces[id] = new(consumertest.TracesSink)
	}
	return s.traces[id]
}

func (s *sinkFactory) logsSink(id component.ID) *consumertest.LogsSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs[id] == nil {
		s.logs[id] = new(consumertest.LogsSink)
	}
	return s.logs[id]
}

func (s *sinkFactory) factory() exporter.Factory {
	return exporter.NewFactory(component.MustNewType("sink"),
		func() component.Config { return &sinkConfig{} },
		exporter.WithTraces(func(_ context.Context, set exporter.Settings, _ component.Config) (exporter.Traces, error) {
			return sinkTraces{TracesSink: s.tracesSink(set.ID)}, nil
		}, component.StabilityLevelDevelopment),
		exporter.WithLogs(func(_ context.Context, set exporter.Settings, _ component.Config) (exporter.Logs, error) {
			return sinkLogs{LogsSink: s.logsSink(set.ID)}, nil
		}, component.StabilityLevelDevelopment),
	)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

const e2eConfig = `
extensions:
  health_check:
    endpoint: {{health}}
  pprof:
    endpoint: {{pprof}}
  zpages:
    endpoint: {{zpages}}
  file_storage:
    directory: {{storage}}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{grpc}}
      http:
        endpoint: {{http}}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
  flow:
    flows:
      - {{flows}}
    drop_unmatched: true
  batch:
    timeout: 10ms
exporters:
  sink/flows:
  sink/raw:
  debug:
service:
  extensions: [health_check, pprof, zpages, file_storage]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces/flows:
      receivers: [otlp]
      processors: [memory_limiter, flow, batch]
      exporters: [sink/flows]
    traces/raw:
      receivers: [otlp]
      processors: [batch]
      exporters: [sink/raw, debug]
    logs/flows:
      receivers: [otlp]
      processors: [memory_limiter, flow, batch]
      exporters: [sink/flows]
`

type e2e struct {
	sinks  *sinkFactory
	grpc   string
	http   string
	health string
}

// startCollector runs the distribution in-process with the test sink added to its exporters.
func startCollector(t *testing.T, flows string) (*e2e, error) {
	t.Helper()
	e := &e2e{
		sinks: &sinkFactory{traces: map[component.ID]*consumertest.TracesSink{}, logs: map[component.ID]*consumertest.LogsSink{}},
		grpc:  freePort(t), http: freePort(t), health: freePort(t),
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "storage"), 0o700))
	conf := strings.NewReplacer(
		"{{health}}", e.health, "{{pprof}}", freePort(t), "{{zpages}}", freePort(t),
		"{{storage}}", filepath.Join(dir, "storage"), "{{grpc}}", e.grpc, "{{http}}", e.http, "{{flows}}", flows,
	).Replace(e2eConfig)
	path := filepath.Join(dir, "collector.yaml")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))

	factories := func() (otelcol.Factories, error) {
		f, err := Components()
		if err != nil {
			return f, err
		}
		f.Exporters[component.MustNewType("sink")] = e.sinks.factory()
		return f, nil
	}
	col, err := otelcol.NewCollector(Settings("test", factories, path))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Wait for the collector to be running, or for Run to fail.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return nil, err
		default:
		}
		if col.GetState() == otelcol.StateRunning {
			return e, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the collector did not start: state %v", col.GetState())
	return nil, nil
}

func flowsDir(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("..", "flowprocessor", "testdata", "flows"))
	require.NoError(t, err)
	return dir
}

func sendSpans(t *testing.T, endpoint string, service string, emit func(trace.Tracer)) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	res := resource.NewWithAttributes("", attribute.String("service.name", service), attribute.String("tenant.id", "acme"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	emit(tp.Tracer("shop"))
	require.NoError(t, tp.ForceFlush(ctx))
	require.NoError(t, tp.Shutdown(ctx))
}

func TestEndToEnd(t *testing.T) {
	e, err := startCollector(t, flowsDir(t))
	require.NoError(t, err)

	resp, err := http.Get("http://" + e.health + "/")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "health_check reports the running collector")

	ctx := context.Background()
	sendSpans(t, e.grpc, "orders", func(tr trace.Tracer) {
		_, s := tr.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("order.id", "o-1"), attribute.Int("http.response.status_code", 201)))
		s.End()
		_, s = tr.Start(ctx, "GET /health", trace.WithSpanKind(trace.SpanKindServer))
		s.End()
	})
	sendSpans(t, e.grpc, "payments", func(tr trace.Tracer) {
		_, s := tr.Start(ctx, "authorize", trace.WithAttributes(attribute.String("payment.order_id", "o-1")))
		s.AddEvent("payment.authorized", trace.WithAttributes(attribute.String("payment.id", "p-7")))
		s.End()
	})

	// logs over OTLP/HTTP
	lexp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(e.http), otlploghttp.WithInsecure())
	require.NoError(t, err)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp)),
		sdklog.WithResource(resource.NewWithAttributes("", attribute.String("service.name", "mailer"))))
	logger := lp.Logger("mailer")
	var verified otellog.Record
	verified.SetEventName("email.verified")
	verified.SetSeverity(otellog.SeverityInfo)
	verified.SetBody(attribute.StringValue("verified"))
	verified.AddAttributes(attribute.String("user.id", "u-9"))
	logger.Emit(ctx, verified)
	var noise otellog.Record
	noise.SetSeverity(otellog.SeverityInfo)
	noise.SetBody(attribute.StringValue("noise"))
	logger.Emit(ctx, noise)
	require.NoError(t, lp.ForceFlush(ctx))
	require.NoError(t, lp.Shutdown(ctx))

	flowsID := component.MustNewIDWithName("sink", "flows")
	raw := e.sinks.tracesSink(component.MustNewIDWithName("sink", "raw"))
	flowTraces := e.sinks.tracesSink(flowsID)
	flowLogs := e.sinks.logsSink(flowsID)
	require.Eventually(t, func() bool {
		return raw.SpanCount() == 3 && flowTraces.SpanCount() == 2 && flowLogs.LogRecordCount() == 1
	}, 20*time.Second, 10*time.Millisecond, "raw %d spans, flows %d spans and %d logs",
		raw.SpanCount(), flowTraces.SpanCount(), flowLogs.LogRecordCount())

	got := map[string][]flowattr.Match{}
	for _, td := range flowTraces.AllTraces() {
		eachSpan(td, func(s ptrace.Span) {
			got[s.Name()] = flowattr.Get(s.Attributes(), nil)
			for i := 0; i < s.Events().Len(); i++ {
				ev := s.Events().At(i)
				got[s.Name()+"#"+ev.Name()] = flowattr.Get(ev.Attributes(), nil)
			}
		})
	}
	for _, ld := range flowLogs.AllLogs() {
		eachLog(ld, func(lr plog.LogRecord) { got["log "+lr.Body().Str()] = flowattr.Get(lr.Attributes(), nil) })
	}
	assert.Equal(t, map[string][]flowattr.Match{
		"POST /orders": {{Flow: "order-fulfilment", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"}},
		"authorize":    nil,
		"authorize#payment.authorized": {
			{Flow: "order-fulfilment", Checkpoint: "paid", Key: "o-1", KeyAttr: "payment.order_id", Tenant: "acme",
				Aliases: []flowattr.Alias{{Attr: "payment.id", Value: "p-7"}}},
			{Flow: "payment", Checkpoint: "authorized", Key: "p-7", KeyAttr: "payment.id", Tenant: "acme"},
		},
		"log verified": {{Flow: "onboarding", Checkpoint: "email_verified", Key: "u-9", KeyAttr: "user.id", Tenant: "default"}},
	}, got)
}

func eachSpan(td ptrace.Traces, f func(ptrace.Span)) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		sss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			for k := 0; k < sss.At(j).Spans().Len(); k++ {
				f(sss.At(j).Spans().At(k))
			}
		}
	}
}

func eachLog(ld plog.Logs, f func(plog.LogRecord)) {
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		sls := ld.ResourceLogs().At(i).ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			for k := 0; k < sls.At(j).LogRecords().Len(); k++ {
				f(sls.At(j).LogRecords().At(k))
			}
		}
	}
}

func TestStartFailsOnInvalidFlows(t *testing.T) {
	broken, err := filepath.Abs(filepath.Join("..", "flowprocessor", "testdata", "broken"))
	require.NoError(t, err)
	_, err = startCollector(t, broken)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(broken, "orders.yaml")+`:11:13: 'after' names unknown checkpoint "placced"`)
}

func TestRunCommandLine(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 0, Run(context.Background(), []string{"components"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "flow")
	assert.Contains(t, out.String(), "memory_limiter")

	out.Reset()
	errb.Reset()
	assert.Equal(t, 2, Run(context.Background(), nil, &out, &errb))
	assert.Contains(t, errb.String(), "usage: flowwatch collector --config FILE")

	errb.Reset()
	assert.Equal(t, 2, Run(context.Background(), []string{"--no-such-flag"}, &out, &errb))
	assert.Contains(t, errb.String(), "no-such-flag")

	errb.Reset()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("receivers: {nope: {}}\n"), 0o600))
	assert.Equal(t, 1, Run(context.Background(), []string{"validate", "--config", bad}, &out, &errb))
	assert.Contains(t, errb.String(), "nope")
}
