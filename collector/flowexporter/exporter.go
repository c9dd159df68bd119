package flowexporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
	"github.com/flowwatch/flowwatch/storage"
)

// openFunc opens the store; tests replace it to put faults between the exporter and the store.
type openFunc func(ctx context.Context, cfg *Config, logger *zap.Logger) (storage.Store, error)

type flowExporter struct {
	cfg    *Config
	limits limits
	logger *zap.Logger
	open   openFunc
	tel    *metadata.TelemetryBuilder
	// reasonAttrs and fieldAttrs are the attribute sets of the counters, made once.
	reasonAttrs [numRejectReasons]metric.AddOption
	fieldAttrs  [numFields]metric.AddOption

	mu       sync.Mutex
	store    storage.Store
	migrated bool

	// writtenAttrs are the attribute sets of the written-rows counter, by flow and checkpoint,
	// made once each (flows and checkpoints are the definitions', so few).
	writtenMu    sync.Mutex
	writtenAttrs map[[2]string]metric.AddOption
}

func newFlowExporter(set exporter.Settings, cfg *Config) (*flowExporter, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create flow exporter telemetry: %w", err)
	}
	e := &flowExporter{cfg: cfg, limits: limitsOf(cfg), logger: set.Logger, open: openStore, tel: tel}
	for i, r := range rejectReasons {
		e.reasonAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	for i, f := range fieldNames {
		e.fieldAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("field", f)))
	}
	return e, nil
}

// openStore opens the configured store.
func openStore(ctx context.Context, cfg *Config, _ *zap.Logger) (storage.Store, error) {
	o := storage.Options{
		Database:      cfg.Database,
		Cluster:       cfg.Cluster,
		RetentionDays: int(cfg.Retention / day),
		Username:      cfg.Username,
		Password:      string(cfg.Password),
		DialTimeout:   cfg.DialTimeout,
		ReadTimeout:   cfg.ReadTimeout,
	}
	if cfg.Path != "" {
		return storage.OpenEmbedded(ctx, cfg.Path, o)
	}
	// nil when tls.insecure: plaintext.
	tlsConfig, err := cfg.TLS.LoadTLSConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("flow exporter 'tls': %w", err)
	}
	o.TLSConfig = tlsConfig
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
		// The schema step owns the retention (readers never change it): the exporter with
		// create_schema is one, so existing tables take its retention too.
		days := int(e.cfg.Retention / day)
		switch err := e.store.SetRetention(ctx, days); {
		case errors.Is(err, storage.ErrUnsupported):
			e.logger.Warn("flow exporter: the store's tables have no retention (ClickHouse 18.16 legacy tables)", zap.Error(err))
		case err != nil:
			return nil, fmt.Errorf("set flow store retention: %w", err)
		}
		e.migrated = true
		e.logger.Info("flow exporter: schema ready", zap.Int("retention_days", days))
	}
	return e.store, nil
}

func (e *flowExporter) shutdown(context.Context) error {
	e.tel.Shutdown()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		return nil
	}
	err := e.store.Close()
	e.store = nil
	return err
}

// convertTraces makes the request of a traces push: the rows of its annotated items.
func (e *flowExporter) convertTraces(td ptrace.Traces) *rowsRequest {
	return e.convert(func(c *converter) { c.traces(td) })
}

// convertLogs makes the request of a logs push.
func (e *flowExporter) convertLogs(ld plog.Logs) *rowsRequest {
	return e.convert(func(c *converter) { c.logs(ld) })
}

func (e *flowExporter) convert(fill func(*converter)) *rowsRequest {
	req := &rowsRequest{}
	c := newConverter(e.limits, &req.rows)
	fill(c)
	e.record(&c.stats)
	return req
}

// record counts what a conversion rejected, cut and left out, and warns about rejected rows.
func (e *flowExporter) record(st *convStats) {
	if !st.any() {
		return
	}
	ctx := context.Background()
	rejected := int64(0)
	for reason, n := range st.rejected {
		if n > 0 {
			rejected += n
			e.tel.ExporterFlowRejectedRows.Add(ctx, n, e.reasonAttrs[reason])
		}
	}
	for field, n := range st.cut {
		if n > 0 {
			e.tel.ExporterFlowCutValues.Add(ctx, n, e.fieldAttrs[field])
		}
	}
	if st.dropped > 0 {
		e.tel.ExporterFlowDroppedAttributes.Add(ctx, st.dropped)
	}
	if rejected > 0 {
		e.logger.Warn("flow exporter: checkpoint rows rejected; the other rows of the batch are kept",
			zap.Int64("rows", rejected), zap.String("first", st.example))
	}
}

// push writes one request (rows of one or more pushes, batched by the sending queue).
// Store errors are retryable: rows are idempotent.
func (e *flowExporter) push(ctx context.Context, r xexporterhelper.Request) error {
	req, ok := r.(*rowsRequest)
	if !ok {
		return consumererror.NewPermanent(fmt.Errorf("flow exporter: unexpected request %T", r))
	}
	if req.rows.Len() == 0 {
		return nil
	}
	s, err := e.ensureStore(ctx)
	if err != nil {
		return err
	}
	err = s.WriteBatch(ctx, &req.rows)
	if errors.Is(err, storage.ErrInvalid) {
		// Rows are checked when they are made, so this is a bug; retrying cannot help.
		return consumererror.NewPermanent(err)
	}
	if err != nil {
		return err
	}
	e.countWritten(ctx, &req.rows)
	e.logger.Debug("flow exporter: batch written", zap.Int("rows", req.rows.Len()), zap.Int("aliases", req.rows.AliasCount()))
	return nil
}

// maxWrittenAttrs bounds the flow and checkpoint pairs the written-rows counter tells apart;
// past it (more than any set of definitions has), rows count under flow and checkpoint "_other".
const maxWrittenAttrs = 10_000

// countWritten counts a written batch's rows by flow and checkpoint: one Add per pair and
// batch, off the path that receives telemetry (the queue's consumers write batches).
func (e *flowExporter) countWritten(ctx context.Context, b *storage.EventBatch) {
	counts := map[[2]string]int64{}
	for i := 0; i < b.Len(); i++ {
		r := b.Row(i)
		counts[[2]string{r.Flow, r.Checkpoint}]++
	}
	for k, n := range counts {
		e.tel.ExporterFlowWrittenRows.Add(ctx, n, e.writtenAttr(k))
	}
}

func (e *flowExporter) writtenAttr(k [2]string) metric.AddOption {
	e.writtenMu.Lock()
	defer e.writtenMu.Unlock()
	if a, ok := e.writtenAttrs[k]; ok {
		return a
	}
	if e.writtenAttrs == nil {
		e.writtenAttrs = map[[2]string]metric.AddOption{}
	}
	if len(e.writtenAttrs) >= maxWrittenAttrs {
		k = [2]string{"_other", "_other"}
		if a, ok := e.writtenAttrs[k]; ok {
			return a
		}
	}
	// The batch's strings may live in memory the batch reuses: the key keeps copies.
	k = [2]string{strings.Clone(k[0]), strings.Clone(k[1])}
	a := metric.WithAttributeSet(attribute.NewSet(attribute.String("flow", k[0]), attribute.String("checkpoint", k[1])))
	e.writtenAttrs[k] = a
	return a
}
