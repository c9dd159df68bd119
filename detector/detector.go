// Package detector finds stuck flow instances, explains them, alerts and sends unblock
// commands. It reads new checkpoint rows from the store incrementally (a cursor on ingest time
// with an overlap window, dedup by event_id), keeps open instances in memory in a compact form
// with a deadline heap (a tick costs O(new events + expired deadlines), never a scan of all open
// instances), writes each instance's current state back to the store, and records every alert
// and command in the store's audit tables.
//
// It owns no SQL (storage/ does) and no flow semantics (model/ decides status and deadlines);
// it owns time, delivery and memory.
package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flowwatch/flowwatch/api"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// errReadEvents marks a failed read of new events (the cursor did not move).
var errReadEvents = errors.New("read events")

// Store is what the detector needs of storage.
type Store interface {
	storage.Reader
	storage.Writer
}

// Defaults of Config.
const (
	DefaultOverlap       = 30 * time.Second
	DefaultReadLimit     = 20000
	DefaultRebuildWindow = 14 * 24 * time.Hour
	DefaultMaxOpen       = 5_000_000
	DefaultResend        = time.Minute
	DefaultClosedMemory  = time.Hour
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
	Alerting     AlertConfig
	// Sinks receive unblock commands, by the name flow files use in on_stuck.
	Sinks []SinkConfig
	// Source is the CloudEvents source of commands (default "flowwatch/detector/<shard>").
	Source  string
	Logger  *slog.Logger
	Metrics *Metrics
}

// Detector is one shard's detector. Tick and Start must not run concurrently; Stats may be
// called from any goroutine.
type Detector struct {
	cfg   Config
	log   *slog.Logger
	m     *Metrics
	sinks map[string]*sinkState

	fams    families
	open    instTable
	heap    deadlineHeap
	closed  map[string]int64 // instance id → when it closed (unix ns)
	closedQ timedQueue       // the same, in closing order, for pruning

	cursor time.Time
	seen   map[string]int64 // event_id → ingest unix ns, for the overlap window
	seenQ  timedQueue
	// seenHigh is the most ids seen held since the map was last rebuilt.
	seenHigh int

	aliases      map[string]string // tenant\x00flow\x00attr\x00value → key
	unresolved   []storage.CheckpointEvent
	rehydrate    map[string]bool // instances whose read-back failed, retried next tick
	commandsDone map[string]storage.CommandRecord

	alerts      map[string]*alertState
	stuck       int         // open instances that are stuck
	notifyAt    []time.Time // per notifier: do not retry before
	notifyFails []int       // per notifier: consecutive failures

	states   map[string]storage.InstanceState // pending writes, latest wins
	alertRec []storage.AlertRecord
	cmdRec   []storage.CommandRecord

	mu    sync.Mutex
	stats Stats
	ready bool
}

// timedQueue holds entries in time order; popping the old ones costs what is popped
// (amortized), never a scan or a copy of the rest.
type timedQueue struct {
	items []seenEntry
	head  int
}

func (q *timedQueue) push(e seenEntry) { q.items = append(q.items, e) }

// popOlder removes, oldest first, the entries older than cut.
func (q *timedQueue) popOlder(cut int64, f func(seenEntry)) {
	for q.head < len(q.items) && q.items[q.head].ingest < cut {
		f(q.items[q.head])
		q.items[q.head] = seenEntry{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
}

// shrink copies the live entries into a right-sized slice (after a burst).
func (q *timedQueue) shrink() {
	q.items, q.head = append([]seenEntry(nil), q.items[q.head:]...), 0
}

// seenEntry is an id with a time (ingest time for event ids, closing time for instances).
type seenEntry struct {
	id     string
	ingest int64
}

// Stats is a snapshot of the detector's counters.
type Stats struct {
	Open, Running, Stuck      int
	Completed, Failed         uint64
	AlertsSent, AlertsFailed  uint64
	CommandsSent, CommandsErr uint64
	Cursor                    time.Time
}

// New builds a Detector. Call Start before Tick.
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
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
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
	if cfg.Alerting.Resend <= 0 {
		cfg.Alerting.Resend = DefaultResend
	}
	if cfg.Alerting.ResolvedResends <= 0 {
		cfg.Alerting.ResolvedResends = 3
	}
	if cfg.Source == "" {
		cfg.Source = fmt.Sprintf("flowwatch/detector/%d", cfg.Shard)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	d := &Detector{
		cfg: cfg, log: cfg.Logger, m: cfg.Metrics,
		sinks:        map[string]*sinkState{},
		closed:       map[string]int64{},
		seen:         map[string]int64{},
		aliases:      map[string]string{},
		rehydrate:    map[string]bool{},
		commandsDone: map[string]storage.CommandRecord{},
		alerts:       map[string]*alertState{},
		notifyAt:     make([]time.Time, len(cfg.Alerting.Notifiers)),
		notifyFails:  make([]int, len(cfg.Alerting.Notifiers)),
		states:       map[string]storage.InstanceState{},
	}
	for _, s := range cfg.Sinks {
		if s.Sink == nil {
			return nil, errors.New("detector: a sink configuration has no sink")
		}
		d.sinks[s.Sink.Name()] = newSinkState(s)
		for _, o := range []string{OutcomeSent, OutcomeFailed} {
			d.m.commands.WithLabelValues(s.Sink.Name(), o) // exported at zero from the start
		}
	}
	for _, n := range cfg.Alerting.Notifiers {
		d.m.alertsSent.WithLabelValues(n.Name())
		d.m.alertsFailed.WithLabelValues(n.Name())
	}
	return d, nil
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

// Start rebuilds the open instances of this shard from the store: the commands already
// recorded (so none is sent twice), then every event of the rebuild window.
func (d *Detector) Start(ctx context.Context) error {
	now := d.cfg.Now()
	cmds, err := d.cfg.Store.Commands(ctx, "", "", 1_000_000)
	if err != nil {
		return fmt.Errorf("rebuild: read recorded commands: %w", err)
	}
	for _, c := range cmds {
		if prev, ok := d.commandsDone[c.ID]; !ok || c.Time.After(prev.Time) {
			d.commandsDone[c.ID] = c
		}
	}
	if d.cursor.IsZero() {
		d.cursor = now.Add(-d.cfg.RebuildWindow)
	}
	if err := d.Tick(ctx); err != nil {
		if errors.Is(err, errReadEvents) {
			return fmt.Errorf("rebuild: %w", err) // the cursor did not move: retry Start
		}
		// Per-instance failures are retried by the following ticks.
		d.log.Warn("rebuild: some instances will be read again on the next tick", "err", err)
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	d.log.Info("detector rebuilt", "shard", d.cfg.Shard, "shards", d.cfg.Shards,
		"open", d.open.len(), "commands_recorded", len(d.commandsDone))
	return nil
}

// Run ticks every interval until ctx ends. Errors of a tick are logged and retried on the
// next one: nothing read is lost, since the cursor only moves after a successful read.
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
		}
	}
}

// Flush runs a last tick on the way down: delivery backoffs are reset first, so alerts and
// commands still pending get their chance even if the interrupted tick had just failed them.
func (d *Detector) Flush(ctx context.Context) error {
	clear(d.notifyAt)
	clear(d.notifyFails)
	return d.Tick(ctx)
}

// Tick reads new events, applies them, fires what expired, delivers alerts and commands,
// and writes states and audit records.
func (d *Detector) Tick(ctx context.Context) error {
	start := time.Now()
	defer func() { d.m.tickSeconds.Observe(time.Since(start).Seconds()) }()
	now := d.cfg.Now()
	events, err := d.read(ctx)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	touched := map[string]*inst{}
	if err := d.ingest(ctx, events, now, touched); err != nil {
		errs = append(errs, err)
	}
	for id, in := range touched {
		if d.open.get(id) == in {
			d.judge(ctx, in, now, true)
		}
	}
	d.expire(ctx, now)
	d.deliverAlerts(ctx, now)
	if err := d.flush(ctx); err != nil {
		errs = append(errs, err)
	}
	d.pruneClosed(now)
	d.updateStats()
	return errors.Join(errs...)
}

// read returns the rows not seen yet since the cursor (minus the overlap window).
func (d *Detector) read(ctx context.Context) ([]storage.CheckpointEvent, error) {
	since := d.cursor.Add(-d.cfg.Overlap)
	limit := d.cfg.ReadLimit
	var out []storage.CheckpointEvent
	for {
		rows, err := d.cfg.Store.EventsSince(ctx, since, limit)
		if err != nil {
			d.m.readErrors.Inc()
			return out, fmt.Errorf("%w since %s: %w", errReadEvents, since.Format(time.RFC3339Nano), err)
		}
		full := len(rows) >= limit
		last := time.Time{}
		if len(rows) > 0 {
			last = rows[len(rows)-1].IngestTime
		}
		fresh := rows[:0] // filter in place: rows are ours
		for i := range rows {
			r := &rows[i]
			if _, dup := d.seen[r.EventID]; dup {
				continue
			}
			ns := r.IngestTime.UnixNano()
			d.seen[r.EventID] = ns
			d.seenQ.push(seenEntry{r.EventID, ns})
			if r.IngestTime.After(d.cursor) {
				d.cursor = r.IngestTime
			}
			fresh = append(fresh, *r)
		}
		if out == nil {
			out = fresh
		} else {
			out = append(out, fresh...)
		}
		if !full {
			break
		}
		if !last.After(since) {
			limit *= 2 // a full page of one ingest time: widen it rather than loop
			continue
		}
		since = last
	}
	d.m.eventsRead.Add(float64(len(out)))
	if len(out) > 0 {
		d.m.readLag.Set(d.cfg.Now().Sub(d.cursor).Seconds())
	}
	// Forget ids older than the overlap window: they can no longer be read again.
	d.seenQ.popOlder(d.cursor.Add(-2*d.cfg.Overlap).UnixNano(), func(e seenEntry) {
		if d.seen[e.id] == e.ingest {
			delete(d.seen, e.id)
		}
	})
	if len(d.seen) > d.seenHigh {
		d.seenHigh = len(d.seen)
	} else if d.seenHigh > 4096 && len(d.seen) < d.seenHigh/4 {
		// Go maps never shrink: after a burst (a rebuild), copy the survivors into a small one.
		small := make(map[string]int64, len(d.seen))
		for k, v := range d.seen {
			small[k] = v
		}
		d.seen, d.seenHigh = small, len(small)
		d.seenQ.shrink()
	}
	return out, nil
}

// ingest applies events to open instances, opening new ones on start checkpoints and reading
// back from the store the instances it does not know (late or out-of-order events).
func (d *Detector) ingest(ctx context.Context, events []storage.CheckpointEvent, now time.Time, touched map[string]*inst) error {
	set := d.cfg.Flows()
	if len(d.unresolved) > 0 {
		events = append(d.unresolved, events...)
		d.unresolved = nil
	}
	resolveErr := d.resolveAliases(ctx, set, events)
	hydrate := d.rehydrate // read-backs that failed last tick are retried first
	d.rehydrate = map[string]bool{}
	var idBuf []byte
	for i := range events {
		e := &events[i]
		versions := set.Versions(e.Flow)
		if len(versions) == 0 {
			d.m.unknownFlow.Inc()
			continue
		}
		if isAlias(versions, e.KeyAttr) {
			key, ok := d.aliases[aliasKey(e.Tenant, e.Flow, e.KeyAttr, e.Key)]
			if !ok {
				// Its alias row may not be visible yet (another collector): retry for a while,
				// then give up on it, counted.
				if now.Sub(e.IngestTime) < AliasWait && len(d.unresolved) < maxUnresolved {
					d.unresolved = append(d.unresolved, *e)
				} else {
					d.m.unresolvedAlias.Inc()
				}
				continue
			}
			e.Key, e.KeyAttr = key, ""
		}
		if ShardOf(e.Tenant, e.Flow, e.Key, d.cfg.Shards) != d.cfg.Shard {
			continue
		}
		idBuf = d.fams.appendID(idBuf[:0], e.Tenant, e.Flow, e.Key)
		in := d.open.getBytes(idBuf)
		id := ""
		if in != nil {
			id = in.id
		} else {
			id = string(idBuf)
			if e.Checkpoint != "" && isStart(versions, e.Checkpoint) && d.closed[id] == 0 && !hydrate[id] {
				in = d.newInst(id, set.At(e.Flow, e.Time))
				if in == nil {
					continue
				}
			} else {
				hydrate[id] = true
				continue
			}
		}
		touched[id] = in
		if e.Checkpoint == "" {
			if in.status == statusStuck {
				hydrate[id] = true // a new error: refresh the stuck reason
			}
			continue
		}
		if c := d.fams.flow(in).Checkpoint(e.Checkpoint); c != nil {
			in.reach(c, e.Time)
		}
	}
	var errs []error
	if resolveErr != nil {
		errs = append(errs, resolveErr)
	}
	for id := range hydrate {
		in, err := d.hydrate(ctx, id, set, now)
		if err != nil {
			d.rehydrate[id] = true // the events are read; the read-back is what must be retried
			errs = append(errs, err)
			continue
		}
		if in != nil {
			touched[id] = in
		}
	}
	return errors.Join(errs...)
}

func (d *Detector) newInst(id string, f *model.Flow) *inst {
	if f == nil {
		return nil
	}
	if d.open.len() >= d.cfg.MaxOpen {
		d.m.rejected.Inc()
		if d.m.rejectedLogged.CompareAndSwap(false, true) {
			d.log.Warn("open instance limit reached: new instances are not tracked", "max_open", d.cfg.MaxOpen)
		}
		return nil
	}
	in := &inst{id: id, version: d.fams.pin(id, f), first: make([]int64, len(f.Checkpoints)), heapIdx: -1}
	d.open.put(in)
	return in
}

func isStart(versions []*model.Flow, cp string) bool {
	for _, f := range versions {
		if c := f.Checkpoint(cp); c != nil && c.Start {
			return true
		}
	}
	return false
}

func isAlias(versions []*model.Flow, attr string) bool {
	if attr == "" {
		return false
	}
	for _, f := range versions {
		if f.IsAlias(attr) {
			return true
		}
	}
	return false
}

func aliasKey(tenant, flow, attr, value string) string {
	return tenant + "\x00" + flow + "\x00" + attr + "\x00" + value
}

// resolveAliases looks up, in one query per (tenant, flow, attribute), the alias values of
// events keyed by an alias that the cache does not know.
func (d *Detector) resolveAliases(ctx context.Context, set *model.Set, events []storage.CheckpointEvent) error {
	type group struct{ tenant, flow, attr string }
	want := map[group][]string{}
	for i := range events {
		e := &events[i]
		if !isAlias(set.Versions(e.Flow), e.KeyAttr) {
			continue
		}
		if _, ok := d.aliases[aliasKey(e.Tenant, e.Flow, e.KeyAttr, e.Key)]; ok {
			continue
		}
		g := group{e.Tenant, e.Flow, e.KeyAttr}
		want[g] = append(want[g], e.Key)
	}
	var errs []error
	for g, values := range want {
		got, err := d.cfg.Store.ResolveAliases(ctx, g.tenant, g.flow, g.attr, values)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s aliases of %s: %w", g.attr, g.flow, err))
			continue
		}
		if len(d.aliases) > 4*d.cfg.MaxOpen {
			clear(d.aliases) // a cache: bounded, refilled from the store on demand
		}
		for v, k := range got {
			d.aliases[aliasKey(g.tenant, g.flow, g.attr, v)] = k
		}
	}
	return errors.Join(errs...)
}

// hydrate reads one instance's events back from the store and evaluates them in full. It
// returns the open instance, or nil when the instance is closed (its state is written) or
// unknown.
func (d *Detector) hydrate(ctx context.Context, id string, set *model.Set, now time.Time) (*inst, error) {
	tenant, flow, key := d.fams.split(id)
	rows, err := d.cfg.Store.InstanceEvents(ctx, tenant, flow, key)
	if err != nil {
		return nil, fmt.Errorf("read events of %s/%s: %w", flow, key, err)
	}
	d.m.hydrations.Inc()
	in := d.open.get(id)
	versions := set.Versions(flow)
	if in != nil {
		// An open instance keeps its version and its definition, even when a reload rebuilt
		// the set: newer versions never re-judge older instances.
		versions = []*model.Flow{d.fams.flow(in)}
	}
	full := model.NewInstance(versions, tenant, key)
	for _, r := range rows {
		full.Apply(modelEvent(r))
	}
	pinned := full.Pinned()
	if pinned == nil || !hasCheckpoint(full) {
		return nil, nil // only error notes, or nothing: not an instance yet
	}
	if in == nil {
		if in = d.newInst(id, pinned); in == nil {
			return nil, nil
		}
	}
	for _, ev := range full.Events() {
		if c := pinned.Checkpoint(ev.Checkpoint); c != nil {
			in.reach(c, ev.Time)
		}
	}
	st := full.Evaluate(now)
	if st.Status == model.StatusStuck {
		d.enterStuck(in, st, now)
	}
	d.writeState(in, st, now)
	return in, nil
}

func hasCheckpoint(in *model.Instance) bool {
	for _, e := range in.Events() {
		if !e.IsErrorNote() {
			return true
		}
	}
	return false
}

func modelEvent(r storage.CheckpointEvent) model.Event {
	return model.Event{ID: r.EventID, Checkpoint: r.Checkpoint, Time: r.Time, Service: r.Service,
		Name: r.Name, TraceID: r.TraceID, SpanID: r.SpanID, Status: r.Status, Message: r.Message}
}

// judge re-evaluates one instance from its compact state and acts on what changed. touched
// says new events came for it (rather than a due time).
func (d *Detector) judge(ctx context.Context, in *inst, now time.Time, touched bool) {
	d.judgeOnce(ctx, in, now, touched, true)
}

func (d *Detector) judgeOnce(ctx context.Context, in *inst, now time.Time, touched, mayRead bool) {
	var buf [32]time.Time
	v := d.fams.flow(in).Judge(in.firstTimes(buf[:0]), now)
	if in.extra != nil && (v.Status != model.StatusStuck || v.Expected[0].Checkpoint != in.extra.checkpoint) {
		d.leaveStuck(in, now)
	}
	if v.Status != model.StatusCompleted && v.Status != model.StatusFailed && d.idle(in, v, now) {
		d.evict(in, now)
		return
	}
	switch v.Status {
	case model.StatusCompleted, model.StatusFailed:
		in.status = statusOf(v.Status)
		d.writeState(in, d.compactState(in, v), now)
		d.heap.schedule(in, 0)
		d.open.del(in.id)
		d.closed[in.id] = now.UnixNano()
		d.closedQ.push(seenEntry{in.id, now.UnixNano()})
		d.mu.Lock()
		if v.Status == model.StatusCompleted {
			d.stats.Completed++
		} else {
			d.stats.Failed++
		}
		d.mu.Unlock()
		return
	case model.StatusStuck:
		if in.extra == nil {
			// Newly stuck: read the instance back for the whole story (errors, traces,
			// violations). Rare, and bounded by the deadlines that expire.
			var h *inst
			var err error
			if mayRead {
				h, err = d.hydrate(ctx, in.id, d.cfg.Flows(), now)
			}
			if err != nil || h == nil {
				if err != nil {
					d.log.Warn("read stuck instance back; retrying", "instance", in.id, "err", err)
				}
				d.heap.schedule(in, now.Add(time.Second).UnixNano()) // retry: never drop it
				return
			}
			in = h
			if in.extra == nil {
				// The store knew more than the compact state (a row read late): judge again
				// on what it said.
				d.judgeOnce(ctx, in, now, touched, false)
				return
			}
		} else if touched {
			// New events while stuck on the same checkpoint: keep the stored state current.
			st := d.compactState(in, v)
			st.Reason = in.extra.reason
			d.writeState(in, st, now)
		}
		in.status = statusStuck
		d.runActions(ctx, in, now)
	default:
		in.status = statusRunning
		d.writeState(in, d.compactState(in, v), now)
		d.scheduleNext(in, v.NextDeadline, now)
	}
}

// idle reports whether an instance has had no event for the rebuild window and has nothing
// left to wait for: no deadline ahead and no action due.
func (d *Detector) idle(in *inst, v model.Verdict, now time.Time) bool {
	if !v.NextDeadline.IsZero() || now.Sub(time.Unix(0, in.last())) < d.cfg.RebuildWindow {
		return false
	}
	return in.extra == nil || d.nextActionTime(in).IsZero()
}

// evict stops tracking an instance that has been idle for the rebuild window (an abandoned
// instance waiting only for optional checkpoints, or stuck with its actions exhausted). Its
// stored state stays as last written; a restart would not load it either. Counted.
func (d *Detector) evict(in *inst, now time.Time) {
	if in.extra != nil {
		d.leaveStuck(in, now)
	}
	d.heap.schedule(in, 0)
	d.open.del(in.id)
	d.m.evicted.Inc()
}

// scheduleNext puts the instance on the heap at its next deadline (just past it, so the
// deadline itself is not yet overdue) or at its next action.
func (d *Detector) scheduleNext(in *inst, deadline time.Time, now time.Time) {
	due := int64(0)
	if !deadline.IsZero() {
		due = deadline.UnixNano() + 1
	}
	if in.extra != nil {
		if a := d.nextActionTime(in); !a.IsZero() && (due == 0 || a.UnixNano() < due) {
			due = a.UnixNano()
		}
	}
	if due == 0 {
		due = in.last() + int64(d.cfg.RebuildWindow) // look again when it would be idle
	}
	d.heap.schedule(in, due)
}

// expire judges every instance whose due time has come.
func (d *Detector) expire(ctx context.Context, now time.Time) {
	n := now.UnixNano()
	var due []*inst
	for len(d.heap) > 0 && d.heap[0].due <= n {
		in := d.heap[0]
		d.heap.schedule(in, 0)
		due = append(due, in)
	}
	d.m.expired.Add(float64(len(due)))
	for _, in := range due {
		if d.open.get(in.id) == in {
			d.judge(ctx, in, now, false)
		}
	}
}

// compactState builds a model.State from the compact state alone (no events): what a running
// or closed instance's stored state needs. Violations and errors are computed from the events
// by whoever reads them (the API evaluates the instance on read).
func (d *Detector) compactState(in *inst, v model.Verdict) model.State {
	tenant, flow, key := d.fams.split(in.id)
	f := d.fams.flow(in)
	st := model.State{Tenant: tenant, Flow: flow, Version: f.Version, Key: key, Status: v.Status,
		EndedAt: v.EndedAt, Expected: v.Expected, NextDeadline: v.NextDeadline}
	for i, ns := range in.first {
		if ns == 0 {
			continue
		}
		t := time.Unix(0, ns)
		if st.StartedAt.IsZero() || t.Before(st.StartedAt) {
			st.StartedAt = t
		}
		if t.After(st.LastSeen) || st.LastSeen.IsZero() {
			st.LastSeen = t
			st.LastCheckpoint, st.LastCheckpointAt = f.Checkpoints[i].Name, t
		}
	}
	return st
}

func (d *Detector) writeState(in *inst, st model.State, now time.Time) {
	row := api.StateRow(st)
	row.Shard = d.cfg.Shard
	row.UpdatedAt = now
	d.states[in.id] = row
}

// flush writes pending states and audit records. Failed writes stay pending for the next tick.
func (d *Detector) flush(ctx context.Context) error {
	var errs []error
	if len(d.states) > 0 {
		rows := make([]storage.InstanceState, 0, len(d.states))
		for _, r := range d.states {
			rows = append(rows, r)
		}
		if err := d.cfg.Store.WriteStates(ctx, rows); err != nil {
			d.m.writeErrors.Inc()
			errs = append(errs, fmt.Errorf("write %d instance states: %w", len(rows), err))
		} else if len(rows) > 4096 {
			d.states = map[string]storage.InstanceState{} // maps never shrink: drop a big one
		} else {
			clear(d.states)
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

func (d *Detector) pruneClosed(now time.Time) {
	// closedQ is in closing order: pruning costs what expires, never a scan of all.
	d.closedQ.popOlder(now.Add(-d.cfg.ClosedMemory).UnixNano(), func(e seenEntry) {
		if d.closed[e.id] == e.ingest {
			delete(d.closed, e.id)
		}
	})
}

func (d *Detector) updateStats() {
	// Counted on transitions (enterStuck, leaveStuck), never by scanning the open instances.
	stuck := d.stuck
	running := d.open.len() - stuck
	d.m.open.WithLabelValues("running").Set(float64(running))
	d.m.open.WithLabelValues("stuck").Set(float64(stuck))
	d.mu.Lock()
	d.stats.Open, d.stats.Running, d.stats.Stuck = d.open.len(), running, stuck
	d.stats.Cursor = d.cursor
	d.mu.Unlock()
}
