package ingestbench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowprocessor"
	"github.com/flowwatch/flowwatch/model"
)

// exampleFlows is the folder of the example flows, which the benchmark's collector loads.
var exampleFlows = filepath.Join("..", "..", "examples", "flows")

func loadExampleFlows(tb testing.TB) (dir string, set *model.Set) {
	tb.Helper()
	dir, err := filepath.Abs(exampleFlows)
	require.NoError(tb, err)
	set, err = model.Load(dir)
	require.NoError(tb, err, "load the example flows")
	return dir, set
}

// outcome is what the flow pipeline makes of one batch: the spans it passes on to the
// exporter, and the checkpoint rows (one per match with a tenant and a flow) they become.
type outcome struct {
	spans, rows int
	// flows counts the rows per flow name.
	flows map[string]int
}

// runFlowProcessor runs a copy of td through the real flow processor as the benchmark's
// collector configures it (drop_unmatched) and reports what it passed on.
func runFlowProcessor(tb testing.TB, flowsDir string, td ptrace.Traces) outcome {
	tb.Helper()
	f := flowprocessor.NewFactory()
	cfg := f.CreateDefaultConfig().(*flowprocessor.Config)
	cfg.Flows = []string{flowsDir}
	cfg.DropUnmatched = true
	cfg.ReloadInterval = 0
	sink := new(consumertest.TracesSink)
	ctx := context.Background()
	p, err := f.CreateTraces(ctx, processortest.NewNopSettings(f.Type()), cfg, sink)
	require.NoError(tb, err)
	require.NoError(tb, p.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(tb, p.Shutdown(ctx)) }()
	cp := ptrace.NewTraces()
	td.CopyTo(cp)
	require.NoError(tb, p.ConsumeTraces(ctx, cp))

	out := outcome{flows: map[string]int{}}
	var ms []flowattr.Match
	for _, got := range sink.AllTraces() {
		out.spans += got.SpanCount()
		rss := got.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					if flowattr.Has(s.Attributes()) {
						ms = flowattr.Get(s.Attributes(), ms[:0])
						out.addRows(ms)
					}
					for e := 0; e < s.Events().Len(); e++ {
						if a := s.Events().At(e).Attributes(); flowattr.Has(a) {
							ms = flowattr.Get(a, ms[:0])
							out.addRows(ms)
						}
					}
				}
			}
		}
	}
	return out
}

func (o *outcome) addRows(ms []flowattr.Match) {
	for _, m := range ms {
		if m.Tenant != "" && m.Flow != "" {
			o.rows++
			o.flows[m.Flow]++
		}
	}
}

// TestPayloadMatchesFlows checks the benchmark's load against the example flows with the real
// flow processor: about MatchRate of the spans are kept, every example flow gets rows, and a
// renumbered batch keeps the same matches.
func TestPayloadMatchesFlows(t *testing.T) {
	dir, set := loadExampleFlows(t)
	p := NewPayload(set, time.Now())
	require.Equal(t, SpansPerBatch, p.Traces.SpanCount())

	first := runFlowProcessor(t, dir, p.Traces)
	rate := float64(first.spans) / SpansPerBatch
	t.Logf("kept %d of %d spans, %d rows, rows per flow %v", first.spans, SpansPerBatch, first.rows, first.flows)
	require.InDelta(t, MatchRate, rate, 0.02, "kept %d of %d spans", first.spans, SpansPerBatch)
	require.GreaterOrEqual(t, first.rows, first.spans, "every kept span is at least one row")
	for _, name := range set.Names() {
		require.Positive(t, first.flows[name], "no rows for flow %s (rows per flow: %v)", name, first.flows)
	}

	p.Renumber(41)
	again := runFlowProcessor(t, dir, p.Traces)
	require.Equal(t, first, again, "a renumbered batch must match the same items")
}

// TestRenumberMakesNewData checks that two batches share no trace id and no business key.
func TestRenumberMakesNewData(t *testing.T) {
	_, set := loadExampleFlows(t)
	p := NewPayload(set, time.Now())
	collect := func() (ids, keys map[string]bool) {
		ids, keys = map[string]bool{}, map[string]bool{}
		rss := p.Traces.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					ids[s.TraceID().String()+s.SpanID().String()] = true
					if v, ok := s.Attributes().Get("order.id"); ok {
						keys[v.Str()] = true
					}
				}
			}
		}
		return ids, keys
	}
	p.Renumber(1)
	ids1, keys1 := collect()
	require.Len(t, ids1, SpansPerBatch, "span ids are unique within a batch")
	require.NotEmpty(t, keys1)
	p.Renumber(2)
	ids2, keys2 := collect()
	for id := range ids2 {
		require.False(t, ids1[id], "span %s in two batches", id)
	}
	for k := range keys2 {
		require.False(t, keys1[k], "key %s in two batches", k)
	}
}
