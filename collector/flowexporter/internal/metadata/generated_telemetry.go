package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"go.opentelemetry.io/collector/component"
)

// Meter returns the exporter's meter.
func Meter(settings component.TelemetrySettings) metric.Meter {
	return settings.MeterProvider.Meter(ScopeName)
}

// Tracer returns the exporter's tracer.
func Tracer(settings component.TelemetrySettings) trace.Tracer {
	return settings.TracerProvider.Tracer(ScopeName)
}

// The names of the exporter's own metrics.
const (
	MetricWrittenRows       = "otelcol_exporter_flow_written_rows"
	MetricRejectedRows      = "otelcol_exporter_flow_rejected_rows"
	MetricCutValues         = "otelcol_exporter_flow_cut_values"
	MetricDroppedAttributes = "otelcol_exporter_flow_dropped_attributes"
)

// TelemetryBuilder provides an interface for components to report telemetry
// as defined in metadata and user config.
type TelemetryBuilder struct {
	meter metric.Meter
	// ExporterFlowWrittenRows counts checkpoint rows written to the store, by flow and
	// checkpoint (an error note's checkpoint is "").
	ExporterFlowWrittenRows metric.Int64Counter
	// ExporterFlowRejectedRows counts checkpoint rows not written because an identity (tenant,
	// flow, key, alias value) or the time is missing, is not valid UTF-8 or is longer than
	// max_key_bytes, by reason. The other rows of the batch are written.
	ExporterFlowRejectedRows metric.Int64Counter
	// ExporterFlowCutValues counts values of written rows cut to their limit, or whose invalid
	// UTF-8 was replaced, by field.
	ExporterFlowCutValues metric.Int64Counter
	// ExporterFlowDroppedAttributes counts item attributes left out of written rows: past
	// max_attributes_bytes, or with a name longer than max_value_bytes.
	ExporterFlowDroppedAttributes metric.Int64Counter
}

// TelemetryBuilderOption applies changes to default builder.
type TelemetryBuilderOption interface {
	apply(*TelemetryBuilder)
}

type telemetryBuilderOptionFunc func(mb *TelemetryBuilder)

func (tbof telemetryBuilderOptionFunc) apply(mb *TelemetryBuilder) {
	tbof(mb)
}

// Shutdown unregister all registered callbacks for async instruments.
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
	builder.ExporterFlowWrittenRows, err = builder.meter.Int64Counter(
		MetricWrittenRows,
		metric.WithDescription("Number of checkpoint rows written to the store, by flow and checkpoint [Alpha]"),
		metric.WithUnit("{row}"),
	)
	errs = errors.Join(errs, err)
	builder.ExporterFlowRejectedRows, err = builder.meter.Int64Counter(
		MetricRejectedRows,
		metric.WithDescription("Number of checkpoint rows not written because an identity or the time is missing, not valid UTF-8 or too long [Alpha]"),
		metric.WithUnit("{row}"),
	)
	errs = errors.Join(errs, err)
	builder.ExporterFlowCutValues, err = builder.meter.Int64Counter(
		MetricCutValues,
		metric.WithDescription("Number of values of written checkpoint rows cut to their limit or with invalid UTF-8 replaced [Alpha]"),
		metric.WithUnit("{value}"),
	)
	errs = errors.Join(errs, err)
	builder.ExporterFlowDroppedAttributes, err = builder.meter.Int64Counter(
		MetricDroppedAttributes,
		metric.WithDescription("Number of item attributes left out of checkpoint rows by the row's limits [Alpha]"),
		metric.WithUnit("{attribute}"),
	)
	errs = errors.Join(errs, err)
	return &builder, errs
}
