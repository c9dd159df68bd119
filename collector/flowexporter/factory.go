// Package flowexporter is the collector exporter that turns items annotated by the flow
// processor (package flowattr) into checkpoint rows and writes them to the store (package
// storage). Rows are made from the telemetry as it arrives — only what a row keeps, flat and
// bounded — and then go through exporterhelper's sending queue (in memory, or on disk with
// file_storage), its batcher, retry and timeout: one insert per batch. It never matches
// anything itself and never evaluates instances.
package flowexporter

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
)

const (
	// defaultCreateSchema applies the migrations on start: they are idempotent.
	defaultCreateSchema = true
	// defaultRetention keeps rows for 30 days.
	defaultRetention = 30 * day
	// defaultReadTimeout bounds every read from a server.
	defaultReadTimeout = 30 * time.Second
	// defaultDialTimeout bounds connecting to a server.
	defaultDialTimeout = 10 * time.Second
	// defaultMaxMessageBytes keeps error messages and log bodies short.
	defaultMaxMessageBytes = 1024
	// defaultMaxValueBytes bounds a row's name, service and each attribute value.
	defaultMaxValueBytes = 256
	// defaultMaxAttributesBytes bounds the attributes a row keeps (names and values).
	defaultMaxAttributesBytes = 4096
	// defaultMaxKeyBytes: business keys are short; a longer identity is refused, not cut.
	defaultMaxKeyBytes = 512
	// defaultBatchFlushTimeout: the sending queue's batcher writes at least once a second.
	// An insert has a fixed cost (~11 ms on the embedded store), so rows are written in
	// batches after they are queued (and on disk, with a persistent queue), never before.
	defaultBatchFlushTimeout = time.Second
	// defaultBatchMinRows sends a batch as soon as it has this many rows.
	defaultBatchMinRows = 20_000
	// defaultBatchMaxRows bounds one insert.
	defaultBatchMaxRows = 100_000
)

// NewFactory returns the factory of the flow exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithTraces(createTraces, metadata.TracesStability),
		exporter.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		TimeoutConfig:      exporterhelper.NewDefaultTimeoutConfig(),
		QueueConfig:        configoptional.Some(defaultQueueConfig()),
		BackOffConfig:      configretry.NewDefaultBackOffConfig(),
		TLS:                configtls.NewDefaultClientConfig(),
		CreateSchema:       defaultCreateSchema,
		Retention:          defaultRetention,
		ReadTimeout:        defaultReadTimeout,
		DialTimeout:        defaultDialTimeout,
		MaxMessageBytes:    defaultMaxMessageBytes,
		MaxValueBytes:      defaultMaxValueBytes,
		MaxAttributesBytes: defaultMaxAttributesBytes,
		MaxKeyBytes:        defaultMaxKeyBytes,
	}
}

// defaultQueueConfig is exporterhelper's sending queue with its batcher on, in rows.
func defaultQueueConfig() exporterhelper.QueueBatchConfig {
	q := exporterhelper.NewDefaultQueueConfig()
	b := exporterhelper.NewDefaultBatchConfig()
	b.FlushTimeout = defaultBatchFlushTimeout
	b.Sizer = exporterhelper.RequestSizerTypeItems
	b.MinSize = defaultBatchMinRows
	b.MaxSize = defaultBatchMaxRows
	q.Batch = configoptional.Some(b)
	return q
}

// exporterCapabilities: the exporter reads the telemetry and never changes it (the sending
// queue batches the exporter's own rows).
var exporterCapabilities = consumer.Capabilities{MutatesData: false}

func options(e *flowExporter, cfg *Config, enc rowsEncoding) []exporterhelper.Option {
	return []exporterhelper.Option{
		exporterhelper.WithTimeout(cfg.TimeoutConfig),
		xexporterhelper.WithQueueBatch(cfg.QueueConfig, xexporterhelper.QueueBatchSettings{Encoding: enc}),
		exporterhelper.WithRetry(cfg.BackOffConfig),
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
	}
}

// The exporter converts each push into rows before exporterhelper sees it (a push with no
// annotated item is done there and then: nothing is queued), and hands the rows to
// exporterhelper through the push's context, where its converter picks them up.
type requestKey struct{}

func withRequest(ctx context.Context, r *rowsRequest) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

func requestFrom(ctx context.Context) (xexporterhelper.Request, error) {
	r, ok := ctx.Value(requestKey{}).(*rowsRequest)
	if !ok {
		return nil, errors.New("flow exporter: push without its rows")
	}
	return r, nil
}

type tracesExporter struct {
	exporter.Traces // exporterhelper's: queue, batcher, retry, timeout
	convert         func(ptrace.Traces) *rowsRequest
}

func (t *tracesExporter) Capabilities() consumer.Capabilities { return exporterCapabilities }

func (t *tracesExporter) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	req := t.convert(td)
	if req.ItemsCount() == 0 {
		return nil
	}
	return t.Traces.ConsumeTraces(withRequest(ctx, req), td)
}

type logsExporter struct {
	exporter.Logs
	convert func(plog.Logs) *rowsRequest
}

func (l *logsExporter) Capabilities() consumer.Capabilities { return exporterCapabilities }

func (l *logsExporter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	req := l.convert(ld)
	if req.ItemsCount() == 0 {
		return nil
	}
	return l.Logs.ConsumeLogs(withRequest(ctx, req), ld)
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	c := cfg.(*Config)
	e, err := newFlowExporter(set, c)
	if err != nil {
		return nil, err
	}
	helper, err := xexporterhelper.NewTracesRequest(ctx, set,
		func(ctx context.Context, _ ptrace.Traces) (xexporterhelper.Request, error) { return requestFrom(ctx) },
		e.push, options(e, c, rowsEncoding{legacy: legacyTraces(e.convertTraces)})...)
	if err != nil {
		return nil, err
	}
	return &tracesExporter{Traces: helper, convert: e.convertTraces}, nil
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e, err := newFlowExporter(set, c)
	if err != nil {
		return nil, err
	}
	helper, err := xexporterhelper.NewLogsRequest(ctx, set,
		func(ctx context.Context, _ plog.Logs) (xexporterhelper.Request, error) { return requestFrom(ctx) },
		e.push, options(e, c, rowsEncoding{legacy: legacyLogs(e.convertLogs)})...)
	if err != nil {
		return nil, err
	}
	return &logsExporter{Logs: helper, convert: e.convertLogs}, nil
}
