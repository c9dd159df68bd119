package flowprocessor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.uber.org/zap"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
	"github.com/flowwatch/flowwatch/model"
)

// Names the processor reads from items.
const (
	// eventNameAttr holds a log record's event name when its EventName field is empty.
	eventNameAttr = "event.name"
	// exceptionEvent is the span event name of a recorded error (OpenTelemetry semantic
	// conventions): such an event is an error item for error notes.
	exceptionEvent = "exception"
)

// flowProcessor matches items to checkpoints and annotates them. One is created per
// pipeline and signal; the compiled index is swapped atomically on reload, so concurrent
// calls always see one consistent set of definitions.
type flowProcessor struct {
	cfg    *Config
	logger *zap.Logger
	tel    *metadata.TelemetryBuilder
	counts *counters
	idx    atomic.Pointer[index]

	mu     sync.Mutex // guards stop and done
	stop   chan struct{}
	done   chan struct{}
	ticker func(time.Duration) (<-chan time.Time, func())
	// reloaded, when set (tests), is called after each reload of the loop.
	reloaded func(error)
}

func newFlowProcessor(set processor.Settings, cfg *Config) (*flowProcessor, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create flow processor telemetry: %w", err)
	}
	counts := newCounters()
	if err := counts.register(tel); err != nil {
		return nil, fmt.Errorf("register flow processor metrics: %w", err)
	}
	return &flowProcessor{cfg: cfg, logger: set.Logger, tel: tel, counts: counts, ticker: newTicker}, nil
}

func newTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// start loads the flow definitions; an invalid flow file fails the start with its
// `path:line:col` errors.
func (p *flowProcessor) start(_ context.Context, _ component.Host) error {
	set, err := model.Load(p.cfg.Flows...)
	if err != nil {
		return fmt.Errorf("load flow definitions:\n%w", err)
	}
	idx := newIndex(set, p.counts)
	p.idx.Store(idx)
	p.logger.Info("Loaded flow definitions", zap.Int("flows", len(set.Flows)), zap.Int("rules", idx.rules))
	if p.cfg.ReloadInterval > 0 {
		p.mu.Lock()
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.reloadLoop(p.stop, p.done)
		p.mu.Unlock()
	}
	return nil
}

func (p *flowProcessor) shutdown(ctx context.Context) error {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	defer p.tel.Shutdown()
	if stop == nil {
		return nil
	}
	close(stop)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop reloading flow definitions: %w", ctx.Err())
	}
}

func (p *flowProcessor) reloadLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick, stopTicker := p.ticker(p.cfg.ReloadInterval)
	defer stopTicker()
	for {
		select {
		case <-stop:
			return
		case <-tick:
			err := p.reload(context.Background())
			if p.reloaded != nil {
				p.reloaded(err)
			}
		}
	}
}

// reload reads the flow files again. On error the last good definitions stay in use; the
// problems are logged and counted.
func (p *flowProcessor) reload(ctx context.Context) error {
	set, err := model.Load(p.cfg.Flows...)
	if err != nil {
		p.tel.ProcessorFlowReloadErrors.Add(ctx, 1)
		var probs model.Problems
		if errors.As(err, &probs) {
			lines := make([]string, len(probs))
			for i, pr := range probs {
				lines[i] = pr.Error()
			}
			p.logger.Error("Reloading flow definitions failed; keeping the last good ones", zap.Strings("problems", lines))
		} else {
			p.logger.Error("Reloading flow definitions failed; keeping the last good ones", zap.Error(err))
		}
		return fmt.Errorf("reload flow definitions: %w", err)
	}
	idx := newIndex(set, p.counts)
	p.idx.Store(idx)
	p.logger.Debug("Reloaded flow definitions", zap.Int("flows", len(set.Flows)), zap.Int("rules", idx.rules))
	return nil
}

// resourceState is what is read once per resource: the rule buckets of its service and of
// no service, and (lazily) its tenant.
type resourceState struct {
	attrs          pcommon.Map
	buckets        [2]*bucket
	spanRules      bool
	eventRules     bool
	tenant         string
	tenantResolved bool
}

func newResourceState(idx *index, attrs pcommon.Map) resourceState {
	rs := resourceState{attrs: attrs}
	rs.buckets[1] = idx.anyService
	if v, ok := attrs.Get(serviceNameAttr); ok {
		rs.buckets[0] = idx.byService[v.Str()]
	}
	rs.spanRules = rs.buckets[0].hasSpanRules() || rs.buckets[1].hasSpanRules()
	rs.eventRules = rs.buckets[0].hasEventRules() || rs.buckets[1].hasEventRules()
	return rs
}

func (rs *resourceState) tenantOf(attr string) string {
	if !rs.tenantResolved {
		rs.tenantResolved = true
		rs.tenant = model.DefaultTenant
		if v, ok := rs.attrs.Get(attr); ok {
			if s := v.AsString(); s != "" {
				rs.tenant = s
			}
		}
	}
	return rs.tenant
}

// chain looks attributes up on the item, then its parent span (for a span event), then its
// scope, then its resource.
type chain struct{ flowattr.Chain }

func (c *chain) get(k string) (pcommon.Value, bool) { return c.Chain.Get(k) }

// str returns the string form of attribute k; an absent or empty attribute is missing.
func (c *chain) str(k string) (string, bool) {
	v, ok := c.get(k)
	if !ok {
		return "", false
	}
	s := v.AsString()
	return s, s != ""
}

func attrsHold(conds []attrCond, c *chain) bool {
	for i := range conds {
		v, ok := c.get(conds[i].key)
		if !ok || !conds[i].holds(v) {
			return false
		}
	}
	return true
}

// shapeSpanRules appends the rules whose span conditions other than attributes (name
// pattern, kind, status) hold: cheap checks, before any attribute is looked up.
func shapeSpanRules(rules []*rule, span ptrace.Span, hits []*rule) []*rule {
	for _, r := range rules {
		if r.spanGlob != nil && !r.spanGlob.match(span.Name()) {
			continue
		}
		if r.kind != ptrace.SpanKindUnspecified && span.Kind() != r.kind {
			continue
		}
		if !r.anyState && span.Status().Code() != r.status {
			continue
		}
		hits = append(hits, r)
	}
	return hits
}

// keepHolding keeps the rules whose attribute conditions hold, in place.
func keepHolding(rules []*rule, c *chain) []*rule {
	out := rules[:0]
	for _, r := range rules {
		if attrsHold(r.attrs, c) {
			out = append(out, r)
		}
	}
	return out
}

// holder is the span that holds an event: an event checkpoint's kind and status are its. A
// log record has none, so it never matches an event checkpoint that names a kind or status.
type holder struct {
	span   bool
	kind   ptrace.SpanKind
	status ptrace.StatusCode
}

// holds reports whether r's kind and status, if it names them, are the holder's.
func (h holder) holds(r *rule) bool {
	if r.kind == ptrace.SpanKindUnspecified && r.anyState {
		return true
	}
	return h.span && (r.kind == ptrace.SpanKindUnspecified || h.kind == r.kind) && (r.anyState || h.status == r.status)
}

func matchEventRules(rules []*rule, h holder, c *chain, hits []*rule) []*rule {
	for _, r := range rules {
		if h.holds(r) && attrsHold(r.attrs, c) {
			hits = append(hits, r)
		}
	}
	return hits
}

// keyLookup is one key attribute looked up on an error item.
type keyLookup struct {
	attr, value string
	ok          bool
}

// annotate turns the rules an item matched into annotations on dst (the item's attributes)
// and, for an error item, adds an error note for every flow whose key the item carries but
// none of whose checkpoints it matched. It reports whether dst was annotated.
func (p *flowProcessor) annotate(idx *index, rs *resourceState, c *chain, hits []*rule, isError bool, dst pcommon.Map) bool {
	if len(hits) == 0 && (!isError || len(idx.flows) == 0) {
		return false
	}
	var msBuf [4]flowattr.Match
	ms := msBuf[:0]
	var missedBuf [4]*rule
	missed := missedBuf[:0]
	for _, r := range hits {
		if matchedCheckpoint(ms, r) {
			continue // another version's identical checkpoint already matched
		}
		key, ok := c.str(r.keyAttr)
		if !ok {
			missed = append(missed, r)
			continue
		}
		m := flowattr.Match{Flow: r.flow.name, Checkpoint: r.checkpoint, Key: key, KeyAttr: r.keyAttr,
			Tenant: rs.tenantOf(p.cfg.TenantAttribute)}
		for _, a := range r.aliases {
			if v, ok := c.str(a); ok {
				m.Aliases = append(m.Aliases, flowattr.Alias{Attr: a, Value: v})
			}
		}
		for _, k := range r.keep {
			if v, ok := c.str(k.from); ok {
				m.Keep = append(m.Keep, flowattr.Alias{Attr: k.as, Value: v})
			}
		}
		ms = append(ms, m)
		r.counts.matched.Add(1)
	}
	for i, r := range missed {
		if !matchedCheckpoint(ms, r) && !missedBefore(missed[:i], r) {
			r.counts.missingKey.Add(1)
		}
	}
	if isError {
		// Flows mostly share their key attributes: look each one up once per item.
		var seenBuf [8]keyLookup
		seen := seenBuf[:0]
		lookup := func(a string) (string, bool) {
			for _, l := range seen {
				if l.attr == a {
					return l.value, l.ok
				}
			}
			v, ok := c.str(a)
			if len(seen) < cap(seen) {
				seen = append(seen, keyLookup{a, v, ok})
			}
			return v, ok
		}
		for _, fi := range idx.flows {
			if hitFlow(hits, fi) {
				continue
			}
			for _, a := range fi.keyAttrs {
				if key, ok := lookup(a); ok {
					ms = append(ms, flowattr.Match{Flow: fi.name, Key: key, KeyAttr: a, Tenant: rs.tenantOf(p.cfg.TenantAttribute)})
					fi.counts.errorNotes.Add(1)
					break
				}
			}
		}
	}
	if len(ms) == 0 {
		return false
	}
	flowattr.Put(dst, ms)
	return true
}

func matchedCheckpoint(ms []flowattr.Match, r *rule) bool {
	for i := range ms {
		if ms[i].Checkpoint == r.checkpoint && ms[i].Flow == r.flow.name {
			return true
		}
	}
	return false
}

func missedBefore(missed []*rule, r *rule) bool {
	for _, m := range missed {
		if m.flow == r.flow && m.checkpoint == r.checkpoint {
			return true
		}
	}
	return false
}

func hitFlow(hits []*rule, fi *flowInfo) bool {
	for _, r := range hits {
		if r.flow == fi {
			return true
		}
	}
	return false
}

// processSpan matches a span and its events and reports whether anything was annotated.
// It builds nothing for an item that has no candidate rule and is not an error item: that is
// the common case, and it must stay allocation-free and cheap.
func (p *flowProcessor) processSpan(idx *index, rs *resourceState, scope pcommon.Map, span ptrace.Span) bool {
	notes := len(idx.flows) > 0
	annotated := false
	if rs.spanRules || notes {
		var hitBuf [8]*rule
		hits := hitBuf[:0]
		if rs.spanRules {
			name := span.Name()
			for _, b := range rs.buckets {
				if b != nil {
					hits = shapeSpanRules(b.spanByName.get(name), span, hits)
					hits = shapeSpanRules(b.spanOther, span, hits)
				}
			}
		}
		isError := notes && span.Status().Code() == ptrace.StatusCodeError
		if len(hits) > 0 || isError {
			c := chain{flowattr.Chain{Item: span.Attributes(), Scope: scope, Resource: rs.attrs}}
			hits = keepHolding(hits, &c)
			annotated = p.annotate(idx, rs, &c, hits, isError, span.Attributes())
		}
	}
	if !rs.eventRules && !notes {
		return annotated
	}
	events := span.Events()
	held := holder{span: true, kind: span.Kind(), status: span.Status().Code()}
	for e := 0; e < events.Len(); e++ {
		ev := events.At(e)
		name := ev.Name()
		var cands [2][]*rule
		nc := 0
		if rs.eventRules {
			for _, b := range rs.buckets {
				if b != nil {
					if rules := b.eventByName.get(name); len(rules) > 0 {
						cands[nc] = rules
						nc++
					}
				}
			}
		}
		isError := notes && name == exceptionEvent
		if nc == 0 && !isError {
			continue
		}
		var hitBuf [8]*rule
		hits := hitBuf[:0]
		c := chain{flowattr.Chain{Item: ev.Attributes(), Parent: span.Attributes(), HasParent: true, Scope: scope, Resource: rs.attrs}}
		for _, rules := range cands[:nc] {
			hits = matchEventRules(rules, held, &c, hits)
		}
		if p.annotate(idx, rs, &c, hits, isError, ev.Attributes()) {
			annotated = true
		}
	}
	return annotated
}

// processLog matches a log record by its event name and reports whether it was annotated.
func (p *flowProcessor) processLog(idx *index, rs *resourceState, scope pcommon.Map, lr plog.LogRecord) bool {
	isError := lr.SeverityNumber() >= plog.SeverityNumberError && len(idx.flows) > 0
	if !rs.eventRules && !isError {
		return false
	}
	var hitBuf [8]*rule
	hits := hitBuf[:0]
	c := chain{flowattr.Chain{Item: lr.Attributes(), Scope: scope, Resource: rs.attrs}}
	if rs.eventRules {
		name := lr.EventName()
		if name == "" {
			if v, ok := lr.Attributes().Get(eventNameAttr); ok {
				name = v.Str()
			}
		}
		if name != "" {
			for _, b := range rs.buckets {
				if b != nil {
					hits = matchEventRules(b.eventByName.get(name), holder{}, &c, hits)
				}
			}
		}
	}
	return p.annotate(idx, rs, &c, hits, isError, lr.Attributes())
}

func (p *flowProcessor) processTraces(_ context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	idx := p.idx.Load()
	if idx == nil {
		return td, errors.New("flow processor used before it was started")
	}
	drop := p.cfg.DropUnmatched
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rspans := rss.At(i)
		rs := newResourceState(idx, rspans.Resource().Attributes())
		sss := rspans.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			scope := ss.Scope().Attributes()
			spans := ss.Spans()
			if drop {
				spans.RemoveIf(func(s ptrace.Span) bool { return !p.processSpan(idx, &rs, scope, s) })
				continue
			}
			for k := 0; k < spans.Len(); k++ {
				p.processSpan(idx, &rs, scope, spans.At(k))
			}
		}
		if drop {
			sss.RemoveIf(func(ss ptrace.ScopeSpans) bool { return ss.Spans().Len() == 0 })
		}
	}
	if drop {
		rss.RemoveIf(func(rs ptrace.ResourceSpans) bool { return rs.ScopeSpans().Len() == 0 })
		if rss.Len() == 0 {
			return td, processorhelper.ErrSkipProcessingData
		}
	}
	return td, nil
}

func (p *flowProcessor) processLogs(_ context.Context, ld plog.Logs) (plog.Logs, error) {
	idx := p.idx.Load()
	if idx == nil {
		return ld, errors.New("flow processor used before it was started")
	}
	drop := p.cfg.DropUnmatched
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rlogs := rls.At(i)
		rs := newResourceState(idx, rlogs.Resource().Attributes())
		sls := rlogs.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			scope := sl.Scope().Attributes()
			records := sl.LogRecords()
			if drop {
				records.RemoveIf(func(lr plog.LogRecord) bool { return !p.processLog(idx, &rs, scope, lr) })
				continue
			}
			for k := 0; k < records.Len(); k++ {
				p.processLog(idx, &rs, scope, records.At(k))
			}
		}
		if drop {
			sls.RemoveIf(func(sl plog.ScopeLogs) bool { return sl.LogRecords().Len() == 0 })
		}
	}
	if drop {
		rls.RemoveIf(func(rl plog.ResourceLogs) bool { return rl.ScopeLogs().Len() == 0 })
		if rls.Len() == 0 {
			return ld, processorhelper.ErrSkipProcessingData
		}
	}
	return ld, nil
}
