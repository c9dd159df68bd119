package model

import (
	"sort"
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
	// StatusCompensating: failed (or cancelled) after steps that have compensations, which
	// are pending and not overdue; StatusStuck when one is overdue.
	StatusCompensating Status = "compensating"
	// StatusCompensated: failed, and every compensation it made due was done.
	StatusCompensated Status = "compensated"
)

// Statuses are every status, in the order of DESIGN.md.
var Statuses = []Status{StatusRunning, StatusCompleted, StatusFailed, StatusStuck, StatusCompensating,
	StatusCompensated, StatusCancelled}

// Closed reports whether an instance with this status awaits nothing more: completed,
// failed, compensated or cancelled.
func (s Status) Closed() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCompensated, StatusCancelled:
		return true
	}
	return false
}

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
	// Attributes are the attributes stored with the event: a child's parent key
	// (AttrParentKey), the value of a children checkpoint's `expect`. Nil when none.
	Attributes map[string]string
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
	children []Child
}

// SetChildren gives a parent instance its children's summaries (every child flow), which its
// children checkpoints are judged by.
func (in *Instance) SetChildren(cs []Child) { in.children = cs }

// ParentKey returns the parent's key the instance's events carry (AttrParentKey, the first
// one in event time); "" when none does.
func (in *Instance) ParentKey() string {
	for i := range in.events {
		if k := in.events[i].Attributes[AttrParentKey]; k != "" {
			return k
		}
	}
	return ""
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
	// EndedAt is when the instance ended (Verdict.EndedAt); zero while it has not. Terminal
	// is the terminal checkpoint that ended it, if one did.
	EndedAt  time.Time
	Terminal string
	// Failure is what failed the instance; nil unless it failed (see Verdict.Failure).
	Failure *Failure
	// Children are the children the instance was judged with (SetChildren).
	Children []Child
	// Broods summarize the children by child flow: what the children checkpoints were judged
	// by, and what the reason of a parent stuck at one tells of them.
	Broods []Brood
	// Expected are the checkpoints awaited with a deadline, earliest deadline first.
	Expected []Expected
	// Reason explains a stuck instance, or a failure that came from a child; nil otherwise.
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
	// Compensates is set for a compensation: the step it undoes.
	Compensates string
	// Children is set for a children checkpoint: the child flow that reaches it.
	Children string
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
	// A row at a children checkpoint is the detector's record of its reach (see
	// ReachedByChildren), not an item: the reach is derived from the children, and the
	// record changes nothing here.
	record := func(e *Event) bool { return false }
	if f.HasChildren() {
		record = func(e *Event) bool { return f.IsChildrenReach(e.Checkpoint) }
		for i := len(in.events) - 1; i > 0 && record(&in.events[i]); i-- {
			st.LastSeen = in.events[i-1].Time
		}
	}

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
		if c := f.byName[e.Checkpoint]; c != nil && c.Children == nil && first[c.Index].IsZero() {
			first[c.Index] = e.Time // events are sorted: the first seen is the earliest
		}
	}

	// The children checkpoints reached by children, so that their successors are not taken
	// for unexpected.
	prog := Progress{First: first}
	if len(in.children) > 0 {
		prog.Broods = BroodsOf(in.children)
	}
	expects := f.ExpectAttributes()
	for i := range in.events {
		e := &in.events[i]
		if e.Checkpoint == OperatorCancel && prog.Cancelled.IsZero() {
			prog.Cancelled = e.Time
		}
		for _, a := range expects {
			if n, ok := ExpectValue(e.Attributes[a]); ok {
				if prog.Expect == nil {
					prog.Expect = map[string]int{}
				}
				prog.Expect[a] = n // events are sorted: the latest wins
			}
		}
	}
	if f.HasChildren() {
		f.reachByChildren(first, &prog)
	}

	// Pass 2: violations, last checkpoint, terminal, last error, trace IDs.
	var doneBuf [32]bool
	var done []bool
	if len(f.Checkpoints) <= len(doneBuf) {
		done = doneBuf[:len(f.Checkpoints)]
	} else {
		done = make([]bool, len(f.Checkpoints))
	}
	var compensations []*Event // the first event of each compensation, checked once judged
	for i := range in.events {
		e := &in.events[i]
		if e.IsOperator() || record(e) {
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
		switch {
		case c.IsCompensation():
			compensations = append(compensations, e)
		case !c.Start:
			if v, bad := checkPreds(c, first, e); bad {
				v.Version = f.Version
				st.Violations = append(st.Violations, v)
			}
		}
	}

	v := f.Judge(prog, now)
	st.Status, st.EndedAt, st.Expected, st.NextDeadline = v.Status, v.EndedAt, v.Expected, v.NextDeadline
	st.Failure, st.Children, st.Broods = v.Failure, in.children, prog.Broods
	if v.Terminal != nil {
		st.Terminal = v.Terminal.Name
	}
	// A compensation before any failure undid nothing: it is unexpected.
	for _, e := range compensations {
		if v.Failure == nil || e.Time.Before(v.Failure.Time) {
			c := f.byName[e.Checkpoint]
			st.Violations = append(st.Violations, Violation{Kind: ViolationUnexpected, Checkpoint: c.Name,
				Time: e.Time, EventID: e.ID, Version: f.Version, Compensates: c.Compensates.Name})
		}
	}
	if len(compensations) > 0 {
		sort.SliceStable(st.Violations, func(i, j int) bool { return st.Violations[i].Time.Before(st.Violations[j].Time) })
	}
	switch {
	case st.Status == StatusStuck:
		st.Reason = st.reason(now)
	case st.Failure != nil && st.Failure.Child != nil:
		st.Reason = st.FailureReason()
	}
	return st
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
