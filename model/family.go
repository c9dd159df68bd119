package model

import (
	"maps"
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

// ChildFlowsOf returns the child flows the children checkpoints of any of the versions name,
// each once, in the order they first appear.
func ChildFlowsOf(versions []*Flow) []string {
	var out []string
	for _, v := range versions {
		for _, c := range v.childCPs {
			if !slices.Contains(out, c.Children.Flow) {
				out = append(out, c.Children.Flow)
			}
		}
	}
	return out
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

// Brood summarizes the children of one child flow, as judging their parent needs it: how
// many may still succeed, when those that succeeded did, which failed first and last, and
// (for the reason of a parent stuck at their checkpoint) how many are in each status and the
// first few stuck ones. BroodsOf makes it from children summaries; the detector keeps it as
// its children change.
type Brood struct {
	Flow string
	// Open counts the children that have not ended (cancelled children do not count).
	Open int
	// Successes are when each child that succeeded did, in any order.
	Successes []time.Time
	// Failures counts the children that failed; FirstFailure and LastFailure are the earliest
	// and the latest of them.
	Failures                  int
	FirstFailure, LastFailure ChildEnd
	// Statuses counts the children by status; Stuck are the first MaxStuckChildren stuck
	// ones, by key.
	Statuses map[Status]int
	Stuck    []StuckChild
}

// ChildEnd is a child that ended, and how.
type ChildEnd struct {
	Key, Checkpoint string
	Time            time.Time
}

// BroodsOf summarizes children (of any child flows) by child flow, in the order the flows
// first appear.
func BroodsOf(cs []Child) []Brood {
	var out []Brood
	idx := map[string]int{}
	for i := range cs {
		k := &cs[i]
		j, ok := idx[k.Flow]
		if !ok {
			j = len(out)
			idx[k.Flow] = j
			out = append(out, Brood{Flow: k.Flow, Statuses: map[Status]int{}})
		}
		b := &out[j]
		b.Statuses[k.Status]++
		switch {
		case k.Cancelled:
		case k.Outcome == TerminalSuccess:
			b.Successes = append(b.Successes, k.EndedAt)
		case k.Outcome == TerminalFailure:
			b.AddFailure(ChildEnd{Key: k.Key, Checkpoint: k.Checkpoint, Time: k.EndedAt})
		default:
			b.Open++
		}
		if k.Status == StatusStuck && k.Reason != nil {
			b.Stuck = append(b.Stuck, StuckChild{Key: k.Key, Checkpoint: k.Reason.Checkpoint, Deadline: k.Reason.Deadline,
				Summary: k.Reason.Summary})
		}
	}
	for i := range out {
		b := &out[i]
		sort.Slice(b.Stuck, func(x, y int) bool { return b.Stuck[x].Key < b.Stuck[y].Key })
		b.Stuck = b.Stuck[:min(len(b.Stuck), MaxStuckChildren)]
	}
	return out
}

// AddFailure counts a child that failed, keeping the earliest and the latest.
func (b *Brood) AddFailure(e ChildEnd) {
	if b.Failures == 0 || e.Time.Before(b.FirstFailure.Time) {
		b.FirstFailure = e
	}
	if b.Failures == 0 || !e.Time.Before(b.LastFailure.Time) {
		b.LastFailure = e
	}
	b.Failures++
}

// brood returns the summary of the children of flow, or nil.
func (p *Progress) brood(flow string) *Brood {
	for i := range p.Broods {
		if p.Broods[i].Flow == flow {
			return &p.Broods[i]
		}
	}
	return nil
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

// Reach is a checkpoint reached, and when.
type Reach struct {
	Checkpoint *Checkpoint
	Time       time.Time
}

// ReachedByChildren returns the children checkpoints that the children in p completed, in
// declaration order, each with when it was reached (the later of when its `after` was
// satisfied and when its children completed it). No item of the instance reaches them, so
// the detector stores this reach as a row of the instance (ChildrenReachName): a record for
// the views that count rows (graph, series, events), which Judge and Evaluate ignore — the
// reach is derived from the children every time, so the row never counts twice nor changes
// a verdict.
func (f *Flow) ReachedByChildren(p Progress) []Reach {
	if !f.HasChildren() || len(p.Broods) == 0 {
		return nil
	}
	first := append([]time.Time(nil), p.First...)
	for _, c := range f.childCPs {
		first[c.Index] = time.Time{} // reached by children only, whatever p holds
	}
	f.reachByChildren(first, &p)
	var out []Reach
	for _, c := range f.childCPs {
		if !first[c.Index].IsZero() {
			out = append(out, Reach{Checkpoint: c, Time: first[c.Index]})
		}
	}
	return out
}

// PassedBy tells whether the instance whose first-reached times are first (by checkpoint
// index, zero for never) reached a checkpoint that comes after c.
func (f *Flow) PassedBy(c *Checkpoint, first []time.Time) bool {
	for _, n := range f.Checkpoints {
		if n.Index < len(first) && !first[n.Index].IsZero() && slices.Contains(n.After, c.Name) {
			return true
		}
	}
	return false
}

// ChildrenOrdinal returns the place of a children checkpoint among the flow's children
// checkpoints, in declaration order (0, 1, ...), or -1 when checkpoint is not one.
func (f *Flow) ChildrenOrdinal(checkpoint string) int {
	for i, c := range f.childCPs {
		if c.Name == checkpoint {
			return i
		}
	}
	return -1
}

// ChildrenReachName is the name of the row that records a children checkpoint's reach
// (ReachedByChildren): its checkpoint is the children checkpoint, its name this.
const ChildrenReachName = "reached by children"

// IsChildrenReach reports whether a row of this flow at checkpoint is the record of a
// children checkpoint's reach (which Judge and Evaluate ignore) rather than an item: a
// children checkpoint has no `match`, so nothing else reaches it.
func (f *Flow) IsChildrenReach(checkpoint string) bool {
	c := f.byName[checkpoint]
	return c != nil && c.Children != nil
}

// childrenComplete tells whether the children of one children checkpoint completed it, and
// when: `any`, when the first child succeeded; `all` with `expect` N, when the Nth did; `all`
// without, when the last known child did, every known child having succeeded. Cancelled
// children do not count.
func childrenComplete(ch *Children, p *Progress) (time.Time, bool) {
	b := p.brood(ch.Flow)
	if b == nil || len(b.Successes) == 0 {
		return time.Time{}, false
	}
	want := 0
	if ch.Complete == CompleteAll && ch.Expect != "" {
		want = p.Expect[ch.Expect]
	}
	switch {
	case ch.Complete == CompleteAny:
		return slices.MinFunc(b.Successes, time.Time.Compare), true
	case want > 0:
		if len(b.Successes) < want {
			return time.Time{}, false
		}
		times := slices.SortedFunc(slices.Values(b.Successes), time.Time.Compare)
		return times[want-1], true
	default:
		return slices.MaxFunc(b.Successes, time.Time.Compare), b.Open == 0 && b.Failures == 0
	}
}

// childFailure returns the failure a failed child makes of its parent, the earliest of every
// children checkpoint not reached: with `all`, the first child that failed; with `any`, the
// last one, once none succeeded and none is left that may.
func (f *Flow) childFailure(first []time.Time, p *Progress) *Failure {
	if len(p.Broods) == 0 {
		return nil
	}
	var out *Failure
	for _, c := range f.childCPs {
		b := p.brood(c.Children.Flow)
		if !first[c.Index].IsZero() || b == nil || b.Failures == 0 {
			continue
		}
		failed := b.FirstFailure
		if c.Children.Complete == CompleteAny {
			if len(b.Successes) > 0 || b.Open > 0 {
				continue
			}
			failed = b.LastFailure
		}
		if out == nil || failed.Time.Before(out.Time) {
			out = &Failure{Checkpoint: c.Name, Time: failed.Time,
				Child: &ChildRef{Flow: c.Children.Flow, Key: failed.Key, Checkpoint: failed.Checkpoint}}
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

// childrenReport reports on the children of flow among bs.
func childrenReport(flow string, bs []Brood) *ChildrenReport {
	r := &ChildrenReport{Flow: flow, Counts: map[Status]int{}}
	for i := range bs {
		if bs[i].Flow == flow {
			maps.Copy(r.Counts, bs[i].Statuses)
			r.Stuck = slices.Clone(bs[i].Stuck)
		}
	}
	return r
}
