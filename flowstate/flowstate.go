// Package flowstate owns what flowwatch stores about an instance beyond its raw rows: the JSON
// documents of an instance state (expected checkpoints, stuck reason, violations) in
// storage.InstanceState, the one conversion from stored checkpoint rows to model events, and
// the one way to rebuild a model.Instance from its rows. The detector writes these documents,
// the query API and replay read them, and the detector's commands carry the reason document.
//
// It is a format package: no I/O, no HTTP. The query API's response types are the API's own
// and are converted from these documents, so a change to an HTTP answer never silently
// changes stored rows or command payloads.
package flowstate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Expected is a checkpoint an instance awaits, with its deadline (stored document).
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

// Reason explains why an instance is stuck (stored document, and the reason of a command).
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

// Failure is what failed an instance (stored document): its failure terminal, the children
// checkpoint a failed child failed, or "@cancel" for an operator's cancel.
type Failure struct {
	Checkpoint string    `json:"checkpoint"`
	Time       time.Time `json:"time"`
	Child      *ChildRef `json:"child,omitempty"`
}

// ChildRef names a child instance and the checkpoint that ended it (stored document).
type ChildRef struct {
	Flow       string `json:"flow"`
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint"`
}

// ChildrenReport is how the children of a parent stuck at a children checkpoint fare
// (stored document): how many are in each status, and the first few stuck ones.
type ChildrenReport struct {
	Flow   string         `json:"flow"`
	Counts map[string]int `json:"counts"`
	Stuck  []StuckChild   `json:"stuck"`
}

// StuckChild is a stuck child of a report (stored document).
type StuckChild struct {
	Key        string    `json:"key"`
	Checkpoint string    `json:"checkpoint"`
	Deadline   time.Time `json:"deadline"`
	Summary    string    `json:"summary"`
}

// ErrorNote is the last error seen on an instance (stored document).
type ErrorNote struct {
	Service string    `json:"service"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
	TraceID string    `json:"trace_id"`
	SpanID  string    `json:"span_id"`
	Time    time.Time `json:"time"`
}

// Violation is a conformance problem of one event of an instance (stored document).
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

// Empty documents of the JSON columns, as Docs writes them. Parse also accepts an empty
// string for each, and "{}" for the reason.
const (
	EmptyExpected   = "[]"
	EmptyReason     = "null"
	EmptyViolations = "[]"
)

// UTC returns t in UTC, keeping the zero time zero.
func UTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// ExpectedOf converts the model's expected checkpoints; never nil.
func ExpectedOf(xs []model.Expected) []Expected {
	out := make([]Expected, 0, len(xs))
	for _, x := range xs {
		out = append(out, Expected{Checkpoint: x.Checkpoint, Deadline: UTC(x.Deadline),
			Since: UTC(x.Since), Service: x.Service, Overdue: x.Overdue, Compensates: x.Compensates, Children: x.Children})
	}
	return out
}

// ReasonOf converts a stuck reason; nil stays nil.
func ReasonOf(r *model.Reason) *Reason {
	if r == nil {
		return nil
	}
	out := &Reason{
		Checkpoint: r.Checkpoint, Since: UTC(r.Since), Deadline: UTC(r.Deadline),
		Overdue: Duration(r.Overdue), OverdueSeconds: r.Overdue.Seconds(), Service: r.Service,
		LastCheckpoint: r.LastCheckpoint, LastCheckpointAt: UTC(r.LastCheckpointAt),
		TraceIDs:    append(make([]string, 0, len(r.TraceIDs)), r.TraceIDs...),
		Compensates: r.Compensates, Failure: FailureOf(r.Failure), Summary: r.Summary,
	}
	if e := r.LastError; e != nil {
		out.LastError = &ErrorNote{Service: e.Service, Name: e.Name, Message: e.Message,
			TraceID: e.TraceID, SpanID: e.SpanID, Time: UTC(e.Time)}
	}
	if ch := r.Children; ch != nil {
		out.Children = &ChildrenReport{Flow: ch.Flow, Counts: make(map[string]int, len(ch.Counts)),
			Stuck: make([]StuckChild, 0, len(ch.Stuck))}
		for s, n := range ch.Counts {
			out.Children.Counts[string(s)] = n
		}
		for _, k := range ch.Stuck {
			out.Children.Stuck = append(out.Children.Stuck, StuckChild{Key: k.Key, Checkpoint: k.Checkpoint,
				Deadline: UTC(k.Deadline), Summary: k.Summary})
		}
	}
	return out
}

// FailureOf converts what failed an instance; nil stays nil.
func FailureOf(f *model.Failure) *Failure {
	if f == nil {
		return nil
	}
	out := &Failure{Checkpoint: f.Checkpoint, Time: UTC(f.Time)}
	if c := f.Child; c != nil {
		out.Child = &ChildRef{Flow: c.Flow, Key: c.Key, Checkpoint: c.Checkpoint}
	}
	return out
}

// ViolationsOf converts conformance violations; never nil.
func ViolationsOf(vs []model.Violation) []Violation {
	out := make([]Violation, 0, len(vs))
	for _, v := range vs {
		out = append(out, Violation{Kind: string(v.Kind), Checkpoint: v.Checkpoint,
			Time: UTC(v.Time), EventID: v.EventID, Detail: v.Detail()})
	}
	return out
}

// Docs returns the JSON documents of an evaluated state's expected checkpoints, stuck reason
// and violations, for storage.InstanceState's Expected, Reason and Violations columns.
// Empties are EmptyExpected, EmptyReason and EmptyViolations.
func Docs(st model.State) (expected, reason, violations string) {
	// Most states have no reason and no violations: skip encoding what is empty.
	expected, reason, violations = EmptyExpected, EmptyReason, EmptyViolations
	var buf [1024]byte
	if len(st.Expected) > 0 {
		expected = string(appendExpected(buf[:0], st.Expected))
	}
	if st.Reason != nil {
		reason = string(appendReason(buf[:0], st.Reason))
	}
	if len(st.Violations) > 0 {
		violations = string(appendViolations(buf[:0], st.Violations))
	}
	return expected, reason, violations
}

// Row builds the storage row of an evaluated state, with its JSON documents. The caller sets
// Shard and UpdatedAt.
func Row(st model.State) storage.InstanceState {
	x, r, v := Docs(st)
	return storage.InstanceState{
		Tenant: st.Tenant, Flow: st.Flow, Version: st.Version, Key: st.Key,
		Status: string(st.Status), StartedAt: st.StartedAt, LastSeen: st.LastSeen,
		LastCheckpoint: st.LastCheckpoint, Expected: x, Reason: r, Violations: v,
	}
}

// Document is a stored instance state with its JSON documents parsed.
type Document struct {
	storage.InstanceState
	// Expected is never nil; Reason is nil unless stuck; Violations nil when there are none.
	Expected   []Expected
	Reason     *Reason
	Violations []Violation
}

// Parse reads the JSON documents of a stored state. An error names the instance and the
// document that does not parse.
func Parse(s storage.InstanceState) (Document, error) {
	d := Document{InstanceState: s, Expected: []Expected{}}
	id := s.Tenant + "/" + s.Flow + "/" + s.Key
	if s.Expected != "" {
		if err := json.Unmarshal([]byte(s.Expected), &d.Expected); err != nil {
			return Document{}, fmt.Errorf("parse expected of %s: %w", id, err)
		}
		if d.Expected == nil { // "null"
			d.Expected = []Expected{}
		}
	}
	if s.Reason != "" {
		if err := json.Unmarshal([]byte(s.Reason), &d.Reason); err != nil {
			return Document{}, fmt.Errorf("parse reason of %s: %w", id, err)
		}
		if d.Reason != nil && d.Reason.Checkpoint == "" { // "{}": a reason always names a checkpoint
			d.Reason = nil
		}
	}
	if s.Violations != "" {
		if err := json.Unmarshal([]byte(s.Violations), &d.Violations); err != nil {
			return Document{}, fmt.Errorf("parse violations of %s: %w", id, err)
		}
		if len(d.Violations) == 0 {
			d.Violations = nil
		}
	}
	return d, nil
}
