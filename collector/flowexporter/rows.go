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

// limits bound what a row keeps of an item (see Config).
type limits struct {
	message, value, attributes, key int
}

func limitsOf(cfg *Config) limits {
	return limits{message: cfg.MaxMessageBytes, value: cfg.MaxValueBytes, attributes: cfg.MaxAttributesBytes, key: cfg.MaxKeyBytes}
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
	// arena holds the bytes of the strings the converter makes (hex ids, non-string
	// attribute values, repaired values). Only appended to: strings made from it stay valid
	// when it grows into a new array.
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
		service := c.service(rs.Resource().Attributes())
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				c.span(service, spans.At(k))
			}
		}
	}
}

// logs adds the rows of every annotated log record of ld.
func (c *converter) logs(ld plog.Logs) {
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		service, resolved := "", false
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				if !flowattr.Has(lr.Attributes()) {
					continue
				}
				if !resolved {
					service, resolved = c.service(rl.Resource().Attributes()), true
				}
				c.log(service, lr)
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

// span adds the rows of a span (checkpoint time: its end) and of its span events (their
// own times).
func (c *converter) span(service string, span ptrace.Span) {
	var ids string // hex trace id then span id, made for the first row
	if flowattr.Has(span.Attributes()) {
		ids = c.ids(span.TraceID(), span.SpanID())
		c.item(item{attrs: span.Attributes(), time: span.EndTimestamp(), ids: ids, traceEmpty: span.TraceID().IsEmpty(),
			service: service, name: span.Name(), status: statusString(span.Status().Code()), message: span.Status().Message()})
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
		it := item{attrs: ev.Attributes(), time: ev.Timestamp(), ids: ids, traceEmpty: span.TraceID().IsEmpty(),
			service: service, name: ev.Name(), status: "unset"}
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
func (c *converter) log(service string, lr plog.LogRecord) {
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
	it := item{attrs: lr.Attributes(), time: ts, ids: c.ids(lr.TraceID(), lr.SpanID()), traceEmpty: lr.TraceID().IsEmpty(),
		service: service, name: name, status: "unset"}
	if lr.SeverityNumber() >= plog.SeverityNumberError {
		it.status = "error"
		it.message = lr.Body().AsString()
	}
	c.item(it)
}

// item is one annotated span, span event or log record.
type item struct {
	attrs pcommon.Map
	time  pcommon.Timestamp
	// ids is the hex trace id followed by the hex span id, either possibly empty; traceEmpty
	// tells which.
	ids                            string
	traceEmpty                     bool
	service, name, status, message string
}

func (it *item) traceSpan() (traceID, spanID string) {
	if it.traceEmpty {
		return "", it.ids
	}
	return it.ids[:32], it.ids[32:]
}

// item adds one row per match of the item's annotation, with the item's attributes and the
// match's aliases. A match whose identities cannot be stored is rejected alone.
func (c *converter) item(it item) {
	c.matches = flowattr.Get(it.attrs, c.matches[:0])
	traceID, spanID := it.traceSpan()
	first := -1
	var name, message string
	for i := range c.matches {
		m := &c.matches[i]
		row := storage.EventRow{Tenant: m.Tenant, Flow: m.Flow, Checkpoint: m.Checkpoint, Key: m.Key, KeyAttr: m.KeyAttr,
			Time: int64(it.time), TraceID: traceID, SpanID: spanID, Service: it.service, Status: it.status}
		if reason, bad := c.reject(&row, m.Aliases); bad {
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
		row.Name, row.Message = name, message
		row.ID = storage.EventIDValue(row.Tenant, row.Flow, row.Checkpoint, row.Key, traceID, spanID, row.Time, name)
		c.rows.Add(row)
		if first < 0 {
			first = c.rows.Len() - 1
			c.attributes(it.attrs)
		} else {
			c.rows.CopyAttributes(first)
		}
		for _, a := range m.Aliases {
			if a.Attr != "" && m.Key != "" {
				c.rows.AddAlias(a.Attr, a.Value)
			}
		}
	}
}

// reject tells whether a row (and its aliases) cannot be stored, and why.
func (c *converter) reject(r *storage.EventRow, aliases []flowattr.Alias) (int, bool) {
	for _, s := range [...]string{r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr} {
		if len(s) > c.lim.key {
			return rejectTooLong, true
		}
	}
	for _, a := range aliases {
		if len(a.Attr) > c.lim.key || len(a.Value) > c.lim.key {
			return rejectTooLong, true
		}
	}
	var buf [4]storage.Attr
	as := buf[:0]
	for _, a := range aliases {
		as = append(as, storage.Attr{Key: a.Attr, Value: a.Value})
	}
	switch err := storage.CheckRow(r, as); {
	case err == nil:
		return 0, false
	case errors.Is(err, storage.ErrNotUTF8):
		return rejectNotUTF8, true
	default:
		return rejectIncomplete, true
	}
}

// attributes adds the item's own attributes (not the annotation) to the last row, as
// strings: maps and slices as their JSON, bytes as base64. A value is cut to max_value_bytes;
// an attribute whose name is longer is left out, and so are those past max_attributes_bytes.
func (c *converter) attributes(m pcommon.Map) {
	budget := c.lim.attributes
	for k, v := range m.All() {
		if flowattr.IsAnnotation(k) {
			continue
		}
		if len(k) > c.lim.value || len(k) >= budget || !storage.ValidUTF8(k) {
			c.stats.dropped++
			continue
		}
		s := c.bounded(c.valueString(v), min(c.lim.value, budget-len(k)), fieldAttribute)
		budget -= len(k) + len(s)
		c.rows.AddAttribute(k, s)
	}
}

// valueString is a value's string form; a string is the telemetry's own, other types are
// made in the arena.
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
