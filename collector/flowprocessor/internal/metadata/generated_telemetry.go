package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
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

// TelemetryBuilder provides the instruments of the processor's own telemetry.
type TelemetryBuilder struct {
	meter metric.Meter
	// ProcessorFlowMatchedItems counts items annotated as a checkpoint, by flow and checkpoint.
	ProcessorFlowMatchedItems metric.Int64Counter
	// ProcessorFlowMissingKey counts items that matched a checkpoint but lacked its key
	// attribute, by flow and checkpoint; they are left unannotated.
	ProcessorFlowMissingKey metric.Int64Counter
	// ProcessorFlowErrorNotes counts error items annotated as an error note, by flow.
	ProcessorFlowErrorNotes metric.Int64Counter
	// ProcessorFlowReloadErrors counts reloads of the flow files that failed; the last good
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

// Shutdown releases the builder's registrations (it has no asynchronous instruments).
func (builder *TelemetryBuilder) Shutdown() {}

// NewTelemetryBuilder provides a struct with methods to update all internal telemetry
// for a component.
func NewTelemetryBuilder(settings component.TelemetrySettings, options ...TelemetryBuilderOption) (*TelemetryBuilder, error) {
	builder := TelemetryBuilder{}
	for _, op := range options {
		op.apply(&builder)
	}
	builder.meter = Meter(settings)
	var err, errs error
	builder.ProcessorFlowMatchedItems, err = builder.meter.Int64Counter(
		MetricMatchedItems,
		metric.WithDescription("Number of spans, span events and log records annotated as a flow checkpoint [Alpha]"),
		metric.WithUnit("{item}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorFlowMissingKey, err = builder.meter.Int64Counter(
		MetricMissingKey,
		metric.WithDescription("Number of items that matched a checkpoint but lacked its key attribute [Alpha]"),
		metric.WithUnit("{item}"),
	)
	errs = errors.Join(errs, err)
	builder.ProcessorFlowErrorNotes, err = builder.meter.Int64Counter(
		MetricErrorNotes,
		metric.WithDescription("Number of error items carrying a flow's key annotated as an error note [Alpha]"),
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
