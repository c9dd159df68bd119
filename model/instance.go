package model

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Status of a flow instance.
type Status string

// The statuses of DESIGN.md.
const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusStuck     Status = "stuck"
	// StatusCancelled: closed by an operator (an OperatorCancel event).
	StatusCancelled Status = "cancelled"
)

// Operator events: actions taken on an instance through the operator API, stored with the
// instance's events (under these reserved checkpoint names, which no flow can declare) so
// that every detector shard and every restart sees them.
const (
	// OperatorCancel closes the instance as cancelled.
	OperatorCancel = "@cancel"
	// OperatorUnblock asks for the next attempt of an overdue checkpoint's on_stuck actions now.
	OperatorUnblock = "@unblock"
)

// ViolationKind names a conformance violation.
type ViolationKind string

// The conformance violations of DESIGN.md.
const (
	// ViolationUnexpected: a checkpoint whose predecessors were never seen (or that is not a
	// checkpoint of the pinned version).
	ViolationUnexpected ViolationKind = "unexpected"
	// ViolationOutOfOrder: the predecessors were seen, but only after this checkpoint.
	ViolationOutOfOrder ViolationKind = "out_of_order"
	// ViolationDuplicate: the checkpoint was reached again by another event.
	ViolationDuplicate ViolationKind = "duplicate_checkpoint"
)

// Event is one observation of an instance: a checkpoint reached, or — when Checkpoint is
// empty — an error note (an error span, event or log carrying the key but matching no
// checkpoint), which never advances the flow but is shown in the stuck reason.
type Event struct {
	// ID is the deterministic event_id; events with the same ID are the same event.
	ID         string
	Checkpoint string
	Time       time.Time
	Service    string
	// Name is the span, span event or log event name the event came from.
	Name    string
	TraceID string
	SpanID  string
	// Status is ok, error or unset.
	Status string
	// Message is the error message, if any.
	Message string
}

// IsErrorNote reports whether the event is an error note rather than a checkpoint.
func (e *Event) IsErrorNote() bool { return e.Checkpoint == "" }

// IsOperator reports whether the event is an operator action (OperatorCancel, OperatorUnblock)
// rather than a checkpoint.
func (e *Event) IsOperator() bool { return len(e.Checkpoint) > 0 && e.Checkpoint[0] == '@' }

// Instance is one business key's journey through a flow: the events seen so far. It is
// pure state: no clock, no I/O. Not safe for concurrent use.
type Instance struct {
	Tenant string
	Flow   string
	Key    string

	versions []*Flow
	events   []Event // sorted by (Time, ID)
}

// NewInstance starts an empty instance of the flow whose versions are given (ascending, as
// Set.Versions returns them). The version is pinned from the events: see Pinned.
func NewInstance(versions []*Flow, tenant, key string) *Instance {
	name := ""
	if len(versions) > 0 {
		name = versions[0].Name
	}
	return &Instance{Tenant: tenant, Flow: name, Key: key, versions: versions}
}

// Apply adds an event. It returns false, changing nothing, when an event with the same ID
// was already applied. Events may come in any order.
func (in *Instance) Apply(e Event) bool {
	// Instances hold few events: a linear scan beats a map and allocates nothing.
	for i := range in.events {
		if in.events[i].ID == e.ID {
			return false
		}
	}
	n := len(in.events)
	if in.events == nil {
		in.events = make([]Event, 0, 8) // most instances hold fewer than 8 events
	}
	if n == 0 || !eventLess(&e, &in.events[n-1]) {
		in.events = append(in.events, e) // the common case: in order
		return true
	}
	i := sort.Search(n, func(i int) bool { return eventLess(&e, &in.events[i]) })
	in.events = append(in.events, Event{})
	copy(in.events[i+1:], in.events[i:])
	in.events[i] = e
	return true
}

func eventLess(a, b *Event) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.ID < b.ID
}

// Events returns the applied events in event-time order. The slice must not be modified.
func (in *Instance) Events() []Event { return in.events }

// Pinned returns the version this instance is judged by: the one active when its start
// checkpoint happened (the earliest event that is a start checkpoint of some version, or the
// earliest event when none is). Newer versions never re-judge older instances.
func (in *Instance) Pinned() *Flow {
	if len(in.versions) == 1 {
		return in.versions[0]
	}
	if len(in.events) == 0 {
		return pinVersion(in.versions, time.Time{})
	}
	start := in.events[0].Time
	for i := range in.events {
		if in.isStartInAnyVersion(in.events[i].Checkpoint) {
			start = in.events[i].Time
			break
		}
	}
	return pinVersion(in.versions, start)
}

func (in *Instance) isStartInAnyVersion(name string) bool {
	for _, f := range in.versions {
		if c := f.byName[name]; c != nil && c.Start {
			return true
		}
	}
	return false
}

// State is an instance evaluated at a moment.
type State struct {
	Tenant  string
	Flow    string
	Version int
	Key     string
	Status  Status
	// StartedAt is the earliest event's time; LastSeen the latest's.
	StartedAt time.Time
	LastSeen  time.Time
	// LastCheckpoint is the latest checkpoint reached, in event time.
	LastCheckpoint   string
	LastCheckpointAt time.Time
	// EndedAt is when the terminal checkpoint was reached (completed and failed only).
	EndedAt time.Time
	// Expected are the checkpoints awaited with a deadline, earliest deadline first.
	Expected []Expected
	// Reason explains a stuck instance; nil otherwise.
	Reason     *Reason
	Violations []Violation
	// LastError is the latest error note or error-status checkpoint event, if any.
	LastError *ErrorNote
	// TraceIDs of the instance's events, in event-time order, without duplicates.
	TraceIDs []string
	// NextDeadline is the earliest deadline that has not passed yet: when, with no new
	// event, the status would next change. Zero when none.
	NextDeadline time.Time
}

// Expected is a checkpoint awaited by an instance.
type Expected struct {
	Checkpoint string
	// Since is when its predecessors were satisfied.
	Since    time.Time
	Deadline time.Time
	// Service owns the checkpoint (its match.service).
	Service string
	Overdue bool
}

// Reason says why an instance is stuck.
type Reason struct {
	// Checkpoint is the expected checkpoint that is most overdue.
	Checkpoint string
	Since      time.Time
	Deadline   time.Time
	Overdue    time.Duration
	Service    string
	// LastCheckpoint is the latest checkpoint seen.
	LastCheckpoint   string
	LastCheckpointAt time.Time
	LastError        *ErrorNote
	TraceIDs         []string
	// Summary is one human sentence.
	Summary string

	flow, key string // for the summary
}

// ErrorNote is the last error seen on an instance.
type ErrorNote struct {
	Service string
	Name    string
	Message string
	TraceID string
	SpanID  string
	Time    time.Time
}

// Violation is a conformance problem of one event.
type Violation struct {
	Kind       ViolationKind
	Checkpoint string
	Time       time.Time
	EventID    string
	// After are the checkpoint's predecessors (unexpected, out_of_order); FirstAt when it was
	// first reached (duplicate_checkpoint); Version the pinned version.
	After   []string
	FirstAt time.Time
	Version int
}

// Detail describes the violation in one sentence.
func (v Violation) Detail() string {
	switch v.Kind {
	case ViolationDuplicate:
		return fmt.Sprintf("%q already reached at %s", v.Checkpoint, v.FirstAt.UTC().Format(time.RFC3339Nano))
	case ViolationOutOfOrder:
		return fmt.Sprintf("%q happened before its predecessors %v", v.Checkpoint, v.After)
	case ViolationUnexpected:
		if v.After == nil {
			return fmt.Sprintf("%q is not a checkpoint of version %d", v.Checkpoint, v.Version)
		}
		return fmt.Sprintf("%q reached but its predecessors %v were never seen", v.Checkpoint, v.After)
	}
	return string(v.Kind)
}

// maxTraceIDs bounds the trace IDs a State carries.
const maxTraceIDs = 20

// Evaluate judges the instance at now.
func (in *Instance) Evaluate(now time.Time) State {
	st := State{Tenant: in.Tenant, Flow: in.Flow, Key: in.Key, Status: StatusRunning}
	f := in.Pinned()
	if f == nil || len(in.events) == 0 {
		return st
	}
	st.Version = f.Version
	st.StartedAt = in.events[0].Time
	st.LastSeen = in.events[len(in.events)-1].Time

	// Pass 1: when each checkpoint was first reached. first[i].IsZero() means never.
	var firstBuf [32]time.Time
	var first []time.Time
	if len(f.Checkpoints) <= len(firstBuf) {
		first = firstBuf[:len(f.Checkpoints)]
	} else {
		first = make([]time.Time, len(f.Checkpoints))
	}
	for i := range in.events {
		e := &in.events[i]
		if c := f.byName[e.Checkpoint]; c != nil && first[c.Index].IsZero() {
			first[c.Index] = e.Time // events are sorted: the first seen is the earliest
		}
	}

	// Pass 2: violations, last checkpoint, terminal, last error, trace IDs.
	var doneBuf [32]bool
	var done []bool
	if len(f.Checkpoints) <= len(doneBuf) {
		done = doneBuf[:len(f.Checkpoints)]
	} else {
		done = make([]bool, len(f.Checkpoints))
	}
	var cancelled time.Time
	for i := range in.events {
		e := &in.events[i]
		if e.IsOperator() {
			if e.Checkpoint == OperatorCancel && cancelled.IsZero() {
				cancelled = e.Time
			}
			continue
		}
		st.addTrace(e.TraceID, len(in.events))
		if e.IsErrorNote() || e.Status == "error" {
			st.LastError = &ErrorNote{Service: e.Service, Name: e.Name, Message: e.Message,
				TraceID: e.TraceID, SpanID: e.SpanID, Time: e.Time}
		}
		if e.IsErrorNote() {
			continue
		}
		c := f.byName[e.Checkpoint]
		if c == nil {
			st.Violations = append(st.Violations, Violation{Kind: ViolationUnexpected,
				Checkpoint: e.Checkpoint, Time: e.Time, EventID: e.ID, Version: f.Version})
			continue
		}
		if done[c.Index] {
			st.Violations = append(st.Violations, Violation{Kind: ViolationDuplicate,
				Checkpoint: c.Name, Time: e.Time, EventID: e.ID, FirstAt: first[c.Index], Version: f.Version})
			continue
		}
		done[c.Index] = true
		st.LastCheckpoint, st.LastCheckpointAt = c.Name, e.Time
		if !c.Start {
			if v, bad := checkPreds(c, first, e); bad {
				v.Version = f.Version
				st.Violations = append(st.Violations, v)
			}
		}
	}

	v := f.Judge(first, now)
	st.Status, st.EndedAt, st.Expected, st.NextDeadline = v.Status, v.EndedAt, v.Expected, v.NextDeadline
	if !cancelled.IsZero() && (v.Terminal == nil || cancelled.Before(v.EndedAt)) {
		// Cancelled by an operator before it ended by itself: closed, awaiting nothing.
		st.Status, st.EndedAt, st.Expected, st.NextDeadline = StatusCancelled, cancelled, nil, time.Time{}
	}
	if st.Status == StatusStuck {
		st.Reason = st.reason(now)
	}
	return st
}

// Verdict is what an instance's progress means at a moment.
type Verdict struct {
	Status Status
	// Terminal is the terminal checkpoint reached first, and EndedAt when; nil if none.
	Terminal *Checkpoint
	EndedAt  time.Time
	// Expected are the checkpoints awaited with a deadline, earliest deadline first.
	Expected []Expected
	// NextDeadline is the earliest deadline not passed yet; zero when none.
	NextDeadline time.Time
}

// Judge evaluates an instance's progress at now. first[i] is when f.Checkpoints[i] was first
// reached, zero when never. It is the one place that decides status and deadlines: Evaluate
// uses it, and so does the detector on its compact per-instance state.
func (f *Flow) Judge(first []time.Time, now time.Time) Verdict {
	v := Verdict{Status: StatusRunning}
	for i, c := range f.Checkpoints {
		if c.Terminal != NotTerminal && !first[i].IsZero() && (v.Terminal == nil || first[i].Before(v.EndedAt)) {
			v.Terminal, v.EndedAt = c, first[i]
		}
	}
	if v.Terminal != nil {
		v.Status = StatusCompleted
		if v.Terminal.Terminal == TerminalFailure {
			v.Status = StatusFailed
		}
		return v
	}
	// Expected checkpoints: enabled, not reached, not passed by a later checkpoint, with a
	// deadline.
	var passedBuf [32]bool
	var passed []bool
	if len(f.Checkpoints) <= len(passedBuf) {
		passed = passedBuf[:len(f.Checkpoints)]
	} else {
		passed = make([]bool, len(f.Checkpoints))
	}
	f.markPassed(first, passed)
	for i, c := range f.Checkpoints {
		if c.Start || c.Within <= 0 || !first[i].IsZero() || passed[i] {
			continue
		}
		since, ok := enabledAt(c, first)
		if !ok {
			continue
		}
		x := Expected{Checkpoint: c.Name, Since: since, Deadline: since.Add(c.Within),
			Service: c.Match.Service}
		x.Overdue = now.After(x.Deadline)
		if !x.Overdue && (v.NextDeadline.IsZero() || x.Deadline.Before(v.NextDeadline)) {
			v.NextDeadline = x.Deadline
		}
		v.Expected = append(v.Expected, x)
	}
	slices.SortStableFunc(v.Expected, func(a, b Expected) int { return a.Deadline.Compare(b.Deadline) })
	if len(v.Expected) > 0 && v.Expected[0].Overdue {
		v.Status = StatusStuck
	}
	return v
}

// markPassed sets passed[i] when f.Checkpoints[i] comes before (is an ancestor of) a reached
// checkpoint. Walking the checkpoints successors first, a checkpoint's mark is final when it
// is visited, and it passes the mark to its predecessors: each `after` entry is looked at
// once, whatever the shape of the flow.
func (f *Flow) markPassed(first []time.Time, passed []bool) {
	for k := len(f.topo) - 1; k >= 0; k-- {
		i := f.topo[k]
		if passed[i] || !first[i].IsZero() {
			for _, p := range f.Checkpoints[i].Preds {
				passed[p.Index] = true
			}
		}
	}
}

func (st *State) addTrace(id string, hint int) {
	if id == "" || len(st.TraceIDs) >= maxTraceIDs {
		return
	}
	if st.TraceIDs == nil {
		st.TraceIDs = make([]string, 0, min(hint, maxTraceIDs))
	}
	for _, t := range st.TraceIDs {
		if t == id {
			return
		}
	}
	st.TraceIDs = append(st.TraceIDs, id)
}

// checkPreds tells whether event e of checkpoint c came after its predecessors.
func checkPreds(c *Checkpoint, first []time.Time, e *Event) (Violation, bool) {
	seenBefore, seenEver := 0, 0
	for _, p := range c.Preds {
		t := first[p.Index]
		if t.IsZero() {
			continue
		}
		seenEver++
		if !t.After(e.Time) {
			seenBefore++
		}
	}
	need := len(c.Preds)
	if c.Join == JoinAny {
		need = 1
	}
	if seenBefore >= need {
		return Violation{}, false
	}
	v := Violation{Kind: ViolationUnexpected, Checkpoint: c.Name, Time: e.Time, EventID: e.ID, After: c.After}
	if seenEver >= need {
		v.Kind = ViolationOutOfOrder
	}
	return v, true
}

// enabledAt returns when c's predecessors were satisfied according to its join.
func enabledAt(c *Checkpoint, first []time.Time) (time.Time, bool) {
	var at time.Time
	seen := 0
	for _, p := range c.Preds {
		t := first[p.Index]
		if t.IsZero() {
			if c.Join == JoinAll {
				return time.Time{}, false
			}
			continue
		}
		seen++
		if c.Join == JoinAny {
			if at.IsZero() || t.Before(at) {
				at = t
			}
		} else if t.After(at) {
			at = t
		}
	}
	return at, seen > 0
}

func (st *State) reason(now time.Time) *Reason { return st.ReasonFor(st.Expected[0]).At(now) }

// ReasonFor explains why x, an overdue expected checkpoint of the instance, holds it up: the
// state's last checkpoint, last error and trace IDs with x's deadline. Every overdue
// checkpoint has its own reason (its own alert, its own actions); Reason is the most overdue's.
// How overdue it is, and the summary that says so, are filled in by At.
func (st *State) ReasonFor(x Expected) *Reason {
	return &Reason{
		Checkpoint: x.Checkpoint, Since: x.Since, Deadline: x.Deadline, Service: x.Service,
		LastCheckpoint: st.LastCheckpoint, LastCheckpointAt: st.LastCheckpointAt,
		LastError: st.LastError, TraceIDs: st.TraceIDs, flow: st.Flow, key: st.Key,
	}
}

// At returns a copy of the reason as it reads at now: how much overdue, and the summary.
func (r *Reason) At(now time.Time) *Reason {
	c := *r
	c.Overdue = now.Sub(c.Deadline)
	owner := c.Service
	if owner == "" {
		owner = "an unknown service"
	}
	// flow key: "checkpoint" expected from owner by deadline, overdue by 1m2s; last checkpoint "x"
	// [; last error in service "name": message] — appended by hand: stuck storms write many.
	var buf [256]byte
	b := append(buf[:0], c.flow...)
	b = append(b, ' ')
	b = append(b, c.key...)
	b = append(b, ": "...)
	b = strconv.AppendQuote(b, c.Checkpoint)
	b = append(b, " expected from "...)
	b = append(b, owner...)
	b = append(b, " by "...)
	b = c.Deadline.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, ", overdue by "...)
	b = append(b, c.Overdue.Round(time.Second).String()...)
	b = append(b, "; last checkpoint "...)
	b = strconv.AppendQuote(b, c.LastCheckpoint)
	if e := c.LastError; e != nil {
		b = append(b, "; last error in "...)
		b = append(b, e.Service...)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, e.Name)
		b = append(b, ": "...)
		b = append(b, e.Message...)
	}
	c.Summary = string(b)
	return &c
}
