package model

import (
	"slices"
	"time"
)

// Progress is what an instance's verdict is judged from: when each of its checkpoints was
// first reached, and what else a family or a saga needs. The detector keeps it compactly for
// every open instance; Evaluate gathers it from the instance's events.
type Progress struct {
	// First[i] is when f.Checkpoints[i] was first reached; zero when never.
	First []time.Time
	// Cancelled is when an operator cancelled the instance; zero when not.
	Cancelled time.Time
	// Broods summarize the instance's children, one per child flow, for its children
	// checkpoints; nil for an instance that has none.
	Broods []Brood
	// Expect holds, by attribute, the latest value of a children checkpoint's `expect` read
	// from the instance's items: how many children `complete: all` waits for.
	Expect map[string]int
}

// Verdict is what an instance's progress means at a moment.
type Verdict struct {
	Status Status
	// Terminal is the terminal checkpoint reached first; nil if none (or when something else
	// ended the instance first: a failed child, an operator's cancel).
	Terminal *Checkpoint
	// EndedAt is when the instance ended: its terminal, its failure, its cancel or (when
	// compensated) its last compensation; zero while it has not.
	EndedAt time.Time
	// Failure is what failed the instance (a failure terminal, a failed child, an operator's
	// cancel); nil unless it failed. Its compensations are due from Failure.Time.
	Failure *Failure
	// Expected are the checkpoints awaited with a deadline, earliest deadline first: the next
	// steps of a running instance, or the compensations of a failed one.
	Expected []Expected
	// NextDeadline is the earliest deadline not passed yet; zero when none.
	NextDeadline time.Time
}

// Closed reports whether the verdict is final: nothing more is awaited.
func (v *Verdict) Closed() bool { return v.Status.Closed() }

// Judge evaluates an instance's progress at now. It is the one place that decides status and
// deadlines: Evaluate uses it, and so does the detector on its compact per-instance state.
//
// The earliest of a terminal, a failed child and an operator's cancel ends the instance. A
// success is `completed`. A failure makes due, `within` after it, the compensation of every
// checkpoint reached by then: `compensating` while they are pending, `stuck` when one is
// overdue, `compensated` when all are done; a failure with nothing to compensate stays
// `failed` (`cancelled` when an operator's cancel was the failure). A cancel while
// compensations are pending closes the instance as `cancelled`.
func (f *Flow) Judge(p Progress, now time.Time) Verdict {
	first := p.First
	if f.HasChildren() {
		// Children checkpoints are reached by the children, not by items: their times are
		// derived, on a copy (the caller's slice is left as it is), whatever p holds for them
		// (a stored record of their reach is no item).
		var buf [32]time.Time
		first = append(buf[:0:len(buf)], p.First...)
		for _, c := range f.childCPs {
			first[c.Index] = time.Time{}
		}
		f.reachByChildren(first, &p)
	}
	v := Verdict{Status: StatusRunning}
	for i, c := range f.Checkpoints {
		if c.Terminal != NotTerminal && !first[i].IsZero() && (v.Terminal == nil || first[i].Before(v.EndedAt)) {
			v.Terminal, v.EndedAt = c, first[i]
		}
	}
	var failure *Failure
	if v.Terminal != nil && v.Terminal.Terminal == TerminalFailure {
		failure = &Failure{Checkpoint: v.Terminal.Name, Time: v.EndedAt}
	}
	if cf := f.childFailure(first, &p); cf != nil && (v.Terminal == nil || cf.Time.Before(v.EndedAt)) {
		v.Terminal, failure = nil, cf
	}
	var cancelledAfter time.Time // a cancel that came once the instance had failed
	if c := p.Cancelled; !c.IsZero() {
		switch {
		case failure != nil && !c.Before(failure.Time):
			cancelledAfter = c
		case v.Terminal == nil || c.Before(v.EndedAt):
			v.Terminal, failure = nil, &Failure{Checkpoint: OperatorCancel, Time: c}
		}
	}
	if failure != nil {
		f.judgeFailure(&v, failure, cancelledAfter, first, now)
		return v
	}
	if v.Terminal != nil {
		v.Status = StatusCompleted
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
		if c.Children != nil {
			x.Children = c.Children.Flow
		}
		v.expect(x, now)
	}
	slices.SortStableFunc(v.Expected, func(a, b Expected) int { return a.Deadline.Compare(b.Deadline) })
	if len(v.Expected) > 0 && v.Expected[0].Overdue {
		v.Status = StatusStuck
	}
	return v
}

// expect adds x to the expected checkpoints, judged overdue or not at now.
func (v *Verdict) expect(x Expected, now time.Time) {
	x.Overdue = now.After(x.Deadline)
	if !x.Overdue && (v.NextDeadline.IsZero() || x.Deadline.Before(v.NextDeadline)) {
		v.NextDeadline = x.Deadline
	}
	v.Expected = append(v.Expected, x)
}

// judgeFailure decides the verdict of a failed instance: the compensations its failure made
// due (those of the checkpoints reached by then), done or pending.
func (f *Flow) judgeFailure(v *Verdict, failure *Failure, cancelledAfter time.Time, first []time.Time, now time.Time) {
	v.Failure, v.EndedAt = failure, failure.Time
	v.Status = StatusFailed
	if failure.Checkpoint == OperatorCancel {
		v.Status = StatusCancelled
	}
	due := false
	var lastDone time.Time
	for _, k := range f.Compensations {
		if reached := first[k.Compensates.Index]; reached.IsZero() || reached.After(failure.Time) {
			continue // nothing to undo: the step was not taken before the failure
		}
		due = true
		if t := first[k.Index]; !t.IsZero() && !t.Before(failure.Time) {
			lastDone = maxTime(lastDone, t)
			continue
		}
		v.expect(Expected{Checkpoint: k.Name, Since: failure.Time, Deadline: failure.Time.Add(k.Within),
			Service: k.Match.Service, Compensates: k.Compensates.Name}, now)
	}
	switch {
	case !due:
	case len(v.Expected) == 0:
		v.Status, v.EndedAt = StatusCompensated, lastDone
	case !cancelledAfter.IsZero():
		// An operator gave up on the pending compensations: closed, awaiting nothing.
		v.Status, v.EndedAt, v.Expected, v.NextDeadline = StatusCancelled, cancelledAfter, nil, time.Time{}
	default:
		slices.SortStableFunc(v.Expected, func(a, b Expected) int { return a.Deadline.Compare(b.Deadline) })
		v.Status, v.EndedAt = StatusCompensating, time.Time{}
		if v.Expected[0].Overdue {
			v.Status = StatusStuck
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
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
