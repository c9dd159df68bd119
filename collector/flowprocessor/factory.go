package flowprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
	"github.com/flowwatch/flowwatch/model"
)

const (
	// defaultTenantAttribute is the resource attribute read for the tenant.
	defaultTenantAttribute = model.DefaultTenantAttribute
	// defaultDropUnmatched keeps every item: the flow pipeline usually runs beside a raw one.
	defaultDropUnmatched = false
	// defaultReloadInterval turns reloading off.
	defaultReloadInterval = 0
)

// NewFactory returns the factory of the flow processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability),
		processor.WithLogs(createLogs, metadata.LogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		TenantAttribute: defaultTenantAttribute,
		DropUnmatched:   defaultDropUnmatched,
		ReloadInterval:  defaultReloadInterval,
	}
}

var processorCapabilities = consumer.Capabilities{MutatesData: true}

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	fp, err := newFlowProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return processorhelper.NewTraces(ctx, set, cfg, next, fp.processTraces,
		processorhelper.WithCapabilities(processorCapabilities),
		processorhelper.WithStart(fp.start),
		processorhelper.WithShutdown(fp.shutdown))
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	fp, err := newFlowProcessor(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return processorhelper.NewLogs(ctx, set, cfg, next, fp.processLogs,
		processorhelper.WithCapabilities(processorCapabilities),
		processorhelper.WithStart(fp.start),
		processorhelper.WithShutdown(fp.shutdown))
}
