package detector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Read-backs: the few questions only an instance's stored events answer, asked for many
// instances at once by the reader worker (Reader.InstancesEvents, ReadBatch keys a query).

// readPurpose says why an instance is read back; purposes of one instance merge.
type readPurpose uint8

const (
	// readExplain: the instance got stuck; its last error, traces and violations are wanted.
	readExplain readPurpose = 1 << iota
	// readVerify: the instance was first seen in the middle (or restored from a stored stuck
	// state); what came before is wanted before anything is said of it.
	readVerify
	// readClosed: an instance closed here got a late checkpoint; the store's verdict is
	// written again.
	readClosed
	// readCommands: the instance's command records are wanted too (an instance restored from
	// its stored state, older than the commands loaded at start).
	readCommands
)

// readChunks bounds the read-back requests handed to the reader and not yet answered.
const readChunks = 64

// readQueue holds the instances waiting for a read-back: queued, or in flight (again holds
// what was asked of an instance while its read was in flight, asked once more afterwards).
type readQueue struct {
	pending  map[string]readPurpose // queued, not handed yet
	order    []string               // pending ids, oldest first
	inflight map[string]readPurpose
	again    map[string]readPurpose
	// notBefore holds the queue back after a failed read.
	notBefore time.Time
}

func (q *readQueue) add(id string, p readPurpose) {
	if _, ok := q.inflight[id]; ok {
		// The read in flight answers an explanation or a check; a late checkpoint of a
		// closed instance may have been written after it was asked: ask again then.
		if p&readClosed != 0 {
			if q.again == nil {
				q.again = map[string]readPurpose{}
			}
			q.again[id] |= p
		}
		return
	}
	if cur, ok := q.pending[id]; ok {
		q.pending[id] = cur | p
		return
	}
	q.pending[id] = p
	q.order = append(q.order, id)
}

// judging tells whether a read queued or in flight is needed to judge an instance: anything
// but an explanation.
func (q *readQueue) judging() bool {
	for _, p := range q.pending {
		if p&^readExplain != 0 {
			return true
		}
	}
	for _, p := range q.inflight {
		if p&^readExplain != 0 {
			return true
		}
	}
	return false
}

// judgingFirst moves the reads needed to judge an instance ahead of the explanations.
func (q *readQueue) judgingFirst() {
	explainOnly := func(id string) int {
		if q.pending[id]&^readExplain == 0 {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(q.order, func(a, b string) int { return explainOnly(a) - explainOnly(b) })
}

// done takes an id out of flight and returns what it was read for.
func (q *readQueue) done(id string) readPurpose {
	p := q.inflight[id]
	delete(q.inflight, id)
	if a, ok := q.again[id]; ok {
		delete(q.again, id)
		q.add(id, a)
	}
	return p
}

// readRequest asks the reader for the events of some instances of one flow.
type readRequest struct {
	tenant, flow string
	keys, ids    []string
	// countsAt, when set, asks instead for the stuck counts at that time (StuckCounts).
	countsAt time.Time
	// commands asks for the instances' command records too.
	commands bool
	// family, for instances of a parent flow first seen in the middle (or closed here), asks
	// for their children too, judged at now by set's definitions.
	family *model.Set
	now    time.Time
}

// readResult is the reader's answer.
type readResult struct {
	req  readRequest
	rows map[string][]storage.CheckpointEvent
	cmds []storage.CommandRecord
	// children are, by parent key, the children of the instances (when req.family is set).
	children map[string][]model.Child
	err      error
	took     time.Duration
}

type reader struct {
	in chan readRequest
}

func (d *Detector) startReader(ctx context.Context) *reader {
	r := &reader{in: make(chan readRequest, readChunks)}
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-r.in:
				var res result
				if !req.countsAt.IsZero() {
					counts, err := d.cfg.Store.StuckCounts(ctx, req.countsAt)
					res = countsResult{counts: counts, err: err}
				} else {
					start := time.Now()
					rows, err := d.cfg.Store.InstancesEvents(ctx, req.tenant, req.flow, req.keys)
					var cmds []storage.CommandRecord
					if err == nil && req.commands {
						cmds, err = d.cfg.Store.CommandsOf(ctx, req.tenant, req.flow, req.keys)
					}
					var children map[string][]model.Child
					if err == nil && req.family != nil {
						children, err = d.readChildren(ctx, req)
					}
					res = readResult{req: req, rows: rows, cmds: cmds, children: children, err: err, took: time.Since(start)}
				}
				if !d.send(ctx, res) {
					return
				}
			}
		}
	}()
	return r
}

// dispatchReads hands the queued read-backs to the reader, ReadBatch instances of one flow a
// request, as many requests as it takes (never waiting on it).
func (d *Detector) dispatchReads(now time.Time) {
	q := &d.reads
	if len(q.order) == 0 || now.Before(q.notBefore) {
		return
	}
	if q.inflight == nil {
		q.inflight = map[string]readPurpose{}
	}
	type fam struct{ tenant, flow string }
	set := d.flows()
	var reqs []*readRequest
	open := map[fam]*readRequest{}
	rest := q.order[:0]
	handed := 0
	for _, id := range q.order {
		if len(d.reader.in)+len(reqs) >= readChunks {
			rest = append(rest, id)
			continue
		}
		tenant, flow, key := d.fams.split(id)
		f := fam{tenant, flow}
		r := open[f]
		if r == nil || len(r.keys) >= d.cfg.ReadBatch {
			r = &readRequest{tenant: tenant, flow: flow}
			open[f] = r
			reqs = append(reqs, r)
		}
		r.keys, r.ids = append(r.keys, key), append(r.ids, id)
		r.commands = r.commands || q.pending[id]&readCommands != 0
		if q.pending[id]&(readVerify|readClosed) != 0 && len(model.ChildFlowsOf(set.Versions(flow))) > 0 {
			r.family, r.now = set, now
		}
		q.inflight[id] = q.pending[id]
		delete(q.pending, id)
		handed++
	}
	q.order = rest
	for _, r := range reqs {
		d.reader.in <- *r // room was counted above
		d.inflight++
		d.readsInflight++
	}
	d.m.readQueue.Set(float64(len(q.order)))
}

func (r readResult) apply(d *Detector, now time.Time) {
	d.m.readBacks.Add(float64(len(r.req.keys)))
	d.m.readBackSeconds.Observe(r.took.Seconds())
	if r.err != nil {
		d.m.readErrors.Inc()
		d.log.Warn("read-back of instances failed; retrying", "flow", r.req.flow, "instances", len(r.req.keys), "err", r.err)
		for _, id := range r.req.ids {
			d.reads.add(id, d.reads.done(id))
		}
		d.reads.notBefore = now.Add(time.Second)
		return
	}
	for _, c := range r.cmds {
		d.keepCommand(c)
	}
	for i, id := range r.req.ids {
		p := d.reads.done(id)
		var children []model.Child
		if r.children != nil {
			children = r.children[r.req.keys[i]]
			if children == nil {
				children = []model.Child{} // read: none
			}
		}
		d.readBack(id, p, r.rows[r.req.keys[i]], children, now)
	}
	d.judgeParents(now)
}

// readBack applies what the store holds of one instance: every checkpoint it reached (so the
// compact state misses nothing read late or before this detector started), its version when
// it was first seen in the middle, an operator's cancel, its children (a parent first seen in
// the middle: children is not nil), and the explanation of a stuck verdict.
func (d *Detector) readBack(id string, p readPurpose, rows []storage.CheckpointEvent, children []model.Child, now time.Time) {
	tenant, flow, key := d.fams.split(id)
	set := d.flows()
	in := d.open.get(id)
	if in == nil {
		if p&readClosed != 0 && d.closed[id] != 0 {
			// Closed here, and a late checkpoint came: the store's verdict is written again
			// (an earlier terminal may have arrived late).
			full, _ := flowstate.Rebuild(set.Versions(flow), tenant, key, rows, nil)
			full.SetChildren(children)
			if flowstate.HasCheckpoint(full) {
				if st := full.Evaluate(now); st.Status.Closed() {
					d.writeRow(id, st, now)
				}
			}
		}
		return
	}
	if !d.adoptChild(in, set, rows) {
		return // a child restored from its stored state, of another shard's family
	}
	versions := set.Versions(flow)
	if in.flags&flagUnverified == 0 {
		// An open instance keeps its version and its definition, even when a reload rebuilt
		// the set: newer versions never re-judge older instances.
		versions = []*model.Flow{d.fams.flow(in)}
	}
	full, _ := flowstate.Rebuild(versions, tenant, key, rows, nil)
	if in.flags&flagUnverified != 0 {
		if pinned := full.Pinned(); pinned != nil && pinned != d.fams.flow(in) && flowstate.HasCheckpoint(full) {
			d.repin(in, pinned)
		}
		in.flags &^= flagUnverified
	}
	f := d.fams.flow(in)
	for _, ev := range full.Events() {
		switch c := f.Checkpoint(ev.Checkpoint); {
		case c == nil:
		case c.Children != nil:
			d.noteReach(in, c.Name) // its record: the judgement derives the reach
		default:
			in.reach(c, ev.Time)
		}
	}
	if children != nil {
		d.setBroods(id, model.BroodsOf(children))
		full.SetChildren(children)
	}
	for _, ev := range full.Events() {
		if ev.Checkpoint == model.OperatorCancel {
			// An operator cancelled it: the compact state keeps the cancel aside.
			if cur := d.fam.cancels[id]; cur == 0 || ev.Time.UnixNano() < cur {
				d.fam.cancels[id] = ev.Time.UnixNano()
			}
			break
		}
	}
	st := full.Evaluate(now)
	d.judge(in, now, true, explanationOf(st))
}

// adoptChild takes a child restored from its stored state (its parent unknown until its rows
// are read) into its family when it is this shard's, and forgets it when it is not. It
// reports whether the instance is still this shard's.
func (d *Detector) adoptChild(in *inst, set *model.Set, rows []storage.CheckpointEvent) bool {
	tenant, flow, key := d.fams.split(in.id)
	pl := set.Parent(flow)
	if pl == nil {
		return true
	}
	if _, linked := d.fam.kids[in]; linked {
		return true
	}
	parent := ""
	for i := range rows {
		if pk := rows[i].Attributes[model.AttrParentKey]; pk != "" {
			parent = pk
			break
		}
	}
	if parent == "" {
		return ShardOf(tenant, flow, key, d.cfg.Shards) == d.cfg.Shard || d.dropRestored(in)
	}
	d.cacheParent(tenant, flow, key, parent)
	if ShardOf(tenant, pl.Flow, parent, d.cfg.Shards) != d.cfg.Shard {
		return d.dropRestored(in)
	}
	d.link(in, pl.Flow, parent)
	return true
}

// dropRestored forgets an instance restored here that another shard owns; it returns false.
func (d *Detector) dropRestored(in *inst) bool {
	d.forget(in)
	return false
}

// readChildren reads the children of req's instances, of every child flow, judged by
// flowstate.Children: by parent key.
func (d *Detector) readChildren(ctx context.Context, req readRequest) (map[string][]model.Child, error) {
	out := map[string][]model.Child{}
	for _, cf := range model.ChildFlowsOf(req.family.Versions(req.flow)) {
		byParent, err := storage.ChildrenEvents(ctx, d.cfg.Store, req.tenant, cf, req.keys, d.cfg.ReadBatch)
		if err != nil {
			return nil, fmt.Errorf("children of %s: %w", req.flow, err)
		}
		for parent, rows := range byParent {
			out[parent] = append(out[parent], flowstate.Children(req.family.Versions(cf), req.tenant, rows, req.now)...)
		}
	}
	return out, nil
}

// writeRow writes the state of an instance the detector does not hold.
func (d *Detector) writeRow(id string, st model.State, now time.Time) {
	row := flowstate.Row(st)
	row.Shard = d.cfg.Shard
	row.UpdatedAt = now
	d.states[id] = row
}

// restoreStuck takes back this shard's instances stored as stuck that the rebuild window did
// not reach: an instance stays stuck, and alerted, until something true changes. They are
// read back (verified) like instances first seen in the middle.
func (d *Detector) restoreStuck(ctx context.Context) error {
	set := d.flows()
	cursor := ""
	for {
		states, next, err := d.cfg.Store.Instances(ctx, storage.InstanceFilter{Status: string(model.StatusStuck), Limit: 1000, Cursor: cursor})
		if err != nil {
			if isUnsupported(err) {
				return nil
			}
			return fmt.Errorf("read stored stuck instances: %w", err)
		}
		for _, st := range states {
			// A child's shard is its parent's, which its rows tell: its read-back decides.
			if set.Parent(st.Flow) == nil && ShardOf(st.Tenant, st.Flow, st.Key, d.cfg.Shards) != d.cfg.Shard {
				continue
			}
			id := d.fams.id(st.Tenant, st.Flow, st.Key)
			if d.open.get(id) != nil || d.closed[id] != 0 {
				continue
			}
			f := set.Version(st.Flow, st.Version)
			if f == nil {
				d.log.Warn("a stored stuck instance's flow version is not loaded; not watched", "flow", st.Flow,
					"version", st.Version, "key", st.Key)
				continue
			}
			if in := d.newInst(id, f); in != nil {
				in.flags |= flagUnverified
				d.reads.add(id, readVerify|readCommands)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return nil
}

func isUnsupported(err error) bool { return errors.Is(err, storage.ErrUnsupported) }
