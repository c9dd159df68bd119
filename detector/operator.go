package detector

import (
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Operator actions arrive as operator events of an instance (written by the query API's
// operator routes), read like any row: every shard and every restart sees them.

func isOperator(e *storage.CheckpointEvent) bool {
	return e.Checkpoint == model.OperatorCancel || e.Checkpoint == model.OperatorUnblock
}

// operatorAction acts on one operator event of an open instance.
func (d *Detector) operatorAction(in *inst, e *storage.CheckpointEvent, now time.Time) {
	switch e.Checkpoint {
	case model.OperatorCancel:
		d.cancel(in, e.Time, now)
		d.m.operatorActions.WithLabelValues("cancel").Inc()
	case model.OperatorUnblock:
		if d.unblock(in, e.Attributes[flowstate.AttrOperatorCheckpoint], e.Time, now) {
			d.m.operatorActions.WithLabelValues("unblock").Inc()
		} else {
			d.m.operatorActions.WithLabelValues("unblock_ignored").Inc()
		}
	}
}

// cancel judges an instance an operator cancelled at at: closed as cancelled (its alerts
// resolve, its commands stop), or — when it had taken steps that have compensations — kept
// open while they are due (compensating, or stuck when one is overdue).
func (d *Detector) cancel(in *inst, at, now time.Time) {
	if cur := d.fam.cancels[in.id]; cur != 0 && cur <= at.UnixNano() {
		return // the first cancel counts
	}
	d.fam.cancels[in.id] = at.UnixNano()
	d.judge(in, now, true, nil)
}

// unblock asks for the next attempt of each on_stuck action of an overdue checkpoint now,
// past max_attempts if need be. An unblock older than the action's last attempt was already
// served (a restart reads it again): it is not served twice. It reports whether it applied.
func (d *Detector) unblock(in *inst, checkpoint string, at, now time.Time) bool {
	x := in.extra
	if x == nil {
		return false
	}
	for _, o := range x.overdue {
		if o.checkpoint != checkpoint {
			continue
		}
		served := false
		for i := range o.actions {
			if a := &o.actions[i]; at.After(a.last) {
				a.manual, served = true, true
			}
		}
		if served {
			d.runActions(in, o, now)
			f := d.fams.flow(in)
			p := d.progress(in, f, nil)
			d.scheduleNext(in, f.Judge(p, now), now)
		}
		return served
	}
	return false
}
