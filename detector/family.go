package detector

import (
	"slices"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Families (DESIGN.md "Sub-flows"): a child is sharded with its parent (by the parent's key),
// so this shard holds a whole family. What a parent knows of its children is kept as they
// change, compactly — counts and times, never a list of children — in a kin, which exists as
// soon as one child is seen (children may come before their parent) and is judged with the
// parent once it is open. A child knows its kin through kids; nothing is added to an
// instance that is in no family.

// kin is what this shard knows of one parent's children: a brood per child flow, and the
// counts of children the parent's items expect.
type kin struct {
	// parent is the parent's instance id.
	parent string
	// first is the brood of the first child flow seen (a parent has mostly one), more those
	// of others.
	first  brood
	more   []*brood
	expect []expectValue
	// linked counts the children open here that belong to it.
	linked int32
	// reached has a bit for each of the parent's children checkpoints (by ordinal,
	// model.Flow.ChildrenOrdinal) whose reach is recorded in the store or queued to be: see
	// recordReach. It fills the padding after linked; the rare ordinals past 31 are kept in
	// families.reachedMore.
	reached uint32
}

// brood is what a parent knows of its children of one child flow (model.Brood, compactly).
type brood struct {
	kin  *kin
	flow string
	// open counts the children that have not ended; successes are when each that succeeded
	// did (unix ns); failed, once one did, the failures.
	open      int32
	successes []int64
	failed    *failures
	// statuses counts the children by status (ended ones included); stuck are those stuck now.
	statuses [numStatuses]int32
	stuck    []*inst
}

// failures are the children of a brood that failed: how many, the earliest and the latest.
type failures struct {
	n           int32
	first, last childEnd
}

// childEnd is a child that failed: its key, the checkpoint that failed it, and when (unix ns).
type childEnd struct {
	key, checkpoint string
	at              int64
}

func (f *failures) add(e childEnd) {
	if f.n == 0 || e.at < f.first.at {
		f.first = e
	}
	if f.n == 0 || e.at >= f.last.at {
		f.last = e
	}
	f.n++
}

// expectValue is the latest value of a children checkpoint's `expect` attribute.
type expectValue struct {
	attr string
	n    int
	at   int64
}

// familyState holds the kins by parent id, the links of the open children, the parent keys of
// children seen (a cache, for the rows of a child that do not carry it), and the instances an
// operator cancelled whose compensations keep them open.
type familyState struct {
	kins map[string]*kin
	// kids ties each child open here to its parent's brood (its flagEnded says its end was
	// counted there).
	kids map[*inst]*brood
	// parents caches the parent keys of children this shard does not hold, by tenant\x00child
	// flow\x00child key; bounded, refilled from the rows and the store (Reader.ParentKeys).
	parents map[string]string
	// cancels: when an operator cancelled an open instance (unix ns).
	cancels map[string]int64
	// reachedMore: by parent id, the recorded children checkpoints whose ordinal does not fit
	// kin.reached (a flow with more than 32 of them); made when first needed.
	reachedMore map[string][]string
	// dirty are the parents whose children changed, judged again at the end of the round.
	dirty []string
	// quiet are kins with neither a parent nor a child open here, pruned when still quiet
	// after the rebuild window.
	quiet timedQueue
}

func newFamilyState() familyState {
	return familyState{kins: map[string]*kin{}, kids: map[*inst]*brood{}, parents: map[string]string{},
		cancels: map[string]int64{}}
}

func parentCacheKey(tenant, flow, key string) string { return tenant + "\x00" + flow + "\x00" + key }

// parentOf returns the parent key of a child flow's event ("" for a child without a parent):
// carried by the row, known from the child open here, or cached. ok is false when it is
// unknown yet.
func (d *Detector) parentOf(e *storage.CheckpointEvent, idBuf []byte) (string, bool) {
	if pk := e.Attributes[model.AttrParentKey]; pk != "" {
		return pk, true
	}
	if in := d.open.getBytes(d.fams.appendID(idBuf[:0], e.Tenant, e.Flow, e.Key)); in != nil {
		if b, ok := d.fam.kids[in]; ok {
			_, _, pk := d.fams.split(b.kin.parent)
			return pk, true
		}
		if in.flags&flagUnverified == 0 {
			return "", true // open here, in no family: it has no parent
		}
	}
	pk, ok := d.fam.parents[parentCacheKey(e.Tenant, e.Flow, e.Key)]
	return pk, ok
}

// cacheParent remembers a child's parent key; the cache is bounded.
func (d *Detector) cacheParent(tenant, flow, key, parent string) {
	if len(d.fam.parents) > 4*d.cfg.MaxOpen {
		clear(d.fam.parents) // a cache: refilled from the rows and the store on demand
	}
	d.fam.parents[parentCacheKey(tenant, flow, key)] = parent
}

// kinOf returns the kin of a parent, making it when new.
func (d *Detector) kinOf(parent string) *kin {
	k := d.fam.kins[parent]
	if k == nil {
		k = &kin{parent: parent}
		d.fam.kins[parent] = k
	}
	return k
}

// brood returns the brood of a child flow, making it when new.
func (k *kin) brood(flow string) *brood {
	if k.first.kin == nil {
		k.first = brood{kin: k, flow: flow}
	}
	if k.first.flow == flow {
		return &k.first
	}
	for _, b := range k.more {
		if b.flow == flow {
			return b
		}
	}
	b := &brood{kin: k, flow: flow}
	k.more = append(k.more, b)
	return b
}

// broods calls f with each brood of the kin.
func (k *kin) broods(f func(*brood)) {
	if k.first.kin != nil {
		f(&k.first)
	}
	for _, b := range k.more {
		f(b)
	}
}

// link ties a child just opened here to the kin of its parent (parentFlow, parent key).
func (d *Detector) link(in *inst, parentFlow, parent string) {
	tenant, flow, _ := d.fams.split(in.id)
	var buf [64]byte
	k := d.fam.kins[string(d.fams.appendID(buf[:0], tenant, parentFlow, parent))]
	if k == nil {
		id := d.fams.id(tenant, parentFlow, parent)
		if p := d.open.get(id); p != nil {
			id = p.id // one copy of the id, the parent's
		}
		k = d.kinOf(id)
	}
	b := k.brood(flow)
	b.open++
	b.statuses[in.status]++
	k.linked++
	d.fam.kids[in] = b
	d.touchParent(k)
}

// unlink takes a child that is no longer open here off its kin: its counts stay (it ended, or
// was evicted while it could still succeed).
func (d *Detector) unlink(in *inst) {
	b, ok := d.fam.kids[in]
	if !ok {
		return
	}
	delete(d.fam.kids, in)
	b.stuck = slices.DeleteFunc(b.stuck, func(x *inst) bool { return x == in })
	b.kin.linked--
	d.touchParent(b.kin)
	d.maybeQuiet(b.kin)
}

// touchParent marks a kin's parent to be judged again at the end of the round.
func (d *Detector) touchParent(k *kin) {
	if n := len(d.fam.dirty); n == 0 || d.fam.dirty[n-1] != k.parent {
		d.fam.dirty = append(d.fam.dirty, k.parent)
	}
}

// judgeParents judges again the open parents whose children changed.
func (d *Detector) judgeParents(now time.Time) {
	for len(d.fam.dirty) > 0 {
		dirty := d.fam.dirty
		d.fam.dirty = nil
		slices.Sort(dirty)
		for _, id := range slices.Compact(dirty) {
			if in := d.open.get(id); in != nil {
				d.judge(in, now, true, nil)
			}
		}
	}
}

// setStatus changes an instance's status, keeping its kin's counts and the detector's.
func (d *Detector) setStatus(in *inst, s status) {
	old := in.status
	if old == s {
		return
	}
	in.status = s
	switch {
	case s == statusCompensating:
		d.compensatingN++
	case old == statusCompensating:
		d.compensatingN--
	}
	b, ok := d.fam.kids[in]
	if !ok {
		return
	}
	b.statuses[old]--
	b.statuses[s]++
	if s == statusStuck {
		b.stuck = append(b.stuck, in)
	} else if old == statusStuck {
		b.stuck = slices.DeleteFunc(b.stuck, func(x *inst) bool { return x == in })
	}
	d.touchParent(b.kin)
}

// childVerdict counts, once, the end a child's verdict says it reached: a success, a failure
// (its failure terminal, or a failed child of its own) or an operator's cancel.
func (d *Detector) childVerdict(in *inst, v *model.Verdict) {
	b, ok := d.fam.kids[in]
	if !ok || in.flags&flagEnded != 0 {
		return
	}
	_, _, key := d.fams.split(in.id)
	switch {
	case v.Status == model.StatusCompleted:
		b.successes = append(b.successes, v.EndedAt.UnixNano())
	case v.Failure != nil && v.Failure.Checkpoint != model.OperatorCancel:
		if b.failed == nil {
			b.failed = &failures{}
		}
		b.failed.add(childEnd{key: key, checkpoint: v.Failure.Checkpoint, at: v.Failure.Time.UnixNano()})
	case v.Failure != nil, v.Status == model.StatusCancelled:
	default:
		return
	}
	b.open--
	in.flags |= flagEnded
	d.touchParent(b.kin)
}

// progress is what judging an instance needs: its first-reached times, and what its kin and
// an operator's cancel add.
func (d *Detector) progress(in *inst, f *model.Flow, buf []time.Time) model.Progress {
	p := model.Progress{First: in.firstTimes(buf)}
	if len(d.fam.cancels) > 0 {
		if ns := d.fam.cancels[in.id]; ns != 0 {
			p.Cancelled = time.Unix(0, ns)
		}
	}
	if f.HasChildren() {
		if k := d.fam.kins[in.id]; k != nil {
			p.Broods, p.Expect = k.model(d), k.expectMap()
		}
	}
	return p
}

// model converts the kin's broods for model.Flow.Judge.
func (k *kin) model(d *Detector) []model.Brood {
	out := make([]model.Brood, 0, 1+len(k.more))
	k.broods(func(b *brood) {
		mb := model.Brood{Flow: b.flow, Open: int(b.open), Successes: make([]time.Time, len(b.successes)),
			Statuses: map[model.Status]int{}}
		for i, ns := range b.successes {
			mb.Successes[i] = time.Unix(0, ns)
		}
		if f := b.failed; f != nil {
			mb.Failures = int(f.n)
			mb.FirstFailure = model.ChildEnd{Key: f.first.key, Checkpoint: f.first.checkpoint, Time: time.Unix(0, f.first.at)}
			mb.LastFailure = model.ChildEnd{Key: f.last.key, Checkpoint: f.last.checkpoint, Time: time.Unix(0, f.last.at)}
		}
		for s, n := range b.statuses {
			if n > 0 {
				mb.Statuses[statuses[s]] = int(n)
			}
		}
		for _, c := range b.stuck {
			if c.extra == nil || len(c.extra.overdue) == 0 || c.extra.overdue[0].reason == nil {
				continue // not explained yet
			}
			r := c.extra.overdue[0].reason
			_, _, key := d.fams.split(c.id)
			mb.Stuck = append(mb.Stuck, model.StuckChild{Key: key, Checkpoint: r.Checkpoint, Deadline: r.Deadline, Summary: r.Summary})
		}
		slices.SortFunc(mb.Stuck, func(a, b model.StuckChild) int { return compareStrings(a.Key, b.Key) })
		mb.Stuck = mb.Stuck[:min(len(mb.Stuck), model.MaxStuckChildren)]
		out = append(out, mb)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (k *kin) expectMap() map[string]int {
	if len(k.expect) == 0 {
		return nil
	}
	out := make(map[string]int, len(k.expect))
	for _, e := range k.expect {
		out[e.attr] = e.n
	}
	return out
}

// noteExpect keeps the latest count of children a parent's event says it expects.
func (d *Detector) noteExpect(in *inst, f *model.Flow, e *storage.CheckpointEvent) {
	if len(e.Attributes) == 0 || !f.HasChildren() {
		return
	}
	for _, a := range f.ExpectAttributes() {
		n, ok := model.ExpectValue(e.Attributes[a])
		if !ok {
			continue
		}
		k := d.kinOf(in.id)
		at := e.Time.UnixNano()
		i := slices.IndexFunc(k.expect, func(x expectValue) bool { return x.attr == a })
		switch {
		case i < 0:
			k.expect = append(k.expect, expectValue{attr: a, n: n, at: at})
		case at >= k.expect[i].at:
			k.expect[i] = expectValue{attr: a, n: n, at: at}
		}
	}
}

// setBroods replaces what a parent's kin knows of its children with what the store holds (a
// read-back of a parent first seen in the middle, or restored): children counted here stay
// linked, and are counted by the store's verdict.
func (d *Detector) setBroods(parent string, bs []model.Brood) {
	k := d.kinOf(parent)
	for _, mb := range bs {
		b := k.brood(mb.Flow)
		b.open = int32(mb.Open)
		b.successes = b.successes[:0]
		for _, t := range mb.Successes {
			b.successes = append(b.successes, t.UnixNano())
		}
		b.failed = nil
		if mb.Failures > 0 {
			b.failed = &failures{n: int32(mb.Failures),
				first: childEnd{key: mb.FirstFailure.Key, checkpoint: mb.FirstFailure.Checkpoint, at: mb.FirstFailure.Time.UnixNano()},
				last:  childEnd{key: mb.LastFailure.Key, checkpoint: mb.LastFailure.Checkpoint, at: mb.LastFailure.Time.UnixNano()}}
		}
		b.statuses = [numStatuses]int32{}
		for s, n := range mb.Statuses {
			b.statuses[statusOf(s)] = int32(n)
		}
	}
}

// maybeQuiet queues a kin with neither its parent nor a child open here for pruning.
func (d *Detector) maybeQuiet(k *kin) {
	if k.linked == 0 && d.open.get(k.parent) == nil {
		d.fam.quiet.push(seenEntry{k.parent, d.cfg.Now().UnixNano()})
	}
}

// forgetKin drops the kin of a parent that closed here, once no child of it is open.
func (d *Detector) forgetKin(parent string) {
	if k := d.fam.kins[parent]; k != nil && k.linked == 0 {
		delete(d.fam.kins, parent)
		delete(d.fam.reachedMore, parent)
	}
}

// pruneKins drops the kins quiet for the rebuild window: children whose parent never came
// (it may still: a parent found stuck at its children is read back, children included).
func (d *Detector) pruneKins(now time.Time) {
	d.fam.quiet.popOlder(now.Add(-d.cfg.RebuildWindow).UnixNano(), func(e seenEntry) {
		if k := d.fam.kins[e.id]; k != nil && k.linked == 0 && d.open.get(e.id) == nil {
			delete(d.fam.kins, e.id)
			delete(d.fam.reachedMore, e.id)
		}
	})
}
