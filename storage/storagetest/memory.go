// Package storagetest holds what tests of the code above the store share: an in-memory
// store (Memory) for tests of the code that reads and writes it (the query API, the
// detector, replay).
package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// Memory is an in-memory storage.Writer and storage.Reader. The zero value is ready to use;
// it is safe for concurrent use.
type Memory struct {
	// Fail, when set, is called with the method name before every Reader method; a non-nil
	// error is returned from the method.
	Fail func(method string) error

	mu       sync.Mutex
	events   map[string]storage.CheckpointEvent
	aliases  map[aliasKey]string
	states   map[instKey]storage.InstanceState
	alerts   []storage.AlertRecord
	commands []storage.CommandRecord
	versions map[[2]any]time.Time
}

type aliasKey struct{ tenant, flow, attr, value string }
type instKey struct{ tenant, flow, key string }

var (
	_ storage.Reader = (*Memory)(nil)
	_ storage.Writer = (*Memory)(nil)
)

func (s *Memory) fail(method string) error {
	if s.Fail != nil {
		return s.Fail(method)
	}
	return nil
}

// WriteEvents stores events; an EventID already stored is ignored.
func (s *Memory) WriteEvents(_ context.Context, events []storage.CheckpointEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events == nil {
		s.events = map[string]storage.CheckpointEvent{}
	}
	for _, e := range events {
		if _, ok := s.events[e.EventID]; !ok {
			s.events[e.EventID] = e
		}
	}
	return nil
}

// WriteAliases stores aliases; the earliest alias of a value wins.
func (s *Memory) WriteAliases(_ context.Context, aliases []storage.Alias) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aliases == nil {
		s.aliases = map[aliasKey]string{}
	}
	for _, a := range aliases {
		k := aliasKey{a.Tenant, a.Flow, a.Attr, a.Value}
		if _, ok := s.aliases[k]; !ok {
			s.aliases[k] = a.Key
		}
	}
	return nil
}

// WriteStates stores states; a state replaces one with an older or equal UpdatedAt.
func (s *Memory) WriteStates(_ context.Context, states []storage.InstanceState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[instKey]storage.InstanceState{}
	}
	for _, st := range states {
		k := instKey{st.Tenant, st.Flow, st.Key}
		if old, ok := s.states[k]; ok && old.UpdatedAt.After(st.UpdatedAt) {
			continue
		}
		s.states[k] = st
	}
	return nil
}

// WriteAlerts appends alert records; an identical record is stored once.
func (s *Memory) WriteAlerts(_ context.Context, alerts []storage.AlertRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, a := range alerts {
		for _, old := range s.alerts {
			if old == a {
				continue next
			}
		}
		s.alerts = append(s.alerts, a)
	}
	return nil
}

// WriteCommands appends command records; a record replaces an older one with the same ID.
func (s *Memory) WriteCommands(_ context.Context, commands []storage.CommandRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, c := range commands {
		for i, old := range s.commands {
			if old.ID == c.ID {
				if !old.Time.After(c.Time) {
					s.commands[i] = c
				}
				continue next
			}
		}
		s.commands = append(s.commands, c)
	}
	return nil
}

func (s *Memory) sortedEvents(keep func(*storage.CheckpointEvent) bool) []storage.CheckpointEvent {
	var out []storage.CheckpointEvent
	for _, e := range s.events {
		if keep(&e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].EventID < out[j].EventID
	})
	return out
}

// EventsSince returns events ingested at or after since, by ingest time, at most limit.
func (s *Memory) EventsSince(_ context.Context, since time.Time, limit int) ([]storage.CheckpointEvent, error) {
	if err := s.fail("EventsSince"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sortedEvents(func(e *storage.CheckpointEvent) bool { return !e.IngestTime.Before(since) })
	sort.SliceStable(out, func(i, j int) bool { return out[i].IngestTime.Before(out[j].IngestTime) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// EventRefs returns the ids and ingest times of the events ingested in [from, to].
func (s *Memory) EventRefs(_ context.Context, from, to time.Time) ([]storage.EventRef, error) {
	if err := s.fail("EventRefs"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.EventRef
	for _, e := range s.events {
		if !e.IngestTime.Before(from) && !e.IngestTime.After(to) {
			out = append(out, storage.EventRef{EventID: e.EventID, IngestTime: e.IngestTime})
		}
	}
	return out, nil
}

// CountEvents counts the distinct event ids ingested in [from, to].
func (s *Memory) CountEvents(_ context.Context, from, to time.Time) (uint64, error) {
	if err := s.fail("CountEvents"); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, e := range s.events {
		if !e.IngestTime.Before(from) && !e.IngestTime.After(to) {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := s.sortedEvents(func(e *storage.CheckpointEvent) bool { return want[e.EventID] && !e.IngestTime.Before(since) })
	sort.SliceStable(out, func(i, j int) bool { return out[i].IngestTime.Before(out[j].IngestTime) })
	return out, nil
}

// resolve returns the instance key of an event: its Key, or the key its alias maps to.
func (s *Memory) resolve(e *storage.CheckpointEvent) string {
	if k, ok := s.aliases[aliasKey{e.Tenant, e.Flow, e.KeyAttr, e.Key}]; ok {
		return k
	}
	return e.Key
}

// InstanceEvents returns the events of one instance — keyed by key, or by an alias value
// that resolves to key — in event time.
func (s *Memory) InstanceEvents(_ context.Context, tenant, flow, key string) ([]storage.CheckpointEvent, error) {
	if err := s.fail("InstanceEvents"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedEvents(func(e *storage.CheckpointEvent) bool {
		return e.Tenant == tenant && e.Flow == flow && s.resolve(e) == key
	}), nil
}

// InstancesEvents returns the events of many instances, by key, as InstanceEvents does.
func (s *Memory) InstancesEvents(_ context.Context, tenant, flow string, keys []string) (map[string][]storage.CheckpointEvent, error) {
	if err := s.fail("InstancesEvents"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	out := map[string][]storage.CheckpointEvent{}
	for _, e := range s.sortedEvents(func(e *storage.CheckpointEvent) bool {
		return e.Tenant == tenant && e.Flow == flow && want[s.resolve(e)]
	}) {
		k := s.resolve(&e)
		out[k] = append(out[k], e)
	}
	return out, nil
}

// ResolveAliases maps alias values to instance keys.
func (s *Memory) ResolveAliases(_ context.Context, tenant, flow, attr string, values []string) (map[string]string, error) {
	if err := s.fail("ResolveAliases"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, v := range values {
		if k, ok := s.aliases[aliasKey{tenant, flow, attr, v}]; ok {
			out[v] = k
		}
	}
	return out, nil
}

// expectedDoc is the part of the API's expected document the fake filters on.
type expectedDoc struct {
	Checkpoint string `json:"checkpoint"`
	Overdue    bool   `json:"overdue"`
}

func expects(st *storage.InstanceState, checkpoint string, overdueOnly bool) bool {
	var xs []expectedDoc
	_ = json.Unmarshal([]byte(st.Expected), &xs)
	for _, x := range xs {
		if x.Checkpoint == checkpoint && (x.Overdue || !overdueOnly) {
			return true
		}
	}
	return false
}

// Instances lists states newest (LastSeen) first; the cursor is "o" and an offset.
func (s *Memory) Instances(_ context.Context, f storage.InstanceFilter) ([]storage.InstanceState, string, error) {
	if err := s.fail("Instances"); err != nil {
		return nil, "", err
	}
	off := 0
	if f.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(f.Cursor, "o"))
		if !strings.HasPrefix(f.Cursor, "o") || err != nil || n < 0 {
			return nil, "", fmt.Errorf("%w: bad cursor %q", storage.ErrInvalid, f.Cursor)
		}
		off = n
	}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []storage.InstanceState
	for _, st := range s.states {
		switch {
		case f.Tenant != "" && st.Tenant != f.Tenant,
			f.Flow != "" && st.Flow != f.Flow,
			f.Status != "" && st.Status != f.Status,
			f.Key != "" && st.Key != f.Key,
			f.Checkpoint != "" && st.LastCheckpoint != f.Checkpoint && !expects(&st, f.Checkpoint, false):
			continue
		}
		all = append(all, st)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if !a.LastSeen.Equal(b.LastSeen) {
			return a.LastSeen.After(b.LastSeen)
		}
		return a.Tenant+"\x00"+a.Flow+"\x00"+a.Key < b.Tenant+"\x00"+b.Flow+"\x00"+b.Key
	})
	if off > len(all) {
		off = len(all)
	}
	page := all[off:]
	next := ""
	if len(page) > limit {
		page = page[:limit]
		next = "o" + strconv.Itoa(off+limit)
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

// firstReached returns, per instance, when each checkpoint was first reached.
func (s *Memory) firstReached(tenant, flow string) map[instKey]map[string]time.Time {
	out := map[instKey]map[string]time.Time{}
	for _, e := range s.sortedEvents(func(e *storage.CheckpointEvent) bool {
		return (tenant == "" || e.Tenant == tenant) && e.Flow == flow && e.Checkpoint != ""
	}) {
		k := instKey{e.Tenant, e.Flow, s.resolve(&e)}
		if out[k] == nil {
			out[k] = map[string]time.Time{}
		}
		if _, ok := out[k][e.Checkpoint]; !ok {
			out[k][e.Checkpoint] = e.Time
		}
	}
	return out
}

// CheckpointCounts counts instances that reached each checkpoint in [from, to), and stuck
// instances whose expected checkpoints include it.
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
	for _, cps := range s.firstReached(tenant, flow) {
		for cp, t := range cps {
			if !t.Before(from) && t.Before(to) {
				get(cp).Count++
			}
		}
	}
	for _, st := range s.states {
		if (tenant != "" && st.Tenant != tenant) || st.Flow != flow || st.Status != "stuck" {
			continue
		}
		// Stuck at the checkpoint its reason names (the most overdue), not at every one it
		// awaits.
		var r struct {
			Checkpoint string `json:"checkpoint"`
		}
		if json.Unmarshal([]byte(st.Reason), &r) == nil && r.Checkpoint != "" {
			get(r.Checkpoint).Stuck++
		}
	}
	out := make([]storage.CheckpointCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Checkpoint < out[j].Checkpoint })
	return out, nil
}

// Transitions measures edges over instances that reached the source in [from, to).
func (s *Memory) Transitions(_ context.Context, tenant, flow string, edges [][2]string, from, to time.Time) ([]storage.Transition, error) {
	if err := s.fail("Transitions"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reached := s.firstReached(tenant, flow)
	out := make([]storage.Transition, 0, len(edges))
	for _, e := range edges {
		var ds []time.Duration
		for _, cps := range reached {
			src, ok1 := cps[e[0]]
			dst, ok2 := cps[e[1]]
			if ok1 && ok2 && !src.Before(from) && src.Before(to) && !dst.Before(src) {
				ds = append(ds, dst.Sub(src))
			}
		}
		t := storage.Transition{Source: e[0], Target: e[1], Count: uint64(len(ds))}
		if len(ds) > 0 {
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
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

// Series counts, per step from from, events by checkpoint or instances by status (at their
// LastSeen). Only non-empty buckets are returned.
func (s *Memory) Series(_ context.Context, tenant, flow, by string, from, to time.Time, step time.Duration) ([]storage.Series, error) {
	if err := s.fail("Series"); err != nil {
		return nil, err
	}
	if by != "status" && by != "checkpoint" {
		return nil, fmt.Errorf("series by %q: want status or checkpoint", by)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buckets := map[string]map[int64]float64{}
	add := func(name string, t time.Time) {
		if t.Before(from) || !t.Before(to) {
			return
		}
		ms := from.UnixMilli() + (t.UnixMilli()-from.UnixMilli())/step.Milliseconds()*step.Milliseconds()
		if buckets[name] == nil {
			buckets[name] = map[int64]float64{}
		}
		buckets[name][ms]++
	}
	if by == "checkpoint" {
		for _, e := range s.events {
			if (tenant == "" || e.Tenant == tenant) && e.Flow == flow && e.Checkpoint != "" {
				add(e.Checkpoint, e.Time)
			}
		}
	} else {
		for _, st := range s.states {
			if (tenant == "" || st.Tenant == tenant) && st.Flow == flow {
				add(st.Status, st.LastSeen)
			}
		}
	}
	var out []storage.Series
	for name, b := range buckets {
		sr := storage.Series{Name: name}
		for ms, v := range b {
			sr.Points = append(sr.Points, storage.Point{Time: time.UnixMilli(ms).UTC(), Value: v})
		}
		sort.Slice(sr.Points, func(i, j int) bool { return sr.Points[i].Time.Before(sr.Points[j].Time) })
		out = append(out, sr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Alerts returns alert records newest first.
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
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return limited(out, f.Limit), nil
}

// Commands returns command records newest first.
func (s *Memory) Commands(_ context.Context, f storage.AuditFilter) ([]storage.CommandRecord, error) {
	if err := s.fail("Commands"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.CommandRecord
	for _, c := range s.commands {
		if f.Matches(c.Tenant, c.Flow, c.Key) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return limited(out, f.Limit), nil
}

// limited keeps the first limit records (100 when limit is 0, as the store does).
func limited[T any](out []T, limit int) []T {
	if limit <= 0 {
		limit = 100
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// CommandsSince returns the latest record of each command whose latest record is at or after
// since, oldest first.
func (s *Memory) CommandsSince(_ context.Context, since time.Time) ([]storage.CommandRecord, error) {
	if err := s.fail("CommandsSince"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[string]storage.CommandRecord{}
	for _, c := range s.commands {
		if prev, ok := latest[c.ID]; !ok || !c.Time.Before(prev.Time) {
			latest[c.ID] = c
		}
	}
	var out []storage.CommandRecord
	for _, c := range latest {
		if !c.Time.Before(since) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// WriteFlowVersions records first-load times; the earliest of a version wins.
func (s *Memory) WriteFlowVersions(_ context.Context, vs []storage.FlowVersion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.versions == nil {
		s.versions = map[[2]any]time.Time{}
	}
	for _, v := range vs {
		k := [2]any{v.Flow, v.Version}
		if cur, ok := s.versions[k]; !ok || v.LoadedAt.Before(cur) {
			s.versions[k] = v.LoadedAt
		}
	}
	return nil
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
		out = append(out, storage.FlowVersion{Flow: k[0].(string), Version: k[1].(int), LoadedAt: t})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Flow != out[j].Flow {
			return out[i].Flow < out[j].Flow
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// StuckCounts counts stuck instances per overdue expected checkpoint.
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
		var xs []struct {
			Checkpoint string    `json:"checkpoint"`
			Deadline   time.Time `json:"deadline"`
		}
		_ = json.Unmarshal([]byte(st.Expected), &xs)
		errSeen := strings.Contains(st.Reason, `"last_error"`)
		for _, x := range xs {
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
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Flow != b.Flow {
			return a.Flow < b.Flow
		}
		if a.Checkpoint != b.Checkpoint {
			return a.Checkpoint < b.Checkpoint
		}
		return !a.ErrorSeen && b.ErrorSeen
	})
	return out, nil
}

// CommandsOf returns the command records of these instances, oldest first.
func (s *Memory) CommandsOf(_ context.Context, tenant, flow string, keys []string) ([]storage.CommandRecord, error) {
	if err := s.fail("CommandsOf"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var out []storage.CommandRecord
	for _, c := range s.commands {
		if c.Tenant == tenant && c.Flow == flow && want[c.Key] {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
