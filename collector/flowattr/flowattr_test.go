package flowattr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ms   []Match
	}{
		{"one match, no aliases", []Match{
			{Flow: "order-fulfilment", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"},
		}},
		{"one match with aliases", []Match{
			{Flow: "order-fulfilment", Checkpoint: "paid", Key: "o-1", KeyAttr: "payment.order_id", Tenant: "default",
				Aliases: []Alias{{"payment.id", "p-7"}, {"card.token", "a=b:c"}}},
		}},
		{"error note", []Match{
			{Flow: "payment", Key: "p-7", KeyAttr: "payment.id", Tenant: "acme"},
		}},
		{"several matches, aliases on some", []Match{
			{Flow: "order-fulfilment", Checkpoint: "shipped", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"},
			{Flow: "payment", Checkpoint: "settled", Key: "p-7", KeyAttr: "payment.id", Tenant: "acme",
				Aliases: []Alias{{"ledger.entry", "l-9"}}},
			{Flow: "onboarding", Key: "u-3", KeyAttr: "user.id", Tenant: "acme",
				Aliases: []Alias{{"odd%=name", "=v="}, {"x", ""}}},
		}},
		{"a child's parent key and a parent's expected count, kept", []Match{
			{Flow: "shipment", Checkpoint: "packed", Key: "s-1", KeyAttr: "shipment.id", Tenant: "acme",
				Keep: []Alias{{"flow.parent_key", "o-1"}}},
			{Flow: "order", Checkpoint: "shipped", Key: "o-1", KeyAttr: "order.id", Tenant: "acme",
				Aliases: []Alias{{"x", "y"}}, Keep: []Alias{{"order.parcel_count", "3"}, {"a=b", "c"}}},
		}},
		{"one match, kept attributes", []Match{
			{Flow: "shipment", Checkpoint: "packed", Key: "s-1", KeyAttr: "shipment.id", Tenant: "acme",
				Keep: []Alias{{"flow.parent_key", "o=1"}}},
		}},
		{"several matches, no aliases", []Match{
			{Flow: "a", Checkpoint: "x", Key: "1", KeyAttr: "k", Tenant: "t"},
			{Flow: "b", Checkpoint: "y", Key: "2", KeyAttr: "k", Tenant: "t"},
		}},
		{"eleven matches: two-digit alias index", func() []Match {
			ms := make([]Match, 11)
			for i := range ms {
				ms[i] = Match{Flow: "f", Checkpoint: "c", Key: string(rune('a' + i)), KeyAttr: "k", Tenant: "t"}
			}
			ms[10].Aliases = []Alias{{"alias", "ten"}}
			return ms
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := pcommon.NewMap()
			attrs.PutStr("http.route", "/orders")
			Put(attrs, tt.ms)
			got := Get(attrs, nil)
			assert.Equal(t, tt.ms, got)
			v, ok := attrs.Get("http.route")
			require.True(t, ok, "Put must not touch other attributes")
			assert.Equal(t, "/orders", v.Str())
		})
	}
}

func TestOneMatchIsPlainStrings(t *testing.T) {
	attrs := pcommon.NewMap()
	Put(attrs, []Match{{Flow: "payment", Checkpoint: "paid", Key: "p-7", KeyAttr: "payment.id", Tenant: "acme",
		Aliases: []Alias{{"payment.id", "p-7"}}}})
	assert.Equal(t, map[string]any{
		AttrName:       "payment",
		AttrCheckpoint: "paid",
		AttrKey:        "p-7",
		AttrKeyAttr:    "payment.id",
		AttrTenant:     "acme",
		AttrAliases:    []any{"payment.id=p-7"},
	}, attrs.AsRaw())
}

func TestSeveralMatchesAreParallelSlices(t *testing.T) {
	attrs := pcommon.NewMap()
	Put(attrs, []Match{
		{Flow: "a", Checkpoint: "x", Key: "1", KeyAttr: "k1", Tenant: "t"},
		{Flow: "b", Checkpoint: "", Key: "2", KeyAttr: "k2", Tenant: "t", Aliases: []Alias{{"al", "v"}}},
	})
	assert.Equal(t, map[string]any{
		AttrName:       []any{"a", "b"},
		AttrCheckpoint: []any{"x", ""},
		AttrKey:        []any{"1", "2"},
		AttrKeyAttr:    []any{"k1", "k2"},
		AttrTenant:     []any{"t", "t"},
		AttrAliases:    []any{"1:al=v"},
	}, attrs.AsRaw())
}

func TestPutReplacesAndRemoves(t *testing.T) {
	attrs := pcommon.NewMap()
	Put(attrs, []Match{
		{Flow: "a", Checkpoint: "x", Key: "1", KeyAttr: "k", Tenant: "t", Aliases: []Alias{{"al", "v"}}},
		{Flow: "b", Checkpoint: "y", Key: "2", KeyAttr: "k", Tenant: "t"},
	})
	one := []Match{{Flow: "c", Checkpoint: "z", Key: "3", KeyAttr: "k", Tenant: "t"}}
	Put(attrs, one)
	assert.Equal(t, one, Get(attrs, nil))
	_, ok := attrs.Get(AttrAliases)
	assert.False(t, ok, "stale aliases must be removed")

	Put(attrs, nil)
	assert.Equal(t, 0, attrs.Len())
	assert.False(t, Has(attrs))
}

func TestGetAppendsAndSkipsUnannotated(t *testing.T) {
	dst := []Match{{Flow: "kept"}}
	assert.Equal(t, dst, Get(pcommon.NewMap(), dst))

	attrs := pcommon.NewMap()
	Put(attrs, []Match{{Flow: "a", Checkpoint: "x", Key: "1", KeyAttr: "k", Tenant: "t"}})
	got := Get(attrs, dst)
	require.Len(t, got, 2)
	assert.Equal(t, "kept", got[0].Flow)
	assert.Equal(t, "a", got[1].Flow)
}

func TestGetMalformed(t *testing.T) {
	attrs := pcommon.NewMap()
	require.NoError(t, attrs.FromRaw(map[string]any{
		AttrName:       []any{"a", "b"},
		AttrCheckpoint: []any{"x"}, // short
		AttrKey:        "not-a-slice",
		AttrAliases:    []any{"9:al=v", "no-index", "0:noequals", "0:ok=1", "x:al=v"},
	}))
	assert.Equal(t, []Match{
		{Flow: "a", Checkpoint: "x", Aliases: []Alias{{"ok", "1"}}},
		{Flow: "b"},
	}, Get(attrs, nil))
}

// A caller that keeps its slice between items reads annotations without allocating, and
// nothing of a previous item's matches leaks into the next.
func TestGetReusesSpareMatches(t *testing.T) {
	one, two := pcommon.NewMap(), pcommon.NewMap()
	Put(one, []Match{{Flow: "a", Checkpoint: "x", Key: "1", KeyAttr: "k", Tenant: "t", Aliases: []Alias{{"p", "7"}, {"q", "8"}}}})
	Put(two, []Match{{Flow: "b", Checkpoint: "y", Key: "2", KeyAttr: "k", Tenant: "t"}})
	var buf []Match
	buf = Get(one, buf[:0])
	buf = Get(two, buf[:0])
	assert.Equal(t, []Match{{Flow: "b", Checkpoint: "y", Key: "2", KeyAttr: "k", Tenant: "t", Aliases: []Alias{}}}, buf)
	allocs := testing.AllocsPerRun(100, func() { buf = Get(one, buf[:0]) })
	assert.Zero(t, allocs)
	assert.Equal(t, []Alias{{"p", "7"}, {"q", "8"}}, buf[0].Aliases)
}
