package detector

import (
	"slices"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Children checkpoints (DESIGN.md "Sub-flows") are reached by a parent's children, never by an
// item of its own, so no collector writes a row for them. When the detector judges that a
// parent reached one, it records the reach as a row of the parent (flowstate.ChildrenReachEvent),
// written with the tick's batched writes, so that the graph, the series and the instance's
// events see it. The row's id is deterministic, so a family judged again (a restart, a
// read-back) never stores a second one. Read back, the row is only noted as written: the
// judgement derives the reach from the children every time (model.Flow.IsChildrenReach).

// recordReach queues the row of every children checkpoint that the parent's children
// completed, once that reach is settled, and whose row is not known as written yet. A reach
// is settled when the parent moved past it (a checkpoint after it reached) or closes: until
// then a child still to come, a failed one or a raised expected count may take it back or
// move it, and a row written then would tell a reach that did not hold.
func (d *Detector) recordReach(in *inst, f *model.Flow, p model.Progress, closing bool) {
	k := d.fam.kins[in.id]
	if k == nil {
		return
	}
	for _, r := range f.ReachedByChildren(p) {
		if !closing && !f.PassedBy(r.Checkpoint, p.First) {
			continue
		}
		if !d.markReached(k, f, r.Checkpoint.Name) {
			continue
		}
		tenant, flow, key := d.fams.split(in.id)
		d.reachRows = append(d.reachRows, flowstate.ChildrenReachEvent(tenant, flow, key, f.Key, r.Checkpoint.Name, r.Time))
	}
}

// noteReach notes that the row of a parent's children checkpoint is in the store (read back),
// so that it is not written again.
func (d *Detector) noteReach(in *inst, checkpoint string) {
	d.markReached(d.kinOf(in.id), d.fams.flow(in), checkpoint)
}

// markReached marks a parent's children checkpoint as recorded; false when it already was.
func (d *Detector) markReached(k *kin, f *model.Flow, checkpoint string) bool {
	if i := f.ChildrenOrdinal(checkpoint); i >= 0 && i < 32 {
		if k.reached&(1<<i) != 0 {
			return false
		}
		k.reached |= 1 << i
		return true
	}
	more := d.fam.reachedMore[k.parent]
	if slices.Contains(more, checkpoint) {
		return false
	}
	if d.fam.reachedMore == nil {
		d.fam.reachedMore = map[string][]string{}
	}
	d.fam.reachedMore[k.parent] = append(more, checkpoint)
	return true
}

// isChildrenReach reports whether a row is the record of a children checkpoint's reach
// (flowstate.ChildrenReachEvent), by its marks and a children checkpoint of its flow in one
// of its versions: an item of a version where that checkpoint is an ordinary one is an item.
func isChildrenReach(versions []*model.Flow, e *storage.CheckpointEvent) bool {
	if e.Service != flowstate.ReachService || e.Name != model.ChildrenReachName {
		return false
	}
	for _, f := range versions {
		if f.IsChildrenReach(e.Checkpoint) {
			return true
		}
	}
	return false
}
