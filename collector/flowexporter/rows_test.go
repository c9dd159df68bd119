package flowexporter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	pdatareq "go.opentelemetry.io/collector/pdata/xpdata/request"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
	"github.com/flowwatch/flowwatch/storage"
)

// nested puts on m an attribute k holding maps nested depth levels deep.
func nested(m pcommon.Map, k string, depth int) {
	inner := m.PutEmptyMap(k)
	for i := 1; i < depth; i++ {
		inner = inner.PutEmptyMap("level")
	}
	inner.PutStr("leaf", "x")
}

// counted sums a counter's points whose attribute attr has value v ("" for all points).
func counted(t *testing.T, tel *componenttest.Telemetry, name, attr, v string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0 // never recorded
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if got, _ := dp.Attributes.Value(attribute.Key(attr)); attr == "" || got.AsString() == v {
			n += dp.Value
		}
	}
	return n
}

// Whatever an annotated item carries, its row keeps what a checkpoint needs, flat and
// bounded; an item whose identity cannot be stored is rejected alone, counted and logged,
// and the rest of the push is written.
func TestRowsAreBoundedAndBadRowsRejectedAlone(t *testing.T) {
	ctx := context.Background()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Path = embeddedDir
	cfg.Database = "exporter_bounds"
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.MaxValueBytes = 16
	cfg.MaxAttributesBytes = 64
	cfg.MaxKeyBytes = 24
	cfg.Attributes = []string{"service.name", "deep", "http.method"}
	for i := range 10 {
		cfg.Attributes = append(cfg.Attributes, "extra."+string(rune('a'+i)))
	}
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(ctx)) })
	set := exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel.NewTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}
	te, err := NewFactory().CreateTraces(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, te.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, te.Shutdown(ctx)) })

	match := func(key string) flowattr.Match {
		return flowattr.Match{Flow: "order", Checkpoint: "placed", Key: key, KeyAttr: "order.id", Tenant: "acme"}
	}
	td := ptrace.NewTraces()
	for i, key := range []string{"ok-1", "ok-2"} {
		annotatedSpan(td, "orders", "POST /orders", base, byte(i), uint64(i)+1, match(key))
	}
	deep := annotatedSpan(td, "orders", strings.Repeat("n", 40), base, 3, 3, match("deep"))
	deep.Attributes().Remove("http.method")
	nested(deep.Attributes(), "deep", 40)
	for i := range 10 {
		deep.Attributes().PutStr("extra."+string(rune('a'+i)), strings.Repeat("v", 12))
	}
	deep.Status().SetCode(ptrace.StatusCodeError)
	deep.Status().SetMessage(strings.Repeat("é", 600)) // 1,200 bytes: cut on a rune boundary
	annotatedSpan(td, "orders", "POST /orders", base, 4, 4, match("u-\xff\xfe"))
	annotatedSpan(td, "orders", "POST /orders", base, 5, 5, match("u-\xfe\xff"))
	annotatedSpan(td, "orders", "POST /orders", base, 6, 6, match(strings.Repeat("k", 25)))
	noTenant := match("no-tenant")
	noTenant.Tenant = ""
	annotatedSpan(td, "orders", "POST /orders", base, 7, 7, noTenant)
	badAlias := match("bad-alias")
	badAlias.Aliases = []flowattr.Alias{{Attr: "payment.id", Value: "p-\xff"}}
	annotatedSpan(td, "orders", "POST /orders", base, 8, 8, badAlias)
	require.NoError(t, te.ConsumeTraces(ctx, td))

	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	flowattr.Put(lr.Attributes(), []flowattr.Match{match("no-time")}) // neither time nor observed time
	le, err := NewFactory().CreateLogs(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, le.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, le.ConsumeLogs(ctx, ld))
	require.NoError(t, le.Shutdown(ctx))

	s := openForTest(t, cfg)
	all, err := s.EventsSince(ctx, time.Time{}, 100)
	require.NoError(t, err)
	var keys []string
	for _, e := range all {
		keys = append(keys, e.Key)
	}
	assert.ElementsMatch(t, []string{"ok-1", "ok-2", "deep"}, keys, "the good rows of the push are written, the bad ones alone are not")

	d, err := s.InstanceEvents(ctx, "acme", "order", "deep")
	require.NoError(t, err)
	require.Len(t, d, 1)
	row := d[0]
	assert.Equal(t, strings.Repeat("n", 16), row.Name, "the name is cut to max_value_bytes")
	assert.Len(t, row.Message, 1024, "the message is cut to max_message_bytes on a rune boundary")
	assert.Equal(t, map[string]string{
		"service.name": "orders",           // from the resource: looked up as the processor matches
		"deep":         `{"level":{"level`, // a nested value is kept as its JSON, cut to max_value_bytes
		"extra.a":      "vvvvvvvvvvvv",
	}, row.Attributes, "the attributes rows keep, in order, until max_attributes_bytes (64) is spent")
	other, err := s.InstanceEvents(ctx, "acme", "order", "ok-1")
	require.NoError(t, err)
	require.Len(t, other, 1)
	assert.Equal(t, map[string]string{"service.name": "orders", "http.method": "POST"}, other[0].Attributes, "only the attributes rows keep")

	assert.Equal(t, int64(3), counted(t, tel, metadata.MetricRejectedRows, "reason", "invalid_utf8"), "the two keys and the alias that are not UTF-8")
	assert.Equal(t, int64(1), counted(t, tel, metadata.MetricRejectedRows, "reason", "too_long"))
	assert.Equal(t, int64(2), counted(t, tel, metadata.MetricRejectedRows, "reason", "incomplete"), "no tenant, no time")
	assert.Equal(t, int64(1), counted(t, tel, metadata.MetricCutValues, "field", "name"))
	assert.Equal(t, int64(1), counted(t, tel, metadata.MetricCutValues, "field", "message"))
	assert.Positive(t, counted(t, tel, metadata.MetricCutValues, "field", "attribute"))
	assert.Equal(t, int64(9), counted(t, tel, metadata.MetricDroppedAttributes, "", ""), "extra.b to extra.j, past the row's budget")
}

// A push without an annotated item queues nothing.
func TestUnannotatedPushQueuesNothing(t *testing.T) {
	e, err := newFlowExporter(exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()},
		NewFactory().CreateDefaultConfig().(*Config))
	require.NoError(t, err)
	td := ptrace.NewTraces()
	annotatedSpan(td, "noise", "GET /health", base, 1, 1)
	assert.Zero(t, e.convertTraces(td).ItemsCount())
}

// requestOf makes a request of n rows, keys first..first+n-1, each with an attribute and
// every third with an alias.
func requestOf(first, n int) *rowsRequest {
	r := &rowsRequest{}
	for i := first; i < first+n; i++ {
		r.rows.Add(storage.EventRow{ID: uint64(i), Tenant: "t", Flow: "f", Checkpoint: "c", Key: "k" + strings.Repeat("x", i%7), Time: int64(i + 1)})
		r.rows.AddAttribute("i", strings.Repeat("v", i%5))
		if i%3 == 0 {
			r.rows.AddAlias("a", "v")
		}
	}
	return r
}

func ids(reqs ...*rowsRequest) []uint64 {
	var out []uint64
	for _, r := range reqs {
		for i := 0; i < r.rows.Len(); i++ {
			out = append(out, r.rows.Row(i).ID)
		}
	}
	return out
}

func TestMergeSplit(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		sizer exporterhelper.RequestSizerType
		max   int
	}{
		{"items", exporterhelper.RequestSizerTypeItems, 7},
		{"bytes", exporterhelper.RequestSizerTypeBytes, 400},
		{"no limit", exporterhelper.RequestSizerTypeItems, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := requestOf(0, 10), requestOf(10, 15)
			want := append(ids(a), ids(b)...)
			out, err := a.MergeSplit(ctx, tc.max, tc.sizer, b)
			require.NoError(t, err)
			var got []*rowsRequest
			for i, o := range out {
				r := o.(*rowsRequest)
				got = append(got, r)
				if tc.max > 0 {
					size := r.ItemsCount()
					if tc.sizer == exporterhelper.RequestSizerTypeBytes {
						size = r.BytesSize()
					}
					assert.LessOrEqual(t, size, tc.max, "request %d", i)
				}
				for j := 0; j < r.rows.Len(); j++ {
					assert.Equal(t, r.rows.Row(j).ID%3 == 0, len(r.rows.Aliases(j)) == 1, "row %d keeps its alias", r.rows.Row(j).ID)
				}
			}
			assert.Equal(t, want, ids(got...), "every row once, in order")
			assert.Same(t, a, got[len(got)-1], "the receiver comes last, with what is left")
		})
	}
}

func TestRowsEncodingRoundTrip(t *testing.T) {
	r := requestOf(3, 20)
	data, err := rowsEncoding{}.Marshal(context.Background(), r)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(data), r.BytesSize())
	_, back, err := rowsEncoding{}.Unmarshal(data)
	require.NoError(t, err)
	assert.Equal(t, ids(r), ids(back.(*rowsRequest)))
	_, _, err = rowsEncoding{}.Unmarshal(data[:len(data)-1])
	require.ErrorIs(t, err, storage.ErrCorruptBatch)
}

// What an earlier flow exporter queued on disk (the telemetry itself, in exporterhelper's
// encoding, or plain OTLP protobuf before that) is read back into rows after an upgrade.
func TestRowsEncodingReadsEarlierQueue(t *testing.T) {
	e, err := newFlowExporter(exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()},
		NewFactory().CreateDefaultConfig().(*Config))
	require.NoError(t, err)
	td := ptrace.NewTraces()
	annotatedSpan(td, "orders", "POST /orders", base, 1, 1,
		flowattr.Match{Flow: "order", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"})
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(base))
	flowattr.Put(lr.Attributes(), []flowattr.Match{{Flow: "order", Checkpoint: "settled", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"}})

	wrapped, err := pdatareq.MarshalTraces(context.Background(), td)
	require.NoError(t, err)
	plain, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	logs, err := pdatareq.MarshalLogs(context.Background(), ld)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		enc  rowsEncoding
		data []byte
		want string
	}{
		"traces":         {rowsEncoding{legacy: legacyTraces(e.convertTraces)}, wrapped, "placed"},
		"traces (proto)": {rowsEncoding{legacy: legacyTraces(e.convertTraces)}, plain, "placed"},
		"logs":           {rowsEncoding{legacy: legacyLogs(e.convertLogs)}, logs, "settled"},
	} {
		_, req, err := tc.enc.Unmarshal(tc.data)
		require.NoError(t, err, name)
		rows := &req.(*rowsRequest).rows
		require.Equal(t, 1, rows.Len(), name)
		assert.Equal(t, tc.want, rows.Row(0).Checkpoint, name)
		assert.Equal(t, "o-1", rows.Row(0).Key, name)
	}
	_, _, err = rowsEncoding{legacy: legacyTraces(e.convertTraces)}.Unmarshal([]byte("neither"))
	require.ErrorIs(t, err, storage.ErrCorruptBatch)
}
