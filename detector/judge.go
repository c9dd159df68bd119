package detector

import (
	"context"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// ingest applies new events to the open instances, opening new ones, and judges every
// instance they touched. It does no per-instance I/O: an instance first seen in the middle
// (its start not read by this detector) is opened unverified and checked by a batched
// read-back; a late event of an instance closed here is re-judged the same way.
func (d *Detector) ingest(ctx context.Context, events []storage.CheckpointEvent, now time.Time) {
	set := d.flows()
	if len(d.unresolved) > 0 {
		events = append(d.unresolved, events...)
		d.unresolved = nil
	}
	if err := d.resolveAliases(ctx, set, events); err != nil {
		d.log.Warn("alias lookup failed; alias-keyed events wait for the next tick", "err", err)
	}
	if err := d.resolveParents(ctx, set, events); err != nil {
		d.log.Warn("parent lookup failed; events of sub-flows wait for the next tick", "err", err)
	}
	var touched []*inst
	var unverified []*inst
	var idBuf []byte
	for i := range events {
		e := &events[i]
		versions := set.Versions(e.Flow)
		if len(versions) == 0 {
			d.m.unknownFlow.Inc()
			continue
		}
		if !d.resolveKey(e, versions, now) {
			continue
		}
		parentFlow, parent, ours := d.shardOf(e, set, now, idBuf)
		if !ours {
			continue
		}
		idBuf = d.fams.appendID(idBuf[:0], e.Tenant, e.Flow, e.Key)
		in := d.open.getBytes(idBuf)
		if in == nil {
			if e.Checkpoint == "" {
				continue // an error note opens nothing; a read-back finds it when it matters
			}
			id := string(idBuf)
			if d.closed[id] != 0 {
				if !isStart(versions, e.Checkpoint) && !isOperator(e) && !isChildrenReach(versions, e) {
					d.reads.add(id, readClosed) // a late checkpoint may change the verdict
				}
				continue
			}
			if isChildrenReach(versions, e) {
				continue // the record of a reach opens nothing: its family's judgement wrote it
			}
			if in = d.newInst(id, set.At(e.Flow, e.Time)); in == nil {
				continue
			}
			if parent != "" {
				d.link(in, parentFlow, parent)
			}
			if !isStart(versions, e.Checkpoint) {
				in.flags |= flagUnverified
				unverified = append(unverified, in)
			}
		}
		if in.flags&flagTouched == 0 {
			in.flags |= flagTouched
			touched = append(touched, in)
		}
		d.applyEvent(in, e, now)
	}
	// Parents last: a parent whose children ended in this round is judged with their ends
	// counted (its children checkpoint reached, and recorded) even when its own terminal came
	// in the same round and closes it.
	for _, parents := range [2]bool{false, true} {
		for _, in := range touched {
			if d.fams.flow(in).HasChildren() != parents {
				continue
			}
			in.flags &^= flagTouched
			if d.open.get(in.id) == in {
				d.judge(in, now, true, nil)
			}
		}
	}
	d.judgeParents(now)
	for _, in := range unverified {
		if d.open.get(in.id) == in && in.flags&flagUnverified != 0 {
			d.reads.add(in.id, readVerify)
		}
	}
}

// applyEvent applies one event to an open instance's compact state, and keeps the
// explanation of a stuck one current (its errors and traces), so it is never read again.
func (d *Detector) applyEvent(in *inst, e *storage.CheckpointEvent, now time.Time) {
	if isOperator(e) {
		if in.flags&flagUnverified == 0 { // an unverified instance's read-back sees it
			d.operatorAction(in, e, now)
		}
		return
	}
	if x := in.extra; x != nil && x.explained {
		x.expl.add(e)
	}
	if e.Checkpoint == "" {
		return
	}
	f := d.fams.flow(in)
	c := f.Checkpoint(e.Checkpoint)
	if c == nil {
		return // not a checkpoint of the pinned version: a violation the read-back reports
	}
	if c.Children != nil {
		d.noteReach(in, c.Name) // its record, read back: the judgement derives the reach
		return
	}
	if c.Start && in.flags&flagUnverified != 0 {
		// Its start is read now: the detector holds the instance from its beginning. The
		// version is the one active when it started.
		in.flags &^= flagUnverified
		if v := d.flows().At(f.Name, e.Time); v != nil && v != f {
			d.repin(in, v)
			c = v.Checkpoint(e.Checkpoint)
			if c == nil {
				return
			}
		}
	}
	in.reach(c, e.Time)
	d.noteExpect(in, f, e)
}

// repin moves an instance that was opened from a middle checkpoint to the version its start
// says, carrying over the checkpoints both versions have.
func (d *Detector) repin(in *inst, to *model.Flow) {
	from := d.fams.flow(in)
	first := make([]int64, len(to.Checkpoints))
	for i, ns := range in.first {
		if c := to.Checkpoint(from.Checkpoints[i].Name); c != nil && ns != 0 {
			first[c.Index] = ns
		}
	}
	in.first, in.version = first, d.fams.pin(in.id, to)
	if k := d.fam.kins[in.id]; k != nil {
		// Its children checkpoints' bits are ordinals of the old version: forget them. At
		// worst a reach is recorded again, under the same id (flowstate.ChildrenReachEvent).
		k.reached = 0
		delete(d.fam.reachedMore, in.id)
	}
}

func (d *Detector) newInst(id string, f *model.Flow) *inst {
	if f == nil {
		return nil
	}
	if d.open.len() >= d.cfg.MaxOpen {
		d.m.rejected.Inc()
		if d.m.rejectedLogged.CompareAndSwap(false, true) {
			d.log.Warn("open instance limit reached: new instances are not tracked", "max_open", d.cfg.MaxOpen)
		}
		return nil
	}
	in := &inst{id: id, version: d.fams.pin(id, f), first: make([]int64, len(f.Checkpoints)), heapIdx: -1}
	d.open.put(in)
	return in
}

func isStart(versions []*model.Flow, cp string) bool {
	for _, f := range versions {
		if c := f.Checkpoint(cp); c != nil && c.Start {
			return true
		}
	}
	return false
}

// judge re-evaluates one instance from its compact state and acts on what changed. touched
// says new events came for it (rather than a due time); expl, when not nil, is a fresh
// explanation read back from the store.
func (d *Detector) judge(in *inst, now time.Time, touched bool, expl *explanation) {
	if in.flags&flagUnverified != 0 {
		// Nothing is said of an instance first seen in the middle until its read-back tells
		// what came before (it may have closed long ago); the read-back is queued.
		d.heap.schedule(in, 0)
		return
	}
	f := d.fams.flow(in)
	p := d.progress(in, f, d.firstBuf[:0])
	d.firstBuf = p.First[:0]
	v := f.Judge(p, now)
	if len(p.Broods) > 0 {
		d.recordReach(in, f, p, v.Closed())
	}
	d.childVerdict(in, &v)
	switch {
	case v.Closed():
		d.close(in, v, &p, now)
	case v.Status == model.StatusStuck:
		d.judgeStuck(in, v, &p, now, touched, expl)
	default: // running, or compensating
		changed := in.status != statusOf(v.Status)
		if in.extra != nil {
			d.leaveStuck(in, now)
		}
		d.setStatus(in, statusOf(v.Status))
		if d.idle(in, v, now) {
			d.evict(in)
			return
		}
		if touched || changed {
			d.writeState(in, d.compactState(in, v, &p), now)
		}
		d.scheduleNext(in, v, now)
	}
}

// close writes the state of an instance that ended (completed, failed, compensated or
// cancelled) and forgets it (remembering its id for ClosedMemory, so a late duplicate of its
// start does not open it again).
func (d *Detector) close(in *inst, v model.Verdict, p *model.Progress, now time.Time) {
	if in.extra != nil {
		d.leaveStuck(in, now)
	}
	d.setStatus(in, statusOf(v.Status))
	d.writeState(in, d.compactState(in, v, p), now)
	d.forget(in)
	d.closed[in.id] = now.UnixNano()
	d.closedQ.push(seenEntry{in.id, now.UnixNano()})
	d.count(func(s *Stats) {
		switch v.Status {
		case model.StatusCompleted:
			s.Completed++
		case model.StatusCompensated:
			s.Compensated++
		case model.StatusCancelled:
			s.Cancelled++
		default:
			s.Failed++
		}
	})
}

// forget stops tracking an instance, and its recorded commands, its operator's cancel and its
// link to its parent with it.
func (d *Detector) forget(in *inst) {
	d.heap.schedule(in, 0)
	d.open.del(in.id)
	delete(d.recorded, in.id)
	delete(d.fam.cancels, in.id)
	if in.status == statusCompensating {
		d.compensatingN--
	}
	d.unlink(in)
	if k := d.fam.kins[in.id]; k != nil {
		d.forgetKin(in.id)
	}
}

// idle reports whether a running instance has had no event for the rebuild window and has
// nothing left to wait for (only optional checkpoints). A stuck instance is never idle: it
// stays stuck, and alerted, until something true changes.
func (d *Detector) idle(in *inst, v model.Verdict, now time.Time) bool {
	return v.NextDeadline.IsZero() && len(v.Expected) == 0 && now.Sub(time.Unix(0, in.last())) >= d.cfg.RebuildWindow
}

// evict stops tracking an abandoned instance: running, idle for the rebuild window, waiting
// only for optional checkpoints. Its stored state stays as last written. Counted.
func (d *Detector) evict(in *inst) {
	d.forget(in)
	d.m.evicted.Inc()
}

// scheduleNext puts the instance on the heap at its next deadline (just past it, so the
// deadline itself is not yet overdue), at its next action or, when it waits for nothing, at
// the moment it would be idle.
func (d *Detector) scheduleNext(in *inst, v model.Verdict, now time.Time) {
	due := int64(0)
	if !v.NextDeadline.IsZero() {
		due = v.NextDeadline.UnixNano() + 1
	}
	if in.extra != nil {
		if a := d.nextStuckTime(in, now); !a.IsZero() && (due == 0 || a.UnixNano() < due) {
			due = a.UnixNano()
		}
	} else if due == 0 {
		due = in.last() + int64(d.cfg.RebuildWindow) // look again when it would be idle
	}
	d.heap.schedule(in, due)
}

// expire judges every instance whose due time has come.
func (d *Detector) expire(now time.Time) {
	n := now.UnixNano()
	var due []*inst
	for len(d.heap) > 0 && d.heap[0].due <= n {
		in := d.heap[0]
		d.heap.schedule(in, 0)
		due = append(due, in)
	}
	d.m.expired.Add(float64(len(due)))
	for _, in := range due {
		if d.open.get(in.id) == in {
			d.judge(in, now, false, nil)
		}
	}
	d.judgeParents(now)
}

// compactState builds a model.State from the compact state alone (no events): what a running
// or closed instance's stored state needs. Violations and errors are computed from the events
// by whoever reads them (the API evaluates the instance on read). p is what the verdict was
// judged from: its children's summaries explain a parent.
func (d *Detector) compactState(in *inst, v model.Verdict, p *model.Progress) model.State {
	tenant, flow, key := d.fams.split(in.id)
	f := d.fams.flow(in)
	st := model.State{Tenant: tenant, Flow: flow, Version: f.Version, Key: key, Status: v.Status,
		EndedAt: v.EndedAt, Expected: v.Expected, NextDeadline: v.NextDeadline, Failure: v.Failure, Broods: p.Broods}
	if v.Terminal != nil {
		st.Terminal = v.Terminal.Name
	}
	for i, ns := range in.first {
		if ns == 0 {
			continue
		}
		t := time.Unix(0, ns)
		if st.StartedAt.IsZero() || t.Before(st.StartedAt) {
			st.StartedAt = t
		}
		if t.After(st.LastSeen) || st.LastSeen.IsZero() {
			st.LastSeen = t
			st.LastCheckpoint, st.LastCheckpointAt = f.Checkpoints[i].Name, t
		}
	}
	if v.Status != model.StatusStuck && v.Failure != nil && v.Failure.Child != nil {
		st.Reason = st.FailureReason() // a child failed it: the reason names the child
	}
	return st
}

func (d *Detector) writeState(in *inst, st model.State, now time.Time) {
	row := flowstate.Row(st)
	row.Shard = d.cfg.Shard
	row.UpdatedAt = now
	d.states[in.id] = row
}

func (d *Detector) pruneClosed(now time.Time) {
	// closedQ is in closing order: pruning costs what expires, never a scan of all.
	d.closedQ.popOlder(now.Add(-d.cfg.ClosedMemory).UnixNano(), func(e seenEntry) {
		if d.closed[e.id] == e.ingest {
			delete(d.closed, e.id)
		}
	})
	d.pruneKins(now)
}
