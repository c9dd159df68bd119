package flowprocessor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
)

// --- payload builders -------------------------------------------------------------------

type attrs map[string]any

func putAttrs(t testing.TB, m pcommon.Map, a attrs) {
	t.Helper()
	require.NoError(t, m.FromRaw(a))
}

type spanSpec struct {
	name   string
	kind   ptrace.SpanKind
	status ptrace.StatusCode
	attrs  attrs
	events []eventSpec
}

type eventSpec struct {
	name  string
	attrs attrs
}

type scopeSpec struct {
	attrs attrs
	spans []spanSpec
}

type resourceSpec struct {
	attrs  attrs
	scopes []scopeSpec
}

var baseTime = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func buildTraces(t testing.TB, resources ...resourceSpec) ptrace.Traces {
	td := ptrace.NewTraces()
	n := 0
	for _, r := range resources {
		rs := td.ResourceSpans().AppendEmpty()
		putAttrs(t, rs.Resource().Attributes(), r.attrs)
		for _, sc := range r.scopes {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("test")
			putAttrs(t, ss.Scope().Attributes(), sc.attrs)
			for _, s := range sc.spans {
				n++
				span := ss.Spans().AppendEmpty()
				span.SetName(s.name)
				span.SetKind(s.kind)
				span.Status().SetCode(s.status)
				span.SetTraceID(pcommon.TraceID{1, byte(n)})
				span.SetSpanID(pcommon.SpanID{2, byte(n)})
				span.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime))
				span.SetEndTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(time.Duration(n) * time.Millisecond)))
				putAttrs(t, span.Attributes(), s.attrs)
				for _, e := range s.events {
					ev := span.Events().AppendEmpty()
					ev.SetName(e.name)
					ev.SetTimestamp(pcommon.NewTimestampFromTime(baseTime))
					putAttrs(t, ev.Attributes(), e.attrs)
				}
			}
		}
	}
	return td
}

type logSpec struct {
	eventName string
	severity  plog.SeverityNumber
	body      string
	attrs     attrs
}

func buildLogs(t testing.TB, resource attrs, scope attrs, records ...logSpec) plog.Logs {
	ld := plog.NewLogs()
	appendLogs(t, ld, resource, scope, records...)
	return ld
}

func appendLogs(t testing.TB, ld plog.Logs, resource attrs, scope attrs, records ...logSpec) {
	rl := ld.ResourceLogs().AppendEmpty()
	putAttrs(t, rl.Resource().Attributes(), resource)
	sl := rl.ScopeLogs().AppendEmpty()
	putAttrs(t, sl.Scope().Attributes(), scope)
	for _, r := range records {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(r.eventName)
		lr.SetSeverityNumber(r.severity)
		lr.Body().SetStr(r.body)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(baseTime))
		putAttrs(t, lr.Attributes(), r.attrs)
	}
}

// --- harness ------------------------------------------------------------------------------

type harness struct {
	tel    *componenttest.Telemetry
	traces *consumertest.TracesSink
	logs   *consumertest.LogsSink
	tp     processor.Traces
	lp     processor.Logs
}

func newHarness(t *testing.T, cfg *Config) *harness {
	t.Helper()
	h := &harness{tel: componenttest.NewTelemetry(), traces: new(consumertest.TracesSink), logs: new(consumertest.LogsSink)}
	t.Cleanup(func() { require.NoError(t, h.tel.Shutdown(context.Background())) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	ctx := context.Background()
	var err error
	h.tp, err = NewFactory().CreateTraces(ctx, set, cfg, h.traces)
	require.NoError(t, err)
	h.lp, err = NewFactory().CreateLogs(ctx, set, cfg, h.logs)
	require.NoError(t, err)
	require.NoError(t, h.tp.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, h.lp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, h.tp.Shutdown(context.Background()))
		require.NoError(t, h.lp.Shutdown(context.Background()))
	})
	return h
}

func testConfig(drop bool) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Flows = []string{filepath.Join("testdata", "flows")}
	cfg.DropUnmatched = drop
	return cfg
}

// counter returns the value of an int64 sum for the given attributes (0 when absent).
func (h *harness) counter(t *testing.T, name string, kv ...attribute.KeyValue) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is not an int64 sum", name)
	want := attribute.NewSet(kv...)
	for _, dp := range sum.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// annotations maps "resource-service/span-name" (and ".../span-name#event-name") to the matches
// found on the items that came out.
func traceAnnotations(tds []ptrace.Traces) map[string][]flowattr.Match {
	out := map[string][]flowattr.Match{}
	for _, td := range tds {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			svc, _ := rs.Resource().Attributes().Get(serviceNameAttr)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				spans := rs.ScopeSpans().At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					id := svc.Str() + "/" + s.Name()
					if ms := flowattr.Get(s.Attributes(), nil); ms != nil {
						out[id] = append(out[id], ms...)
					}
					for e := 0; e < s.Events().Len(); e++ {
						ev := s.Events().At(e)
						if ms := flowattr.Get(ev.Attributes(), nil); ms != nil {
							out[id+"#"+ev.Name()] = append(out[id+"#"+ev.Name()], ms...)
						}
					}
				}
			}
		}
	}
	return out
}

// --- the payload of most tests: one order's journey, plus noise -------------------------

func orderJourney(t testing.TB) ptrace.Traces {
	return buildTraces(t,
		resourceSpec{attrs: attrs{"service.name": "orders", "tenant.id": "acme"}, scopes: []scopeSpec{
			{attrs: attrs{"lib": "net/http"}, spans: []spanSpec{
				{name: "POST /orders", kind: ptrace.SpanKindServer, attrs: attrs{"order.id": "o-1", "http.response.status_code": 201}},
				{name: "POST /orders", kind: ptrace.SpanKindServer, attrs: attrs{"order.id": "o-2", "http.response.status_code": 500}},
				{name: "POST /orders", kind: ptrace.SpanKindClient, attrs: attrs{"order.id": "o-3", "http.response.status_code": 201}},
				{name: "GET /health", kind: ptrace.SpanKindServer, attrs: attrs{"http.response.status_code": 200}},
			}},
			{attrs: attrs{"lib": "db"}, spans: []spanSpec{
				{name: "SELECT orders", kind: ptrace.SpanKindClient, attrs: attrs{"db.system": "postgresql"}},
			}},
		}},
		resourceSpec{attrs: attrs{"service.name": "payments"}, scopes: []scopeSpec{
			{spans: []spanSpec{
				{name: "authorize", kind: ptrace.SpanKindInternal, attrs: attrs{"payment.order_id": "o-1"}, events: []eventSpec{
					{name: "card.checked"},
					{name: "payment.authorized", attrs: attrs{"payment.id": "p-7", "amount": 42.5}},
				}},
				{name: "capture card payment", kind: ptrace.SpanKindClient, attrs: attrs{"payment.id": "p-7"}},
			}},
		}},
		resourceSpec{attrs: attrs{"service.name": "inventory", "tenant.id": "acme"}, scopes: []scopeSpec{
			{attrs: attrs{"order.id": "o-scope"}, spans: []spanSpec{
				{name: "reserve", status: ptrace.StatusCodeOk, attrs: attrs{"order.id": "o-1"}},
				{name: "reserve", status: ptrace.StatusCodeOk},
				{name: "reserve", status: ptrace.StatusCodeError, attrs: attrs{"order.id": "o-4"}, events: []eventSpec{
					{name: "exception", attrs: attrs{"exception.message": "out of stock"}},
				}},
			}},
		}},
		resourceSpec{attrs: attrs{"service.name": "shipping", "order.id": "o-res"}, scopes: []scopeSpec{
			{spans: []spanSpec{
				{name: "ship parcel", kind: ptrace.SpanKindProducer},
				{name: "shipment", kind: ptrace.SpanKindProducer},
			}},
		}},
		resourceSpec{attrs: attrs{"service.name": "fraud"}, scopes: []scopeSpec{
			{spans: []spanSpec{
				{name: "score order", attrs: attrs{"order.id": "o-1", "fraud.verdict": "clean"}},
				{name: "score order", attrs: attrs{"order.id": "o-2"}},
			}},
		}},
		resourceSpec{attrs: attrs{"service.name": "web"}, scopes: []scopeSpec{
			{spans: []spanSpec{
				{name: "signup form", attrs: attrs{"user.id": "u-9"}},
				{name: "signup form"}, // no key
			}},
		}},
	)
}

func TestTracesAnnotated(t *testing.T) {
	h := newHarness(t, testConfig(false))
	td := orderJourney(t)
	spans := td.SpanCount()
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), td))
	require.Len(t, h.traces.AllTraces(), 1)
	assert.Equal(t, spans, h.traces.SpanCount(), "without drop_unmatched every span passes")

	got := traceAnnotations(h.traces.AllTraces())
	want := map[string][]flowattr.Match{
		// both versions declare `placed` identically: one match, not two.
		"orders/POST /orders": {{Flow: "order-fulfilment", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"}},
		// one event, checkpoints of two flows; the key comes from the parent span.
		"payments/authorize#payment.authorized": {
			{Flow: "order-fulfilment", Checkpoint: "paid", Key: "o-1", KeyAttr: "payment.order_id", Tenant: "default",
				Aliases: []flowattr.Alias{{Attr: "payment.id", Value: "p-7"}}},
			{Flow: "payment", Checkpoint: "authorized", Key: "p-7", KeyAttr: "payment.id", Tenant: "default"},
		},
		"payments/capture card payment": {{Flow: "payment", Checkpoint: "captured", Key: "p-7", KeyAttr: "payment.id", Tenant: "default"}},
		// the span's own attribute wins over the scope's, the scope's over the resource's.
		"inventory/reserve": {
			{Flow: "order-fulfilment", Checkpoint: "stock_reserved", Key: "o-1", KeyAttr: "order.id", Tenant: "acme"},
			{Flow: "order-fulfilment", Checkpoint: "stock_reserved", Key: "o-scope", KeyAttr: "order.id", Tenant: "acme"},
			// the error reserve matches no checkpoint (status: ok) but carries the key: an error note.
			{Flow: "order-fulfilment", Checkpoint: "", Key: "o-4", KeyAttr: "order.id", Tenant: "acme"},
		},
		// the recorded exception is an error item too.
		"inventory/reserve#exception": {{Flow: "order-fulfilment", Checkpoint: "", Key: "o-4", KeyAttr: "order.id", Tenant: "acme"}},
		"shipping/ship parcel":        {{Flow: "order-fulfilment", Checkpoint: "shipped", Key: "o-res", KeyAttr: "order.id", Tenant: "default"}},
		"fraud/score order":           {{Flow: "order-fulfilment", Checkpoint: "fraud_checked", Key: "o-1", KeyAttr: "order.id", Tenant: "default"}},
		"web/signup form":             {{Flow: "onboarding", Checkpoint: "signed_up", Key: "u-9", KeyAttr: "user.id", Tenant: "default"}},
	}
	assert.Equal(t, want, got)

	placed := []attribute.KeyValue{attribute.String("flow", "order-fulfilment"), attribute.String("checkpoint", "placed")}
	assert.Equal(t, int64(1), h.counter(t, metadata.MetricMatchedItems, placed...))
	assert.Equal(t, int64(2), h.counter(t, metadata.MetricMatchedItems,
		attribute.String("flow", "order-fulfilment"), attribute.String("checkpoint", "stock_reserved")))
	assert.Equal(t, int64(1), h.counter(t, metadata.MetricMatchedItems,
		attribute.String("flow", "payment"), attribute.String("checkpoint", "authorized")))
	assert.Equal(t, int64(2), h.counter(t, metadata.MetricErrorNotes, attribute.String("flow", "order-fulfilment")))
	// signup form without user.id: matched, no key, counted, left alone.
	assert.Equal(t, int64(1), h.counter(t, metadata.MetricMissingKey,
		attribute.String("flow", "onboarding"), attribute.String("checkpoint", "signed_up")))
	assert.Equal(t, int64(0), h.counter(t, metadata.MetricMissingKey, placed...))
}

func TestMissingKeyNeverAnnotates(t *testing.T) {
	h := newHarness(t, testConfig(false))
	td := buildTraces(t, resourceSpec{attrs: attrs{"service.name": "shipping"}, scopes: []scopeSpec{{spans: []spanSpec{
		{name: "ship parcel", attrs: attrs{"order.id": ""}}, // empty is missing
		{name: "ship box"},
	}}}})
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), td))
	assert.Empty(t, traceAnnotations(h.traces.AllTraces()))
	assert.Equal(t, int64(2), h.counter(t, metadata.MetricMissingKey,
		attribute.String("flow", "order-fulfilment"), attribute.String("checkpoint", "shipped")))
}

func TestTracesDropUnmatched(t *testing.T) {
	h := newHarness(t, testConfig(true))
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), orderJourney(t)))
	require.Len(t, h.traces.AllTraces(), 1)
	td := h.traces.AllTraces()[0]

	kept := map[string][]string{} // service -> span names, in order
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		svc, _ := rs.Resource().Attributes().Get(serviceNameAttr)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			spans := rs.ScopeSpans().At(j).Spans()
			require.Positive(t, spans.Len(), "empty scopes are dropped")
			for k := 0; k < spans.Len(); k++ {
				kept[svc.Str()] = append(kept[svc.Str()], spans.At(k).Name())
			}
		}
	}
	assert.Equal(t, map[string][]string{
		"orders":    {"POST /orders"},
		"payments":  {"authorize", "capture card payment"}, // authorize is kept for its annotated event
		"inventory": {"reserve", "reserve", "reserve"},
		"shipping":  {"ship parcel"},
		"fraud":     {"score order"},
		"web":       {"signup form"},
	}, kept)
	// the orders resource lost its db scope, which had nothing matched.
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		if svc, _ := rs.Resource().Attributes().Get(serviceNameAttr); svc.Str() == "orders" {
			require.Equal(t, 1, rs.ScopeSpans().Len())
			lib, _ := rs.ScopeSpans().At(0).Scope().Attributes().Get("lib")
			assert.Equal(t, "net/http", lib.Str())
		}
	}
}

func TestTracesDropUnmatchedEverything(t *testing.T) {
	h := newHarness(t, testConfig(true))
	td := buildTraces(t, resourceSpec{attrs: attrs{"service.name": "orders"}, scopes: []scopeSpec{{spans: []spanSpec{
		{name: "GET /health"},
	}}}})
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), td))
	assert.Empty(t, h.traces.AllTraces(), "an empty batch is not passed on")
}

func logAnnotations(lds []plog.Logs) map[string][]flowattr.Match {
	out := map[string][]flowattr.Match{}
	for _, ld := range lds {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					if ms := flowattr.Get(lr.Attributes(), nil); ms != nil {
						out[lr.Body().Str()] = append(out[lr.Body().Str()], ms...)
					}
				}
			}
		}
	}
	return out
}

func journeyLogs(t testing.TB) plog.Logs {
	ld := buildLogs(t, attrs{"service.name": "mailer", "tenant.id": "acme"}, attrs{"user.id": "u-scope"},
		logSpec{eventName: "email.verified", severity: plog.SeverityNumberInfo, body: "verified", attrs: attrs{"user.id": "u-9"}},
		logSpec{eventName: "email.verified", severity: plog.SeverityNumberInfo, body: "verified-scope-key"},
		logSpec{severity: plog.SeverityNumberInfo, body: "noise", attrs: attrs{"user.id": "u-9"}},
		logSpec{severity: plog.SeverityNumberError, body: "bounce", attrs: attrs{"user.id": "u-9"}},
	)
	appendLogs(t, ld, attrs{"service.name": "accounts"}, nil,
		// event name in the event.name attribute; plan present and trial false (a bool).
		logSpec{severity: plog.SeverityNumberInfo, body: "activated", attrs: attrs{"event.name": "account.activated", "user.id": "u-9", "plan": "pro", "trial": false}},
		logSpec{eventName: "account.activated", severity: plog.SeverityNumberInfo, body: "trial", attrs: attrs{"user.id": "u-8", "plan": "pro", "trial": true}},
		logSpec{eventName: "account.activated", severity: plog.SeverityNumberWarn, body: "no plan", attrs: attrs{"user.id": "u-7", "trial": false}},
		logSpec{severity: plog.SeverityNumberFatal, body: "crash", attrs: attrs{"payment.id": "p-7", "order.id": "o-1"}},
	)
	return ld
}

func TestLogsAnnotated(t *testing.T) {
	h := newHarness(t, testConfig(false))
	require.NoError(t, h.lp.ConsumeLogs(context.Background(), journeyLogs(t)))
	assert.Equal(t, 8, h.logs.LogRecordCount())
	assert.Equal(t, map[string][]flowattr.Match{
		"verified":           {{Flow: "onboarding", Checkpoint: "email_verified", Key: "u-9", KeyAttr: "user.id", Tenant: "acme"}},
		"verified-scope-key": {{Flow: "onboarding", Checkpoint: "email_verified", Key: "u-scope", KeyAttr: "user.id", Tenant: "acme"}},
		"bounce":             {{Flow: "onboarding", Key: "u-9", KeyAttr: "user.id", Tenant: "acme"}},
		"activated":          {{Flow: "onboarding", Checkpoint: "activated", Key: "u-9", KeyAttr: "user.id", Tenant: "default"}},
		// one error log carrying the keys of two flows: a note for each.
		"crash": {
			{Flow: "order-fulfilment", Key: "o-1", KeyAttr: "order.id", Tenant: "default"},
			{Flow: "payment", Key: "p-7", KeyAttr: "payment.id", Tenant: "default"},
		},
	}, logAnnotations(h.logs.AllLogs()))
}

func TestLogsDropUnmatched(t *testing.T) {
	h := newHarness(t, testConfig(true))
	require.NoError(t, h.lp.ConsumeLogs(context.Background(), journeyLogs(t)))
	require.Len(t, h.logs.AllLogs(), 1)
	ld := h.logs.AllLogs()[0]
	assert.Equal(t, 5, ld.LogRecordCount())
	assert.Equal(t, 2, ld.ResourceLogs().Len())
	assert.Len(t, logAnnotations(h.logs.AllLogs()), 5)
}

func TestStartFailsOnInvalidFlowFile(t *testing.T) {
	cfg := testConfig(false)
	cfg.Flows = []string{filepath.Join("testdata", "broken")}
	p, err := NewFactory().CreateTraces(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = p.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	path := filepath.Join("testdata", "broken", "orders.yaml")
	assert.Contains(t, err.Error(), path+`:11:13: 'after' names unknown checkpoint "placced"`)
	assert.Contains(t, err.Error(), path+`:12:13: 'within' must be greater than zero`)
	require.NoError(t, p.Shutdown(context.Background()))
}

func TestStartFailsOnMissingFlowFolder(t *testing.T) {
	cfg := testConfig(false)
	cfg.Flows = []string{filepath.Join(t.TempDir(), "nope")}
	p, err := NewFactory().CreateLogs(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.ErrorContains(t, p.Start(context.Background(), componenttest.NewNopHost()), "nope")
}

// --- reload --------------------------------------------------------------------------------

const reloadFlowV1 = `apiVersion: flowwatch/v1
kind: Flow
name: signup
version: 1
key: user.id
checkpoints:
  - name: started
    start: true
    match: { service: web, span: "signup" }
`

const reloadFlowV2 = reloadFlowV1 + `  - name: confirmed
    after: [started]
    within: 1h
    match: { service: web, span: "confirm" }
`

const reloadFlowBroken = reloadFlowV2 + `  - name: confirmed
    after: [nowhere]
`

func signupTraces(t testing.TB) ptrace.Traces {
	return buildTraces(t, resourceSpec{attrs: attrs{"service.name": "web"}, scopes: []scopeSpec{{spans: []spanSpec{
		{name: "signup", attrs: attrs{"user.id": "u-1"}},
		{name: "confirm", attrs: attrs{"user.id": "u-1"}},
	}}}})
}

func matchedCheckpoints(td ptrace.Traces) []string {
	var out []string
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := 0; i < spans.Len(); i++ {
		for _, m := range flowattr.Get(spans.At(i).Attributes(), nil) {
			out = append(out, m.Checkpoint)
		}
	}
	return out
}

type reloadHarness struct {
	p    *flowProcessor
	tel  *componenttest.Telemetry
	logs *observer.ObservedLogs
	file string
	tick chan time.Time
	done chan error
}

func newReloadHarness(t *testing.T) *reloadHarness {
	t.Helper()
	dir := t.TempDir()
	rh := &reloadHarness{tel: componenttest.NewTelemetry(), file: filepath.Join(dir, "signup.yaml"), tick: make(chan time.Time), done: make(chan error)}
	require.NoError(t, os.WriteFile(rh.file, []byte(reloadFlowV1), 0o600))
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = rh.tel.NewTelemetrySettings()
	core, logs := observer.New(zapcore.DebugLevel)
	set.Logger = zap.New(core)
	rh.logs = logs
	cfg := createDefaultConfig().(*Config)
	cfg.Flows = []string{dir}
	cfg.ReloadInterval = time.Minute
	p, err := newFlowProcessor(set, cfg)
	require.NoError(t, err)
	p.ticker = func(d time.Duration) (<-chan time.Time, func()) {
		assert.Equal(t, time.Minute, d)
		return rh.tick, func() {}
	}
	p.reloaded = func(err error) { rh.done <- err }
	rh.p = p
	require.NoError(t, p.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, p.shutdown(context.Background()))
		require.NoError(t, rh.tel.Shutdown(context.Background()))
	})
	return rh
}

func (rh *reloadHarness) counter(t *testing.T, name string, kv ...attribute.KeyValue) int64 {
	return (&harness{tel: rh.tel}).counter(t, name, kv...)
}

func (rh *reloadHarness) process(t *testing.T) []string {
	td, err := rh.p.processTraces(context.Background(), signupTraces(t))
	require.NoError(t, err)
	return matchedCheckpoints(td)
}

// tickAndWait sends a tick and waits for the loop's reload to finish.
func (rh *reloadHarness) tickAndWait() error {
	rh.tick <- baseTime
	return <-rh.done
}

func TestReloadKeepsLastGoodSet(t *testing.T) {
	rh := newReloadHarness(t)
	assert.Equal(t, []string{"started"}, rh.process(t))

	require.NoError(t, os.WriteFile(rh.file, []byte(reloadFlowV2), 0o600))
	require.NoError(t, rh.tickAndWait())
	assert.Equal(t, []string{"started", "confirmed"}, rh.process(t))
	started := []attribute.KeyValue{attribute.String("flow", "signup"), attribute.String("checkpoint", "started")}
	assert.Equal(t, int64(2), rh.counter(t, metadata.MetricMatchedItems, started...), "counts stay cumulative across a reload")

	require.NoError(t, os.WriteFile(rh.file, []byte(reloadFlowBroken), 0o600))
	require.Error(t, rh.tickAndWait())
	require.Error(t, rh.tickAndWait())
	assert.Equal(t, []string{"started", "confirmed"}, rh.process(t), "a broken file keeps the last good set")

	m, err := rh.tel.GetMetric(metadata.MetricReloadErrors)
	require.NoError(t, err)
	sum := m.Data.(metricdata.Sum[int64])
	require.Len(t, sum.DataPoints, 1)
	assert.Equal(t, int64(2), sum.DataPoints[0].Value, "both ticks on the broken file failed")

	failures := rh.logs.FilterMessageSnippet("Reloading flow definitions failed").All()
	require.Len(t, failures, 2)
	problems := failures[0].ContextMap()["problems"]
	require.IsType(t, []any{}, problems)
	assert.Contains(t, problems, rh.file+`:14:5: checkpoint "confirmed": missing required field 'match'`)
	assert.Contains(t, problems, rh.file+`:14:11: duplicate checkpoint name "confirmed"`)

	require.NoError(t, os.WriteFile(rh.file, []byte(reloadFlowV1), 0o600))
	require.NoError(t, rh.p.reload(context.Background()))
	assert.Equal(t, []string{"started"}, rh.process(t), "a fixed file is picked up again")
}

func TestReloadDirect(t *testing.T) {
	rh := newReloadHarness(t)
	require.NoError(t, os.Remove(rh.file))
	require.NoError(t, os.WriteFile(rh.file+".yml", []byte("kind: [\n"), 0o600))
	err := rh.p.reload(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), rh.file+".yml:")
	assert.Equal(t, []string{"started"}, rh.process(t))
}

// TestConcurrentProcessingDuringReload runs batches from several goroutines while the
// definitions are swapped; run with -race.
func TestConcurrentProcessingDuringReload(t *testing.T) {
	rh := newReloadHarness(t)
	template := signupTraces(t)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				batch := ptrace.NewTraces()
				template.CopyTo(batch)
				td, err := rh.p.processTraces(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				if got := matchedCheckpoints(td); len(got) == 0 || got[0] != "started" {
					errs <- fmt.Errorf("matched %v", got)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		flow := reloadFlowV1
		if i%2 == 0 {
			flow = reloadFlowV2
		}
		require.NoError(t, os.WriteFile(rh.file, []byte(flow), 0o600))
		require.NoError(t, rh.tickAndWait())
	}
	close(done)
	for g := 0; g < 4; g++ {
		require.NoError(t, <-errs)
	}
}

// TestEventCheckpointMatchesItsSpan: `kind` and `status` on an event checkpoint are those of
// the span that holds the event; a log record, held by no span, never matches such a
// checkpoint, and one without them matches events whatever their span.
func TestEventCheckpointMatchesItsSpan(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pay.yaml"), []byte(`apiVersion: flowwatch/v1
kind: Flow
name: pay
version: 1
key: order.id
checkpoints:
  - { name: authorized, start: true, match: { service: payments, event: payment.authorized, kind: server, status: ok } }
  - { name: noted, after: [authorized], match: { service: payments, event: payment.noted } }
`), 0o600))
	cfg := createDefaultConfig().(*Config)
	cfg.Flows = []string{dir}
	h := newHarness(t, cfg)
	event := func(name string) []eventSpec { return []eventSpec{{name: name, attrs: attrs{"order.id": "o-1"}}} }
	td := buildTraces(t, resourceSpec{attrs: attrs{"service.name": "payments"}, scopes: []scopeSpec{{spans: []spanSpec{
		{name: "server ok", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeOk, events: event("payment.authorized")},
		{name: "client ok", kind: ptrace.SpanKindClient, status: ptrace.StatusCodeOk, events: event("payment.authorized")},
		{name: "server unset", kind: ptrace.SpanKindServer, events: event("payment.authorized")},
		{name: "client error", kind: ptrace.SpanKindClient, status: ptrace.StatusCodeError, events: event("payment.noted")},
	}}}})
	require.NoError(t, h.tp.ConsumeTraces(context.Background(), td))
	authorized := []flowattr.Match{{Flow: "pay", Checkpoint: "authorized", Key: "o-1", KeyAttr: "order.id", Tenant: "default"}}
	noted := []flowattr.Match{{Flow: "pay", Checkpoint: "noted", Key: "o-1", KeyAttr: "order.id", Tenant: "default"}}
	assert.Equal(t, map[string][]flowattr.Match{
		"payments/server ok#payment.authorized": authorized,
		"payments/client error#payment.noted":   noted,
	}, traceAnnotations(h.traces.AllTraces()))

	ld := buildLogs(t, attrs{"service.name": "payments"}, nil,
		logSpec{eventName: "payment.authorized", severity: plog.SeverityNumberInfo, body: "authorized", attrs: attrs{"order.id": "o-1"}},
		logSpec{eventName: "payment.noted", severity: plog.SeverityNumberInfo, body: "noted", attrs: attrs{"order.id": "o-1"}})
	require.NoError(t, h.lp.ConsumeLogs(context.Background(), ld))
	assert.Equal(t, map[string][]flowattr.Match{"noted": noted}, logAnnotations(h.logs.AllLogs()))
}
