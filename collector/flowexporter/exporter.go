package flowexporter

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

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

// openFunc opens the store; tests replace it to put faults between the exporter and the store.
type openFunc func(ctx context.Context, cfg *Config, logger *zap.Logger) (storage.Store, error)

type flowExporter struct {
	cfg    *Config
	logger *zap.Logger
	open   openFunc

	mu       sync.Mutex
	store    storage.Store
	migrated bool
}

func newFlowExporter(set exporter.Settings, cfg *Config) *flowExporter {
	return &flowExporter{cfg: cfg, logger: set.Logger, open: openStore}
}

// openStore opens the configured store.
func openStore(ctx context.Context, cfg *Config, logger *zap.Logger) (storage.Store, error) {
	o := storage.Options{
		Database:           cfg.Database,
		Cluster:            cfg.Cluster,
		RetentionDays:      int(cfg.Retention / day),
		Username:           cfg.Username,
		Password:           string(cfg.Password),
		TLS:                cfg.TLS,
		CAFile:             cfg.CAFile,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		DialTimeout:        cfg.DialTimeout,
		ReadTimeout:        cfg.ReadTimeout,
	}
	if cfg.Path != "" {
		return storage.OpenEmbedded(ctx, cfg.Path, o)
	}
	return storage.OpenServer(ctx, cfg.Endpoint, o)
}

// start opens the store and applies the schema. The embedded store must open (a missing
// library is a configuration error); a server that is down at start is retried on each push,
// so a collector can start before its database.
func (e *flowExporter) start(ctx context.Context, _ component.Host) error {
	_, err := e.ensureStore(ctx)
	if err == nil {
		return nil
	}
	if e.cfg.Path != "" {
		return err
	}
	e.logger.Warn("flow exporter: store not reachable at start; will retry on each batch",
		zap.String("endpoint", redact(e.cfg.Endpoint)), zap.Error(err))
	return nil
}

func (e *flowExporter) ensureStore(ctx context.Context) (storage.Store, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		s, err := e.open(ctx, e.cfg, e.logger)
		if err != nil {
			return nil, fmt.Errorf("open flow store: %w", err)
		}
		e.store = s
	}
	if e.cfg.CreateSchema && !e.migrated {
		if err := e.store.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("create flow schema: %w", err)
		}
		e.migrated = true
		e.logger.Info("flow exporter: schema ready")
	}
	return e.store, nil
}

func (e *flowExporter) shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		return nil
	}
	err := e.store.Close()
	e.store = nil
	return err
}

// batch is the rows of one push.
type batch struct {
	events  []storage.CheckpointEvent
	aliases []storage.Alias
	matches []flowattr.Match
	dropped int
}

func (e *flowExporter) pushTraces(ctx context.Context, td ptrace.Traces) error {
	var b batch
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		service := stringAttr(rs.Resource().Attributes(), serviceNameAttr)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				b.addSpan(service, spans.At(k), e.cfg.MaxMessageBytes)
			}
		}
	}
	return e.write(ctx, &b)
}

func (e *flowExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	var b batch
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		service := stringAttr(rl.Resource().Attributes(), serviceNameAttr)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				b.addLog(service, lrs.At(k), e.cfg.MaxMessageBytes)
			}
		}
	}
	return e.write(ctx, &b)
}

// write sends the push's rows as one batch per table: aliases first, so that a reader of new
// events can already resolve them. Store errors are retryable (rows are idempotent).
func (e *flowExporter) write(ctx context.Context, b *batch) error {
	if b.dropped > 0 {
		e.logger.Debug("flow exporter: annotated items without tenant or flow dropped", zap.Int("items", b.dropped))
	}
	if len(b.events) == 0 && len(b.aliases) == 0 {
		return nil
	}
	s, err := e.ensureStore(ctx)
	if err != nil {
		return err
	}
	err = s.WriteAliases(ctx, b.aliases)
	if err == nil {
		err = s.WriteEvents(ctx, b.events)
	}
	if errors.Is(err, storage.ErrInvalid) {
		// Retrying cannot help; the queue must move on.
		return consumererror.NewPermanent(err)
	}
	if err != nil {
		return err
	}
	e.logger.Debug("flow exporter: batch written", zap.Int("events", len(b.events)), zap.Int("aliases", len(b.aliases)))
	return nil
}

// addSpan adds the rows of a span (checkpoint time: its end) and of its span events
// (their own times).
func (b *batch) addSpan(service string, span ptrace.Span, maxMsg int) {
	// Most spans that reach the exporter carry no annotation (a pass-through pipeline, or
	// drop_unmatched off): encode the ids only for a span that has a row.
	var traceID, spanID string
	ids := func() {
		if traceID == "" {
			traceID, spanID = idsHex(span.TraceID(), span.SpanID())
		}
	}
	if flowattr.Has(span.Attributes()) {
		ids()
		status := statusString(span.Status().Code())
		b.matches = flowattr.Get(span.Attributes(), b.matches[:0])
		b.add(item{
			attrs: span.Attributes(), time: span.EndTimestamp(), traceID: traceID, spanID: spanID,
			service: service, name: span.Name(), status: status, message: truncate(span.Status().Message(), maxMsg),
		})
	}
	events := span.Events()
	for i := 0; i < events.Len(); i++ {
		ev := events.At(i)
		if !flowattr.Has(ev.Attributes()) {
			continue
		}
		b.matches = flowattr.Get(ev.Attributes(), b.matches[:0])
		ids()
		it := item{attrs: ev.Attributes(), time: ev.Timestamp(), traceID: traceID, spanID: spanID,
			service: service, name: ev.Name(), status: "unset"}
		if ev.Name() == exceptionEvent {
			it.status = "error"
			it.message = truncate(stringAttr(ev.Attributes(), exceptionMessageAttr), maxMsg)
		}
		b.add(it)
	}
}

// addLog adds the rows of a log record (its own time; the observed time when it has none).
func (b *batch) addLog(service string, lr plog.LogRecord, maxMsg int) {
	if !flowattr.Has(lr.Attributes()) {
		return
	}
	b.matches = flowattr.Get(lr.Attributes(), b.matches[:0])
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	name := lr.EventName()
	if name == "" {
		name = stringAttr(lr.Attributes(), eventNameAttr)
	}
	status := "unset"
	msg := ""
	if lr.SeverityNumber() >= plog.SeverityNumberError {
		status = "error"
		msg = truncate(lr.Body().AsString(), maxMsg)
	}
	traceID, spanID := idsHex(lr.TraceID(), lr.SpanID())
	b.add(item{attrs: lr.Attributes(), time: ts, traceID: traceID, spanID: spanID,
		service: service, name: name, status: status, message: msg})
}

// item is one annotated span, span event or log record.
type item struct {
	attrs                                           pcommon.Map
	time                                            pcommon.Timestamp
	traceID, spanID, service, name, status, message string
}

// add appends one row per match of the current item (b.matches), and its alias rows.
func (b *batch) add(it item) {
	t := it.time.AsTime()
	var attrs map[string]string
	for i := range b.matches {
		m := &b.matches[i]
		if m.Tenant == "" || m.Flow == "" {
			b.dropped++
			continue
		}
		if attrs == nil {
			attrs = ownAttributes(it.attrs)
		}
		b.events = append(b.events, storage.CheckpointEvent{
			EventID:    storage.EventID(m.Tenant, m.Flow, m.Checkpoint, m.Key, it.traceID, it.spanID, int64(it.time), it.name),
			Tenant:     m.Tenant,
			Flow:       m.Flow,
			Checkpoint: m.Checkpoint,
			Key:        m.Key,
			KeyAttr:    m.KeyAttr,
			Time:       t,
			TraceID:    it.traceID,
			SpanID:     it.spanID,
			Service:    it.service,
			Name:       it.name,
			Status:     it.status,
			Message:    it.message,
			Attributes: attrs,
		})
		for _, a := range m.Aliases {
			if a.Attr == "" || m.Key == "" {
				continue
			}
			b.aliases = append(b.aliases, storage.Alias{Tenant: m.Tenant, Flow: m.Flow, Attr: a.Attr, Value: a.Value, Key: m.Key, Time: t})
		}
	}
}

// ownAttributes copies the item's attributes as strings, without the flow annotation.
func ownAttributes(m pcommon.Map) map[string]string {
	n := 0
	for k := range m.All() {
		if !flowattr.IsAnnotation(k) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make(map[string]string, n)
	for k, v := range m.All() {
		if flowattr.IsAnnotation(k) {
			continue
		}
		if v.Type() == pcommon.ValueTypeStr {
			out[k] = v.Str()
		} else {
			out[k] = v.AsString()
		}
	}
	return out
}

func stringAttr(m pcommon.Map, name string) string {
	if v, ok := m.Get(name); ok {
		if v.Type() == pcommon.ValueTypeStr {
			return v.Str()
		}
		return v.AsString()
	}
	return ""
}

func statusString(c ptrace.StatusCode) string {
	switch c {
	case ptrace.StatusCodeOk:
		return "ok"
	case ptrace.StatusCodeError:
		return "error"
	default:
		return "unset"
	}
}

// idsHex returns the hex forms of a trace and a span id ("" for an empty id), with one
// allocation for both.
func idsHex(tid pcommon.TraceID, sid pcommon.SpanID) (traceID, spanID string) {
	var buf [48]byte
	n := 0
	if !tid.IsEmpty() {
		hex.Encode(buf[:32], tid[:])
		n = 32
	}
	if !sid.IsEmpty() {
		hex.Encode(buf[n:n+16], sid[:])
		n += 16
	}
	if n == 0 {
		return "", ""
	}
	s := string(buf[:n])
	switch {
	case tid.IsEmpty():
		return "", s
	case sid.IsEmpty():
		return s, ""
	default:
		return s[:32], s[32:]
	}
}

// truncate cuts s to at most n bytes on a rune boundary (n 0: no limit).
func truncate(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
