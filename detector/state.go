package detector

import (
	"container/heap"
	"encoding/binary"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

// inst is the compact in-memory state of one open instance. It keeps only what deciding
// status and deadlines needs (the first time each checkpoint was reached); everything else
// (events, errors, trace IDs, violations) stays in the store and is read back, in batches,
// when an instance becomes stuck. BenchmarkOpenInstanceMemory measures what one costs.
type inst struct {
	// id is the family (tenant and flow, 4 bytes) then the key: the map key, stored once.
	id string
	// first[i] is the unix-nanosecond time f.Checkpoints[i] was first reached; 0 = never.
	first []int64
	// due is when the instance must be looked at again (a deadline, an action, a recheck);
	// 0 = not scheduled. heapIdx is its place in the deadline heap, -1 when absent.
	due int64
	// extra exists only for stuck instances.
	extra   *stuckState
	heapIdx int32
	// version indexes the family's pinned versions.
	version uint16
	status  status
	flags   uint8
}

// Instance flags.
const (
	// flagUnverified: first seen in the middle (its start not read by this detector), or
	// restored from a stored state; nothing is said of it until a read-back tells what came
	// before.
	flagUnverified uint8 = 1 << iota
	// flagTouched: in the list of instances an ingest round touched.
	flagTouched
	// flagEnded: a child whose end (success, failure, cancel) its parent's kin counted.
	flagEnded
)

// status is model.Status in one byte.
type status uint8

const (
	statusRunning status = iota
	statusStuck
	statusCompleted
	statusFailed
	statusCancelled
	statusCompensating
	statusCompensated
	numStatuses
)

// statuses are the model's statuses, by status.
var statuses = [numStatuses]model.Status{model.StatusRunning, model.StatusStuck, model.StatusCompleted,
	model.StatusFailed, model.StatusCancelled, model.StatusCompensating, model.StatusCompensated}

func statusOf(s model.Status) status {
	for i, m := range statuses {
		if m == s {
			return status(i)
		}
	}
	return statusRunning
}

// family is a (tenant, flow) pair: instance ids refer to it by index, so that 1M instances
// do not hold 1M copies of the tenant and flow names.
type family struct {
	tenant, flow string
	// versions are the flow versions instances of this family are pinned to, append-only.
	versions []*model.Flow
}

type families struct {
	list  []*family
	index map[[2]string]uint32
}

// id returns the instance id of (tenant, flow, key), adding the family when new.
func (fs *families) id(tenant, flow, key string) string {
	n, ok := fs.index[[2]string{tenant, flow}]
	if !ok {
		if fs.index == nil {
			fs.index = map[[2]string]uint32{}
		}
		n = uint32(len(fs.list))
		fs.list = append(fs.list, &family{tenant: tenant, flow: flow})
		fs.index[[2]string{tenant, flow}] = n
	}
	return string(fs.appendIDn(nil, n, key))
}

// appendID appends the id of (tenant, flow, key) to b, adding the family when new; with
// instTable.getBytes it looks an instance up without allocating.
func (fs *families) appendID(b []byte, tenant, flow, key string) []byte {
	n, ok := fs.index[[2]string{tenant, flow}]
	if !ok {
		return append(b, fs.id(tenant, flow, key)...)
	}
	return fs.appendIDn(b, n, key)
}

func (fs *families) appendIDn(b []byte, n uint32, key string) []byte {
	b = binary.LittleEndian.AppendUint32(b, n)
	return append(b, key...)
}

func (fs *families) of(id string) *family { return fs.list[binary.LittleEndian.Uint32([]byte(id[:4]))] }

// split returns the tenant, flow and key of an instance id.
func (fs *families) split(id string) (tenant, flow, key string) {
	f := fs.of(id)
	return f.tenant, f.flow, id[4:]
}

// pin returns the index of version f in the family of id, adding it when new.
func (fs *families) pin(id string, f *model.Flow) uint16 {
	fam := fs.of(id)
	for i, v := range fam.versions {
		if v == f {
			return uint16(i)
		}
	}
	fam.versions = append(fam.versions, f)
	return uint16(len(fam.versions) - 1)
}

// flow returns the version an instance is pinned to.
func (fs *families) flow(in *inst) *model.Flow { return fs.of(in.id).versions[in.version] }

// ShardOf returns the shard (0..shards-1) that owns an instance. It is stable across
// processes and versions: it hashes with FNV-1a, not a per-process seed.
func ShardOf(tenant, flow, key string, shards int) int {
	if shards <= 1 {
		return 0
	}
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, s := range [3]string{tenant, flow, key} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime
		}
		h ^= 0xff // separator: ("ab","c") and ("a","bc") differ
		h *= prime
	}
	return int(h % uint64(shards))
}

// firstTimes converts the compact first-reached times for model.Flow.Judge.
func (in *inst) firstTimes(buf []time.Time) []time.Time {
	out := buf[:0]
	for _, ns := range in.first {
		if ns == 0 {
			out = append(out, time.Time{})
		} else {
			out = append(out, time.Unix(0, ns))
		}
	}
	return out
}

// last is the latest first-reached time (unix ns): the instance's last progress.
func (in *inst) last() int64 {
	var t int64
	for _, ns := range in.first {
		t = max(t, ns)
	}
	return t
}

// reach records that checkpoint c was reached at t; it reports whether anything changed.
func (in *inst) reach(c *model.Checkpoint, t time.Time) bool {
	ns := t.UnixNano()
	if cur := in.first[c.Index]; cur != 0 && cur <= ns {
		return false
	}
	in.first[c.Index] = ns
	return true
}

// deadlineHeap orders instances by due time.
type deadlineHeap []*inst

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}
func (h *deadlineHeap) Push(x any) {
	in := x.(*inst)
	in.heapIdx = int32(len(*h))
	*h = append(*h, in)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	n := len(old)
	in := old[n-1]
	old[n-1] = nil
	in.heapIdx = -1
	*h = old[:n-1]
	return in
}

// schedule puts in on the heap at due (unix ns), or takes it off when due is 0.
func (h *deadlineHeap) schedule(in *inst, due int64) {
	switch {
	case due == 0 && in.heapIdx >= 0:
		heap.Remove(h, int(in.heapIdx))
		in.due = 0
	case due == 0:
		in.due = 0
	case in.heapIdx >= 0:
		in.due = due
		heap.Fix(h, int(in.heapIdx))
	default:
		in.due = due
		heap.Push(h, in)
	}
}
