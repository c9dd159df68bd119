package demo_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/flowwatch/flowwatch/internal/demo"
	"github.com/flowwatch/flowwatch/model"
)

// collector is a real OTLP receiver (gRPC and HTTP) in front of in-memory sinks.
type collector struct {
	grpc, http string
	traces     *consumertest.TracesSink
	logs       *consumertest.LogsSink
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	addr := ln.Addr().String()
	require.NoError(tb, ln.Close())
	return addr
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{grpc: freeAddr(t), http: freeAddr(t),
		traces: new(consumertest.TracesSink), logs: new(consumertest.LogsSink)}
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = c.grpc
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = c.http
	set := receivertest.NewNopSettings(f.Type())
	ctx := context.Background()
	tr, err := f.CreateTraces(ctx, set, cfg, c.traces)
	require.NoError(t, err)
	lr, err := f.CreateLogs(ctx, set, cfg, c.logs)
	require.NoError(t, err)
	require.NoError(t, tr.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, lr.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		assert.NoError(t, tr.Shutdown(context.Background()))
		assert.NoError(t, lr.Shutdown(context.Background()))
	})
	return c
}

// item is one span, span event or log record as flowwatch sees it.
type item struct {
	signal   string // span | event | log
	service  string
	tenant   string
	name     string // span name, event name or log event name
	kind     string // span kind (of the span, or the span carrying the event)
	status   string // ok | error | unset (of the span)
	message  string
	attrs    map[string]string // the item's own attributes, then the resource's
	time     time.Time
	traceID  string
	spanID   string
	links    []string // trace IDs linked
	nAttrs   int
	logEvent string // a log's event.name attribute
}

func (it item) id() string {
	return fmt.Sprintf("%s/%s/%s/%s@%d", it.signal, it.traceID, it.spanID, it.name, it.time.UnixNano())
}

func attrMap(dst map[string]string, m pcommon.Map) {
	m.Range(func(k string, v pcommon.Value) bool {
		if _, ok := dst[k]; !ok {
			dst[k] = v.AsString()
		}
		return true
	})
}

func kindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}

func statusName(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	}
	return "unset"
}

// collect flattens everything the sinks received.
func (c *collector) collect() []item {
	var out []item
	for _, td := range c.traces.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			res := rs.Resource().Attributes()
			svc, _ := res.Get("service.name")
			ten, _ := res.Get("tenant.id")
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					base := item{service: svc.Str(), tenant: ten.Str(), kind: kindName(sp.Kind()),
						status: statusName(sp.Status().Code()), message: sp.Status().Message(),
						traceID: sp.TraceID().String(), spanID: sp.SpanID().String()}
					it := base
					it.signal, it.name, it.time = "span", sp.Name(), sp.EndTimestamp().AsTime()
					it.attrs = map[string]string{}
					attrMap(it.attrs, sp.Attributes())
					it.nAttrs = sp.Attributes().Len()
					attrMap(it.attrs, res)
					for _, l := range sp.Links().All() {
						it.links = append(it.links, l.TraceID().String())
					}
					out = append(out, it)
					for _, ev := range sp.Events().All() {
						e := base
						e.signal, e.name, e.time = "event", ev.Name(), ev.Timestamp().AsTime()
						e.attrs = map[string]string{}
						attrMap(e.attrs, ev.Attributes())
						attrMap(e.attrs, res)
						out = append(out, e)
					}
				}
			}
		}
	}
	for _, ld := range c.logs.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes()
			svc, _ := res.Get("service.name")
			ten, _ := res.Get("tenant.id")
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					it := item{signal: "log", service: svc.Str(), tenant: ten.Str(), name: lr.EventName(),
						status: "unset", time: lr.Timestamp().AsTime(),
						traceID: lr.TraceID().String(), spanID: lr.SpanID().String()}
					if lr.SeverityNumber() >= plog.SeverityNumberError {
						it.status = "error"
					}
					it.attrs = map[string]string{}
					attrMap(it.attrs, lr.Attributes())
					it.logEvent = it.attrs["event.name"]
					attrMap(it.attrs, res)
					out = append(out, it)
				}
			}
		}
	}
	return out
}

// glob matches a span name pattern where '*' is a wildcard.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// matches is this test's own reading of a checkpoint's match (DESIGN.md), independent of
// the flow processor's.
func matches(m model.Match, it item) bool {
	if m.Service != "" && m.Service != it.service {
		return false
	}
	if m.Span != "" && (it.signal != "span" || !glob(m.Span, it.name)) {
		return false
	}
	if m.Event != "" && (it.signal == "span" || it.name != m.Event) {
		return false
	}
	if m.Kind != "" && m.Kind != it.kind {
		return false
	}
	if m.Status != "" && m.Status != it.status {
		return false
	}
	for _, a := range m.Attributes {
		v, ok := it.attrs[a.Key]
		if !ok || (!a.Present && v != a.Value) {
			return false
		}
	}
	return true
}

type hit struct {
	flow *model.Flow
	cp   *model.Checkpoint
	it   item
}

// world is what the emitted telemetry means under the example flows.
type world struct {
	set       *model.Set
	instances map[string]map[string]*model.Instance // flow -> key -> instance
	hits      map[string]map[string][]hit           // flow -> key -> hits
	keyless   []hit
	items     []item
	problems  []string
}

func loadFlows(t *testing.T) *model.Set {
	t.Helper()
	set, err := model.Load(filepath.Join("..", "..", "examples", "flows"))
	require.NoError(t, err)
	return set
}

// judge maps every item onto the example flows' checkpoints and builds the instances, the
// way flowwatch would: key attributes, aliases resolved to the instance key.
// Problems (an alias never recorded) are collected in w.problems: judge may run inside
// Eventually.
func judge(set *model.Set, items []item) *world {
	w := &world{set: set, items: items,
		instances: map[string]map[string]*model.Instance{}, hits: map[string]map[string][]hit{}}
	now := time.Now()
	var all []hit
	for _, it := range items {
		for _, name := range set.Names() {
			f := set.At(name, now)
			for _, cp := range f.Checkpoints {
				if cp.Children == nil && matches(cp.Match, it) {
					all = append(all, hit{flow: f, cp: cp, it: it})
				}
			}
		}
	}
	alias := map[string]map[string]string{} // flow -> alias value -> key
	add := func(h hit, key string) {
		name := h.flow.Name
		if w.instances[name] == nil {
			w.instances[name] = map[string]*model.Instance{}
			w.hits[name] = map[string][]hit{}
		}
		in := w.instances[name][key]
		if in == nil {
			in = model.NewInstance(set.Versions(name), h.it.tenant, key)
			w.instances[name][key] = in
		}
		in.Apply(model.Event{ID: h.it.id(), Checkpoint: h.cp.Name, Time: h.it.time, Service: h.it.service,
			Name: h.it.name, TraceID: h.it.traceID, SpanID: h.it.spanID, Status: h.it.status, Message: h.it.message,
			Attributes: kept(h.flow, h.it)})
		w.hits[name][key] = append(w.hits[name][key], h)
	}
	// Pass 1: items keyed directly; they record aliases. Pass 2: items keyed by an alias.
	for _, h := range all {
		if h.flow.IsAlias(h.cp.Key) {
			continue
		}
		key, ok := h.it.attrs[h.cp.Key]
		if !ok {
			w.keyless = append(w.keyless, h)
			continue
		}
		for _, a := range h.cp.Aliases {
			if v, ok := h.it.attrs[a]; ok {
				if alias[h.flow.Name] == nil {
					alias[h.flow.Name] = map[string]string{}
				}
				alias[h.flow.Name][v] = key
			}
		}
		add(h, key)
	}
	for _, h := range all {
		if !h.flow.IsAlias(h.cp.Key) {
			continue
		}
		v, ok := h.it.attrs[h.cp.Key]
		if !ok {
			w.keyless = append(w.keyless, h)
			continue
		}
		key, ok := alias[h.flow.Name][v]
		if !ok {
			w.problems = append(w.problems, fmt.Sprintf("%s/%s: alias %s=%s was never recorded", h.flow.Name, h.cp.Name, h.cp.Key, v))
			continue
		}
		add(h, key)
	}
	// Error notes: an error item carrying a flow's key attribute that matched none of the
	// flow's checkpoints.
	for _, it := range items {
		if it.status != "error" {
			continue
		}
		for _, name := range set.Names() {
			f := set.At(name, now)
			if slices.ContainsFunc(all, func(h hit) bool { return h.flow == f && h.it.id() == it.id() }) {
				continue
			}
			for _, attr := range f.KeyAttributes() {
				v, ok := it.attrs[attr]
				if !ok {
					continue
				}
				key := v
				if f.IsAlias(attr) {
					if key, ok = alias[name][v]; !ok {
						continue
					}
				}
				if in := w.instances[name][key]; in != nil {
					in.Apply(model.Event{ID: it.id(), Time: it.time, Service: it.service, Name: it.name,
						TraceID: it.traceID, SpanID: it.spanID, Status: it.status, Message: it.message})
					break
				}
			}
		}
	}
	// Families: each parent is judged with its children, found by the parent key they carry.
	for _, name := range set.Names() {
		pl := set.Parent(name)
		if pl == nil {
			continue
		}
		kids := map[string][]model.Child{}
		for _, in := range w.instances[name] {
			if pk := in.ParentKey(); pk != "" {
				kids[pk] = append(kids[pk], in.Evaluate(now).AsChild())
			}
		}
		for key, in := range w.instances[pl.Flow] {
			in.SetChildren(kids[key])
		}
	}
	return w
}

// kept is what the flow processor keeps of an item for its flow: a child's parent key, the
// counts of children a parent expects.
func kept(f *model.Flow, it item) map[string]string {
	out := map[string]string{}
	if f.Parent != nil {
		if v, ok := it.attrs[f.Parent.Key]; ok {
			out[model.AttrParentKey] = v
		}
	}
	for _, a := range f.ExpectAttributes() {
		if v, ok := it.attrs[a]; ok {
			out[a] = v
		}
	}
	return out
}

func (w *world) statuses(flow string) map[model.Status]int {
	out := map[model.Status]int{}
	for _, in := range w.instances[flow] {
		out[in.Evaluate(time.Now()).Status]++
	}
	return out
}

func (w *world) checkpoints(flow, key string) []string {
	var out []string
	for _, e := range w.instances[flow][key].Events() {
		out = append(out, e.Checkpoint)
	}
	return out
}

func baseConfig(c *collector) demo.Config {
	cfg := demo.DefaultConfig()
	cfg.OTLP = c.grpc
	cfg.Rate = 500
	cfg.Delay = 0
	cfg.ErrorRate = 0
	cfg.CancelRate = 0
	cfg.CancelAfterPaymentRate = 0
	cfg.LateRefundRate = 0
	cfg.LostParcelRate = 0
	cfg.PaymentShare = 0
	cfg.OnboardingShare = 0
	cfg.Seed = 42
	cfg.Tenant = "t-test"
	cfg.ReportEvery = 0
	cfg.ExportInterval = 50 * time.Millisecond
	return cfg
}

func runToEnd(t *testing.T, cfg demo.Config) demo.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := demo.New(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, d.Run(ctx))
	return d.Stats()
}

func TestDemoEmitsWhatTheExampleFlowsMatch(t *testing.T) {
	set := loadFlows(t)
	for _, protocol := range []string{demo.ProtocolGRPC, demo.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			c := startCollector(t)
			cfg := baseConfig(c)
			cfg.Protocol = protocol
			if protocol == demo.ProtocolHTTP {
				cfg.OTLP = c.http
			}
			cfg.Orders = 40
			cfg.CancelRate = 0.2
			cfg.PaymentShare = 0.5
			cfg.OnboardingShare = 0.4
			var log strings.Builder
			cfg.Log = &log
			cfg.ReportEvery = 20
			st := runToEnd(t, cfg)

			require.EqualValues(t, 40, st.Orders)
			require.Positive(t, st.Cancelled, "seed 42 cancels some orders")
			require.Positive(t, st.Payments)
			require.Positive(t, st.Signups)
			assert.Zero(t, st.Dropped)
			assert.Zero(t, st.PaymentErrors)
			assert.Equal(t, st.Orders-st.Cancelled, st.Delivered)
			assert.Equal(t, 3, strings.Count(log.String(), "demo: 40 orders")+strings.Count(log.String(), "demo: 20 orders"),
				"a line every 20 orders and one at the end:\n%s", log.String())

			items := c.collect()
			w := judge(set, items)
			require.Empty(t, w.problems)

			// Every resource says who it is; every log event carries event.name too.
			for _, it := range items {
				assert.Equal(t, "t-test", it.tenant, "%s %s", it.service, it.name)
				if it.signal == "log" {
					assert.NotEmpty(t, it.name, "log record without an event name")
					assert.Equal(t, it.name, it.logEvent, "EventName and event.name differ")
				}
				if it.signal == "span" && it.name == "POST /orders" {
					assert.GreaterOrEqual(t, it.nAttrs, 10, "a realistic span carries ~10 attributes")
				}
			}
			// The only keyless matches: stand-alone payments' authorizations have no order.
			for _, h := range w.keyless {
				assert.Equal(t, "order-fulfilment/paid", h.flow.Name+"/"+h.cp.Name, "item %s %s lacks %s", h.it.service, h.it.name, h.cp.Key)
				assert.Equal(t, "payment.authorized", h.it.name)
			}

			// shipment: every parcel of a delivered order delivered.
			assert.Equal(t, map[model.Status]int{model.StatusCompleted: int(st.Shipments)}, w.statuses("shipment"))
			assert.GreaterOrEqual(t, st.Shipments, st.Delivered)
			// order-fulfilment: every order delivered or cancelled, in order, once each.
			assert.Len(t, w.instances["order-fulfilment"], 40)
			assert.Equal(t, map[model.Status]int{model.StatusCompleted: int(st.Delivered), model.StatusFailed: int(st.Cancelled)},
				w.statuses("order-fulfilment"))
			for key, in := range w.instances["order-fulfilment"] {
				s := in.Evaluate(time.Now())
				assert.Empty(t, s.Violations, "order %s: %v", key, w.checkpoints("order-fulfilment", key))
				assert.Equal(t, 1, s.Version)
				if s.Status == model.StatusCompleted {
					got := w.checkpoints("order-fulfilment", key)
					sort.Strings(got)
					assert.Equal(t, []string{"delivered", "paid", "placed", "settled", "shipped", "stock_reserved"}, got, "order %s", key)
					// Each hop is its own trace.
					traces := map[string]bool{}
					for _, e := range in.Events() {
						traces[e.TraceID] = true
					}
					assert.Len(t, traces, 6, "order %s: one trace per hop", key)
				} else {
					assert.Equal(t, []string{"placed", "cancelled"}, w.checkpoints("order-fulfilment", key))
				}
			}
			// payment: every payment (the orders' and the stand-alone ones) ends.
			pay := w.statuses("payment")
			assert.Equal(t, int(st.Orders-st.Cancelled+st.Payments), pay[model.StatusCompleted]+pay[model.StatusFailed], "%v", pay)
			assert.Zero(t, pay[model.StatusStuck]+pay[model.StatusRunning], "%v", pay)
			declined := 0
			for key, in := range w.instances["payment"] {
				s := in.Evaluate(time.Now())
				assert.Empty(t, s.Violations, "payment %s: %v", key, w.checkpoints("payment", key))
				cps := w.checkpoints("payment", key)
				if len(cps) > 1 && cps[1] == "declined" {
					declined++
				}
			}
			assert.Positive(t, declined, "some stand-alone payments are declined")
			// customer-onboarding.
			onb := w.statuses("customer-onboarding")
			assert.Equal(t, int(st.Signups), onb[model.StatusCompleted]+onb[model.StatusFailed], "%v", onb)
			for key, in := range w.instances["customer-onboarding"] {
				assert.Empty(t, in.Evaluate(time.Now()).Violations, "customer %s", key)
			}

			// A hop links to the one it reacts to: inventory's reserve to the order's trace.
			placed := map[string]string{} // order -> trace
			for _, h := range allHits(w, "order-fulfilment", "placed") {
				placed[h.it.attrs["order.id"]] = h.it.traceID
			}
			for _, h := range allHits(w, "order-fulfilment", "stock_reserved") {
				assert.Equal(t, []string{placed[h.it.attrs["order.id"]]}, h.it.links)
			}
		})
	}
}

func allHits(w *world, flow, checkpoint string) []hit {
	var out []hit
	for _, hs := range w.hits[flow] {
		for _, h := range hs {
			if h.cp.Name == checkpoint {
				out = append(out, h)
			}
		}
	}
	return out
}

func TestDemoSeedRepeats(t *testing.T) {
	ids := func() []string {
		c := startCollector(t)
		cfg := baseConfig(c)
		cfg.Orders = 5
		cfg.CancelRate = 0.3
		runToEnd(t, cfg)
		var out []string
		for _, it := range c.collect() {
			if it.signal == "span" {
				out = append(out, it.name+" "+it.attrs["order.id"]+" "+it.traceID+" "+it.status)
			}
		}
		sort.Strings(out)
		return out
	}
	first := ids()
	require.NotEmpty(t, first)
	assert.Equal(t, first, ids())
}

func TestDemoFaults(t *testing.T) {
	set := loadFlows(t)
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 60
	cfg.Drop = 0.1
	cfg.ErrorRate = 0.2
	st := runToEnd(t, cfg)
	require.Positive(t, st.Dropped)
	require.Positive(t, st.PaymentErrors)
	assert.Less(t, st.Delivered, st.Orders)

	w := judge(set, c.collect())
	require.Empty(t, w.problems)
	errs := 0
	for _, it := range w.items {
		if it.signal == "span" && it.name == "authorize" && it.status == "error" {
			errs++
			assert.Equal(t, "card issuer timeout", it.message)
			assert.NotEmpty(t, it.attrs["payment.order_id"], "the error span carries the order's key")
		}
	}
	assert.EqualValues(t, st.PaymentErrors, errs)
	// An order whose authorization failed never reaches paid: it waits for a retry.
	orders := w.statuses("order-fulfilment")
	assert.Equal(t, int(st.Delivered), orders[model.StatusCompleted])
	for key := range w.instances["order-fulfilment"] {
		cps := w.checkpoints("order-fulfilment", key)
		assert.Equal(t, "placed", cps[0], "order %s starts placed", key)
		assert.Empty(t, w.instances["order-fulfilment"][key].Evaluate(time.Now()).Violations,
			"a lost hop stops what depends on it, so nothing arrives out of order: %v", cps)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := demo.DefaultConfig()
	require.NoError(t, cfg.Validate())
	cfg.Protocol = "udp"
	cfg.Rate = 0
	cfg.Drop = 1.5
	cfg.OTLP = "nohostport"
	cfg.NATS = "::"
	cfg.Tenant = ""
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"'protocol' must be grpc or http", "'rate' must be greater than zero",
		"'drop' must be a probability", "'otlp' must be host:port", "'nats' must be a URL", "'tenant' must not be empty"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = demo.New(context.Background(), cfg)
	assert.ErrorContains(t, err, "invalid demo configuration")
}

func TestEndpointDefaultsPerProtocol(t *testing.T) {
	cfg := demo.DefaultConfig()
	assert.Equal(t, "127.0.0.1:4317", cfg.Endpoint())
	cfg.Protocol = demo.ProtocolHTTP
	assert.Equal(t, "127.0.0.1:4318", cfg.Endpoint())
	cfg.OTLP = "collector:9999"
	assert.Equal(t, "collector:9999", cfg.Endpoint())
}

// syncBuffer is a log writer safe for the demo's goroutines and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The demo's families and sagas: parcels lost in transit for a while (their shipments, then
// their orders, wait), orders cancelled once paid and refunded — as the example flows judge it.
func TestDemoFamiliesAndRefunds(t *testing.T) {
	set := loadFlows(t)
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 40
	cfg.CancelAfterPaymentRate = 0.25
	cfg.LostParcelRate = 0.2
	cfg.LostFor = 300 * time.Millisecond
	st := runToEnd(t, cfg)
	require.Positive(t, st.LostParcels, "seed 42 loses parcels")
	require.Positive(t, st.Refunds, "seed 42 cancels orders once paid")
	assert.Equal(t, st.Cancelled, st.Refunds)
	assert.Equal(t, st.Orders-st.Cancelled, st.Delivered, "a lost parcel turns up, and its order is delivered")

	w := judge(set, c.collect())
	require.Empty(t, w.problems)
	assert.Equal(t, map[model.Status]int{model.StatusCompleted: int(st.Shipments)}, w.statuses("shipment"))
	assert.Equal(t, map[model.Status]int{model.StatusCompleted: int(st.Delivered), model.StatusCompensated: int(st.Refunds)},
		w.statuses("order-fulfilment"))
	for key, in := range w.instances["order-fulfilment"] {
		s := in.Evaluate(time.Now())
		assert.Empty(t, s.Violations, "order %s: %v", key, w.checkpoints("order-fulfilment", key))
		if s.Status == model.StatusCompleted {
			assert.NotEmpty(t, s.Children, "order %s is judged with its shipments", key)
		}
	}
	for key, in := range w.instances["shipment"] {
		assert.NotEmpty(t, in.ParentKey(), "shipment %s carries its order's key", key)
	}
}
