package detector

import (
	"strconv"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// Grouped alerts (GroupByCheckpoint) over several shards. Every shard sends the same label set
// for a checkpoint's group, so each must say the same thing: the group's size is counted in
// the store (every shard's stuck states), and a shard whose own members are gone leaves the
// alert to the others while the store still counts some — it resolves the alert only when the
// store counts none. No shard resolves an alert another still fires: no flapping.

// countsEvery is how often a sharded detector with grouped alerts asks the store for the
// groups' sizes.
const countsEvery = 5 * time.Second

// sharedGroups reports whether group alerts are shared with other shards.
func (d *Detector) sharedGroups() bool {
	return d.cfg.Alerting.GroupByCheckpoint && d.cfg.Shards > 1 && len(d.notifiers) > 0
}

// groupKey identifies a group alert by what its labels hold.
func groupKey(tenant, flow string, version int, checkpoint string, errorSeen bool) string {
	return tenant + "\x00" + flow + "\x00" + strconv.Itoa(version) + "\x00" + checkpoint + "\x00" + strconv.FormatBool(errorSeen)
}

// askCounts hands the reader a request for the groups' sizes, every countsEvery while some
// group alert is held.
func (d *Detector) askCounts(now time.Time) {
	if !d.sharedGroups() || len(d.alerts) == 0 || d.countsInflight || now.Sub(d.countsAt) < countsEvery {
		return
	}
	select {
	case d.reader.in <- readRequest{countsAt: now}:
		d.countsInflight, d.countsAt = true, now
		d.inflight++
	default: // the reader is full of read-backs: next tick
	}
}

// countsResult is the store's count of each group.
type countsResult struct {
	counts []storage.StuckCount
	err    error
}

func (r countsResult) apply(d *Detector, now time.Time) {
	d.countsInflight = false
	if r.err != nil {
		d.m.readErrors.Inc()
		d.log.Warn("count stuck instances for grouped alerts; retrying", "err", r.err)
		return
	}
	by := make(map[string]uint64, len(r.counts))
	for _, c := range r.counts {
		by[groupKey(c.Tenant, c.Flow, c.Version, c.Checkpoint, c.ErrorSeen)] = c.Count
	}
	for _, s := range d.alerts {
		if s.members == nil || s.resolved {
			continue
		}
		n := by[groupKey(s.tenant, s.flow, s.version, s.checkpoint, s.labels["reason"] == ReasonError)]
		if n != s.storeCount {
			s.storeCount = n
			s.gen++
			d.alertsChanged = true
		}
		if len(s.members) == 0 && n == 0 {
			d.resolveAlert(s, now) // the last shard to hold members of it says so
		}
	}
}
