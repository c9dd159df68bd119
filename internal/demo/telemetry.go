package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The services of the choreography. Each has its own TracerProvider and LoggerProvider, as
// separate processes would.
const (
	svcOrders     = "orders"
	svcPayments   = "payments"
	svcInventory  = "inventory"
	svcLedger     = "ledger"
	svcShipping   = "shipping"
	svcWeb        = "web"
	svcAccounts   = "accounts"
	svcKYC        = "kyc"
	svcRisk       = "risk"
	svcCompliance = "compliance"
	svcFulfilment = "fulfilment"
	svcCourier    = "courier"
)

var serviceNames = []string{svcOrders, svcPayments, svcInventory, svcLedger, svcShipping,
	svcWeb, svcAccounts, svcKYC, svcRisk, svcCompliance, svcFulfilment, svcCourier}

// serviceVersions makes the resources look like a real fleet.
var serviceVersions = map[string]string{
	svcOrders: "3.14.2", svcPayments: "7.2.0", svcInventory: "2.9.1", svcLedger: "1.22.4",
	svcShipping: "4.0.3", svcWeb: "12.1.0", svcAccounts: "5.3.7", svcKYC: "0.9.12",
	svcRisk: "2.2.2", svcCompliance: "1.1.0", svcFulfilment: "3.0.0",
}

// exportQueueSize is the batch processors' queue per service: room for bursts at high
// --rate before the SDK drops items.
const exportQueueSize = 16384

const instrumentationScope = "github.com/flowwatch/flowwatch/internal/demo"

// service is one simulated service: its own providers, tracer and logger.
type service struct {
	name   string
	tp     *sdktrace.TracerProvider
	lp     *sdklog.LoggerProvider
	tracer trace.Tracer
	logger otellog.Logger
}

// telemetry owns the providers of every service and the connection they share.
type telemetry struct {
	services map[string]*service
	conn     *grpc.ClientConn // nil over http
}

// newTelemetry builds one TracerProvider and one LoggerProvider per service, exporting over
// OTLP. Nothing is sent until the first batch; an unreachable receiver shows as export
// errors, not here.
func newTelemetry(ctx context.Context, cfg *Config, ids sdktrace.IDGenerator, hostSeed uint64) (*telemetry, error) {
	t := &telemetry{services: map[string]*service{}}
	endpoint := cfg.Endpoint()
	if cfg.Protocol == ProtocolGRPC {
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial OTLP gRPC %s: %w", endpoint, err)
		}
		t.conn = conn
	}
	hosts := rand.New(rand.NewPCG(hostSeed, 0x5eed))
	for _, name := range serviceNames {
		var (
			spanExp sdktrace.SpanExporter
			logExp  sdklog.Exporter
			err     error
		)
		if t.conn != nil {
			spanExp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(t.conn))
			if err == nil {
				logExp, err = otlploggrpc.New(ctx, otlploggrpc.WithGRPCConn(t.conn))
			}
		} else {
			spanExp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure())
			if err == nil {
				logExp, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(endpoint), otlploghttp.WithInsecure())
			}
		}
		if err != nil {
			t.shutdown(ctx)
			return nil, fmt.Errorf("create OTLP exporters of service %s: %w", name, err)
		}
		res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(
			attribute.String("service.name", name),
			attribute.String("service.version", serviceVersions[name]),
			attribute.String("service.namespace", "shop"),
			attribute.String("service.instance.id", fmt.Sprintf("%s-%08x", name, hosts.Uint32())),
			attribute.String("deployment.environment.name", "demo"),
			attribute.String("host.name", fmt.Sprintf("node-%d", 1+hosts.IntN(6))),
			attribute.String("cloud.region", "eu-west-1"),
			attribute.String("tenant.id", cfg.Tenant),
		))
		if err != nil {
			t.shutdown(ctx)
			return nil, fmt.Errorf("build resource of service %s: %w", name, err)
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithIDGenerator(ids),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(spanExp, sdktrace.WithBatchTimeout(cfg.ExportInterval),
				sdktrace.WithMaxQueueSize(exportQueueSize)),
		)
		lp := sdklog.NewLoggerProvider(
			sdklog.WithResource(res),
			sdklog.WithProcessor(sdklog.NewBatchProcessor(logExp, sdklog.WithExportInterval(cfg.ExportInterval),
				sdklog.WithMaxQueueSize(exportQueueSize))),
		)
		t.services[name] = &service{
			name:   name,
			tp:     tp,
			lp:     lp,
			tracer: tp.Tracer(instrumentationScope, trace.WithInstrumentationVersion("1.0.0")),
			logger: lp.Logger(instrumentationScope, otellog.WithInstrumentationVersion("1.0.0")),
		}
	}
	return t, nil
}

// shutdown flushes and stops every provider, all at once so that an unreachable receiver
// costs one timeout, not one per provider; then closes the shared connection.
func (t *telemetry) shutdown(ctx context.Context) error {
	var (
		mu     sync.Mutex
		failed []string
		first  error
		wg     sync.WaitGroup
	)
	fail := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = fmt.Errorf("%s: %w", what, err)
		}
		failed = append(failed, what)
	}
	for _, name := range serviceNames {
		s := t.services[name]
		if s == nil {
			continue
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.tp.Shutdown(ctx); err != nil {
				fail("spans of "+name, err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := s.lp.Shutdown(ctx); err != nil {
				fail("logs of "+name, err)
			}
		}()
	}
	wg.Wait()
	var errs []error
	if first != nil {
		errs = append(errs, fmt.Errorf("flush telemetry (%d of %d exports failed, e.g. %w)",
			len(failed), 2*len(t.services), first))
	}
	if t.conn != nil {
		if err := t.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close OTLP connection: %w", err))
		}
	}
	return errors.Join(errs...)
}

// idGenerator makes trace and span IDs from a seeded generator, so a seeded run is
// repeatable. Safe for concurrent use.
type idGenerator struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newIDGenerator(seed uint64) *idGenerator {
	return &idGenerator{rng: rand.New(rand.NewPCG(seed, 0x1d5))}
}

func (g *idGenerator) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var tid trace.TraceID
	for !tid.IsValid() {
		putUint64(tid[:8], g.rng.Uint64())
		putUint64(tid[8:], g.rng.Uint64())
	}
	return tid, g.spanIDLocked()
}

func (g *idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.spanIDLocked()
}

func (g *idGenerator) spanIDLocked() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		putUint64(sid[:], g.rng.Uint64())
	}
	return sid
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// spanSpec describes one span to record with explicit times.
type spanSpec struct {
	name   string
	kind   trace.SpanKind
	start  time.Time
	end    time.Time
	attrs  []attribute.KeyValue
	links  []trace.SpanContext
	events []eventSpec
	// status: codes are set by the caller through errMsg / ok.
	ok     bool
	errMsg string
}

// eventSpec is one span event.
type eventSpec struct {
	name  string
	at    time.Time
	attrs []attribute.KeyValue
}

// record records one span with explicit times. A nil parent makes it the root of a new
// trace, as a service reacting to a broker message starts one; links point at the hop it
// reacts to. It returns the context carrying the span, for children and logs.
func (s *service) record(parent context.Context, sp spanSpec) (context.Context, trace.SpanContext) {
	opts := []trace.SpanStartOption{
		trace.WithTimestamp(sp.start),
		trace.WithSpanKind(sp.kind),
		trace.WithAttributes(sp.attrs...),
	}
	if parent == nil {
		parent = context.Background()
		opts = append(opts, trace.WithNewRoot())
	}
	for _, l := range sp.links {
		if l.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l}))
		}
	}
	ctx, span := s.tracer.Start(parent, sp.name, opts...)
	for _, e := range sp.events {
		span.AddEvent(e.name, trace.WithTimestamp(e.at), trace.WithAttributes(e.attrs...))
	}
	switch {
	case sp.errMsg != "":
		span.AddEvent("exception", trace.WithTimestamp(sp.end), trace.WithAttributes(
			attribute.String("exception.type", "IssuerTimeoutError"),
			attribute.String("exception.message", sp.errMsg)))
		span.SetStatus(codes.Error, sp.errMsg)
	case sp.ok:
		span.SetStatus(codes.Ok, "")
	}
	span.End(trace.WithTimestamp(sp.end))
	return ctx, span.SpanContext()
}

// emitEvent emits a log record that is an event: the SDK record's EventName and an
// `event.name` attribute, in the trace context of ctx (nil: none).
func (s *service) emitEvent(ctx context.Context, name string, at time.Time, sev otellog.Severity, body string, attrs ...attribute.KeyValue) {
	if ctx == nil {
		ctx = context.Background()
	}
	var r otellog.Record
	r.SetEventName(name)
	r.SetTimestamp(at)
	r.SetObservedTimestamp(at)
	r.SetSeverity(sev)
	r.SetSeverityText(severityText(sev))
	r.SetBody(attribute.StringValue(body))
	r.AddAttributes(attribute.String("event.name", name))
	r.AddAttributes(attrs...)
	s.logger.Emit(ctx, r)
}

func severityText(sev otellog.Severity) string {
	switch {
	case sev >= otellog.SeverityError:
		return "ERROR"
	case sev >= otellog.SeverityWarn:
		return "WARN"
	default:
		return "INFO"
	}
}
