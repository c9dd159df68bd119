package flowprocessor

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/model"
)

// A child's items carry its parent's key (the child flow's parent.key attribute), and a
// parent's items the count of children it expects: the processor annotates both for the row
// to keep (flowattr.AttrKeep), under the names the store and the detector read them by. A
// children checkpoint is no rule: it has nothing to match.
func TestSubFlowAttributesKept(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Flows = []string{filepath.Join("testdata", "family")}
	h := newHarness(t, cfg)

	td := buildTraces(t,
		resourceSpec{attrs: attrs{"service.name": "warehouse"}, scopes: []scopeSpec{{spans: []spanSpec{
			{name: "pack", attrs: attrs{"shipment.id": "s-1", "order.id": "o-1"}},
			{name: "pack", attrs: attrs{"shipment.id": "s-2"}}, // no parent key on this one
		}}}},
		resourceSpec{attrs: attrs{"service.name": "orders"}, scopes: []scopeSpec{{spans: []spanSpec{
			{name: "POST /orders", attrs: attrs{"order.id": "o-1", "order.parcel_count": int64(2)}},
			{name: "unrelated", attrs: attrs{"order.id": "o-1"}},
		}}}},
	)
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), td))
	var got []flowattr.Match
	out := h.traces.AllTraces()[0]
	for i := 0; i < out.ResourceSpans().Len(); i++ {
		spans := out.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
		for k := 0; k < spans.Len(); k++ {
			got = flowattr.Get(spans.At(k).Attributes(), got)
		}
	}
	want := []flowattr.Match{
		{Flow: "shipment", Checkpoint: "packed", Key: "s-1", KeyAttr: "shipment.id", Tenant: model.DefaultTenant,
			Keep: []flowattr.Alias{{Attr: model.AttrParentKey, Value: "o-1"}}},
		{Flow: "shipment", Checkpoint: "packed", Key: "s-2", KeyAttr: "shipment.id", Tenant: model.DefaultTenant},
		{Flow: "order", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: model.DefaultTenant,
			Keep: []flowattr.Alias{{Attr: "order.parcel_count", Value: "2"}}},
	}
	for i := range got {
		if len(got[i].Aliases) == 0 {
			got[i].Aliases = nil
		}
		if len(got[i].Keep) == 0 {
			got[i].Keep = nil
		}
	}
	assert.Equal(t, want, got)
}
