package model

import (
	"slices"
	"sort"
	"strconv"
	"time"
)

// Sub-flows (DESIGN.md "Sub-flows"): a parent's children checkpoint is reached by the success
// terminals of its children; a failed child fails the parent. What a parent knows of its
// children is given to Judge as Progress.Children, a summary of each child's own verdict.

// Child is what judging a parent needs of one of its children.
type Child struct {
	Flow, Key string
	Status    Status
	// Outcome is the kind of end the child reached: TerminalSuccess (completed),
	// TerminalFailure (it failed: a failure terminal or a failed child of its own), or
	// NotTerminal while it has not ended. EndedAt is when.
	Outcome Terminal
	EndedAt time.Time
	// Checkpoint is the checkpoint that ended it (its terminal; for a failure, what failed it).
	Checkpoint string
	// Cancelled: an operator cancelled the child; it no longer counts for its parent.
	Cancelled bool
	// Reason is why a stuck child is stuck; nil otherwise.
	Reason *Reason
}

// open reports whether the child may still succeed.
func (c *Child) open() bool { return c.Outcome == NotTerminal && !c.Cancelled }

// AsChild summarizes an evaluated child instance for its parent's judgement.
func (st State) AsChild() Child {
	c := Child{Flow: st.Flow, Key: st.Key, Status: st.Status, Reason: st.Reason}
	switch {
	case st.Failure != nil && st.Failure.Checkpoint == OperatorCancel:
		c.Cancelled = true
	case st.Failure != nil:
		c.Outcome, c.EndedAt, c.Checkpoint = TerminalFailure, st.Failure.Time, st.Failure.Checkpoint
	case st.Status == StatusCompleted:
		c.Outcome, c.EndedAt, c.Checkpoint = TerminalSuccess, st.EndedAt, st.Terminal
	case st.Status == StatusCancelled:
		c.Cancelled = true
	}
	if st.Status != StatusStuck {
		c.Reason = nil
	}
	return c
}

// Failure is what failed an instance: its failure terminal, a failed child, or an operator's
// cancel.
type Failure struct {
	// Checkpoint is the failure terminal reached, the children checkpoint a failed child
	// could no longer reach, or OperatorCancel.
	Checkpoint string
	Time       time.Time
	// Child is the child whose failure failed the instance; nil otherwise.
	Child *ChildRef
}

// ChildRef names a child instance and the checkpoint that matters about it.
type ChildRef struct {
	Flow, Key, Checkpoint string
}

// ExpectAttributes returns the `expect` attributes of the flow's children checkpoints: the
// attributes of a parent's items that say how many children to wait for.
func (f *Flow) ExpectAttributes() []string {
	var out []string
	for _, c := range f.Checkpoints {
		if c.Children != nil && c.Children.Expect != "" {
			out = append(out, c.Children.Expect)
		}
	}
	return out
}

// ExpectValue reads the value of an `expect` attribute: a count of children, at least 1.
func ExpectValue(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// hasChildren reports whether the flow has a children checkpoint.
func (f *Flow) hasChildren() bool {
	for _, c := range f.Checkpoints {
		if c.Children != nil {
			return true
		}
	}
	return false
}

// reachByChildren sets, in first, when each children checkpoint that its children completed
// was reached: the later of when its `after` was satisfied and when its children completed
// it. Checkpoints are visited predecessors first, so a children checkpoint after another is
// derived from it.
func (f *Flow) reachByChildren(first []time.Time, p *Progress) {
	for _, i := range f.topo {
		c := f.Checkpoints[i]
		if c.Children == nil || !first[i].IsZero() {
			continue
		}
		since, ok := enabledAt(c, first)
		if !ok {
			continue
		}
		if t, ok := childrenComplete(c.Children, p); ok {
			first[i] = maxTime(since, t)
		}
	}
}

// childrenComplete tells whether the children of one children checkpoint completed it, and
// when: `any`, when the first child succeeded; `all` with `expect` N, when the Nth did; `all`
// without, when the last known child did, every known child having succeeded. Cancelled
// children do not count.
func childrenComplete(ch *Children, p *Progress) (time.Time, bool) {
	known, succeeded := 0, 0
	var earliest, latest time.Time
	var times []time.Time
	want := 0
	if ch.Complete == CompleteAll && ch.Expect != "" {
		want = p.Expect[ch.Expect]
	}
	for i := range p.Children {
		k := &p.Children[i]
		if k.Flow != ch.Flow || k.Cancelled {
			continue
		}
		known++
		if k.Outcome != TerminalSuccess {
			continue
		}
		succeeded++
		if earliest.IsZero() || k.EndedAt.Before(earliest) {
			earliest = k.EndedAt
		}
		latest = maxTime(latest, k.EndedAt)
		if want > 0 {
			times = append(times, k.EndedAt)
		}
	}
	switch {
	case succeeded == 0:
		return time.Time{}, false
	case ch.Complete == CompleteAny:
		return earliest, true
	case want > 0:
		if succeeded < want {
			return time.Time{}, false
		}
		slices.SortFunc(times, time.Time.Compare)
		return times[want-1], true
	default:
		return latest, succeeded == known
	}
}

// childFailure returns the failure a failed child makes of its parent, the earliest of every
// children checkpoint not reached: with `all`, the first child that failed; with `any`, the
// last one, once no child is left that can still succeed.
func (f *Flow) childFailure(first []time.Time, p *Progress) *Failure {
	if len(p.Children) == 0 {
		return nil
	}
	var out *Failure
	for _, c := range f.Checkpoints {
		if c.Children == nil || !first[c.Index].IsZero() {
			continue
		}
		all := c.Children.Complete == CompleteAll
		var failed *Child
		hope := false // with `any`: a child succeeded, or may still
		for i := range p.Children {
			k := &p.Children[i]
			if k.Flow != c.Children.Flow {
				continue
			}
			hope = hope || k.open() || k.Outcome == TerminalSuccess
			if k.Outcome != TerminalFailure {
				continue
			}
			switch {
			case failed == nil, all && k.EndedAt.Before(failed.EndedAt), !all && k.EndedAt.After(failed.EndedAt):
				failed = k
			}
		}
		if failed == nil || (!all && hope) {
			continue
		}
		if out == nil || failed.EndedAt.Before(out.Time) {
			out = &Failure{Checkpoint: c.Name, Time: failed.EndedAt,
				Child: &ChildRef{Flow: failed.Flow, Key: failed.Key, Checkpoint: failed.Checkpoint}}
		}
	}
	return out
}

// ChildrenReport is how the children of a parent stuck at a children checkpoint fare: how
// many are in each status, and the first few stuck ones with their reasons.
type ChildrenReport struct {
	Flow   string
	Counts map[Status]int
	// Stuck are the first MaxStuckChildren stuck children (by key).
	Stuck []StuckChild
}

// StuckChild is one stuck child of a report.
type StuckChild struct {
	Key        string
	Checkpoint string
	Deadline   time.Time
	Summary    string
}

// MaxStuckChildren bounds the stuck children a report names.
const MaxStuckChildren = 5

// childrenReport reports on the children of flow among cs.
func childrenReport(flow string, cs []Child) *ChildrenReport {
	r := &ChildrenReport{Flow: flow, Counts: map[Status]int{}}
	var stuck []*Child
	for i := range cs {
		k := &cs[i]
		if k.Flow != flow {
			continue
		}
		r.Counts[k.Status]++
		if k.Status == StatusStuck && k.Reason != nil {
			stuck = append(stuck, k)
		}
	}
	sort.Slice(stuck, func(i, j int) bool { return stuck[i].Key < stuck[j].Key })
	for _, k := range stuck[:min(len(stuck), MaxStuckChildren)] {
		r.Stuck = append(r.Stuck, StuckChild{Key: k.Key, Checkpoint: k.Reason.Checkpoint, Deadline: k.Reason.Deadline,
			Summary: k.Reason.Summary})
	}
	return r
}
