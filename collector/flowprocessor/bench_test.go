package flowprocessor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspanevent"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/ottlfuncs"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
	"github.com/flowwatch/flowwatch/model"
)

// The benchmark workload: N checkpoints in flows of five (a start span with a status-code
// attribute, an event, a span name pattern with a status, an exact span name, an event), over
// 10+N/10 services; a batch of 1000 spans from 20 resources of the first 10 services, each span
// with ~10 attributes and 2-3 events, about 5% of spans (or one of their events) matching a
// checkpoint. The same payload feeds BenchmarkFlowProcessor and BenchmarkOTTLBaseline.

const (
	benchResources      = 20
	benchScopes         = 2
	benchSpansPerScope  = 25
	benchMatchRate      = 0.05
	benchPayloadService = 10
)

type benchRule struct {
	flow, checkpoint string
	service          string
	span             string // exact or pattern with '*'
	kind             string
	status           string
	event            string
	attrs            map[string]string
	key              string
}

func benchServices(n int) int { return 10 + n/10 }

func benchRules(n int) []benchRule {
	services := benchServices(n)
	var rules []benchRule
	for i := 0; len(rules) < n; i++ {
		flow := fmt.Sprintf("flow-%d", i)
		svc := func(k int) string { return fmt.Sprintf("svc-%d", (i+k)%services) }
		cps := []benchRule{
			{checkpoint: "started", service: svc(0), span: fmt.Sprintf("POST /f%d/start", i), kind: "server",
				attrs: map[string]string{"http.response.status_code": "201"}},
			{checkpoint: "accepted", service: svc(1), event: fmt.Sprintf("f%d.accepted", i)},
			{checkpoint: "worked", service: svc(2), span: fmt.Sprintf("work f%d *", i), status: "ok"},
			{checkpoint: "checked", service: svc(3), span: fmt.Sprintf("check f%d", i)},
			{checkpoint: "done", service: svc(4), event: fmt.Sprintf("f%d.done", i)},
		}
		for _, c := range cps {
			if len(rules) == n {
				break
			}
			c.flow, c.key = flow, "business.id"
			rules = append(rules, c)
		}
	}
	return rules
}

func benchSet(tb testing.TB, rules []benchRule) *model.Set {
	var sb strings.Builder
	last := ""
	for _, r := range rules {
		if r.flow != last {
			if last != "" {
				sb.WriteString("---\n")
			}
			fmt.Fprintf(&sb, "apiVersion: flowwatch/v1\nkind: Flow\nname: %s\nversion: 1\nkey: %s\ncheckpoints:\n", r.flow, r.key)
			last = r.flow
		}
		fmt.Fprintf(&sb, "  - name: %s\n", r.checkpoint)
		if r.checkpoint == "started" {
			sb.WriteString("    start: true\n")
		} else {
			sb.WriteString("    after: [started]\n    within: 1h\n")
		}
		fmt.Fprintf(&sb, "    match:\n      service: %s\n", r.service)
		for k, v := range map[string]string{"span": r.span, "event": r.event, "kind": r.kind, "status": r.status} {
			if v != "" {
				fmt.Fprintf(&sb, "      %s: %q\n", k, v)
			}
		}
		if len(r.attrs) > 0 {
			sb.WriteString("      attributes:\n")
			for k, v := range r.attrs {
				fmt.Fprintf(&sb, "        %s: %s\n", k, v)
			}
		}
	}
	flows, probs := model.Parse("bench.yaml", []byte(sb.String()))
	require.Empty(tb, probs)
	return model.NewSet(flows)
}

var noiseSpanNames = []string{"GET /api/v1/items/{id}", "SELECT orders", "redis GET", "POST /api/v1/cart",
	"kafka.produce orders", "grpc.health.v1.Health/Check", "render template", "HTTP GET"}
var noiseEventNames = []string{"log", "retry", "cache.miss", "message"}

// benchPayload builds the batch for a rule set; rng makes it reproducible.
func benchPayload(rules []benchRule) ptrace.Traces {
	rng := rand.New(rand.NewPCG(7, uint64(len(rules))))
	// the rules of each payload service, to pick matching items from.
	bySvc := map[string][]benchRule{}
	for _, r := range rules {
		bySvc[r.service] = append(bySvc[r.service], r)
	}
	// resources of services without rules cannot match: the others match more often, so
	// that the batch as a whole matches at benchMatchRate.
	withRules := 0
	for ri := 0; ri < benchResources; ri++ {
		if len(bySvc[fmt.Sprintf("svc-%d", ri%benchPayloadService)]) > 0 {
			withRules++
		}
	}
	rate := benchMatchRate * float64(benchResources) / float64(withRules)
	td := ptrace.NewTraces()
	n := 0
	for ri := 0; ri < benchResources; ri++ {
		rs := td.ResourceSpans().AppendEmpty()
		svc := fmt.Sprintf("svc-%d", ri%benchPayloadService)
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("tenant.id", fmt.Sprintf("tenant-%d", ri%3))
		ra.PutStr("host.name", fmt.Sprintf("node-%d", ri))
		ra.PutStr("k8s.pod.name", fmt.Sprintf("%s-7d9f-%d", svc, ri))
		ra.PutStr("telemetry.sdk.language", "go")
		for si := 0; si < benchScopes; si++ {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("lib-%d", si))
			ss.Scope().SetVersion("0.9.0")
			for k := 0; k < benchSpansPerScope; k++ {
				n++
				span := ss.Spans().AppendEmpty()
				span.SetTraceID(pcommon.TraceID{byte(n), byte(n >> 8), 3})
				span.SetSpanID(pcommon.SpanID{byte(n), byte(n >> 8), 4})
				span.SetKind(ptrace.SpanKind(1 + rng.IntN(5)))
				span.SetName(noiseSpanNames[rng.IntN(len(noiseSpanNames))])
				span.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + n*1000))
				span.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + n*1000 + 500))
				if rng.IntN(10) == 0 {
					span.Status().SetCode(ptrace.StatusCodeOk)
				}
				a := span.Attributes()
				a.PutStr("http.request.method", "GET")
				a.PutStr("http.route", "/api/v1/items/{id}")
				a.PutInt("http.response.status_code", 200)
				a.PutStr("server.address", "api.internal")
				a.PutInt("server.port", 8080)
				a.PutStr("url.scheme", "https")
				a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
				a.PutStr("network.protocol.version", "1.1")
				a.PutInt("thread.id", int64(rng.IntN(64)))
				a.PutStr("business.id", fmt.Sprintf("b-%d", n))
				events := 2 + rng.IntN(2)
				for e := 0; e < events; e++ {
					ev := span.Events().AppendEmpty()
					ev.SetName(noiseEventNames[rng.IntN(len(noiseEventNames))])
					ev.SetTimestamp(span.StartTimestamp() + pcommon.Timestamp(e))
					ev.Attributes().PutStr("message", "step done")
					ev.Attributes().PutInt("attempt", int64(e))
				}
				candidates := bySvc[svc]
				if len(candidates) == 0 || rng.Float64() >= rate {
					continue
				}
				r := candidates[rng.IntN(len(candidates))]
				switch {
				case r.event != "":
					span.Events().At(0).SetName(r.event)
				default:
					span.SetName(strings.ReplaceAll(r.span, "*", "batch-7"))
					if r.kind == "server" {
						span.SetKind(ptrace.SpanKindServer)
					}
					if r.status == "ok" {
						span.Status().SetCode(ptrace.StatusCodeOk)
					}
					for k, v := range r.attrs {
						a.PutStr(k, v)
						if k == "http.response.status_code" {
							a.PutInt(k, 201)
						}
					}
				}
			}
		}
	}
	return td
}

var benchRuleCounts = []int{5, 50, 500}

// perSpan reports the cost per span: wall clock (ns/span) and process CPU time
// (cpu-ns/span). Call start before the loop and the returned func after it.
func perSpan(b *testing.B, spans int) func() {
	cpu0 := cpuTime()
	return func() {
		cpu := cpuTime() - cpu0
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
		if cpu > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*spans), "cpu-ns/span")
		}
	}
}

func countAnnotated(td ptrace.Traces) (items int) {
	eachBenchSpan(td, func(s ptrace.Span) {
		if flowattr.Has(s.Attributes()) {
			items++
		}
		for e := 0; e < s.Events().Len(); e++ {
			if flowattr.Has(s.Events().At(e).Attributes()) {
				items++
			}
		}
	})
	return items
}

func eachBenchSpan(td ptrace.Traces, f func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				f(spans.At(k))
			}
		}
	}
}

func BenchmarkFlowProcessor(b *testing.B) {
	for _, n := range benchRuleCounts {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := benchRules(n)
			set := benchSet(b, rules)
			td := benchPayload(rules)
			tel := componenttest.NewTelemetry() // a real SDK meter, as in a collector
			defer func() { require.NoError(b, tel.Shutdown(context.Background())) }()
			ps := processortest.NewNopSettings(metadata.Type)
			ps.TelemetrySettings = tel.NewTelemetrySettings()
			cfg := createDefaultConfig().(*Config)
			p, err := newFlowProcessor(ps, cfg)
			require.NoError(b, err)
			p.idx.Store(newIndex(set, p.counts))
			ctx := context.Background()
			spans := td.SpanCount()
			b.ReportAllocs()
			report := perSpan(b, spans)
			for b.Loop() {
				if _, err := p.processTraces(ctx, td); err != nil {
					b.Fatal(err)
				}
			}
			report()
			b.ReportMetric(float64(countAnnotated(td))/float64(spans), "matched/span")
		})
	}
}

// ottlRules is the same matching as OTTL conditions, evaluated the way filterprocessor
// evaluates its conditions: a pooled TransformContext per span (per event for event rules),
// each condition's Eval. Every condition is evaluated, since one item may be a checkpoint of
// several flows. Attributes are read from the item only (no scope/resource fallback), which
// makes the baseline cheaper than the real thing, and it neither reads keys nor annotates.
type ottlRules struct {
	spans  []*ottl.Condition[*ottlspan.TransformContext]
	events []*ottl.Condition[*ottlspanevent.TransformContext]
}

var ottlKinds = map[string]string{"server": "SPAN_KIND_SERVER", "client": "SPAN_KIND_CLIENT"}

func newOTTLRules(tb testing.TB, rules []benchRule) *ottlRules {
	set := componenttest.NewNopTelemetrySettings()
	spanParser, err := ottlspan.NewParser(ottlfuncs.StandardConverters[*ottlspan.TransformContext](), set)
	require.NoError(tb, err)
	eventParser, err := ottlspanevent.NewParser(ottlfuncs.StandardConverters[*ottlspanevent.TransformContext](), set)
	require.NoError(tb, err)
	var spanConds, eventConds []string
	for _, r := range rules {
		parts := []string{fmt.Sprintf(`resource.attributes["service.name"] == %q`, r.service)}
		if r.event != "" {
			parts = append(parts, fmt.Sprintf(`name == %q`, r.event))
			eventConds = append(eventConds, strings.Join(parts, " and "))
			continue
		}
		if strings.Contains(r.span, "*") {
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(r.span), `\*`, ".*") + "$"
			parts = append(parts, fmt.Sprintf(`IsMatch(name, %q)`, re))
		} else {
			parts = append(parts, fmt.Sprintf(`name == %q`, r.span))
		}
		if r.kind != "" {
			parts = append(parts, "kind == "+ottlKinds[r.kind])
		}
		if r.status == "ok" {
			parts = append(parts, "status.code == STATUS_CODE_OK")
		}
		for k, v := range r.attrs {
			parts = append(parts, fmt.Sprintf(`attributes[%q] == %s`, k, v))
		}
		spanConds = append(spanConds, strings.Join(parts, " and "))
	}
	o := &ottlRules{}
	o.spans, err = spanParser.ParseConditions(spanConds)
	require.NoError(tb, err)
	o.events, err = eventParser.ParseConditions(eventConds)
	require.NoError(tb, err)
	return o
}

// eval returns how many items matched some condition.
func (o *ottlRules) eval(ctx context.Context, td ptrace.Traces) (matched int, err error) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				tCtx := ottlspan.NewTransformContext(rs, ss, span)
				hit := false
				for _, c := range o.spans {
					ok, err := c.Eval(ctx, tCtx)
					if err != nil {
						tCtx.Close()
						return 0, err
					}
					hit = hit || ok
				}
				tCtx.Close()
				if hit {
					matched++
				}
				events := span.Events()
				for e := 0; e < events.Len(); e++ {
					eCtx := ottlspanevent.NewTransformContext(rs, ss, span, events.At(e))
					hit := false
					for _, c := range o.events {
						ok, err := c.Eval(ctx, eCtx)
						if err != nil {
							eCtx.Close()
							return 0, err
						}
						hit = hit || ok
					}
					eCtx.Close()
					if hit {
						matched++
					}
				}
			}
		}
	}
	return matched, nil
}

func BenchmarkOTTLBaseline(b *testing.B) {
	for _, n := range benchRuleCounts {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			rules := benchRules(n)
			td := benchPayload(rules)
			o := newOTTLRules(b, rules)
			ctx := context.Background()
			spans := td.SpanCount()
			matched := 0
			b.ReportAllocs()
			report := perSpan(b, spans)
			for b.Loop() {
				var err error
				if matched, err = o.eval(ctx, td); err != nil {
					b.Fatal(err)
				}
			}
			report()
			b.ReportMetric(float64(matched)/float64(spans), "matched/span")
		})
	}
}

// BenchmarkPassthrough iterates the same payload (50 rules) reading what matching needs
// (service name, span names, event names) and matches nothing: the floor.
func BenchmarkPassthrough(b *testing.B) {
	td := benchPayload(benchRules(50))
	spans := td.SpanCount()
	sink := 0
	b.ReportAllocs()
	report := perSpan(b, spans)
	for b.Loop() {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			if v, ok := rs.Resource().Attributes().Get(serviceNameAttr); ok {
				sink += len(v.Str())
			}
			sss := rs.ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					s := spans.At(k)
					sink += len(s.Name()) + int(s.Status().Code())
					for e := 0; e < s.Events().Len(); e++ {
						sink += len(s.Events().At(e).Name())
					}
				}
			}
		}
	}
	report()
	if sink == 0 {
		b.Fatal("nothing read")
	}
}

// TestBenchWorkloadAgrees checks that the benchmark's two matchers see the same matches, so
// that the comparison is between equal work.
func TestBenchWorkloadAgrees(t *testing.T) {
	for _, n := range benchRuleCounts {
		rules := benchRules(n)
		td := benchPayload(rules)
		spans := td.SpanCount()
		o := newOTTLRules(t, rules)
		ottlMatched, err := o.eval(context.Background(), td)
		require.NoError(t, err)

		p, err := newFlowProcessor(processortest.NewNopSettings(metadata.Type), createDefaultConfig().(*Config))
		require.NoError(t, err)
		p.idx.Store(newIndex(benchSet(t, rules), p.counts))
		_, err = p.processTraces(context.Background(), td)
		require.NoError(t, err)
		ours := countAnnotated(td)
		require.Equal(t, ottlMatched, ours, "rules=%d", n)
		rate := float64(ours) / float64(spans)
		require.InDelta(t, benchMatchRate, rate, 0.02, "rules=%d: matched %d of %d spans", n, ours, spans)
	}
}
