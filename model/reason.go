package model

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Reason says why an instance is stuck: which expected checkpoint is overdue, and what the
// instance shows about it. A failed instance whose failure came from a child has one too,
// naming the child (Failure, with a zero Deadline).
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
	// Compensates is set when Checkpoint is a compensation: the step it undoes.
	Compensates string
	// Failure is what failed the instance, when it did (a compensation is due, or a child
	// failed it).
	Failure *Failure
	// Children is set when Checkpoint is a children checkpoint: how its children fare.
	Children *ChildrenReport
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
	// first reached (duplicate_checkpoint); Version the pinned version; Compensates the step
	// a compensation that came before any failure undoes (unexpected).
	After       []string
	FirstAt     time.Time
	Version     int
	Compensates string
}

// Detail describes the violation in one sentence.
func (v Violation) Detail() string {
	switch v.Kind {
	case ViolationDuplicate:
		return fmt.Sprintf("%q already reached at %s", v.Checkpoint, v.FirstAt.UTC().Format(time.RFC3339Nano))
	case ViolationOutOfOrder:
		return fmt.Sprintf("%q happened before its predecessors %v", v.Checkpoint, v.After)
	case ViolationUnexpected:
		if v.Compensates != "" {
			return fmt.Sprintf("compensation %q (of %q) reached before the instance failed", v.Checkpoint, v.Compensates)
		}
		if v.After == nil {
			return fmt.Sprintf("%q is not a checkpoint of version %d", v.Checkpoint, v.Version)
		}
		return fmt.Sprintf("%q reached but its predecessors %v were never seen", v.Checkpoint, v.After)
	}
	return string(v.Kind)
}

func (st *State) reason(now time.Time) *Reason { return st.ReasonFor(st.Expected[0]).At(now) }

// ReasonFor explains why x, an overdue expected checkpoint of the instance, holds it up: the
// state's last checkpoint, last error and trace IDs with x's deadline — and, for a
// compensation, the failure that made it due; for a children checkpoint, how the children
// fare. Every overdue checkpoint has its own reason (its own alert, its own actions); Reason
// is the most overdue's. How overdue it is, and the summary that says so, are filled in by
// At, once, where the reason is written or sent.
func (st *State) ReasonFor(x Expected) *Reason {
	r := &Reason{
		Checkpoint: x.Checkpoint, Since: x.Since, Deadline: x.Deadline, Service: x.Service,
		LastCheckpoint: st.LastCheckpoint, LastCheckpointAt: st.LastCheckpointAt,
		LastError: st.LastError, TraceIDs: st.TraceIDs, Compensates: x.Compensates, flow: st.Flow, key: st.Key,
	}
	if x.Compensates != "" {
		r.Failure = st.Failure
	}
	if x.Children != "" {
		r.Children = childrenReport(x.Children, st.Broods)
	}
	return r
}

// FailureReason explains a failure that came from a child: the child, and what failed it.
// st.Failure must be set.
func (st *State) FailureReason() *Reason {
	f := st.Failure
	r := &Reason{Checkpoint: f.Checkpoint, Since: f.Time, LastCheckpoint: st.LastCheckpoint,
		LastCheckpointAt: st.LastCheckpointAt, LastError: st.LastError, TraceIDs: st.TraceIDs, Failure: f,
		flow: st.Flow, key: st.Key}
	return r.At(f.Time)
}

// At returns a copy of the reason as it reads at now: how much overdue, and the summary.
func (r *Reason) At(now time.Time) *Reason {
	c := *r
	// flow key: "checkpoint" expected from owner by deadline, overdue by 1m2s; last checkpoint "x"
	// [; last error in service "name": message] — appended by hand: stuck storms write many.
	var buf [256]byte
	b := append(buf[:0], c.flow...)
	b = append(b, ' ')
	b = append(b, c.key...)
	b = append(b, ": "...)
	if c.Deadline.IsZero() && c.Failure != nil {
		// Not overdue: failed.
		c.Overdue = 0
		b = appendFailure(append(b, "failed: "...), c.Failure)
	} else {
		c.Overdue = now.Sub(c.Deadline)
		if c.Compensates != "" {
			b = append(b, "compensation "...)
		}
		b = strconv.AppendQuote(b, c.Checkpoint)
		if c.Compensates != "" {
			b = append(b, " (of "...)
			b = strconv.AppendQuote(b, c.Compensates)
			b = append(b, ')')
		}
		b = append(b, " expected from "...)
		switch {
		case c.Children != nil:
			b = append(b, "its "...)
			b = append(b, c.Children.Flow...)
			b = append(b, " children"...)
		case c.Service != "":
			b = append(b, c.Service...)
		default:
			b = append(b, "an unknown service"...)
		}
		b = append(b, " by "...)
		b = c.Deadline.UTC().AppendFormat(b, time.RFC3339)
		b = append(b, ", overdue by "...)
		b = append(b, c.Overdue.Round(time.Second).String()...)
		if c.Failure != nil {
			b = appendFailure(append(b, " after it failed: "...), c.Failure)
		}
		if ch := c.Children; ch != nil {
			b = appendChildren(b, ch)
		}
	}
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

// appendFailure says what failed an instance: `child shipment "s-2" reached "lost" at T`,
// `cancelled by an operator at T`, or `"cancelled" at T`.
func appendFailure(b []byte, f *Failure) []byte {
	switch {
	case f.Child != nil:
		b = append(b, "child "...)
		b = append(b, f.Child.Flow...)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, f.Child.Key)
		b = append(b, " reached "...)
		b = strconv.AppendQuote(b, f.Child.Checkpoint)
	case f.Checkpoint == OperatorCancel:
		b = append(b, "cancelled by an operator"...)
	default:
		b = strconv.AppendQuote(b, f.Checkpoint)
	}
	b = append(b, " at "...)
	return f.Time.UTC().AppendFormat(b, time.RFC3339)
}

// appendChildren says how the children fare: ` (children: 2 completed, 1 stuck; stuck: "s-3"
// awaits "delivered" due T)`.
func appendChildren(b []byte, ch *ChildrenReport) []byte {
	b = append(b, " (children: "...)
	statuses := make([]string, 0, len(ch.Counts))
	for s := range ch.Counts {
		statuses = append(statuses, string(s))
	}
	sort.Strings(statuses)
	if len(statuses) == 0 {
		b = append(b, "none yet"...)
	}
	for i, s := range statuses {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(ch.Counts[Status(s)]), 10)
		b = append(b, ' ')
		b = append(b, s...)
	}
	for i, k := range ch.Stuck {
		if i == 0 {
			b = append(b, "; stuck: "...)
		} else {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, k.Key)
		b = append(b, " awaits "...)
		b = strconv.AppendQuote(b, k.Checkpoint)
		b = append(b, " due "...)
		b = k.Deadline.UTC().AppendFormat(b, time.RFC3339)
	}
	return append(b, ')')
}
