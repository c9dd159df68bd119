package flowprocessor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, component.MustNewType("flow"), f.Type())
	assert.Equal(t, component.StabilityLevelAlpha, f.TracesStability())
	assert.Equal(t, component.StabilityLevelAlpha, f.LogsStability())
	assert.Equal(t, component.StabilityLevelUndefined, f.MetricsStability(), "metrics are not a flow signal")
	assert.NoError(t, componenttest.CheckConfigStruct(f.CreateDefaultConfig()))
}

func TestLifecycle(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Flows = []string{filepath.Join("testdata", "flows")}
	cfg.ReloadInterval = time.Hour // on; never ticks during the test
	set := processortest.NewNopSettings(metadata.Type)
	ctx := context.Background()

	tp, err := NewFactory().CreateTraces(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.True(t, tp.Capabilities().MutatesData)
	require.NoError(t, tp.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, tp.ConsumeTraces(ctx, ptrace.NewTraces()))
	require.NoError(t, tp.Shutdown(ctx))

	lp, err := NewFactory().CreateLogs(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, lp.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, lp.ConsumeLogs(ctx, plog.NewLogs()))
	require.NoError(t, lp.Shutdown(ctx))

	// Shutdown without Start is allowed.
	tp, err = NewFactory().CreateTraces(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, tp.Shutdown(ctx))
}
