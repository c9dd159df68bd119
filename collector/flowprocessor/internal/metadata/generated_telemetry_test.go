package metadata

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	embeddedmetric "go.opentelemetry.io/otel/metric/embedded"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
)

type mockMeter struct {
	noopmetric.Meter
	name string
}

type mockMeterProvider struct {
	embeddedmetric.MeterProvider
}

func (m mockMeterProvider) Meter(name string, _ ...metric.MeterOption) metric.Meter {
	return mockMeter{name: name}
}

func TestMeterScope(t *testing.T) {
	meter := Meter(component.TelemetrySettings{MeterProvider: mockMeterProvider{}})
	m, ok := meter.(mockMeter)
	require.True(t, ok)
	require.Equal(t, "github.com/flowwatch/flowwatch/collector/flowprocessor", m.name)
}

func TestNewTelemetryBuilder(t *testing.T) {
	applied := false
	tb, err := NewTelemetryBuilder(componenttest.NewNopTelemetrySettings(), telemetryBuilderOptionFunc(func(*TelemetryBuilder) {
		applied = true
	}))
	require.NoError(t, err)
	require.True(t, applied)
	require.NotNil(t, tb.ProcessorFlowMatchedItems)
	require.NotNil(t, tb.ProcessorFlowMissingKey)
	require.NotNil(t, tb.ProcessorFlowErrorNotes)
	require.NotNil(t, tb.ProcessorFlowReloadErrors)
}

func TestObservableCallbacks(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	tb, err := NewTelemetryBuilder(tel.NewTelemetrySettings())
	require.NoError(t, err)
	for i, register := range []func(metric.Int64Callback) error{
		tb.RegisterProcessorFlowMatchedItemsCallback,
		tb.RegisterProcessorFlowMissingKeyCallback,
		tb.RegisterProcessorFlowErrorNotesCallback,
	} {
		v := int64(i + 1)
		require.NoError(t, register(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(v)
			return nil
		}))
	}
	for i, name := range []string{MetricMatchedItems, MetricMissingKey, MetricErrorNotes} {
		m, err := tel.GetMetric(name)
		require.NoError(t, err)
		sum := m.Data.(metricdata.Sum[int64])
		require.True(t, sum.IsMonotonic)
		require.Len(t, sum.DataPoints, 1)
		require.Equal(t, int64(i+1), sum.DataPoints[0].Value)
	}
	tb.Shutdown()
	m, err := tel.GetMetric(MetricMatchedItems)
	if err == nil {
		require.Empty(t, m.Data.(metricdata.Sum[int64]).DataPoints, "no callback after Shutdown")
	}
}
