package metadata

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/trace"

	"go.opentelemetry.io/collector/component"
)

// Meter returns the processor's meter.
func Meter(settings component.TelemetrySettings) metric.Meter {
	return settings.MeterProvider.Meter(ScopeName)
}

// Tracer returns the processor's tracer.
func Tracer(settings component.TelemetrySettings) trace.Tracer {
	return settings.TracerProvider.Tracer(ScopeName)
}

// The names of the processor's own metrics.
const (
	MetricMatchedItems = "otelcol_processor_flow_matched_items"
	MetricMissingKey   = "otelcol_processor_flow_missing_key"
	MetricErrorNotes   = "otelcol_processor_flow_error_notes"
	MetricReloadErrors = "otelcol_processor_flow_reload_errors"
)

// TelemetryBuilder provides an interface for components to report telemetry
// as defined in metadata and user config.
type TelemetryBuilder struct {
	meter         metric.Meter
	mu            sync.Mutex
	registrations []metric.Registration
	// ProcessorFlowErrorNotes counts error items annotated as an error note, by flow.
	ProcessorFlowErrorNotes metric.Int64ObservableCounter
	// ProcessorFlowMatchedItems counts items annotated as a checkpoint, by flow and checkpoint.
	ProcessorFlowMatchedItems metric.Int64ObservableCounter
	// ProcessorFlowMissingKey counts items that matched a checkpoint but lacked its key
	// attribute, by flow and checkpoint; they are left unannotated.
	ProcessorFlowMissingKey metric.Int64ObservableCounter
	// ProcessorFlowReloadErrors counts failed reloads of the flow definitions; the last good
	// definitions stay in use.
	ProcessorFlowReloadErrors metric.Int64Counter
}

// TelemetryBuilderOption applies changes to default builder.
type TelemetryBuilderOption interface {
	apply(*TelemetryBuilder)
}

type telemetryBuilderOptionFunc func(mb *TelemetryBuilder)

func (tbof telemetryBuilderOptionFunc) apply(mb *TelemetryBuilder) {
	tbof(mb)
}

func (builder *TelemetryBuilder) register(cb metric.Int64Callback, inst metric.Int64Observable) error {
	reg, err := builder.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return cb(ctx, &observerInt64{inst: inst, obs: o})
	}, inst)
	if err != nil {
		return err
	}
	builder.mu.Lock()
	defer builder.mu.Unlock()
	builder.registrations = append(builder.registrations, reg)
	return nil
}

// RegisterProcessorFlowErrorNotesCallback sets callback for observable ProcessorFlowErrorNotes metric.
func (builder *TelemetryBuilder) RegisterProcessorFlowErrorNotesCallback(cb metric.Int64Callback) error {
	return builder.register(cb, builder.ProcessorFlowErrorNotes)
}

// RegisterProcessorFlowMatchedItemsCallback sets callback for observable ProcessorFlowMatchedItems metric.
func (builder *TelemetryBuilder) RegisterProcessorFlowMatchedItemsCallback(cb metric.Int64Callback) error {
	return builder.register(cb, builder.ProcessorFlowMatchedItems)
}

// RegisterProcessorFlowMissingKeyCallback sets callback for observable ProcessorFlowMissingKey metric.
func (builder *TelemetryBuilder) RegisterProcessorFlowMissingKeyCallback(cb metric.Int64Callback) error {
	return builder.register(cb, builder.ProcessorFlowMissingKey)
}

type observerInt64 struct {
	embedded.Int64Observer
	inst metric.Int64Observable
	obs  metric.Observer
}

func (oi *observerInt64) Observe(value int64, opts ...metric.ObserveOption) {
	oi.obs.ObserveInt64(oi.inst, value, opts...)
}

// Shutdown unregister all registered callbacks for async instruments.
func (builder *TelemetryBuilder) Shutdown() {
	builder.mu.Lock()
	defer builder.mu.Unlock()
	for _, reg := range builder.registrations {
		_ = reg.Unregister()
	}
	builder.registrations = nil
}

// NewTelemetryBuilder provides a struct with methods to update all internal telemetry
// for a component.
func NewTelemetryBuilder(settings component.TelemetrySettings, options ...TelemetryBuilderOption) (*TelemetryBuilder, error) {
	builder := TelemetryBuilder{}
	for _, op := range options {
		op.apply(&builder)
	}
	builder.meter = Meter(settings)
	var err, errs error
	builder.ProcessorFlowErrorNotes, err = builder.meter.Int64ObservableCounter(
		MetricErrorNotes,
		metric.WithDescription("Number of error items carrying a flow's key annotated as an error note [Alpha]"),
		metric.WithUnit("{item}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorFlowMatchedItems, err = builder.meter.Int64ObservableCounter(
		MetricMatchedItems,
		metric.WithDescription("Number of spans, span events and log records annotated as a flow checkpoint [Alpha]"),
		metric.WithUnit("{item}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorFlowMissingKey, err = builder.meter.Int64ObservableCounter(
		MetricMissingKey,
		metric.WithDescription("Number of items that matched a checkpoint but lacked its key attribute [Alpha]"),
		metric.WithUnit("{item}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorFlowReloadErrors, err = builder.meter.Int64Counter(
		MetricReloadErrors,
		metric.WithDescription("Number of failed reloads of the flow definitions [Alpha]"),
		metric.WithUnit("{reload}"),
	)
	errs = errors.Join(errs, err)
	return &builder, errs
}
