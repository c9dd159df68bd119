package flowexporter

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// chDB allows one data folder per process: the embedded tests share it, one database each.
var embeddedDir string

func TestMain(m *testing.M) {
	os.Exit(testsvc.RunInChDBFolder(m, "flowwatch-exporter-chdb-", &embeddedDir))
}

var base = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// annotatedSpan adds a span of service svc annotated with ms to td.
func annotatedSpan(td ptrace.Traces, svc, name string, end time.Time, trace byte, span uint64, ms ...flowattr.Match) ptrace.Span {
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName(name)
	sp.SetTraceID(pcommon.TraceID{trace, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	var sid pcommon.SpanID
	for i := range sid {
		sid[i] = byte(span >> (8 * i))
	}
	sp.SetSpanID(sid)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-50 * time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	sp.Status().SetCode(ptrace.StatusCodeOk)
	sp.Attributes().PutStr("http.method", "POST")
	sp.Attributes().PutInt("http.response.status_code", 201)
	flowattr.Put(sp.Attributes(), ms)
	return sp
}

func openForTest(t *testing.T, cfg *Config) storage.Store {
	t.Helper()
	s, err := openStore(context.Background(), cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestExportToEmbeddedStore(t *testing.T) {
	ctx := context.Background()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Path = embeddedDir
	cfg.Database = "exporter_embedded"
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]() // synchronous: rows are in the store when Consume returns
	cfg.Attributes = []string{"http.method", "http.response.status_code", "absent.attribute"}
	require.NoError(t, cfg.Validate())

	set := exportertest.NewNopSettings(metadata.Type)
	te, err := NewFactory().CreateTraces(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, te.Start(ctx, componenttest.NewNopHost()))
	le, err := NewFactory().CreateLogs(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, le.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, te.Shutdown(ctx))
		require.NoError(t, le.Shutdown(ctx))
	})

	td := ptrace.NewTraces()
	annotatedSpan(td, "orders", "POST /orders", base, 1, 1,
		flowattr.Match{Flow: "order", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"})
	paid := annotatedSpan(td, "payments", "authorize", base.Add(time.Minute), 1, 2)
	ev := paid.Events().AppendEmpty()
	ev.SetName("payment.authorized")
	ev.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(50 * time.Second)))
	ev.Attributes().PutStr("payment.id", "p-1")
	flowattr.Put(ev.Attributes(), []flowattr.Match{{Flow: "order", Checkpoint: "paid", Key: "o-1", KeyAttr: "order.id", Tenant: "acme",
		Aliases: []flowattr.Alias{{Attr: "payment.id", Value: "p-1"}}}})
	exc := paid.Events().AppendEmpty()
	exc.SetName("exception")
	exc.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(55 * time.Second)))
	exc.Attributes().PutStr("exception.message", "card declined")
	flowattr.Put(exc.Attributes(), []flowattr.Match{{Flow: "order", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"}}) // an error note
	// Not annotated: written nowhere.
	annotatedSpan(td, "noise", "GET /health", base, 9, 9)
	// One span, two flows.
	annotatedSpan(td, "orders", "POST /orders", base, 2, 3,
		flowattr.Match{Flow: "order", Checkpoint: "placed", Key: "o-2", KeyAttr: "order.id", Tenant: "acme"},
		flowattr.Match{Flow: "audit", Checkpoint: "seen", Key: "o-2", KeyAttr: "order.id", Tenant: "acme"})
	require.NoError(t, te.ConsumeTraces(ctx, td))
	require.NoError(t, te.ConsumeTraces(ctx, td)) // a duplicate delivery changes nothing

	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "ledger")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(3 * time.Minute)))
	lr.SetEventName("payment.settled")
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.Body().SetStr("settled")
	flowattr.Put(lr.Attributes(), []flowattr.Match{{Flow: "order", Checkpoint: "settled", Key: "p-1", KeyAttr: "payment.id", Tenant: "acme"}})
	bad := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	bad.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(4 * time.Minute)))
	bad.SetSeverityNumber(plog.SeverityNumberError)
	bad.Body().SetStr(strings.Repeat("x", 5000))
	flowattr.Put(bad.Attributes(), []flowattr.Match{{Flow: "order", Key: "o-2", KeyAttr: "order.id", Tenant: "acme"}})
	require.NoError(t, le.ConsumeLogs(ctx, ld))

	s := openForTest(t, cfg)
	o1, err := s.InstanceEvents(ctx, "acme", "order", "o-1")
	require.NoError(t, err)
	require.Len(t, o1, 4, "placed, paid (span event), error note, settled (log, through the alias)")
	assert.Equal(t, "placed", o1[0].Checkpoint)
	assert.True(t, o1[0].Time.Equal(base), "a span's checkpoint time is its end time")
	assert.Equal(t, "orders", o1[0].Service)
	assert.Equal(t, "POST /orders", o1[0].Name)
	assert.Equal(t, "ok", o1[0].Status)
	assert.Equal(t, "01010203040506070809", o1[0].TraceID[:20])
	assert.Equal(t, "0100000000000000", o1[0].SpanID)
	assert.Equal(t, map[string]string{"http.method": "POST", "http.response.status_code": "201"}, o1[0].Attributes, "the attributes rows keep, as strings")
	assert.Equal(t, storage.EventID("acme", "order", "placed", "o-1", o1[0].TraceID, o1[0].SpanID, base.UnixNano(), "POST /orders"), o1[0].EventID)

	assert.Equal(t, "paid", o1[1].Checkpoint)
	assert.True(t, o1[1].Time.Equal(base.Add(50*time.Second)), "a span event's time is its own")
	assert.Equal(t, "payment.authorized", o1[1].Name)
	assert.Equal(t, "", o1[2].Checkpoint)
	assert.Equal(t, "error", o1[2].Status)
	assert.Equal(t, "card declined", o1[2].Message)
	assert.Equal(t, "settled", o1[3].Checkpoint)
	assert.Equal(t, "ledger", o1[3].Service)
	assert.Equal(t, "payment.id", o1[3].KeyAttr)
	assert.True(t, o1[3].Time.Equal(base.Add(3*time.Minute)))

	res, err := s.ResolveAliases(ctx, "acme", "order", "payment.id", []string{"p-1"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"p-1": "o-1"}, res)

	o2, err := s.InstanceEvents(ctx, "acme", "order", "o-2")
	require.NoError(t, err)
	require.Len(t, o2, 2)
	assert.Equal(t, "error", o2[1].Status)
	assert.Len(t, o2[1].Message, defaultMaxMessageBytes, "a log body is truncated to max_message_bytes")
	audit, err := s.InstanceEvents(ctx, "acme", "audit", "o-2")
	require.NoError(t, err)
	require.Len(t, audit, 1)

	all, err := s.EventsSince(ctx, time.Time{}, 100)
	require.NoError(t, err)
	assert.Len(t, all, 7, "each item once despite the duplicate delivery; unannotated spans are not stored")
}

// BenchmarkEncodeRow: one annotated span into one checkpoint row (with its event id and its
// alias), as the exporter makes rows before its queue: keeping no attribute (the default),
// and keeping the span's four attributes (as every row did before).
func BenchmarkEncodeRow(b *testing.B) {
	for _, keep := range [][]string{nil, {"http.method", "http.response.status_code", "order.id", "payment.id"}} {
		b.Run(fmt.Sprintf("kept=%d", len(keep)), func(b *testing.B) {
			td := ptrace.NewTraces()
			sp := annotatedSpan(td, "payments", "POST /payments", base, 1, 2,
				flowattr.Match{Flow: "order", Checkpoint: "paid", Key: "order-00012345", KeyAttr: "order.id", Tenant: "acme",
					Aliases: []flowattr.Alias{{Attr: "payment.id", Value: "p-777"}}})
			sp.Attributes().PutStr("order.id", "order-00012345")
			sp.Attributes().PutStr("payment.id", "p-777")
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			cfg.Attributes = keep
			var rows storage.EventBatch
			c := newConverter(limitsOf(cfg), &rows)
			ctx := itemContext{service: "payments", scope: pcommon.NewMap(), resource: td.ResourceSpans().At(0).Resource().Attributes()}
			b.ReportAllocs()
			for b.Loop() {
				// The rows (and the arena their strings live in) are dropped before the next
				// span: what stays is the memory a long request amortizes.
				rows.Reset()
				c.arena = c.arena[:0]
				c.span(&ctx, sp)
			}
			if rows.Len() != 1 || rows.AliasCount() != 1 || len(rows.Attributes(0)) != len(keep) {
				b.Fatalf("encoded %d rows, %d aliases, attributes %v", rows.Len(), rows.AliasCount(), rows.Attributes(0))
			}
		})
	}
}

func TestIDsHex(t *testing.T) {
	c := newConverter(limits{}, &storage.EventBatch{})
	tid := pcommon.TraceID{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}
	sid := pcommon.SpanID{0xcd, 1, 2, 3, 4, 5, 6, 0xef}
	split := func(ids string, traceEmpty bool) (string, string) {
		it := item{ids: ids, traceEmpty: traceEmpty}
		return it.traceSpan()
	}
	tr, sp := split(c.ids(tid, sid), false)
	assert.Equal(t, "ab0102030405060708090a0b0c0d0eff", tr)
	assert.Equal(t, "cd010203040506ef", sp)
	tr, sp = split(c.ids(pcommon.TraceID{}, sid), true)
	assert.Equal(t, "", tr)
	assert.Equal(t, "cd010203040506ef", sp)
	tr, sp = split(c.ids(tid, pcommon.SpanID{}), false)
	assert.Equal(t, "ab0102030405060708090a0b0c0d0eff", tr)
	assert.Equal(t, "", sp)
	tr, sp = split(c.ids(pcommon.TraceID{}, pcommon.SpanID{}), true)
	assert.Equal(t, "", tr+sp)
	assert.Equal(t, "ab0102030405060708090a0b0c0d0eff", tr2(c, tid, sid), "strings made earlier stay intact as the arena grows")
}

// tr2 makes many ids, then checks the first one made is still what it was.
func tr2(c *converter, tid pcommon.TraceID, sid pcommon.SpanID) string {
	first := c.ids(tid, sid)
	for range 10_000 {
		c.ids(pcommon.TraceID{9, 9, 9}, pcommon.SpanID{7, 7})
	}
	return first[:32]
}

// The exporter with create_schema is the schema's owner: it gives existing tables its
// retention (another process created them with another one); without create_schema it leaves
// the store alone.
func TestExporterOwnsRetentionWithCreateSchema(t *testing.T) {
	ctx := context.Background()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Path = embeddedDir
	cfg.Database = "exporter_retention"
	cfg.Retention = 7 * day
	s := openForTest(t, cfg)
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.SetRetention(ctx, 3))

	start := func(cfg *Config) {
		te, err := NewFactory().CreateTraces(ctx, exportertest.NewNopSettings(metadata.Type), cfg)
		require.NoError(t, err)
		require.NoError(t, te.Start(ctx, componenttest.NewNopHost()))
		require.NoError(t, te.Shutdown(ctx))
	}
	retention := func() map[string]int {
		r, err := s.Retention(ctx)
		require.NoError(t, err)
		return r
	}
	noSchema := *cfg
	noSchema.CreateSchema = false
	start(&noSchema)
	assert.Equal(t, storagetest.EveryTable(3), retention(), "an exporter without create_schema changed the retention")
	start(cfg)
	assert.Equal(t, storagetest.EveryTable(7), retention(), "the exporter's retention")
}

// TLS through the collector's configtls: a server whose TLS port requires client certificates
// (mutual TLS) takes the exporter's rows with its certificate, and refuses it without; TLS is
// on unless tls.insecure, as for every collector client.
func TestExporterTLS(t *testing.T) {
	ctx := context.Background()
	ch := testsvc.MTLSClickHouseT(t)
	certFile, keyFile, err := ch.PKI.Issue("flow-exporter", false)
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = strings.Replace(ch.TLSDSN(), "clickhouse://default@", "clickhouse://", 1)
	cfg.Database = "exporter_tls"
	cfg.DialTimeout, cfg.ReadTimeout = 2*time.Second, 5*time.Second
	cfg.TLS.CAFile = ch.PKI.CAFile
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	require.NoError(t, cfg.Validate())

	s := openForTest(t, cfg)
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.WriteEvents(ctx, []storage.CheckpointEvent{{Tenant: "acme", Flow: "order", Checkpoint: "placed", Key: "o-tls", Time: base}}))
	got, err := s.InstanceEvents(ctx, "acme", "order", "o-tls")
	require.NoError(t, err)
	assert.Len(t, got, 1, "a row written over mutual TLS")

	for name, change := range map[string]func(c *Config){
		"no client certificate":              func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = "", "" },
		"the server's authority not trusted": func(c *Config) { c.TLS.CAFile = "" },
		"plaintext to the TLS port":          func(c *Config) { c.TLS.Insecure, c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = true, "", "", "" },
		"TLS to the plaintext port": func(c *Config) {
			c.Endpoint = strings.Replace(ch.DSN(), "clickhouse://default@", "clickhouse://", 1)
		},
	} {
		bad := *cfg
		change(&bad)
		_, err := openStore(ctx, &bad, nil)
		assert.Error(t, err, "%s: the store opened", name)
	}
}

// The rows written are counted by flow and checkpoint (otelcol_exporter_flow_written_rows), once
// they are in the store.
func TestWrittenRowsCountedByFlowAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Path = embeddedDir
	cfg.Database = "exporter_written"
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(ctx)) })
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	te, err := NewFactory().CreateTraces(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, te.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, te.Shutdown(ctx)) })

	td := ptrace.NewTraces()
	for i := range 3 {
		annotatedSpan(td, "orders", "POST /orders", base.Add(time.Duration(i)*time.Second), byte(i), uint64(i)+1,
			flowattr.Match{Flow: "order", Checkpoint: "placed", Key: fmt.Sprintf("o-%d", i), KeyAttr: "order.id", Tenant: "acme"})
	}
	annotatedSpan(td, "payments", "authorize", base, 7, 7,
		flowattr.Match{Flow: "payment", Checkpoint: "authorized", Key: "p-1", KeyAttr: "payment.id", Tenant: "acme"},
		flowattr.Match{Flow: "order", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"}) // an error note of o-1
	require.NoError(t, te.ConsumeTraces(ctx, td))

	const name = "otelcol_exporter_flow_written_rows"
	assert.Equal(t, int64(5), counted(t, tel, name, "", ""))
	assert.Equal(t, int64(4), counted(t, tel, name, "flow", "order"))
	assert.Equal(t, int64(3), counted(t, tel, name, "checkpoint", "placed"))
	assert.Equal(t, int64(1), counted(t, tel, name, "checkpoint", "authorized"))
	assert.Equal(t, int64(1), counted(t, tel, name, "checkpoint", ""), "the error note")
}
