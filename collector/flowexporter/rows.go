package flowexporter

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/storage"
)

// serviceNameAttr is the resource attribute naming the emitting service.
const serviceNameAttr = "service.name"

// exceptionEvent is the span event name of a recorded error, and exceptionMessageAttr its
// message (OpenTelemetry semantic conventions).
const (
	exceptionEvent       = "exception"
	exceptionMessageAttr = "exception.message"
	eventNameAttr        = "event.name"
)

// limits say what a row keeps of an item, and bound it (see Config).
type limits struct {
	message, value, attributes, key int
	// keep are the names of the attributes a row keeps.
	keep []string
}

func limitsOf(cfg *Config) limits {
	return limits{message: cfg.MaxMessageBytes, value: cfg.MaxValueBytes, attributes: cfg.MaxAttributesBytes, key: cfg.MaxKeyBytes,
		keep: cfg.Attributes}
}

// Why a row is rejected (the reason attribute of the rejected rows metric).
const (
	rejectIncomplete = iota // no tenant, flow or time
	rejectNotUTF8           // an identity is not valid UTF-8
	rejectTooLong           // an identity is longer than max_key_bytes
	numRejectReasons
)

var rejectReasons = [numRejectReasons]string{"incomplete", "invalid_utf8", "too_long"}

// The fields a row keeps whose values may be cut (the field attribute of the cut values metric).
const (
	fieldName = iota
	fieldService
	fieldMessage
	fieldAttribute
	numFields
)

var fieldNames = [numFields]string{"name", "service", "message", "attribute"}

// convStats is what one conversion rejected, cut and left out.
type convStats struct {
	rejected [numRejectReasons]int64
	cut      [numFields]int64
	dropped  int64
	// example is the first rejected row, for the warning.
	example string
}

func (s *convStats) any() bool {
	for _, n := range s.rejected {
		if n > 0 {
			return true
		}
	}
	for _, n := range s.cut {
		if n > 0 {
			return true
		}
	}
	return s.dropped > 0
}

// converter turns the items the flow processor annotated into checkpoint rows: only what a
// row keeps, flattened to strings and bounded. Its strings point into the telemetry or into
// an arena the rows share, so a row costs no allocation of its own. A converter serves one
// push (one request); it is not safe for concurrent use.
type converter struct {
	lim     limits
	rows    *storage.EventBatch
	stats   convStats
	matches []flowattr.Match
	// arena holds the bytes of the strings the converter makes (hex ids, integer values).
	// Only appended to: strings made from it stay valid when it grows into a new array.
	arena []byte
}

func newConverter(lim limits, rows *storage.EventBatch) *converter {
	return &converter{lim: lim, rows: rows}
}

// traces adds the rows of every annotated span and span event of td.
func (c *converter) traces(td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := rs.Resource().Attributes()
		service := c.service(res)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ctx := itemContext{service: service, scope: sss.At(j).Scope().Attributes(), resource: res}
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				c.span(&ctx, spans.At(k))
			}
		}
	}
}

// logs adds the rows of every annotated log record of ld.
func (c *converter) logs(ld plog.Logs) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			var ctx *itemContext // made for the scope's first annotated record
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				if !flowattr.Has(lr.Attributes()) {
					continue
				}
				if ctx == nil {
					ctx = &itemContext{service: c.service(res), scope: sls.At(j).Scope().Attributes(), resource: res}
				}
				c.log(ctx, lr)
			}
		}
	}
}

// service is the resource's service name as rows keep it.
func (c *converter) service(res pcommon.Map) string {
	v, ok := res.Get(serviceNameAttr)
	if !ok {
		return ""
	}
	return c.bounded(c.valueString(v), c.lim.value, fieldService)
}

// itemContext is where an item is: its scope's and resource's attributes and its service.
type itemContext struct {
	service         string
	scope, resource pcommon.Map
}

// chain is where the attributes of an item with attrs in this context are found.
func (ctx *itemContext) chain(attrs pcommon.Map) flowattr.Chain {
	return flowattr.Chain{Item: attrs, Scope: ctx.scope, Resource: ctx.resource}
}

// span adds the rows of a span (checkpoint time: its end) and of its span events (their
// own times).
func (c *converter) span(ctx *itemContext, span ptrace.Span) {
	var ids string // hex trace id then span id, made for the first row
	if flowattr.Has(span.Attributes()) {
		ids = c.ids(span.TraceID(), span.SpanID())
		c.item(item{service: ctx.service, attrs: ctx.chain(span.Attributes()), time: span.EndTimestamp(), ids: ids,
			traceEmpty: span.TraceID().IsEmpty(), name: span.Name(), status: statusString(span.Status().Code()), message: span.Status().Message()})
	}
	events := span.Events()
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		if !flowattr.Has(ev.Attributes()) {
			continue
		}
		if ids == "" {
			ids = c.ids(span.TraceID(), span.SpanID())
		}
		chain := ctx.chain(ev.Attributes())
		chain.Parent, chain.HasParent = span.Attributes(), true
		it := item{service: ctx.service, attrs: chain, time: ev.Timestamp(), ids: ids, traceEmpty: span.TraceID().IsEmpty(),
			name: ev.Name(), status: "unset"}
		if ev.Name() == exceptionEvent {
			it.status = "error"
			if v, ok := ev.Attributes().Get(exceptionMessageAttr); ok {
				it.message = c.valueString(v)
			}
		}
		c.item(it)
	}
}

// log adds the rows of a log record (its own time; the observed time when it has none).
func (c *converter) log(ctx *itemContext, lr plog.LogRecord) {
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	name := lr.EventName()
	if name == "" {
		if v, ok := lr.Attributes().Get(eventNameAttr); ok {
			name = c.valueString(v)
		}
	}
	it := item{service: ctx.service, attrs: ctx.chain(lr.Attributes()), time: ts, ids: c.ids(lr.TraceID(), lr.SpanID()),
		traceEmpty: lr.TraceID().IsEmpty(), name: name, status: "unset"}
	if lr.SeverityNumber() >= plog.SeverityNumberError {
		it.status = "error"
		it.message = lr.Body().AsString()
	}
	c.item(it)
}

// item is one annotated span, span event or log record.
type item struct {
	service string
	// attrs finds the item's attributes where the flow processor finds them.
	attrs flowattr.Chain
	time  pcommon.Timestamp
	// ids is the hex trace id followed by the hex span id, either possibly empty; traceEmpty
	// tells which.
	ids                   string
	traceEmpty            bool
	name, status, message string
}

func (it *item) traceSpan() (traceID, spanID string) {
	if it.traceEmpty {
		return "", it.ids
	}
	return it.ids[:32], it.ids[32:]
}

// item adds one row per match of the item's annotation, with the attributes rows keep and
// the match's aliases. A match whose identities cannot be stored is rejected alone.
func (c *converter) item(it item) {
	c.matches = flowattr.Get(it.attrs.Item, c.matches[:0])
	traceID, spanID := it.traceSpan()
	first, kept := -1, 0 // kept: how many attributes of the first row Config.Attributes gave
	var name, message string
	for i := range c.matches {
		m := &c.matches[i]
		r := c.rows.AddRow()
		r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr = m.Tenant, m.Flow, m.Checkpoint, m.Key, m.KeyAttr
		r.Time, r.TraceID, r.SpanID, r.Service, r.Status = int64(it.time), traceID, spanID, it.service, it.status
		if m.Key != "" {
			for _, a := range m.Aliases {
				if a.Attr != "" {
					c.rows.AddAlias(a.Attr, a.Value)
				}
			}
		}
		if reason, bad := c.reject(c.rows.Len() - 1); bad {
			c.rows.DropLast()
			c.stats.rejected[reason]++
			if c.stats.example == "" {
				c.stats.example = m.Flow + "/" + m.Checkpoint + " key of " + strconv.Itoa(len(m.Key)) + " bytes: " + rejectReasons[reason]
			}
			continue
		}
		if first < 0 {
			name = c.bounded(it.name, c.lim.value, fieldName)
			message = c.bounded(it.message, c.lim.message, fieldMessage)
		}
		r = c.rows.Row(c.rows.Len() - 1)
		r.Name, r.Message = name, message
		r.ID = storage.EventIDValue(r.Tenant, r.Flow, r.Checkpoint, r.Key, traceID, spanID, r.Time, name)
		if first < 0 {
			first = c.rows.Len() - 1
			c.attributes(&it)
			kept = len(c.rows.Attributes(first))
		} else {
			for _, a := range c.rows.Attributes(first)[:kept] {
				c.rows.AddAttribute(a.Key, a.Value)
			}
		}
		c.keep(m.Keep)
	}
}

// keep adds to the last row the attributes its match keeps for the flow's judgement (a
// child's parent key, a parent's expected count of children). They are identities, never cut:
// one longer than max_key_bytes, or not valid UTF-8, is left out and counted.
func (c *converter) keep(attrs []flowattr.Alias) {
	for _, a := range attrs {
		if a.Attr == "" || len(a.Attr) > c.lim.key || len(a.Value) > c.lim.key || !storage.ValidUTF8(a.Attr) || !storage.ValidUTF8(a.Value) {
			c.stats.dropped++
			continue
		}
		c.rows.AddAttribute(a.Attr, a.Value)
	}
}

// reject tells whether row i (and its aliases) cannot be stored, and why: an identity longer
// than max_key_bytes, or what storage.CheckRow refuses.
func (c *converter) reject(i int) (int, bool) {
	r, aliases := c.rows.Row(i), c.rows.Aliases(i)
	for _, s := range [...]string{r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr} {
		if len(s) > c.lim.key {
			return rejectTooLong, true
		}
	}
	for _, a := range aliases {
		if len(a.Key) > c.lim.key || len(a.Value) > c.lim.key {
			return rejectTooLong, true
		}
	}
	switch err := storage.CheckRow(r, aliases); {
	case err == nil:
		return 0, false
	case errors.Is(err, storage.ErrNotUTF8):
		return rejectNotUTF8, true
	default:
		return rejectIncomplete, true
	}
}

// attributes adds to the last row the attributes rows keep (Config.Attributes) that the item
// has, as strings: maps and slices as their JSON, bytes as base64. A value is cut to
// max_value_bytes; the attributes past max_attributes_bytes are left out.
func (c *converter) attributes(it *item) {
	budget := c.lim.attributes
	for _, k := range c.lim.keep {
		v, ok := it.attrs.Get(k)
		if !ok {
			continue
		}
		if len(k) >= budget {
			c.stats.dropped++
			continue
		}
		s := c.bounded(c.valueString(v), min(c.lim.value, budget-len(k)), fieldAttribute)
		budget -= len(k) + len(s)
		c.rows.AddAttribute(k, s)
	}
}

// valueString is a value's string form: a string is the telemetry's own, an integer is made
// in the arena, other types are pdata's string form of them.
func (c *converter) valueString(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeInt:
		n := len(c.arena)
		c.arena = strconv.AppendInt(c.arena, v.Int(), 10)
		return c.made(n)
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return "true"
		}
		return "false"
	default:
		return v.AsString()
	}
}

// bounded is s cut to at most n bytes on a rune boundary, with invalid UTF-8 replaced by
// U+FFFD; a change is counted against field.
func (c *converter) bounded(s string, n int, field int) string {
	if len(s) <= n && storage.ValidUTF8(s) {
		return s
	}
	c.stats.cut[field]++
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		for len(s) > n { // the replacement may be longer than the bytes it replaced
			_, size := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-size]
		}
	}
	return s
}

// ids returns the hex trace id followed by the hex span id (each empty when the id is),
// made in the arena.
func (c *converter) ids(tid pcommon.TraceID, sid pcommon.SpanID) string {
	n := len(c.arena)
	if !tid.IsEmpty() {
		c.arena = hex.AppendEncode(c.arena, tid[:])
	}
	if !sid.IsEmpty() {
		c.arena = hex.AppendEncode(c.arena, sid[:])
	}
	return c.made(n)
}

// made returns the arena's bytes from n on as a string. They are never written again: the
// arena is only appended to, and a grown arena is a new array.
func (c *converter) made(n int) string {
	if len(c.arena) == n {
		return ""
	}
	return unsafe.String(&c.arena[n], len(c.arena)-n)
}

func statusString(code ptrace.StatusCode) string {
	switch code {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	default:
		return "unset"
	}
}
