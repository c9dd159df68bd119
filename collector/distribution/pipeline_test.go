package distribution_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/collector/distribution"
	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

const e2eConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{grpc}}
processors:
  flow:
    flows: [{{flows}}]
    drop_unmatched: true
exporters:
  flow:
    path: {{store}}
    database: e2e
    sending_queue:
      enabled: false
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [flow]
      exporters: [flow]
    logs:
      receivers: [otlp]
      processors: [flow]
      exporters: [flow]
`

// chDB allows one data folder per process: the tests that run the collector on the embedded
// store share this one, one database each.
var embeddedDir string

func TestMain(m *testing.M) {
	os.Exit(testsvc.RunInChDBFolder(m, "flowwatch-distribution-chdb-", &embeddedDir))
}

// runCollector runs the flowwatch collector distribution in this process on the configuration
// at path until the returned func stops it (and checks it stopped cleanly).
func runCollector(t *testing.T, path string) func() {
	t.Helper()
	col, err := otelcol.NewCollector(distribution.Settings("test", nil, path))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	for start := time.Now(); col.GetState() != otelcol.StateRunning; {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("the collector stopped: %v", err)
		default:
		}
		if time.Since(start) > 30*time.Second {
			cancel()
			t.Fatalf("the collector did not start: state %v", col.GetState())
		}
		time.Sleep(5 * time.Millisecond) // polling the state, not waiting out a deadline
	}
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

// The real collector runtime: OTLP in, the flow processor annotates, the flow exporter writes
// checkpoint rows to the embedded store — what `flowwatch collector` does.
func TestCollectorWritesCheckpointRows(t *testing.T) {
	port, err := testsvc.FreePort()
	require.NoError(t, err)
	flows, err := filepath.Abs(filepath.Join("..", "flowprocessor", "testdata", "flows"))
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "collector.yaml")
	conf := strings.NewReplacer("{{grpc}}", strconv.Itoa(port), "{{flows}}", flows, "{{store}}", embeddedDir).Replace(e2eConfig)
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))

	stop := runCollector(t, path)
	defer stop()
	ctx := context.Background()

	endpoint := "127.0.0.1:" + strconv.Itoa(port)
	send := func(service string, emit func(trace.Tracer)) {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
		require.NoError(t, err)
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", service), attribute.String("tenant.id", "acme"))))
		emit(tp.Tracer("shop"))
		require.NoError(t, tp.Shutdown(ctx))
	}
	send("orders", func(tr trace.Tracer) {
		_, s := tr.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("order.id", "o-1"), attribute.Int("http.response.status_code", 201)))
		s.End()
		_, s = tr.Start(ctx, "GET /health", trace.WithSpanKind(trace.SpanKindServer))
		s.End()
	})
	var paidAt time.Time
	send("payments", func(tr trace.Tracer) {
		_, s := tr.Start(ctx, "authorize", trace.WithAttributes(attribute.String("payment.order_id", "o-1")))
		paidAt = time.Now()
		s.AddEvent("payment.authorized", trace.WithTimestamp(paidAt), trace.WithAttributes(attribute.String("payment.id", "p-7")))
		s.End()
	})
	lexp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(endpoint), otlploggrpc.WithInsecure())
	require.NoError(t, err)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(lexp)),
		sdklog.WithResource(resource.NewWithAttributes("", attribute.String("service.name", "mailer"))))
	var rec otellog.Record
	rec.SetEventName("email.verified")
	rec.SetSeverity(otellog.SeverityInfo)
	rec.SetTimestamp(time.Now())
	rec.AddAttributes(attribute.String("user.id", "u-9"))
	lp.Logger("mailer").Emit(ctx, rec)
	require.NoError(t, lp.Shutdown(ctx))

	s, err := storage.OpenEmbedded(ctx, embeddedDir, storage.Options{Database: "e2e"})
	require.NoError(t, err)
	defer s.Close()
	var evs []storage.CheckpointEvent
	require.Eventually(t, func() bool {
		evs, err = s.EventsSince(ctx, time.Time{}, 100)
		return err == nil && len(evs) >= 4
	}, 20*time.Second, 20*time.Millisecond, "events in the store: %d (%v)", len(evs), err)

	got := map[string]storage.CheckpointEvent{}
	for _, e := range evs {
		got[e.Tenant+"/"+e.Flow+"/"+e.Checkpoint+"/"+e.Key] = e
	}
	require.Len(t, got, 4, "%v", got)
	placed, ok := got["acme/order-fulfilment/placed/o-1"]
	require.True(t, ok, "%v", got)
	assert.Equal(t, "orders", placed.Service)
	assert.Equal(t, "POST /orders", placed.Name)
	assert.Len(t, placed.TraceID, 32)
	paid, ok := got["acme/order-fulfilment/paid/o-1"]
	require.True(t, ok, "%v", got)
	assert.Equal(t, "payment.authorized", paid.Name)
	assert.True(t, paid.Time.Equal(paidAt), "the span event's own time: %v, want %v", paid.Time, paidAt)
	assert.Contains(t, got, "acme/payment/authorized/p-7")
	assert.Contains(t, got, "default/onboarding/email_verified/u-9")

	res, err := s.ResolveAliases(ctx, "acme", "order-fulfilment", "payment.id", []string{"p-7"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"p-7": "o-1"}, res)
}
