// Package flowexporter is the collector exporter that turns items annotated by the flow
// processor (package flowattr) into checkpoint rows and writes them to the store (package
// storage), one native batch per push, behind exporterhelper's queue, retry and timeout.
// It never matches anything itself and never evaluates instances.
package flowexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

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
		TimeoutConfig:   exporterhelper.NewDefaultTimeoutConfig(),
		QueueConfig:     configoptional.Some(exporterhelper.NewDefaultQueueConfig()),
		BackOffConfig:   configretry.NewDefaultBackOffConfig(),
		CreateSchema:    defaultCreateSchema,
		Retention:       defaultRetention,
		ReadTimeout:     defaultReadTimeout,
		DialTimeout:     defaultDialTimeout,
		MaxMessageBytes: defaultMaxMessageBytes,
	}
}

var exporterCapabilities = consumer.Capabilities{MutatesData: false}

func options(e *flowExporter, cfg *Config) []exporterhelper.Option {
	return []exporterhelper.Option{
		exporterhelper.WithCapabilities(exporterCapabilities),
		exporterhelper.WithTimeout(cfg.TimeoutConfig),
		exporterhelper.WithQueue(cfg.QueueConfig),
		exporterhelper.WithRetry(cfg.BackOffConfig),
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
	}
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	c := cfg.(*Config)
	e := newFlowExporter(set, c)
	return exporterhelper.NewTraces(ctx, set, cfg, e.pushTraces, options(e, c)...)
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e := newFlowExporter(set, c)
	return exporterhelper.NewLogs(ctx, set, cfg, e.pushLogs, options(e, c)...)
}
