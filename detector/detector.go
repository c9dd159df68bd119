// Package detector finds stuck flow instances, explains them, alerts and sends unblock
// commands. It reads new checkpoint rows from the store incrementally (a cursor on ingest time
// with an overlap window, dedup by event_id), keeps open instances in memory in a compact form
// with a deadline heap (a tick costs O(new events + expired deadlines), never a scan of all
// open instances), writes each instance's current state back to the store, and records every
// alert and command in the store's audit tables.
//
// One goroutine owns the detector's state (the one that calls Start, Tick and Run). It never
// waits on one instance's I/O: instances that go stuck together are explained from batched
// reads by a reader worker, and alerts and commands go through one worker per notifier and per
// sink with a bounded queue each; their results come back to the owner. A slow or dead receiver
// delays nobody else, and a stuck instance is written within one tick of its deadline however
// many others are being explained.
//
// It owns no SQL (storage/ does), no flow semantics (model/ decides status and deadlines) and
// no stored document format (flowstate/ does); it owns time, delivery and memory.
package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Store is what the detector needs of storage.
type Store interface {
	storage.Reader
	storage.Writer
}

// Defaults of Config.
const (
	DefaultOverlap       = 30 * time.Second
	DefaultReadLimit     = 100000
	DefaultRebuildWindow = 14 * 24 * time.Hour
	DefaultMaxOpen       = 5_000_000
	DefaultResend        = time.Minute
	DefaultClosedMemory  = time.Hour
	DefaultReadBatch     = 1000
	DefaultExplainWait   = 3 * time.Second
	DefaultSinkQueue     = 1024
	DefaultAlertBatch    = 500
	// DefaultSource is the CloudEvents source of commands.
	DefaultSource = "flowwatch/detector"
	// AliasWait is how long an event keyed by an alias waits for its alias row.
	AliasWait = 10 * time.Minute
	// maxUnresolved bounds the events waiting for an alias row.
	maxUnresolved = 100_000
)

// Config configures a Detector. Flows, Store and Now are required.
type Config struct {
	// Flows returns the current flow definitions.
	Flows func() *model.Set
	Store Store
	// Now is the clock; deadlines are judged against it.
	Now func() time.Time
	// Shard and Shards: this detector owns the instances with ShardOf(...) == Shard.
	Shard, Shards int
	// Overlap is how far back each read looks behind the cursor, to catch rows that another
	// collector wrote late with an older ingest time.
	Overlap time.Duration
	// ReadLimit bounds the rows of one read.
	ReadLimit int
	// RebuildWindow is how far back Start reads events to rebuild open instances, and how long
	// an instance with nothing left to wait for is kept without events. Zero derives it from the
	// flows: twice the longest horizon (model.Flow.Horizon) plus an hour, at most
	// DefaultRebuildWindow.
	RebuildWindow time.Duration
	// MaxOpen bounds the open instances kept in memory. Past it, new instances are not tracked:
	// they are counted (flowwatch_detector_instances_rejected_total) and logged.
	MaxOpen int
	// ClosedMemory is how long a completed or failed instance is remembered, so that a late
	// duplicate of its start event does not open it again.
	ClosedMemory time.Duration
	// ReadBatch bounds the instances of one read-back query (explaining stuck instances,
	// checking instances first seen in the middle).
	ReadBatch int
	// ExplainWait is how long a newly stuck instance waits for its explanation (last error,
	// trace IDs) before its alerts and actions go out with what the detector holds.
	ExplainWait time.Duration
	// SinkQueue bounds each sink's queue of commands waiting for delivery; past it, an attempt
	// waits in its action for the next try (counted).
	SinkQueue int
	Alerting  AlertConfig
	// Sinks receive unblock commands, by the name flow files use in on_stuck.
	Sinks []SinkConfig
	// Source is the CloudEvents source of commands (default DefaultSource). It is the same on
	// every shard, so that (source, id) names a command however many shards run.
	Source  string
	Logger  *slog.Logger
	Metrics *Metrics
}

// Detector is one shard's detector. Start, Tick, Run, Settle and Flush belong to one goroutine,
// the owner of the detector's state; Stats and Ready may be called from any goroutine. Close
// stops its workers.
type Detector struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	fams    families
	open    instTable
	heap    deadlineHeap
	closed  map[string]int64 // instance id → when it closed (unix ns)
	closedQ timedQueue       // the same, in closing order, for pruning
	stuckN  int              // open instances that are stuck
	// compensatingN counts the open instances compensating (failed, compensations pending).
	compensatingN int
	// fam is what families (sub-flows) and sagas (compensations) need beyond one instance.
	fam familyState

	cur        cursor
	aliases    map[string]string // tenant\x00flow\x00attr\x00value → key
	unresolved []storage.CheckpointEvent

	// recorded are the commands of open instances recorded in the store (loaded on start, or
	// sent before their checkpoint stopped being overdue), by instance id, so that no attempt
	// is sent twice.
	recorded map[string][]storage.CommandRecord

	reads  readQueue
	reader *reader
	vers   versions

	alerts    map[string]*alertState
	notifiers []*notifierWorker
	sinks     map[string]*sinkWorker
	results   chan result
	inflight  int // work handed to workers whose result has not been applied
	// readsInflight counts the read-back requests among them.
	readsInflight int
	// alertsChanged says an alert started, changed or resolved since the last dispatch.
	alertsChanged bool
	// countsAt is when the store was last asked for the grouped alerts' sizes.
	countsAt       time.Time
	countsInflight bool
	stopWork       context.CancelFunc
	workers        sync.WaitGroup

	states   map[string]storage.InstanceState // pending writes, latest wins
	rowBuf   []storage.InstanceState
	lags     []time.Duration // deadline → stuck state, pending the write
	alertRec []storage.AlertRecord
	cmdRec   []storage.CommandRecord
	// reachRows are the rows recording children checkpoints reached (recordReach), pending
	// the write.
	reachRows []storage.CheckpointEvent
	// firstBuf holds an instance's first-reached times while judge judges it (judge is not
	// reentered, and nothing keeps them): model.Flow.Judge lets them escape, so a buffer on
	// the stack would be a heap allocation a judgement.
	firstBuf []time.Time

	// live is set once Start has rebuilt the state (the owner's copy of ready).
	live bool

	mu    sync.Mutex
	stats Stats
	ready bool
}

// Stats is a snapshot of the detector's counters.
type Stats struct {
	Open, Running, Stuck, Compensating int
	Completed, Failed                  uint64
	// Compensated and Cancelled count the instances closed so (Failed: failed, nothing to
	// compensate).
	Compensated, Cancelled    uint64
	AlertsSent, AlertsFailed  uint64
	CommandsSent, CommandsErr uint64
	Cursor                    time.Time
}

// New builds a Detector and starts its workers. Call Start before Tick, and Close when done.
func New(cfg Config) (*Detector, error) {
	var errs []error
	if cfg.Flows == nil {
		errs = append(errs, errors.New("detector: Flows is required"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("detector: Store is required"))
	}
	if cfg.Shards < 0 || (cfg.Shards > 0 && (cfg.Shard < 0 || cfg.Shard >= cfg.Shards)) {
		errs = append(errs, fmt.Errorf("detector: shard %d of %d is out of range", cfg.Shard, cfg.Shards))
	}
	for _, s := range cfg.Sinks {
		if s.Sink == nil {
			errs = append(errs, errors.New("detector: a sink configuration has no sink"))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.setDefaults()
	d := &Detector{
		cfg: cfg, log: cfg.Logger, m: cfg.Metrics,
		closed:   map[string]int64{},
		fam:      newFamilyState(),
		aliases:  map[string]string{},
		recorded: map[string][]storage.CommandRecord{},
		alerts:   map[string]*alertState{},
		sinks:    map[string]*sinkWorker{},
		states:   map[string]storage.InstanceState{},
		cur:      cursor{seen: map[string]int64{}, perSec: map[int64]uint32{}},
		reads:    readQueue{pending: map[string]readPurpose{}},
	}
	// Every result a worker can hold back fits: workers never block on a busy owner for long.
	d.results = make(chan result, 2*cfg.SinkQueue*max(1, len(cfg.Sinks))+len(cfg.Alerting.Notifiers)+readChunks+16)
	ctx, cancel := context.WithCancel(context.Background())
	d.stopWork = cancel
	d.reader = d.startReader(ctx)
	for i, n := range cfg.Alerting.Notifiers {
		d.notifiers = append(d.notifiers, d.startNotifier(ctx, i, n))
	}
	for _, s := range cfg.Sinks {
		d.sinks[s.Sink.Name()] = d.startSink(ctx, s)
	}
	return d, nil
}

func (cfg *Config) setDefaults() {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	if cfg.Overlap <= 0 {
		cfg.Overlap = DefaultOverlap
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = DefaultReadLimit
	}
	if cfg.RebuildWindow <= 0 {
		cfg.RebuildWindow = autoRebuildWindow(cfg.Flows())
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	if cfg.ClosedMemory <= 0 {
		cfg.ClosedMemory = DefaultClosedMemory
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = DefaultReadBatch
	}
	if cfg.ExplainWait <= 0 {
		cfg.ExplainWait = DefaultExplainWait
	}
	if cfg.SinkQueue <= 0 {
		cfg.SinkQueue = DefaultSinkQueue
	}
	if cfg.Alerting.Resend <= 0 {
		cfg.Alerting.Resend = DefaultResend
	}
	if cfg.Alerting.ResolvedResends <= 0 {
		cfg.Alerting.ResolvedResends = 3
	}
	if cfg.Alerting.Batch <= 0 {
		cfg.Alerting.Batch = DefaultAlertBatch
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
}

// autoRebuildWindow is twice the longest flow horizon plus an hour, at most
// DefaultRebuildWindow: long enough to see every instance that can still become stuck.
func autoRebuildWindow(set *model.Set) time.Duration {
	var h time.Duration
	if set != nil {
		for _, f := range set.Flows {
			h = max(h, f.Horizon())
		}
	}
	return min(2*h+time.Hour, DefaultRebuildWindow)
}

// Close stops the workers: deliveries in flight are abandoned (a command whose intent was
// recorded is not sent again after a restart). Call it after the last Flush.
func (d *Detector) Close() {
	d.stopWork()
	d.workers.Wait()
}

// Ready reports whether Start has rebuilt the state.
func (d *Detector) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// Stats returns a snapshot of the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Start rebuilds this shard's open instances from the store: the commands recorded in the
// rebuild window (so none is sent twice), every event of the window, and the instances stored
// as stuck, whatever their age (an instance stays stuck until something true changes). It
// returns once every open instance is judged; on an error the cursor has not moved and Start
// may be called again.
func (d *Detector) Start(ctx context.Context) error {
	now := d.cfg.Now()
	since := now.Add(-d.cfg.RebuildWindow)
	if err := d.loadVersions(ctx); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := d.loadCommands(ctx, since); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if d.cur.at.IsZero() {
		d.cur.at = since
	}
	if err := d.Tick(ctx); err != nil {
		if errors.Is(err, errReadEvents) {
			return fmt.Errorf("rebuild: %w", err) // the cursor did not move: retry Start
		}
		d.log.Warn("rebuild: some writes will be retried on the next tick", "err", err)
	}
	if err := d.restoreStuck(ctx); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := d.settleReads(ctx); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	d.forgetClosedCommands()
	d.updateStats()
	d.live = true
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	d.log.Info("detector rebuilt", "shard", d.cfg.Shard, "shards", d.cfg.Shards, "open", d.open.len(),
		"stuck", d.stuckN, "rebuild_window", d.cfg.RebuildWindow)
	return nil
}

// Run ticks every interval until ctx ends, and applies the workers' results as they come.
// Errors of a tick are logged and retried on the next one: nothing read is lost, since the
// cursor only moves after a successful read.
func (d *Detector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("detector tick failed; retrying next tick", "err", err)
			}
		case r := <-d.results:
			d.apply(r)
		}
	}
}

// Tick reads new events, applies them, judges what expired, hands read-backs, alerts and
// commands to the workers, and writes states and audit records.
func (d *Detector) Tick(ctx context.Context) error {
	start := time.Now()
	defer func() { d.m.tickSeconds.Observe(time.Since(start).Seconds()) }()
	d.drain()
	now := d.cfg.Now()
	d.flows() // new definitions are noticed (their first load recorded) every tick
	var errs []error
	if err := d.read(ctx, func(events []storage.CheckpointEvent) { d.ingest(ctx, events, now) }); err != nil {
		errs = append(errs, err)
	}
	if len(d.unresolved) > 0 {
		d.ingest(ctx, nil, now) // alias-keyed events waiting for their alias row try again
	}
	d.expire(now)
	d.askCounts(now)
	d.dispatch(now)
	if err := d.flush(ctx); err != nil {
		errs = append(errs, err)
	}
	d.pruneClosed(now)
	d.updateStats()
	return errors.Join(errs...)
}

// drain applies the results the workers have sent back, without waiting.
func (d *Detector) drain() {
	for {
		select {
		case r := <-d.results:
			d.apply(r)
		default:
			return
		}
	}
}

// apply takes one worker result back into the owner's state, then hands out what it made due.
func (d *Detector) apply(r result) {
	d.inflight--
	if _, ok := r.(readResult); ok {
		d.readsInflight--
	}
	now := d.cfg.Now()
	r.apply(d, now)
	d.dispatchReads(now)
	if _, ok := r.(alertResult); ok || d.alertsChanged {
		d.dispatchAlerts(now)
	}
}

// dispatch hands queued read-backs and due alerts to the workers (never waiting on them).
func (d *Detector) dispatch(now time.Time) {
	d.dispatchReads(now)
	d.dispatchAlerts(now)
}

// settleReads waits until every read-back that judging needs is answered and applied: the
// instances to verify (first seen in the middle, restored) and the closed ones to check. The
// explanations of stuck instances (their last error and traces, not their status) go first to
// the back of the queue and are not waited for: the loop answers them after Start, as it
// does those of any tick. Deliveries go on meanwhile.
func (d *Detector) settleReads(ctx context.Context) error {
	d.reads.judgingFirst()
	for {
		d.dispatchReads(d.cfg.Now())
		if !d.reads.judging() {
			return d.flush(ctx)
		}
		if d.readsInflight == 0 { // held back after a failed read: try again shortly
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			d.reads.notBefore = time.Time{}
			continue
		}
		select {
		case r := <-d.results:
			d.apply(r)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Settle waits until no read-back or delivery is in flight, applying their results as they
// come, then writes what is pending. Start uses it to return only once every instance is
// judged; tests use it to observe a tick's whole effect; Flush on the way down.
func (d *Detector) Settle(ctx context.Context) error {
	d.drain()
	for d.inflight > 0 {
		select {
		case r := <-d.results:
			d.apply(r)
		case <-ctx.Done():
			return errors.Join(ctx.Err(), d.flush(context.WithoutCancel(ctx)))
		}
	}
	err := d.flush(ctx)
	d.updateStats()
	return err
}

// Flush runs a last tick on the way down and waits (within ctx) for the deliveries it makes:
// delivery backoffs are reset first, so alerts and commands still pending get their chance
// even if the interrupted tick had just failed them.
func (d *Detector) Flush(ctx context.Context) error {
	for _, n := range d.notifiers {
		n.backoffUntil, n.fails = time.Time{}, 0
	}
	for _, s := range d.sinks {
		s.backoffUntil = time.Time{}
	}
	return errors.Join(d.Tick(ctx), d.Settle(ctx))
}

// flush writes pending states and audit records. Failed writes stay pending for the next tick.
func (d *Detector) flush(ctx context.Context) error {
	var errs []error
	if err := d.flushVersions(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(d.reachRows) > 0 {
		if err := d.cfg.Store.WriteEvents(ctx, d.reachRows); err != nil {
			d.m.writeErrors.Inc()
			errs = append(errs, fmt.Errorf("write %d children checkpoint reaches: %w", len(d.reachRows), err))
		} else {
			d.reachRows = d.reachRows[:0]
		}
	}
	if len(d.states) > 0 {
		rows := d.rowBuf[:0]
		for _, r := range d.states {
			rows = append(rows, r)
		}
		d.rowBuf = rows[:0]
		if cap(rows) > 4096 {
			d.rowBuf = nil // do not hold a burst's buffer
		}
		if err := d.cfg.Store.WriteStates(ctx, rows); err != nil {
			d.m.writeErrors.Inc()
			errs = append(errs, fmt.Errorf("write %d instance states: %w", len(rows), err))
		} else {
			if len(rows) > 4096 {
				d.states = map[string]storage.InstanceState{} // maps never shrink: drop a big one
			} else {
				clear(d.states)
			}
			for _, l := range d.lags {
				d.m.detectionLag.Observe(l.Seconds())
			}
			d.lags = d.lags[:0]
		}
	}
	if len(d.alertRec) > 0 {
		if err := d.cfg.Store.WriteAlerts(ctx, d.alertRec); err != nil {
			d.m.writeErrors.Inc()
			errs = append(errs, fmt.Errorf("write %d alert records: %w", len(d.alertRec), err))
		} else {
			d.alertRec = d.alertRec[:0]
		}
	}
	if len(d.cmdRec) > 0 {
		if err := d.cfg.Store.WriteCommands(ctx, d.cmdRec); err != nil {
			d.m.writeErrors.Inc()
			errs = append(errs, fmt.Errorf("write %d command records: %w", len(d.cmdRec), err))
		} else {
			d.cmdRec = d.cmdRec[:0]
		}
	}
	return errors.Join(errs...)
}

func (d *Detector) updateStats() {
	// Counted on transitions (enterStuck, leaveStuck), never by scanning the open instances.
	stuck, comp := d.stuckN, d.compensatingN
	running := d.open.len() - stuck - comp
	d.m.open.WithLabelValues("running").Set(float64(running))
	d.m.open.WithLabelValues("stuck").Set(float64(stuck))
	d.m.open.WithLabelValues("compensating").Set(float64(comp))
	d.mu.Lock()
	d.stats.Open, d.stats.Running, d.stats.Stuck, d.stats.Compensating = d.open.len(), running, stuck, comp
	d.stats.Cursor = d.cur.at
	d.mu.Unlock()
}

// count adds to the counters Stats reports.
func (d *Detector) count(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}
