package detector

import (
	"context"
	"slices"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// Delivery workers: one per notifier and one per sink, each with a bounded queue. The owner
// hands them work without waiting and takes their results back (Detector.results), so a
// receiver that hangs delays nobody else. A receiver that fails backs off as a whole.

// result is a worker's answer, applied by the owner.
type result interface {
	apply(d *Detector, now time.Time)
}

// send hands a result back to the owner; false when the detector is closing.
func (d *Detector) send(ctx context.Context, r result) bool {
	select {
	case d.results <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is the wait after the n-th consecutive failure: 1s doubling, at most 30s.
func backoff(n int) time.Duration {
	return min(time.Second<<min(max(n-1, 0), 5), 30*time.Second)
}

// ---- alerts ----

// notifierWorker delivers alert batches to one notifier, one batch at a time.
type notifierWorker struct {
	index int
	n     Notifier
	in    chan alertBatch
	// owner side
	busy         bool
	backoffUntil time.Time
	fails        int
}

// alertBatch is the alerts of one notification, as rendered when handed over, with the
// generation of each alert's content.
type alertBatch struct {
	states []*alertState
	gens   []uint64
	alerts []Alert
}

type alertResult struct {
	w     *notifierWorker
	batch alertBatch
	err   error
}

func (d *Detector) startNotifier(ctx context.Context, i int, n Notifier) *notifierWorker {
	w := &notifierWorker{index: i, n: n, in: make(chan alertBatch, 1)}
	d.m.alertsSent.WithLabelValues(n.Name())
	d.m.alertsFailed.WithLabelValues(n.Name())
	d.m.deliveryQueue.WithLabelValues(n.Name()).Set(0)
	d.m.deliveryBackoff.WithLabelValues(n.Name()).Set(0)
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-w.in:
				err := n.Notify(ctx, b.alerts)
				if !d.send(ctx, alertResult{w: w, batch: b, err: err}) {
					return
				}
			}
		}
	}()
	return w
}

// dispatchAlerts hands each idle notifier that is not backing off the alerts due for it: new
// or changed, firing ones to re-send, resolved ones a few more times. Alerts beyond a batch
// wait for the next one (counted in the queue depth); firing alerts are never dropped.
func (d *Detector) dispatchAlerts(now time.Time) {
	d.alertsChanged = false
	resend, resends := d.cfg.Alerting.Resend, d.cfg.Alerting.ResolvedResends
	for _, w := range d.notifiers {
		name := w.n.Name()
		backingOff := now.Before(w.backoffUntil)
		d.m.deliveryBackoff.WithLabelValues(name).Set(b2f(backingOff))
		if w.busy || backingOff {
			continue
		}
		var b alertBatch
		due := 0
		for _, s := range d.alerts {
			if !s.due(w.index, now, resend, resends) {
				continue
			}
			due++
			if len(b.states) < d.cfg.Alerting.Batch {
				b.states = append(b.states, s)
			}
		}
		d.m.deliveryQueue.WithLabelValues(name).Set(float64(due - len(b.states)))
		if len(b.states) == 0 {
			continue
		}
		b.gens = make([]uint64, len(b.states))
		b.alerts = make([]Alert, len(b.states))
		for i, s := range b.states {
			b.gens[i], b.alerts[i] = s.gen, s.render(now)
		}
		w.in <- b // the worker is idle: its queue is empty
		w.busy = true
		d.inflight++
	}
}

func (r alertResult) apply(d *Detector, now time.Time) {
	w := r.w
	w.busy = false
	name := w.n.Name()
	n := float64(len(r.batch.states))
	for i, s := range r.batch.states {
		if s.sentGen[w.index] != r.batch.gens[i] {
			d.recordAlert(s, name, now, r.err) // a new or changed alert: audited per attempt
		}
	}
	if r.err != nil {
		d.m.alertsFailed.WithLabelValues(name).Add(n)
		d.count(func(s *Stats) { s.AlertsFailed += uint64(n) })
		w.fails++
		wait := backoff(w.fails)
		w.backoffUntil = now.Add(wait)
		d.log.Warn("alert delivery failed; the notifier backs off", "notifier", name, "alerts", len(r.batch.states),
			"retry_in", wait, "err", r.err)
		return
	}
	w.fails, w.backoffUntil = 0, time.Time{}
	d.m.alertsSent.WithLabelValues(name).Add(n)
	d.count(func(s *Stats) { s.AlertsSent += uint64(n) })
	for i, s := range r.batch.states {
		s.sentGen[w.index] = r.batch.gens[i]
		s.lastSent[w.index] = now
		if s.resolved {
			s.resolvedSent[w.index]++
		}
	}
	d.pruneAlerts()
}

// ---- commands ----

// sinkWorker delivers commands to one sink, in order, from a bounded queue.
type sinkWorker struct {
	name string
	cfg  SinkConfig
	in   chan *cmdJob
	// owner side
	tokens       float64
	last         time.Time
	backoffUntil time.Time
	queued       int
}

// cmdJob is one attempt of one action, handed to a sink's worker.
type cmdJob struct {
	inst, checkpoint string
	action           int
	rec              storage.CommandRecord
	cmd              Command
}

// cmdResult says what became of a job. notAttempted jobs were not sent (the sink was backing
// off, or their intent could not be recorded) and wait until retryAt.
type cmdResult struct {
	w            *sinkWorker
	job          *cmdJob
	err          error
	notAttempted bool
	retryAt      time.Time
	backoffUntil time.Time
}

// maxIntentBatch bounds the commands whose intent one store write records: the most a
// detector killed mid-delivery can leave recorded as sending but not sent (never sent again
// under that id; the action's next attempt follows).
const maxIntentBatch = 8

func (d *Detector) startSink(ctx context.Context, c SinkConfig) *sinkWorker {
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.Rate))
	}
	w := &sinkWorker{name: c.Sink.Name(), cfg: c, in: make(chan *cmdJob, d.cfg.SinkQueue), tokens: float64(c.Burst)}
	for _, o := range []string{OutcomeSent, OutcomeFailed} {
		d.m.commands.WithLabelValues(w.name, o) // exported at zero from the start
	}
	d.m.deliveryQueue.WithLabelValues(w.name).Set(0)
	d.m.deliveryBackoff.WithLabelValues(w.name).Set(0)
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		var backoffUntil time.Time
		fails := 0
		for {
			var batch []*cmdJob
			select {
			case <-ctx.Done():
				return
			case j := <-w.in:
				batch = append(batch, j)
			}
		more:
			for len(batch) < maxIntentBatch {
				select {
				case j := <-w.in:
					batch = append(batch, j)
				default:
					break more
				}
			}
			later := func(j *cmdJob, at time.Time, err error) bool {
				return d.send(ctx, cmdResult{w: w, job: j, err: err, notAttempted: true, retryAt: at, backoffUntil: backoffUntil})
			}
			now := d.cfg.Now()
			if now.Before(backoffUntil) {
				for _, j := range batch {
					if !later(j, backoffUntil, nil) {
						return
					}
				}
				continue
			}
			// The intent, durably, before anything is sent: after a crash, an id found in
			// this state is never sent again.
			intents := make([]storage.CommandRecord, len(batch))
			for i, j := range batch {
				intents[i] = j.rec
				intents[i].Outcome, intents[i].Time = OutcomeSending, now
			}
			if err := d.cfg.Store.WriteCommands(ctx, intents); err != nil {
				d.m.writeErrors.Inc()
				for _, j := range batch {
					if !later(j, now.Add(time.Second), err) {
						return
					}
				}
				continue
			}
			for _, j := range batch {
				if now := d.cfg.Now(); now.Before(backoffUntil) {
					if !later(j, backoffUntil, nil) {
						return
					}
					continue
				}
				err := c.Sink.Send(ctx, j.cmd)
				switch {
				case err == nil:
					fails = 0
				case !IsPermanent(err):
					fails++
					backoffUntil = d.cfg.Now().Add(backoff(fails))
				}
				if !d.send(ctx, cmdResult{w: w, job: j, err: err, backoffUntil: backoffUntil}) {
					return
				}
			}
		}
	}()
	return w
}

// allow takes a token from the sink's rate-limit bucket.
func (w *sinkWorker) allow(now time.Time) bool {
	if w.cfg.Rate <= 0 {
		return true
	}
	if !w.last.IsZero() {
		w.tokens = min(float64(w.cfg.Burst), w.tokens+now.Sub(w.last).Seconds()*w.cfg.Rate)
	}
	w.last = now
	if w.tokens < 1 {
		return false
	}
	w.tokens--
	return true
}

// offer queues a job for the sink's worker, or reports false when its queue is full (the
// attempt waits in its action; counted).
func (d *Detector) offer(w *sinkWorker, j *cmdJob) bool {
	select {
	case w.in <- j:
		w.queued++
		d.inflight++
		d.m.deliveryQueue.WithLabelValues(w.name).Set(float64(w.queued))
		return true
	default:
		d.m.commandsDeferred.WithLabelValues(w.name).Inc()
		return false
	}
}

func (r cmdResult) apply(d *Detector, now time.Time) {
	w, j := r.w, r.job
	w.queued--
	if r.backoffUntil.After(w.backoffUntil) {
		w.backoffUntil = r.backoffUntil
	}
	d.m.deliveryQueue.WithLabelValues(w.name).Set(float64(w.queued))
	d.m.deliveryBackoff.WithLabelValues(w.name).Set(b2f(now.Before(w.backoffUntil)))
	in := d.open.get(j.inst)
	var a *actionState
	var o *overdueCP
	if in != nil && in.extra != nil {
		if i := slices.IndexFunc(in.extra.overdue, func(o *overdueCP) bool { return o.checkpoint == j.checkpoint }); i >= 0 {
			o = in.extra.overdue[i]
			if k := slices.IndexFunc(o.actions, func(a actionState) bool { return a.index == j.action }); k >= 0 {
				a = &o.actions[k]
				a.inflight = false
			}
		}
	}
	rec := j.rec
	rec.Time = now
	switch {
	case r.notAttempted:
		if a != nil {
			a.nextTry = r.retryAt
		}
		if r.err != nil {
			d.log.Warn("could not record a command's intent; it waits", "sink", w.name, "id", rec.ID, "err", r.err)
		}
	case r.err == nil:
		rec.Outcome = OutcomeSent
		d.count(func(s *Stats) { s.CommandsSent++ })
		if a != nil {
			a.sent, a.last, a.lastID, a.lastPayload, a.dry, a.manual = rec.Attempt, now, rec.ID, rec.Payload, false, false
			a.nextTry, a.failures = time.Time{}, 0
		}
	case IsPermanent(r.err):
		rec.Outcome, rec.Error = OutcomeRefused, r.err.Error()
		d.count(func(s *Stats) { s.CommandsErr++ })
		d.log.Warn("command refused; giving up on this action", "sink", w.name, "id", rec.ID, "err", r.err)
		if a != nil {
			a.sent, a.lastID, a.lastPayload, a.manual = max(a.sent, a.action.MaxAttempts), "", "", false
		}
	default:
		rec.Outcome, rec.Error = OutcomeFailed, r.err.Error()
		d.count(func(s *Stats) { s.CommandsErr++ })
		retry := r.backoffUntil
		if a != nil {
			a.failures++
			retry = maxTime(retry, now.Add(backoff(a.failures)))
			a.nextTry = retry
		}
		d.log.Warn("command delivery failed; will retry", "sink", w.name, "id", rec.ID, "retry_at", retry, "err", r.err)
	}
	if rec.Outcome != "" {
		d.cmdRec = append(d.cmdRec, rec)
		d.m.commands.WithLabelValues(w.name, rec.Outcome).Inc()
	}
	if a != nil && o != nil {
		d.judge(in, now, false, nil) // reschedule (and send what is due now)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
