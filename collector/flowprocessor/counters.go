package flowprocessor

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
)

// counters hold the processor's per-flow and per-checkpoint counts. The hot path adds to a
// cell with one atomic operation; the observable instruments read every cell when metrics
// are collected. Cells outlive reloads, so the counts stay cumulative.
type counters struct {
	mu    sync.Mutex
	cells map[counterKey]*counterCell
	order []*counterCell
}

// counterKey names a cell: a checkpoint of a flow, or a flow alone (checkpoint "").
type counterKey struct{ flow, checkpoint string }

type counterCell struct {
	matched    atomic.Int64
	missingKey atomic.Int64
	errorNotes atomic.Int64
	attrs      metric.MeasurementOption
}

func newCounters() *counters { return &counters{cells: map[counterKey]*counterCell{}} }

// cell returns the cell of a flow's checkpoint (or of the flow when checkpoint is ""),
// creating it on first use.
func (cs *counters) cell(flow, checkpoint string) *counterCell {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	k := counterKey{flow, checkpoint}
	if c := cs.cells[k]; c != nil {
		return c
	}
	kvs := []attribute.KeyValue{attribute.String("flow", flow)}
	if checkpoint != "" {
		kvs = append(kvs, attribute.String("checkpoint", checkpoint))
	}
	c := &counterCell{attrs: metric.WithAttributeSet(attribute.NewSet(kvs...))}
	cs.cells[k] = c
	cs.order = append(cs.order, c)
	return c
}

func (cs *counters) observe(o metric.Int64Observer, value func(*counterCell) int64) {
	cs.mu.Lock()
	cells := cs.order
	cs.mu.Unlock()
	for _, c := range cells {
		if v := value(c); v > 0 {
			o.Observe(v, c.attrs)
		}
	}
}

// register connects the cells to the observable instruments.
func (cs *counters) register(tel *metadata.TelemetryBuilder) error {
	return firstErr(
		tel.RegisterProcessorFlowMatchedItemsCallback(func(_ context.Context, o metric.Int64Observer) error {
			cs.observe(o, func(c *counterCell) int64 { return c.matched.Load() })
			return nil
		}),
		tel.RegisterProcessorFlowMissingKeyCallback(func(_ context.Context, o metric.Int64Observer) error {
			cs.observe(o, func(c *counterCell) int64 { return c.missingKey.Load() })
			return nil
		}),
		tel.RegisterProcessorFlowErrorNotesCallback(func(_ context.Context, o metric.Int64Observer) error {
			cs.observe(o, func(c *counterCell) int64 { return c.errorNotes.Load() })
			return nil
		}),
	)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
