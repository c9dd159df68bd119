package detector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// errReadEvents marks a failed read of new events (the cursor did not move).
var errReadEvents = errors.New("read events")

// cursor is the detector's place in the stream of checkpoint rows: the newest ingest time
// read, and the event ids read within the overlap window behind it (rows another collector
// wrote late with an older ingest time are read again; their ids say which are new).
type cursor struct {
	at   time.Time
	seen map[string]int64 // event_id → ingest unix ns
	q    timedQueue
	// high is the most ids held since the map was last rebuilt.
	high int
}

// read hands each page of rows not seen yet to apply: rows written late into the overlap
// window behind the cursor, up to it (found by their ids, which cost little to read again),
// then the rows after it, a page (ReadLimit rows) at a time, so that a rebuild never holds
// every row of its window at once.
func (d *Detector) read(ctx context.Context, apply func([]storage.CheckpointEvent)) error {
	c := &d.cur
	total := 0
	if len(c.seen) > 0 {
		from := c.at.Add(-d.cfg.Overlap)
		refs, err := d.lateRefs(ctx, from)
		if err != nil {
			d.m.readErrors.Inc()
			return fmt.Errorf("%w: ids since %s: %w", errReadEvents, from.Format(time.RFC3339Nano), err)
		}
		var late []string
		for _, r := range refs {
			if _, ok := c.seen[r.EventID]; !ok {
				late = append(late, r.EventID)
			}
		}
		if len(late) > 0 {
			rows, err := d.cfg.Store.EventsAmong(ctx, from, late)
			if err != nil {
				d.m.readErrors.Inc()
				return fmt.Errorf("%w: %d rows written late: %w", errReadEvents, len(late), err)
			}
			rows = c.fresh(rows, rows[:0])
			d.m.lateRows.Add(float64(len(rows)))
			total += len(rows)
			apply(rows)
		}
	}
	// Rows at the cursor's own ingest time were read (a batch shares one ingest time); one
	// written there later is found by the overlap check above.
	since := c.at.Add(time.Nanosecond)
	limit := d.cfg.ReadLimit
	for {
		rows, err := d.cfg.Store.EventsSince(ctx, since, limit)
		if err != nil {
			d.m.readErrors.Inc()
			return fmt.Errorf("%w since %s: %w", errReadEvents, since.Format(time.RFC3339Nano), err)
		}
		full := len(rows) >= limit
		last := time.Time{}
		if len(rows) > 0 {
			last = rows[len(rows)-1].IngestTime
		}
		fresh := c.fresh(rows, rows[:0]) // filter in place: rows are ours
		total += len(fresh)
		if len(fresh) > 0 {
			apply(fresh)
		}
		if !full {
			break
		}
		if !last.After(since) {
			limit *= 2 // a full page of one ingest time: widen it rather than loop
			continue
		}
		since = last
	}
	d.m.eventsRead.Add(float64(total))
	if total > 0 {
		d.m.readLag.Set(d.cfg.Now().Sub(c.at).Seconds())
	}
	c.forget(c.at.Add(-2 * d.cfg.Overlap))
	return nil
}

// lateRefs returns the refs of the overlap window [from, cursor] when the store holds an id
// there that the detector has not seen: a count of the window's distinct ids first, which
// matches the ids seen there unless a row was written late (the refs are read only then).
func (d *Detector) lateRefs(ctx context.Context, from time.Time) ([]storage.EventRef, error) {
	c := &d.cur
	n, err := d.cfg.Store.CountEvents(ctx, from, c.at)
	if err != nil {
		return nil, err
	}
	lo, hi := from.UnixNano(), c.at.UnixNano()
	seen := uint64(0)
	for _, e := range c.q.items[c.q.head:] {
		if e.ingest >= lo && e.ingest <= hi && c.seen[e.id] == e.ingest {
			seen++
		}
	}
	if n <= seen {
		return nil, nil
	}
	return d.cfg.Store.EventRefs(ctx, from, c.at)
}

// fresh appends to out the rows not seen yet, remembers them, and moves the cursor to the
// newest ingest time.
func (c *cursor) fresh(rows, out []storage.CheckpointEvent) []storage.CheckpointEvent {
	for i := range rows {
		r := &rows[i]
		if _, dup := c.seen[r.EventID]; dup {
			continue
		}
		ns := r.IngestTime.UnixNano()
		c.seen[r.EventID] = ns
		c.q.push(seenEntry{r.EventID, ns})
		if r.IngestTime.After(c.at) {
			c.at = r.IngestTime
		}
		out = append(out, *r)
	}
	return out
}

// forget drops the ids ingested before cut: they can no longer be read again.
func (c *cursor) forget(cut time.Time) {
	c.q.popOlder(cut.UnixNano(), func(e seenEntry) {
		if c.seen[e.id] == e.ingest {
			delete(c.seen, e.id)
		}
	})
	if len(c.seen) > c.high {
		c.high = len(c.seen)
	} else if c.high > 4096 && len(c.seen) < c.high/4 {
		// Go maps never shrink: after a burst (a rebuild), copy the survivors into a small one.
		small := make(map[string]int64, len(c.seen))
		for k, v := range c.seen {
			small[k] = v
		}
		c.seen, c.high = small, len(small)
		c.q.shrink()
	}
}

// timedQueue holds entries in time order; popping the old ones costs what is popped
// (amortized), never a scan or a copy of the rest.
type timedQueue struct {
	items []seenEntry
	head  int
}

func (q *timedQueue) push(e seenEntry) { q.items = append(q.items, e) }

// popOlder removes, oldest first, the entries older than cut.
func (q *timedQueue) popOlder(cut int64, f func(seenEntry)) {
	for q.head < len(q.items) && q.items[q.head].ingest < cut {
		f(q.items[q.head])
		q.items[q.head] = seenEntry{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
}

// shrink copies the live entries into a right-sized slice (after a burst).
func (q *timedQueue) shrink() {
	q.items, q.head = append([]seenEntry(nil), q.items[q.head:]...), 0
}

// seenEntry is an id with a time (ingest time for event ids, closing time for instances).
type seenEntry struct {
	id     string
	ingest int64
}
