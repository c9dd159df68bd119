package detector

import (
	"slices"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// stuckState is kept only while an instance is stuck.
type stuckState struct {
	// since is when the detector found the instance stuck.
	since time.Time
	// explained says expl was read back from the store (and kept current since); until then,
	// or until ExplainWait passes, alerts and actions wait.
	explained bool
	expl      explanation
	// overdue are the overdue checkpoints, earliest deadline first: each is its own alert and
	// runs its own on_stuck actions.
	overdue []*overdueCP
}

// overdueCP is one overdue checkpoint of a stuck instance.
type overdueCP struct {
	checkpoint string
	deadline   time.Time
	// reason explains this checkpoint, as of the last judgement; At brings it (how overdue,
	// the summary) to the moment it is written or sent.
	reason  *model.Reason
	alert   *alertState
	actions []actionState
}

// explanation is what only the instance's events tell: its last error, its traces and its
// violations. It is read back once, when the instance gets stuck, then kept current from the
// events the detector reads.
type explanation struct {
	lastError  *model.ErrorNote
	traceIDs   []string
	violations []model.Violation
}

// maxTraceIDs bounds the trace IDs an explanation keeps (as model.State does).
const maxTraceIDs = 20

func explanationOf(st model.State) *explanation {
	return &explanation{lastError: st.LastError, traceIDs: st.TraceIDs, violations: st.Violations}
}

// add keeps the explanation current with a new event of the instance.
func (x *explanation) add(e *storage.CheckpointEvent) {
	if e.TraceID != "" && len(x.traceIDs) < maxTraceIDs && !slices.Contains(x.traceIDs, e.TraceID) {
		x.traceIDs = append(x.traceIDs, e.TraceID)
	}
	if (e.Checkpoint == "" || e.Status == "error") && (x.lastError == nil || !e.Time.Before(x.lastError.Time)) {
		x.lastError = &model.ErrorNote{Service: e.Service, Name: e.Name, Message: e.Message,
			TraceID: e.TraceID, SpanID: e.SpanID, Time: e.Time}
	}
}

// judgeStuck handles an instance whose verdict is stuck: it tracks each overdue checkpoint,
// writes the state at once (with what the detector holds; the explanation follows from a
// batched read), and alerts and acts once the instance is explained.
func (d *Detector) judgeStuck(in *inst, v model.Verdict, p *model.Progress, now time.Time, touched bool, expl *explanation) {
	x := in.extra
	entering := x == nil
	if entering {
		x = &stuckState{since: now}
		in.extra = x
		d.stuckN++
		if expl == nil {
			d.reads.add(in.id, readExplain)
		}
	}
	d.setStatus(in, statusStuck)
	if expl != nil {
		x.expl, x.explained = *expl, true
	}
	st := d.compactState(in, v, p)
	st.LastError, st.TraceIDs, st.Violations = x.expl.lastError, x.expl.traceIDs, x.expl.violations
	changed := d.syncOverdue(in, &st, now)
	if entering || changed || touched || expl != nil {
		st.Reason = x.overdue[0].reason.At(now)
		d.writeState(in, st, now)
	}
	if x.explained || now.Sub(x.since) >= d.cfg.ExplainWait {
		for _, o := range x.overdue {
			d.updateAlert(in, &st, o, now)
			d.runActions(in, o, now)
		}
	}
	d.scheduleNext(in, v, now)
}

// syncOverdue brings the instance's overdue checkpoints in line with st.Expected: new ones
// start (their actions restored from the commands recorded), those no longer overdue leave
// (outcomes of their commands, resolution of their alerts). It reports whether the set of
// overdue checkpoints or their deadlines changed.
func (d *Detector) syncOverdue(in *inst, st *model.State, now time.Time) bool {
	x := in.extra
	changed := false
	keep := x.overdue[:0]
	for _, o := range x.overdue {
		i := slices.IndexFunc(st.Expected, func(e model.Expected) bool { return e.Checkpoint == o.checkpoint && e.Overdue })
		if i < 0 {
			d.leaveOverdue(in, o, now)
			changed = true
			continue
		}
		if !st.Expected[i].Deadline.Equal(o.deadline) {
			o.deadline, changed = st.Expected[i].Deadline, true
		}
		keep = append(keep, o)
	}
	x.overdue = keep
	f := d.fams.flow(in)
	for _, e := range st.Expected {
		if !e.Overdue || slices.ContainsFunc(x.overdue, func(o *overdueCP) bool { return o.checkpoint == e.Checkpoint }) {
			continue
		}
		o := &overdueCP{checkpoint: e.Checkpoint, deadline: e.Deadline}
		if c := f.Checkpoint(e.Checkpoint); c != nil {
			for i, a := range c.OnStuck {
				o.actions = append(o.actions, d.restoreAction(in, c, i, a))
			}
		}
		x.overdue = append(x.overdue, o)
		if d.live {
			d.lags = append(d.lags, now.Sub(e.Deadline)) // not what a rebuild finds overdue
		}
		changed = true
	}
	if changed {
		slices.SortStableFunc(x.overdue, func(a, b *overdueCP) int { return a.deadline.Compare(b.deadline) })
	}
	for _, o := range x.overdue {
		// A reason is rebuilt only when what it says changed (a parent's, which tells how its
		// children fare, whenever it is judged); how overdue it is, is brought to the moment
		// whenever it is sent.
		if r := o.reason; r == nil || !r.Deadline.Equal(o.deadline) || r.LastCheckpoint != st.LastCheckpoint ||
			r.LastError != st.LastError || len(r.TraceIDs) != len(st.TraceIDs) || r.Children != nil {
			i := slices.IndexFunc(st.Expected, func(e model.Expected) bool { return e.Checkpoint == o.checkpoint })
			o.reason = st.ReasonFor(st.Expected[i]) // brought to the moment by At where it is used
		}
	}
	return changed
}

// leaveStuck records that an instance is no longer stuck: every overdue checkpoint leaves.
func (d *Detector) leaveStuck(in *inst, now time.Time) {
	x := in.extra
	if x == nil {
		return
	}
	for _, o := range x.overdue {
		d.leaveOverdue(in, o, now)
	}
	d.stuckN--
	in.extra = nil
	d.setStatus(in, statusRunning)
}

// leaveOverdue records that a checkpoint is no longer overdue (it arrived, was passed by a
// later one, or its deadline moved): the verdict on its commands in flight, and the
// resolution of its alert. The attempts sent are remembered while the instance is open, in
// case the checkpoint becomes overdue again.
func (d *Detector) leaveOverdue(in *inst, o *overdueCP, now time.Time) {
	arrived := false
	if c := d.fams.flow(in).Checkpoint(o.checkpoint); c != nil && in.first[c.Index] != 0 {
		arrived = true
	}
	for i := range o.actions {
		a := &o.actions[i]
		if a.lastID != "" {
			outcome := OutcomeNoEffect
			if arrived {
				outcome = OutcomeSucceeded
			}
			d.recordOutcome(in, o, a, outcome, now)
		}
		if !arrived {
			d.remember(in, o, a)
		}
	}
	if o.alert != nil {
		d.detachAlert(in, o.alert, now)
		o.alert = nil
	}
}

// nextStuckTime is the earliest time a stuck instance needs attention: its explanation's
// wait running out, or an action's next step.
func (d *Detector) nextStuckTime(in *inst, now time.Time) time.Time {
	x := in.extra
	var next time.Time
	if wait := x.since.Add(d.cfg.ExplainWait); !x.explained && now.Before(wait) {
		next = wait
	}
	for _, o := range x.overdue {
		for i := range o.actions {
			t := actionDue(o, &o.actions[i])
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}
