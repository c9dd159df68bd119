// Package api owns the flowwatch query API v1 (DESIGN.md "Query API v1"): the JSON documents
// it serves, and the HTTP handler that serves them from a storage.Reader.
//
// It is stateless over the store and never speaks SQL (storage/ does). The instance documents
// the detector stores are flowstate's; this package converts them to its own response types,
// so that the API serves exactly what the detector decided, and a change to an answer here
// never changes what is stored.
package api

import (
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

// The documents of an instance that the API serves are its stored documents (flowstate):
// the same types, the same JSON.
type (
	Expected       = flowstate.Expected
	Reason         = flowstate.Reason
	Failure        = flowstate.Failure
	ChildRef       = flowstate.ChildRef
	ChildrenReport = flowstate.ChildrenReport
	StuckChild     = flowstate.StuckChild
	ErrorNote      = flowstate.ErrorNote
	Violation      = flowstate.Violation
	Duration       = flowstate.Duration
)

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

// ExpectedFromModel converts the model's expected checkpoints; never nil.
func ExpectedFromModel(xs []model.Expected) []Expected { return flowstate.ExpectedOf(xs) }

// ReasonFromModel converts a stuck reason; nil stays nil.
func ReasonFromModel(r *model.Reason) *Reason { return flowstate.ReasonOf(r) }

// ViolationsFromModel converts conformance violations; never nil.
func ViolationsFromModel(vs []model.Violation) []Violation { return flowstate.ViolationsOf(vs) }

// ChildFromModel converts a child's summary.
func ChildFromModel(c model.Child) Child {
	out := Child{Flow: c.Flow, Key: c.Key, Status: string(c.Status), Checkpoint: c.Checkpoint, EndedAt: utc(c.EndedAt)}
	if c.Reason != nil {
		out.Summary = c.Reason.Summary
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
		Expected: d.Expected, Reason: d.Reason, Violations: nonEmpty(d.Violations),
	}, nil
}

// utc returns t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time { return flowstate.UTC(t) }
