package metadata

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	embeddedmetric "go.opentelemetry.io/otel/metric/embedded"
	noopmetric "go.opentelemetry.io/otel/metric/noop"

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
