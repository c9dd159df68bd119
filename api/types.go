// Package api owns the flowwatch query API v1 (DESIGN.md "Query API v1"): the JSON documents
// it serves, and the HTTP handler that serves them from a storage.Reader.
//
// It is stateless over the store and never speaks SQL (storage/ does). The instance documents
// the detector stores are flowstate's; this package converts them to its own response types,
// so that the API serves exactly what the detector decided, and a change to an answer here
// never changes what is stored.
package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Instance is one flow instance as the API serves it.
type Instance struct {
	Tenant         string      `json:"tenant"`
	Flow           string      `json:"flow"`
	Version        int         `json:"version"`
	Key            string      `json:"key"`
	Status         string      `json:"status"`
	StartedAt      time.Time   `json:"started_at"`
	LastSeen       time.Time   `json:"last_seen"`
	LastCheckpoint string      `json:"last_checkpoint"`
	Expected       []Expected  `json:"expected"`
	Reason         *Reason     `json:"reason"`
	Events         []Event     `json:"events,omitempty"`
	Violations     []Violation `json:"violations,omitempty"`
}

// InstanceDetail is GET /api/v1/flows/{flow}/instances/{key}: an instance whose events and
// violations are always present, as empty lists when there are none (an instance can outlive
// its events: they expire by event time, its state by its last update). A child names its
// parent; a parent lists its children.
type InstanceDetail struct {
	Instance
	Events     []Event     `json:"events"`
	Violations []Violation `json:"violations"`
	// Parent is set on an instance of a sub-flow whose rows carry its parent's key.
	Parent *InstanceRef `json:"parent,omitempty"`
	// Children are a parent's children (of every child flow, by flow and key); absent for an
	// instance of a flow without a children checkpoint.
	Children []Child `json:"children,omitempty"`
}

// InstanceRef names an instance.
type InstanceRef struct {
	Flow string `json:"flow"`
	Key  string `json:"key"`
}

// Child is one child of a parent instance, as evaluated from its events at request time.
type Child struct {
	Flow   string `json:"flow"`
	Key    string `json:"key"`
	Status string `json:"status"`
	// Checkpoint is the checkpoint that ended it (a terminal, or what failed it); EndedAt when.
	Checkpoint string    `json:"checkpoint,omitempty"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	// Summary is the reason of a stuck child.
	Summary string `json:"summary,omitempty"`
}

// Expected is a checkpoint an instance awaits, with its deadline.
type Expected struct {
	Checkpoint string    `json:"checkpoint"`
	Deadline   time.Time `json:"deadline"`
	// Since is when the checkpoint's predecessors were satisfied.
	Since   time.Time `json:"since"`
	Service string    `json:"service"`
	// Overdue tells whether the deadline had passed when the state was evaluated.
	Overdue bool `json:"overdue"`
	// Compensates is set on a compensation: the checkpoint it undoes.
	Compensates string `json:"compensates,omitempty"`
	// Children is set on a children checkpoint: the child flow that reaches it.
	Children string `json:"children,omitempty"`
}

// Reason explains why an instance is stuck.
type Reason struct {
	Checkpoint string    `json:"checkpoint"`
	Since      time.Time `json:"since"`
	Deadline   time.Time `json:"deadline"`
	// Overdue is a Go duration string ("3m0s"); OverdueSeconds the same in seconds.
	Overdue          Duration   `json:"overdue"`
	OverdueSeconds   float64    `json:"overdue_seconds"`
	Service          string     `json:"service"`
	LastCheckpoint   string     `json:"last_checkpoint"`
	LastCheckpointAt time.Time  `json:"last_checkpoint_at,omitzero"`
	LastError        *ErrorNote `json:"last_error,omitempty"`
	TraceIDs         []string   `json:"trace_ids"`
	// Compensates is set when Checkpoint is a compensation: the step it undoes.
	Compensates string `json:"compensates,omitempty"`
	// Failure is what failed the instance (a compensation is due, or a child failed it).
	Failure *Failure `json:"failure,omitempty"`
	// Children is set when Checkpoint is a children checkpoint: how the children fare.
	Children *ChildrenReport `json:"children,omitempty"`
	Summary  string          `json:"summary"`
}

// Failure is what failed an instance: its failure terminal, the children checkpoint a failed
// child failed ("child" names it), or "@cancel" for an operator's cancel.
type Failure struct {
	Checkpoint string    `json:"checkpoint"`
	Time       time.Time `json:"time"`
	Child      *ChildRef `json:"child,omitempty"`
}

// ChildRef names a child and the checkpoint that ended it.
type ChildRef struct {
	Flow       string `json:"flow"`
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint"`
}

// ChildrenReport is how the children of a parent stuck at a children checkpoint fare: how
// many are in each status, and the first few stuck ones.
type ChildrenReport struct {
	Flow   string         `json:"flow"`
	Counts map[string]int `json:"counts"`
	Stuck  []StuckChild   `json:"stuck"`
}

// StuckChild is a stuck child of a report.
type StuckChild struct {
	Key        string    `json:"key"`
	Checkpoint string    `json:"checkpoint"`
	Deadline   time.Time `json:"deadline"`
	Summary    string    `json:"summary"`
}

// ErrorNote is the last error seen on an instance.
type ErrorNote struct {
	Service string    `json:"service"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
	TraceID string    `json:"trace_id"`
	SpanID  string    `json:"span_id"`
	Time    time.Time `json:"time"`
}

// Event is one stored checkpoint event (or error note, with an empty checkpoint) of an
// instance. An operator's action (checkpoint "@cancel" or "@unblock") is an event too: By
// names the operator who took it, and Message holds the reason given.
type Event struct {
	Checkpoint string    `json:"checkpoint"`
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Name       string    `json:"name"`
	TraceID    string    `json:"trace_id"`
	SpanID     string    `json:"span_id"`
	Status     string    `json:"status"`
	Message    string    `json:"message"`
	By         string    `json:"by,omitempty"`
}

// Violation is a conformance problem of one event of an instance.
type Violation struct {
	Kind       string    `json:"kind"`
	Checkpoint string    `json:"checkpoint"`
	Time       time.Time `json:"time"`
	EventID    string    `json:"event_id"`
	Detail     string    `json:"detail"`
}

// Duration is a time.Duration that is JSON as a Go duration string ("1h2m3s").
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"3m0s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ExpectedFromModel converts the model's expected checkpoints; never nil.
func ExpectedFromModel(xs []model.Expected) []Expected { return expectedFrom(flowstate.ExpectedOf(xs)) }

// ReasonFromModel converts a stuck reason; nil stays nil.
func ReasonFromModel(r *model.Reason) *Reason { return reasonFrom(flowstate.ReasonOf(r)) }

// ViolationsFromModel converts conformance violations; never nil.
func ViolationsFromModel(vs []model.Violation) []Violation {
	return violationsFrom(flowstate.ViolationsOf(vs))
}

func expectedFrom(xs []flowstate.Expected) []Expected {
	out := make([]Expected, 0, len(xs))
	for _, x := range xs {
		out = append(out, Expected{Checkpoint: x.Checkpoint, Deadline: x.Deadline, Since: x.Since,
			Service: x.Service, Overdue: x.Overdue, Compensates: x.Compensates, Children: x.Children})
	}
	return out
}

func reasonFrom(r *flowstate.Reason) *Reason {
	if r == nil {
		return nil
	}
	out := &Reason{Checkpoint: r.Checkpoint, Since: r.Since, Deadline: r.Deadline,
		Overdue: Duration(r.Overdue), OverdueSeconds: r.OverdueSeconds, Service: r.Service,
		LastCheckpoint: r.LastCheckpoint, LastCheckpointAt: r.LastCheckpointAt,
		TraceIDs: append(make([]string, 0, len(r.TraceIDs)), r.TraceIDs...), Compensates: r.Compensates, Summary: r.Summary}
	if e := r.LastError; e != nil {
		out.LastError = &ErrorNote{Service: e.Service, Name: e.Name, Message: e.Message,
			TraceID: e.TraceID, SpanID: e.SpanID, Time: e.Time}
	}
	if f := r.Failure; f != nil {
		out.Failure = &Failure{Checkpoint: f.Checkpoint, Time: f.Time}
		if c := f.Child; c != nil {
			out.Failure.Child = &ChildRef{Flow: c.Flow, Key: c.Key, Checkpoint: c.Checkpoint}
		}
	}
	if ch := r.Children; ch != nil {
		out.Children = &ChildrenReport{Flow: ch.Flow, Counts: make(map[string]int, len(ch.Counts)), Stuck: make([]StuckChild, 0, len(ch.Stuck))}
		for s, n := range ch.Counts {
			out.Children.Counts[s] = n
		}
		for _, k := range ch.Stuck {
			out.Children.Stuck = append(out.Children.Stuck, StuckChild{Key: k.Key, Checkpoint: k.Checkpoint, Deadline: k.Deadline, Summary: k.Summary})
		}
	}
	return out
}

// ChildFromModel converts a child's summary.
func ChildFromModel(c model.Child) Child {
	out := Child{Flow: c.Flow, Key: c.Key, Status: string(c.Status), Checkpoint: c.Checkpoint, EndedAt: utc(c.EndedAt)}
	if c.Reason != nil {
		out.Summary = c.Reason.Summary
	}
	return out
}

func violationsFrom(vs []flowstate.Violation) []Violation {
	out := make([]Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, Violation{Kind: v.Kind, Checkpoint: v.Checkpoint, Time: v.Time,
			EventID: v.EventID, Detail: v.Detail})
	}
	return out
}

// EventFromStorage converts a stored checkpoint event; an operator event names its operator.
func EventFromStorage(e storage.CheckpointEvent) Event {
	out := Event{Checkpoint: e.Checkpoint, Time: utc(e.Time), Service: e.Service, Name: e.Name,
		TraceID: e.TraceID, SpanID: e.SpanID, Status: e.Status, Message: e.Message}
	if isOperator(e.Checkpoint) {
		out.By = e.Attributes[flowstate.AttrOperatorBy]
	}
	return out
}

// isOperator tells an operator event's checkpoint (model.OperatorCancel, model.OperatorUnblock)
// from a flow's: no flow can declare a name starting with "@".
func isOperator(checkpoint string) bool { return strings.HasPrefix(checkpoint, "@") }

// InstanceFromModel converts an evaluated state to the API document (without events; the
// violations are included when there are any).
func InstanceFromModel(st model.State) Instance {
	return Instance{
		Tenant: st.Tenant, Flow: st.Flow, Version: st.Version, Key: st.Key,
		Status: string(st.Status), StartedAt: utc(st.StartedAt), LastSeen: utc(st.LastSeen),
		LastCheckpoint: st.LastCheckpoint, Expected: ExpectedFromModel(st.Expected),
		Reason: ReasonFromModel(st.Reason), Violations: nonEmpty(ViolationsFromModel(st.Violations)),
	}
}

func nonEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// InstanceFromState converts a stored instance state (flowstate's documents) to the API
// document. Violations are included (nil when there are none); events are not.
func InstanceFromState(s storage.InstanceState) (Instance, error) {
	d, err := flowstate.Parse(s)
	if err != nil {
		return Instance{}, err
	}
	return Instance{
		Tenant: s.Tenant, Flow: s.Flow, Version: s.Version, Key: s.Key, Status: s.Status,
		StartedAt: utc(s.StartedAt), LastSeen: utc(s.LastSeen), LastCheckpoint: s.LastCheckpoint,
		Expected: expectedFrom(d.Expected), Reason: reasonFrom(d.Reason),
		Violations: nonEmpty(violationsFrom(d.Violations)),
	}, nil
}

// utc returns t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time { return flowstate.UTC(t) }
