package flowprocessor

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/flowwatch/flowwatch/model"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"ship *", "ship parcel", true},
		{"ship *", "ship ", true},
		{"ship *", "ship", false},
		{"ship *", "reship parcel", false},
		{"*", "", true},
		{"*", "anything", true},
		{"capture*payment", "capture card payment", true},
		{"capture*payment", "capturepayment", true},
		{"capture*payment", "capture payment later", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"*.authorized", "payment.authorized", true},
		{"GET /*/items/*", "GET /v1/items/42", true},
		{"GET /*/items/*", "GET /v1/orders/42", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, compileGlob(tt.pattern).match(tt.name), "%q ~ %q", tt.pattern, tt.name)
	}
}

func TestNameTable(t *testing.T) {
	for _, n := range []int{1, smallTable, smallTable + 1, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var tbl nameTable
			rules := map[string]*rule{}
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("event.%d", i)
				rules[name] = &rule{checkpoint: name}
				tbl.add(name, rules[name])
			}
			extra := &rule{checkpoint: "second"}
			tbl.add("event.0", extra)
			assert.Equal(t, n, tbl.len())
			assert.Equal(t, []*rule{rules["event.0"], extra}, tbl.get("event.0"))
			for name, r := range rules {
				if name != "event.0" {
					assert.Equal(t, []*rule{r}, tbl.get(name))
				}
			}
			for _, miss := range []string{"", "event.", "Event.1", "event.1000", "xvent.1", string(make([]byte, 300))} {
				assert.Nil(t, tbl.get(miss), "%q", miss)
			}
		})
	}
}

func TestAttrCondHolds(t *testing.T) {
	v := func(raw any) pcommon.Value {
		val := pcommon.NewValueEmpty()
		require.NoError(t, val.FromRaw(raw))
		return val
	}
	tests := []struct {
		cond model.AttrMatch
		val  any
		want bool
	}{
		{model.AttrMatch{Key: "k", Value: "201"}, int64(201), true},
		{model.AttrMatch{Key: "k", Value: "201"}, "201", true},
		{model.AttrMatch{Key: "k", Value: "201"}, int64(200), false},
		{model.AttrMatch{Key: "k", Value: "0201"}, int64(201), false}, // string forms differ
		{model.AttrMatch{Key: "k", Value: "false"}, false, true},
		{model.AttrMatch{Key: "k", Value: "false"}, true, false},
		{model.AttrMatch{Key: "k", Value: "true"}, "true", true},
		{model.AttrMatch{Key: "k", Value: "1.5"}, 1.5, true},
		{model.AttrMatch{Key: "k", Value: "pro"}, "Pro", false},
		{model.AttrMatch{Key: "k", Value: "*", Present: true}, "", true},
	}
	for _, tt := range tests {
		c := compileAttr(tt.cond)
		assert.Equal(t, tt.want, c.holds(v(tt.val)), "%q vs %#v", tt.cond.Value, tt.val)
	}
}

func TestIndexShape(t *testing.T) {
	set, err := model.Load(filepath.Join("testdata", "flows"))
	require.NoError(t, err)
	idx := newIndex(set, nil)

	// order-fulfilment v1 has 7 checkpoints, v2 adds fraud_checked and declares `shipped`
	// as a terminal (same match: shared); payment 3; onboarding 3.
	assert.Equal(t, 7+1+3+3, idx.rules)
	require.NotNil(t, idx.anyService, "onboarding has checkpoints without a service")
	assert.Len(t, idx.anyService.spanOther, 1)
	assert.Equal(t, 1, idx.anyService.eventByName.len())

	payments := idx.byService["payments"]
	require.NotNil(t, payments)
	assert.Len(t, payments.eventByName.get("payment.authorized"), 2, "a checkpoint of two flows")
	assert.Len(t, payments.spanOther, 1, "capture*payment is a pattern")

	var names []string
	for _, f := range idx.flows {
		names = append(names, f.name)
	}
	assert.Equal(t, []string{"onboarding", "order-fulfilment", "payment"}, names)
	assert.Equal(t, []string{"order.id", "payment.order_id", "payment.id"}, idx.flows[1].keyAttrs, "own keys before aliases")
}
