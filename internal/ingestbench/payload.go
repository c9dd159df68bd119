// Package ingestbench measures and tries the whole ingest path of the flowwatch collector:
// OTLP in, checkpoint rows stored, with `flowwatch collector` as a child process
// (child_test.go). Its benchmark (ingest_test.go, `make bench`) charges the collector only
// its own CPU time and samples its memory; its tests kill it (SIGKILL) under load on the
// shipped configuration and count what was acknowledged and stored (crash_test.go), and
// drive it past its memory limit (memory_test.go).
//
// The package's one exported part is the load: Payload builds a realistic OTLP trace batch
// for a flow set (the services of the flows plus services no flow watches, about ten
// attributes and two or three events per span, a small share of spans or events that are
// checkpoints). It owns no pipeline code and must not be imported by the product.
package ingestbench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/model"
)

// The shape of a batch: Resources resources (one service each) of ScopesPerResource scopes of
// SpansPerScope spans, MatchRate of the spans (or one of their events) a checkpoint.
const (
	Resources         = 20
	ScopesPerResource = 2
	SpansPerScope     = 25
	SpansPerBatch     = Resources * ScopesPerResource * SpansPerScope
	MatchRate         = 0.05
	// errorRate of the spans carry an error status and an exception event; on a service
	// of a flow they carry its key, so the flow processor keeps them as error notes.
	errorRate = 0.01
	// keysPerBatch distinct business keys per key attribute in one batch.
	keysPerBatch = 64
)

// Services no flow watches fill the resources the flows' services leave.
var noiseServices = []string{"frontend", "cart", "catalog", "search", "recommendation", "gateway",
	"notifications", "auth", "pricing", "reviews", "sessions", "media", "currency", "ads", "quotes",
	"email", "tax", "geo", "profile", "audit"}

var noiseSpanNames = []string{"GET /api/v1/items/{id}", "SELECT orders", "redis GET", "POST /api/v1/cart",
	"kafka.produce orders", "grpc.health.v1.Health/Check", "render template", "HTTP GET"}

var noiseEventNames = []string{"log", "retry", "cache.miss", "message"}

// Payload is one OTLP trace batch (SpansPerBatch spans) for a flow set. Its shape and which
// items are checkpoints are fixed by the set; Renumber gives it new trace ids, business keys
// and times, so that every batch sent is new data with the same matches. A Payload is not
// safe for concurrent use: give each sender its own.
type Payload struct {
	// Traces is the batch; Renumber rewrites it in place.
	Traces ptrace.Traces
	// keyAttrs are the attributes holding business keys (flow keys, checkpoint keys,
	// aliases): Renumber gives them new values.
	keyAttrs map[string]bool
	start    time.Time
}

// rule is one checkpoint's match, as the payload makes an item satisfy it.
type rule struct {
	m model.Match
}

// NewPayload builds the batch for set: resources of the services the set's checkpoints
// name (sorted), then services no flow watches; every span of a flow's service carries the
// service's key attributes. Span times start at start. The same set gives the same shape.
func NewPayload(set *model.Set, start time.Time) *Payload {
	rng := rand.New(rand.NewPCG(7, 11))
	bySvc := map[string][]rule{}
	keysOf := map[string][]string{}
	keyAttrs := map[string]bool{}
	seen := map[string]bool{}
	for _, f := range set.Flows {
		for _, cp := range f.Checkpoints {
			svc := cp.Match.Service
			for _, k := range append([]string{f.Key, cp.Key}, cp.Aliases...) {
				keyAttrs[k] = true
				if svc != "" && !slices.Contains(keysOf[svc], k) {
					keysOf[svc] = append(keysOf[svc], k)
				}
			}
			if svc == "" {
				continue // a checkpoint of any service: the payload does not aim at it
			}
			id := fmt.Sprintf("%+v", cp.Match)
			if seen[id] {
				continue // the same match in another version
			}
			seen[id] = true
			bySvc[svc] = append(bySvc[svc], rule{m: cp.Match})
		}
	}
	var services []string
	for svc := range bySvc {
		services = append(services, svc)
	}
	slices.Sort(services)
	flowResources := min(len(services), Resources)
	for i := 0; len(services) < Resources; i++ {
		services = append(services, noiseServices[i%len(noiseServices)])
	}
	// Only the flows' services can match: their spans match more often, so that the batch
	// as a whole matches at MatchRate.
	rate := 0.0
	if flowResources > 0 {
		rate = MatchRate * Resources / float64(flowResources)
	}

	td := ptrace.NewTraces()
	n := 0
	for ri := 0; ri < Resources; ri++ {
		svc := services[ri]
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("tenant.id", fmt.Sprintf("tenant-%d", ri%3))
		ra.PutStr("host.name", fmt.Sprintf("node-%d", ri))
		ra.PutStr("k8s.pod.name", fmt.Sprintf("%s-7d9f-%d", svc, ri))
		ra.PutStr("telemetry.sdk.language", "go")
		for si := 0; si < ScopesPerResource; si++ {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("lib-%d", si))
			ss.Scope().SetVersion("0.9.0")
			for k := 0; k < SpansPerScope; k++ {
				n++
				span := ss.Spans().AppendEmpty()
				noiseSpan(rng, span, keysOf[svc])
				if rules := bySvc[svc]; len(rules) > 0 && rng.Float64() < rate {
					rules[rng.IntN(len(rules))].apply(span)
				} else if rng.Float64() < errorRate {
					errorSpan(span)
				}
			}
		}
	}
	p := &Payload{Traces: td, keyAttrs: keyAttrs, start: start}
	p.Renumber(0)
	return p
}

// noiseSpan fills span as an ordinary span: ten attributes (the service's key attributes
// among them, replacing generic ones) and two or three events.
func noiseSpan(rng *rand.Rand, span ptrace.Span, keys []string) {
	span.SetKind(ptrace.SpanKind(1 + rng.IntN(5)))
	span.SetName(noiseSpanNames[rng.IntN(len(noiseSpanNames))])
	if rng.IntN(10) == 0 {
		span.Status().SetCode(ptrace.StatusCodeOk)
	}
	a := span.Attributes()
	for _, k := range keys {
		a.PutStr(k, "") // the value is set by Renumber
	}
	generic := []func(){
		func() { a.PutStr("http.request.method", "GET") },
		func() { a.PutStr("http.route", "/api/v1/items/{id}") },
		func() { a.PutInt("http.response.status_code", 200) },
		func() { a.PutStr("server.address", "api.internal") },
		func() { a.PutInt("server.port", 8080) },
		func() { a.PutStr("url.scheme", "https") },
		func() { a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)") },
		func() { a.PutStr("network.protocol.version", "1.1") },
		func() { a.PutInt("thread.id", int64(rng.IntN(64))) },
		func() { a.PutStr("code.function", "handle") },
	}
	for _, put := range generic[:max(0, len(generic)-len(keys))] {
		put()
	}
	for e := range 2 + rng.IntN(2) {
		ev := span.Events().AppendEmpty()
		ev.SetName(noiseEventNames[rng.IntN(len(noiseEventNames))])
		ev.Attributes().PutStr("message", "step done")
		ev.Attributes().PutInt("attempt", int64(e))
	}
}

// errorSpan makes span a failed one, with the exception event an SDK records.
func errorSpan(span ptrace.Span) {
	span.Status().SetCode(ptrace.StatusCodeError)
	span.Status().SetMessage("upstream timed out")
	ev := span.Events().At(0)
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "TimeoutError")
	ev.Attributes().PutStr("exception.message", "context deadline exceeded")
}

// apply makes span (or its first event) satisfy the rule.
func (r rule) apply(span ptrace.Span) {
	m := r.m
	if m.Event != "" {
		span.Events().At(0).SetName(m.Event)
		return
	}
	if m.Span != "" {
		span.SetName(strings.ReplaceAll(m.Span, "*", "batch-7"))
	}
	switch m.Kind {
	case "server":
		span.SetKind(ptrace.SpanKindServer)
	case "client":
		span.SetKind(ptrace.SpanKindClient)
	case "producer":
		span.SetKind(ptrace.SpanKindProducer)
	case "consumer":
		span.SetKind(ptrace.SpanKindConsumer)
	case "internal":
		span.SetKind(ptrace.SpanKindInternal)
	}
	switch m.Status {
	case "ok":
		span.Status().SetCode(ptrace.StatusCodeOk)
	case "error":
		span.Status().SetCode(ptrace.StatusCodeError)
	case "unset":
		span.Status().SetCode(ptrace.StatusCodeUnset)
	}
	for _, am := range m.Attributes {
		switch v := am.Value; {
		case am.Present:
			span.Attributes().PutStr(am.Key, "approved")
		default:
			if i, err := strconv.ParseInt(v, 10, 64); err == nil {
				span.Attributes().PutInt(am.Key, i)
			} else {
				span.Attributes().PutStr(am.Key, v)
			}
		}
	}
}

// Renumber makes the batch the seq-th one: trace and span ids, business keys and times that
// no other seq has (within 2^32 batches), the same matches.
func (p *Payload) Renumber(seq uint64) {
	base := pcommon.NewTimestampFromTime(p.start.Add(time.Duration(seq) * time.Millisecond))
	var key [keysPerBatch]string
	for i := range key {
		key[i] = "k" + strconv.FormatUint(seq, 10) + "-" + strconv.Itoa(i)
	}
	n := 0
	rss := p.Traces.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				var tid pcommon.TraceID
				var sid pcommon.SpanID
				putUint32(tid[0:], uint32(seq))
				putUint32(tid[4:], uint32(n/8)) // eight spans to a trace
				tid[15] = 1
				putUint32(sid[0:], uint32(seq))
				putUint32(sid[4:], uint32(n))
				span.SetTraceID(tid)
				span.SetSpanID(sid)
				t := base + pcommon.Timestamp(n*1000)
				span.SetStartTimestamp(t)
				span.SetEndTimestamp(t + 500_000)
				evs := span.Events()
				for e := 0; e < evs.Len(); e++ {
					evs.At(e).SetTimestamp(t + pcommon.Timestamp(e+1)*1000)
				}
				for kattr, v := range span.Attributes().All() {
					if p.keyAttrs[kattr] {
						v.SetStr(key[n%keysPerBatch])
					}
				}
				n++
			}
		}
	}
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
