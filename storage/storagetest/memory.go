// Package storagetest holds what the stores and the code above them share in tests: the
// storage contract as a suite (Run) that every store passes — the embedded engine, a
// ClickHouse server, and Memory, an in-memory store for tests of the code that reads and
// writes the store (the query API, the detector, replay) — with its fixtures.
package storagetest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// Memory is an in-memory storage.Store that keeps the storage contract (it passes Run) with
// none of a real store's durability or performance. The zero value is ready to use; it is
// safe for concurrent use.
type Memory struct {
	// Fail, when set, is called with the method name before every Reader method; a non-nil
	// error is returned from the method.
	Fail func(method string) error
	// Now is the clock of ingest times and of states written without UpdatedAt; default
	// time.Now.
	Now func() time.Time

	mu       sync.Mutex
	events   map[string]storage.CheckpointEvent // by event id: the first ingestion
	aliases  map[aliasKey]aliasTo
	states   map[instKey]storage.InstanceState
	alerts   map[alertKey]storage.AlertRecord
	commands map[commandKey]storage.CommandRecord
	versions map[versionKey]time.Time
	// retention is the days SetRetention recorded.
	retention int
}

type (
	aliasKey struct{ tenant, flow, attr, value string }
	aliasTo  struct {
		key   string
		first time.Time
	}
	instKey  struct{ tenant, flow, key string }
	alertKey struct {
		tenant, flow, fingerprint, state, sink string
		time                                   time.Time
	}
	commandKey struct{ tenant, flow, id string }
	versionKey struct {
		flow    string
		version int
	}
)

var _ storage.Store = (*Memory)(nil)

func (s *Memory) fail(method string) error {
	if s.Fail != nil {
		return s.Fail(method)
	}
	return nil
}

func (s *Memory) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// utc is t in UTC, as the stores return times; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// Migrate does nothing: Memory has no schema.
func (s *Memory) Migrate(context.Context) error { return nil }

// SetRetention records days as the retention of every table (storage.RetainedTables); rows
// are never dropped.
func (s *Memory) SetRetention(_ context.Context, days int) error {
	if days < 0 {
		return fmt.Errorf("set retention: %w: %d days", storage.ErrInvalid, days)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retention = days
	return nil
}

// Retention returns what SetRetention recorded.
func (s *Memory) Retention(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	if s.retention > 0 {
		for _, t := range storage.RetainedTables() {
			out[t] = s.retention
		}
	}
	return out, nil
}

// Close does nothing; the rows stay readable.
func (s *Memory) Close() error { return nil }

// WriteEvents stores events, filling in place their EventID and IngestTime; an event
// already stored keeps its first ingestion.
func (s *Memory) WriteEvents(_ context.Context, events []storage.CheckpointEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := s.now()
	b, err := storage.PrepareEvents(events, now)
	if err != nil {
		return err
	}
	s.storeBatch(b, now)
	return nil
}

// WriteBatch stores the batch's aliases, then its events.
func (s *Memory) WriteBatch(ctx context.Context, b *storage.EventBatch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := b.Check(); err != nil {
		return err
	}
	if err := s.WriteAliases(ctx, b.AliasRows()); err != nil {
		return err
	}
	s.storeBatch(b, s.now())
	return nil
}

func (s *Memory) storeBatch(b *storage.EventBatch, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events == nil {
		s.events = map[string]storage.CheckpointEvent{}
	}
	for i := 0; i < b.Len(); i++ {
		e := b.Event(i)
		if e.IngestTime.IsZero() {
			e.IngestTime = utc(now)
		}
		if old, ok := s.events[e.EventID]; ok && !e.IngestTime.Before(old.IngestTime) {
			continue
		}
		s.events[e.EventID] = e
	}
}

// WriteAliases stores aliases; the earliest mapping of a value wins.
func (s *Memory) WriteAliases(_ context.Context, aliases []storage.Alias) error {
	if err := storage.CheckAliases(aliases); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aliases == nil {
		s.aliases = map[aliasKey]aliasTo{}
	}
	for _, a := range aliases {
		k := aliasKey{a.Tenant, a.Flow, a.Attr, a.Value}
		if old, ok := s.aliases[k]; ok && !a.Time.Before(old.first) {
			continue
		}
		s.aliases[k] = aliasTo{a.Key, a.Time}
	}
	return nil
}

// WriteStates stores states; a state replaces one with an older or equal UpdatedAt.
func (s *Memory) WriteStates(_ context.Context, states []storage.InstanceState) error {
	if err := storage.CheckStates(states); err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[instKey]storage.InstanceState{}
	}
	for _, st := range states {
		st = storage.StoredState(st, now)
		st.StartedAt, st.LastSeen, st.UpdatedAt = utc(st.StartedAt), utc(st.LastSeen), utc(st.UpdatedAt)
		k := instKey{st.Tenant, st.Flow, st.Key}
		if old, ok := s.states[k]; ok && old.UpdatedAt.After(st.UpdatedAt) {
			continue
		}
		s.states[k] = st
	}
	return nil
}

// WriteAlerts stores alert records; a record with the same tenant, flow, time, fingerprint,
// state and sink replaces the earlier one.
func (s *Memory) WriteAlerts(_ context.Context, alerts []storage.AlertRecord) error {
	if err := storage.CheckAlerts(alerts); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alerts == nil {
		s.alerts = map[alertKey]storage.AlertRecord{}
	}
	for _, a := range alerts {
		a.Time = utc(a.Time)
		s.alerts[alertKey{a.Tenant, a.Flow, a.Fingerprint, a.State, a.Sink, a.Time}] = a
	}
	return nil
}

// WriteCommands stores command records; a record replaces one of the same tenant, flow and
// ID with an older or equal Time.
func (s *Memory) WriteCommands(_ context.Context, commands []storage.CommandRecord) error {
	if err := storage.CheckCommands(commands); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commands == nil {
		s.commands = map[commandKey]storage.CommandRecord{}
	}
	for _, c := range commands {
		c.Time = utc(c.Time)
		k := commandKey{c.Tenant, c.Flow, c.ID}
		if old, ok := s.commands[k]; ok && old.Time.After(c.Time) {
			continue
		}
		s.commands[k] = c
	}
	return nil
}

// WriteFlowVersions records first-load times; the earliest of a version wins.
func (s *Memory) WriteFlowVersions(_ context.Context, vs []storage.FlowVersion) error {
	if err := storage.CheckFlowVersions(vs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.versions == nil {
		s.versions = map[versionKey]time.Time{}
	}
	for _, v := range vs {
		k := versionKey{v.Flow, v.Version}
		if cur, ok := s.versions[k]; !ok || v.LoadedAt.Before(cur) {
			s.versions[k] = utc(v.LoadedAt)
		}
	}
	return nil
}

// selectEvents returns the stored events that keep selects, ordered by by (then event id).
func (s *Memory) selectEvents(keep func(*storage.CheckpointEvent) bool, by func(*storage.CheckpointEvent) time.Time) []storage.CheckpointEvent {
	var out []storage.CheckpointEvent
	for _, e := range s.events {
		if keep(&e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b storage.CheckpointEvent) int {
		return cmp.Or(by(&a).Compare(by(&b)), strings.Compare(a.EventID, b.EventID))
	})
	return out
}

func eventTime(e *storage.CheckpointEvent) time.Time  { return e.Time }
func ingestTime(e *storage.CheckpointEvent) time.Time { return e.IngestTime }

// EventsSince returns events ingested at or after since, by ingest time, at most limit
// (1000 when limit is 0).
func (s *Memory) EventsSince(_ context.Context, since time.Time, limit int) ([]storage.CheckpointEvent, error) {
	if err := s.fail("EventsSince"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.selectEvents(func(e *storage.CheckpointEvent) bool { return !e.IngestTime.Before(since) }, ingestTime)
	return out[:min(len(out), limit)], nil
}

// EventRefs returns the ids and ingest times of the events ingested in [from, to].
func (s *Memory) EventRefs(_ context.Context, from, to time.Time) ([]storage.EventRef, error) {
	if err := s.fail("EventRefs"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.EventRef
	for _, e := range s.selectEvents(func(e *storage.CheckpointEvent) bool { return within(e.IngestTime, from, to) }, ingestTime) {
		out = append(out, storage.EventRef{EventID: e.EventID, IngestTime: e.IngestTime})
	}
	return out, nil
}

func within(t, from, to time.Time) bool { return !t.Before(from) && !t.After(to) }

// CountEvents counts the distinct event ids ingested in [from, to].
func (s *Memory) CountEvents(_ context.Context, from, to time.Time) (uint64, error) {
	if err := s.fail("CountEvents"); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, e := range s.events {
		if within(e.IngestTime, from, to) {
			n++
		}
	}
	return n, nil
}

// EventsAmong returns the events with these ids ingested at or after since.
func (s *Memory) EventsAmong(_ context.Context, since time.Time, ids []string) ([]storage.CheckpointEvent, error) {
	if err := s.fail("EventsAmong"); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		if len(id) != 16 || strings.Trim(strings.ToLower(id), "0123456789abcdef") != "" {
			return nil, fmt.Errorf("read events by id: %w: event id %q is not 16 hex digits", storage.ErrInvalid, id)
		}
		want[strings.ToLower(id)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.selectEvents(func(e *storage.CheckpointEvent) bool { return want[e.EventID] && !e.IngestTime.Before(since) }, ingestTime), nil
}

// owner returns the instance key that the alias value of an alias-keyed event names, if any.
func (s *Memory) owner(e *storage.CheckpointEvent) (string, bool) {
	a, ok := s.aliases[aliasKey{e.Tenant, e.Flow, e.KeyAttr, e.Key}]
	return a.key, ok
}

// InstanceEvents returns the events of one instance — keyed by key, or by an alias value
// whose first mapping is key — in event time.
func (s *Memory) InstanceEvents(_ context.Context, tenant, flow, key string) ([]storage.CheckpointEvent, error) {
	if err := s.fail("InstanceEvents"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.selectEvents(func(e *storage.CheckpointEvent) bool {
		if e.Tenant != tenant || e.Flow != flow {
			return false
		}
		k, ok := s.owner(e)
		return e.Key == key || (ok && k == key)
	}, eventTime), nil
}

// InstancesEvents returns the events of many instances, by key, as InstanceEvents does.
func (s *Memory) InstancesEvents(_ context.Context, tenant, flow string, keys []string) (map[string][]storage.CheckpointEvent, error) {
	if err := s.fail("InstancesEvents"); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]storage.CheckpointEvent{}
	for _, e := range s.selectEvents(func(e *storage.CheckpointEvent) bool { return e.Tenant == tenant && e.Flow == flow }, eventTime) {
		if want[e.Key] {
			out[e.Key] = append(out[e.Key], e)
		}
		if k, ok := s.owner(&e); ok && k != e.Key && want[k] {
			out[k] = append(out[k], e)
		}
	}
	return out, nil
}

// ResolveAliases maps alias values to instance keys by their first mapping.
func (s *Memory) ResolveAliases(_ context.Context, tenant, flow, attr string, values []string) (map[string]string, error) {
	if err := s.fail("ResolveAliases"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, v := range values {
		if a, ok := s.aliases[aliasKey{tenant, flow, attr, v}]; ok {
			out[v] = a.key
		}
	}
	return out, nil
}

// expectedCheckpoints are the checkpoints a state's Expected document names, with their
// deadlines.
func expectedCheckpoints(st *storage.InstanceState) []struct {
	Checkpoint string    `json:"checkpoint"`
	Deadline   time.Time `json:"deadline"`
} {
	var xs []struct {
		Checkpoint string    `json:"checkpoint"`
		Deadline   time.Time `json:"deadline"`
	}
	_ = json.Unmarshal([]byte(st.Expected), &xs)
	return xs
}

func expects(st *storage.InstanceState, checkpoint string) bool {
	for _, x := range expectedCheckpoints(st) {
		if x.Checkpoint == checkpoint {
			return true
		}
	}
	return false
}

// after reports whether st comes after the cursor c in a listing.
func after(c storage.InstanceCursor, st *storage.InstanceState) bool {
	ls := st.LastSeen.UnixNano()
	if ls != c.LastSeen {
		return ls < c.LastSeen
	}
	return cmp.Or(strings.Compare(st.Tenant, c.Tenant), strings.Compare(st.Flow, c.Flow), strings.Compare(st.Key, c.Key)) > 0
}

func compareStates(a, b storage.InstanceState) int {
	return cmp.Or(b.LastSeen.Compare(a.LastSeen), strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Flow, b.Flow), strings.Compare(a.Key, b.Key))
}

// Instances lists states newest (LastSeen) first, a page at a time.
func (s *Memory) Instances(_ context.Context, f storage.InstanceFilter) ([]storage.InstanceState, string, error) {
	if err := s.fail("Instances"); err != nil {
		return nil, "", err
	}
	if f.Shards < 0 || f.Shard < 0 || (f.Shards > 0 && f.Shard >= f.Shards) {
		return nil, "", fmt.Errorf("list instances: shard %d of %d is out of range", f.Shard, f.Shards)
	}
	var cursor *storage.InstanceCursor
	if f.Cursor != "" {
		c, err := storage.ParseInstanceCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list instances: %w", err)
		}
		cursor = &c
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var page []storage.InstanceState
	for _, st := range s.states {
		switch {
		case f.Tenant != "" && st.Tenant != f.Tenant,
			f.Flow != "" && st.Flow != f.Flow,
			f.Status != "" && st.Status != f.Status,
			f.Key != "" && st.Key != f.Key,
			f.Checkpoint != "" && st.LastCheckpoint != f.Checkpoint && !expects(&st, f.Checkpoint),
			f.Shards > 0 && st.Shard%f.Shards != f.Shard,
			cursor != nil && !after(*cursor, &st):
			continue
		}
		page = append(page, st)
	}
	slices.SortFunc(page, compareStates)
	next := ""
	if len(page) > limit {
		page = page[:limit]
		next = storage.CursorAfter(page[limit-1]).String()
	}
	return page, next, nil
}

// Instance returns one state, or nil.
func (s *Memory) Instance(_ context.Context, tenant, flow, key string) (*storage.InstanceState, error) {
	if err := s.fail("Instance"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[instKey{tenant, flow, key}]
	if !ok {
		return nil, nil
	}
	return &st, nil
}

// ofFlow selects one flow, of one tenant or (tenant "") of all.
func ofFlow(tenant, flow, t, f string) bool { return (tenant == "" || t == tenant) && f == flow }

// reasonCheckpoint is the checkpoint a stuck state's reason names.
func reasonCheckpoint(st *storage.InstanceState) string {
	var r struct {
		Checkpoint string `json:"checkpoint"`
	}
	_ = json.Unmarshal([]byte(st.Reason), &r)
	return r.Checkpoint
}

// CheckpointCounts counts the instances (tenant and key as written) that reached each
// checkpoint in [from, to), and the stuck instances whose reason names it.
func (s *Memory) CheckpointCounts(_ context.Context, tenant, flow string, from, to time.Time) ([]storage.CheckpointCount, error) {
	if err := s.fail("CheckpointCounts"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]*storage.CheckpointCount{}
	get := func(cp string) *storage.CheckpointCount {
		if counts[cp] == nil {
			counts[cp] = &storage.CheckpointCount{Checkpoint: cp}
		}
		return counts[cp]
	}
	reached := map[[3]string]bool{}
	for _, e := range s.events {
		if ofFlow(tenant, flow, e.Tenant, e.Flow) && isCheckpoint(&e) && !e.Time.Before(from) && e.Time.Before(to) {
			if k := [3]string{e.Checkpoint, e.Tenant, e.Key}; !reached[k] {
				reached[k] = true
				get(e.Checkpoint).Count++
			}
		}
	}
	for _, st := range s.states {
		if ofFlow(tenant, flow, st.Tenant, st.Flow) && st.Status == "stuck" {
			if cp := reasonCheckpoint(&st); cp != "" {
				get(cp).Stuck++
			}
		}
	}
	out := make([]storage.CheckpointCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b storage.CheckpointCount) int { return strings.Compare(a.Checkpoint, b.Checkpoint) })
	return out, nil
}

// isCheckpoint reports whether a row reached a checkpoint: it is neither an error note (no
// checkpoint) nor an operator's action (a reserved name starting with '@').
func isCheckpoint(e *storage.CheckpointEvent) bool {
	return e.Checkpoint != "" && !strings.HasPrefix(e.Checkpoint, "@")
}

// Transitions measures edges over instances (alias-keyed events resolved to their instance)
// that reached the source in [from, to): how many reached the target after it, and the p50
// and p95 of the time between.
func (s *Memory) Transitions(_ context.Context, tenant, flow string, edges [][2]string, from, to time.Time) ([]storage.Transition, error) {
	if err := s.fail("Transitions"); err != nil {
		return nil, err
	}
	if len(edges) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := map[[2]string]map[string]time.Time{} // instance (tenant, key) → checkpoint → first time
	for _, e := range s.events {
		if !ofFlow(tenant, flow, e.Tenant, e.Flow) || e.Checkpoint == "" || e.Time.Before(from) {
			continue
		}
		key := e.Key
		if k, ok := s.owner(&e); ok {
			key = k
		}
		inst := [2]string{e.Tenant, key}
		if first[inst] == nil {
			first[inst] = map[string]time.Time{}
		}
		if t, ok := first[inst][e.Checkpoint]; !ok || e.Time.Before(t) {
			first[inst][e.Checkpoint] = e.Time
		}
	}
	out := make([]storage.Transition, 0, len(edges))
	for _, edge := range edges {
		var ds []time.Duration
		for _, cps := range first {
			src, ok1 := cps[edge[0]]
			dst, ok2 := cps[edge[1]]
			if ok1 && ok2 && src.Before(to) && !dst.Before(src) {
				ds = append(ds, dst.Sub(src))
			}
		}
		t := storage.Transition{Source: edge[0], Target: edge[1], Count: uint64(len(ds))}
		if len(ds) > 0 {
			slices.Sort(ds)
			t.P50, t.P95 = quantile(ds, 0.5), quantile(ds, 0.95)
		}
		out = append(out, t)
	}
	return out, nil
}

// quantile interpolates linearly between the sorted durations, as ClickHouse's quantile
// does on samples it holds exactly.
func quantile(ds []time.Duration, q float64) time.Duration {
	x := q * float64(len(ds)-1)
	lo := int(math.Floor(x))
	hi := min(lo+1, len(ds)-1)
	return ds[lo] + time.Duration((x-float64(lo))*float64(ds[hi]-ds[lo]))
}

// maxPoints bounds a series, as the stores do.
const maxPoints = 11000

// Series counts, per step from from, events by checkpoint or instances by status (at their
// LastSeen): one series per name seen, every step of [from, to) a point.
func (s *Memory) Series(_ context.Context, tenant, flow, by string, from, to time.Time, step time.Duration) ([]storage.Series, error) {
	if err := s.fail("Series"); err != nil {
		return nil, err
	}
	if step < time.Millisecond {
		return nil, fmt.Errorf("series of %s: step must be at least 1ms, got %s", flow, step)
	}
	if !to.After(from) {
		return nil, fmt.Errorf("series of %s: 'to' must be after 'from'", flow)
	}
	buckets := int((to.Sub(from) + step - 1) / step)
	if buckets > maxPoints {
		return nil, fmt.Errorf("series of %s: %d points is too many (at most %d); use a larger step", flow, buckets, maxPoints)
	}
	if by != "status" && by != "checkpoint" {
		return nil, fmt.Errorf("series of %s: 'by' must be checkpoint or status, got %q", flow, by)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byName := map[string][]storage.Point{}
	add := func(name string, t time.Time) {
		if t.Before(from) || !t.Before(to) {
			return
		}
		pts := byName[name]
		if pts == nil {
			pts = make([]storage.Point, buckets)
			for i := range pts {
				pts[i].Time = from.Add(time.Duration(i) * step).UTC()
			}
			byName[name] = pts
		}
		pts[(t.UnixMilli()-from.UnixMilli())/step.Milliseconds()].Value++
	}
	if by == "checkpoint" {
		for _, e := range s.events {
			if ofFlow(tenant, flow, e.Tenant, e.Flow) && isCheckpoint(&e) {
				add(e.Checkpoint, e.Time)
			}
		}
	} else {
		for _, st := range s.states {
			if ofFlow(tenant, flow, st.Tenant, st.Flow) {
				add(st.Status, st.LastSeen)
			}
		}
	}
	out := make([]storage.Series, 0, len(byName))
	for name, pts := range byName {
		out = append(out, storage.Series{Name: name, Points: pts})
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Alerts returns alert records newest first, at most f.Limit (100 when 0).
func (s *Memory) Alerts(_ context.Context, f storage.AuditFilter) ([]storage.AlertRecord, error) {
	if err := s.fail("Alerts"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.AlertRecord
	for _, a := range s.alerts {
		if f.Matches(a.Tenant, a.Flow, a.Key) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b storage.AlertRecord) int {
		return cmp.Or(b.Time.Compare(a.Time), strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Flow, b.Flow),
			strings.Compare(a.Fingerprint, b.Fingerprint), strings.Compare(a.State, b.State), strings.Compare(a.Sink, b.Sink))
	})
	return limited(out, f.Limit), nil
}

// latestCommands returns the latest record of each command that keep selects, ordered by
// time (newest first when desc), then id.
func (s *Memory) latestCommands(keep func(*storage.CommandRecord) bool, desc bool) []storage.CommandRecord {
	var out []storage.CommandRecord
	for _, c := range s.commands {
		if keep(&c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b storage.CommandRecord) int {
		t := a.Time.Compare(b.Time)
		if desc {
			t = -t
		}
		return cmp.Or(t, strings.Compare(a.ID, b.ID))
	})
	return out
}

// Commands returns the latest record of each command, newest first, at most f.Limit.
func (s *Memory) Commands(_ context.Context, f storage.AuditFilter) ([]storage.CommandRecord, error) {
	if err := s.fail("Commands"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.latestCommands(func(c *storage.CommandRecord) bool { return f.Matches(c.Tenant, c.Flow, c.Key) }, true)
	return limited(out, f.Limit), nil
}

// limited keeps the first limit records (100 when limit is 0, as the stores do).
func limited[T any](out []T, limit int) []T {
	if limit <= 0 {
		limit = 100
	}
	return out[:min(len(out), limit)]
}

// CommandsSince returns the latest record of each command whose latest record is at or after
// since, oldest first.
func (s *Memory) CommandsSince(_ context.Context, since time.Time) ([]storage.CommandRecord, error) {
	if err := s.fail("CommandsSince"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latestCommands(func(c *storage.CommandRecord) bool { return !c.Time.Before(since) }, false), nil
}

// CommandsOf returns the latest record of each command of these instances, oldest first.
func (s *Memory) CommandsOf(_ context.Context, tenant, flow string, keys []string) ([]storage.CommandRecord, error) {
	if err := s.fail("CommandsOf"); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latestCommands(func(c *storage.CommandRecord) bool { return c.Tenant == tenant && c.Flow == flow && want[c.Key] }, false), nil
}

// FlowVersions returns the earliest load time of each recorded version.
func (s *Memory) FlowVersions(_ context.Context) ([]storage.FlowVersion, error) {
	if err := s.fail("FlowVersions"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.FlowVersion
	for k, t := range s.versions {
		out = append(out, storage.FlowVersion{Flow: k.flow, Version: k.version, LoadedAt: t})
	}
	slices.SortFunc(out, func(a, b storage.FlowVersion) int {
		return cmp.Or(strings.Compare(a.Flow, b.Flow), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// StuckCounts counts stuck instances per expected checkpoint past its deadline at now.
func (s *Memory) StuckCounts(_ context.Context, now time.Time) ([]storage.StuckCount, error) {
	if err := s.fail("StuckCounts"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[storage.StuckCount]uint64{}
	for _, st := range s.states {
		if st.Status != "stuck" {
			continue
		}
		var reason map[string]json.RawMessage
		_ = json.Unmarshal([]byte(st.Reason), &reason)
		_, errSeen := reason["last_error"]
		for _, x := range expectedCheckpoints(&st) {
			if x.Deadline.Before(now) {
				counts[storage.StuckCount{Tenant: st.Tenant, Flow: st.Flow, Version: st.Version, Checkpoint: x.Checkpoint, ErrorSeen: errSeen}]++
			}
		}
	}
	out := make([]storage.StuckCount, 0, len(counts))
	for c, n := range counts {
		c.Count = n
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b storage.StuckCount) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Flow, b.Flow), cmp.Compare(a.Version, b.Version),
			strings.Compare(a.Checkpoint, b.Checkpoint), cmp.Compare(boolInt(a.ErrorSeen), boolInt(b.ErrorSeen)))
	})
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ChildKeys returns the keys of the instances of flow whose rows carry one of parentKeys in
// storage.AttrParentKey, by parent key, sorted.
func (s *Memory) ChildKeys(_ context.Context, tenant, flow string, parentKeys []string) (map[string][]string, error) {
	if err := s.fail("ChildKeys"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, e := range s.events {
		p := e.Attributes[storage.AttrParentKey]
		if e.Tenant != tenant || e.Flow != flow || p == "" || !slices.Contains(parentKeys, p) || slices.Contains(out[p], e.Key) {
			continue
		}
		out[p] = append(out[p], e.Key)
	}
	for _, keys := range out {
		slices.Sort(keys)
	}
	return out, nil
}

// ParentKeys returns the parent key the rows of each instance of flow carry (the earliest
// row's, should they disagree).
func (s *Memory) ParentKeys(_ context.Context, tenant, flow string, keys []string) (map[string]string, error) {
	if err := s.fail("ParentKeys"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, e := range s.selectEvents(func(e *storage.CheckpointEvent) bool {
		return e.Tenant == tenant && e.Flow == flow && e.Attributes[storage.AttrParentKey] != "" && slices.Contains(keys, e.Key)
	}, eventTime) {
		if _, ok := out[e.Key]; !ok {
			out[e.Key] = e.Attributes[storage.AttrParentKey]
		}
	}
	return out, nil
}
