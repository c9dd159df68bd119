package detector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/flowwatch/flowwatch/api"
	"github.com/flowwatch/flowwatch/storage"
)

// Command outcomes recorded in the store.
const (
	OutcomeSent      = "sent"
	OutcomeDryRun    = "dry_run"
	OutcomeFailed    = "failed"
	OutcomeSucceeded = "succeeded"
	OutcomeNoEffect  = "no_effect"
)

// Command is one unblock command ready for a sink: a CloudEvent in structured JSON.
type Command struct {
	// ID is the CloudEvent id: deterministic, so every retry and every restart sends the same.
	ID string
	// Subject is the action's sink-specific destination (a NATS subject, a URL path).
	Subject string
	Type    string
	Body    []byte
}

// Sink delivers commands. Send must be idempotent by Command.ID on the receiving side
// (Nats-Msg-Id, Idempotency-Key); it returns an error when the command was not accepted.
type Sink interface {
	Name() string
	Send(ctx context.Context, cmd Command) error
}

// SinkConfig is a sink with its delivery policy.
type SinkConfig struct {
	Sink Sink
	// DryRun records the commands without sending them.
	DryRun bool
	// Rate is the most commands per second (0 = unlimited), with Burst at once.
	Rate  float64
	Burst int
}

type sinkState struct {
	cfg    SinkConfig
	tokens float64
	last   time.Time
}

func newSinkState(c SinkConfig) *sinkState {
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.Rate))
	}
	return &sinkState{cfg: c, tokens: float64(c.Burst)}
}

// allow takes a token from the sink's bucket.
func (s *sinkState) allow(now time.Time) bool {
	if s.cfg.Rate <= 0 {
		return true
	}
	if !s.last.IsZero() {
		s.tokens = min(float64(s.cfg.Burst), s.tokens+now.Sub(s.last).Seconds()*s.cfg.Rate)
	}
	s.last = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// CommandID is the deterministic CloudEvent id of an attempt: a hash of tenant, flow, key,
// checkpoint and attempt (and the action's position when a checkpoint has several).
func CommandID(tenant, flow, key, checkpoint string, action, attempt int) string {
	h := sha256.New()
	for _, s := range []string{tenant, flow, key, checkpoint, strconv.Itoa(attempt)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if action > 0 {
		h.Write([]byte("action=" + strconv.Itoa(action)))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// CloudEvent is the structured-mode JSON of an unblock command.
type CloudEvent struct {
	SpecVersion     string      `json:"specversion"`
	ID              string      `json:"id"`
	Source          string      `json:"source"`
	Type            string      `json:"type"`
	Subject         string      `json:"subject"`
	Time            time.Time   `json:"time"`
	DataContentType string      `json:"datacontenttype"`
	CorrelationID   string      `json:"correlationid"`
	Data            CommandData `json:"data"`
}

// CommandData is the data of an unblock command.
type CommandData struct {
	Tenant      string         `json:"tenant"`
	Flow        string         `json:"flow"`
	Version     int            `json:"version"`
	Key         string         `json:"key"`
	Checkpoint  string         `json:"checkpoint"`
	Attempt     int            `json:"attempt"`
	MaxAttempts int            `json:"max_attempts"`
	Reason      *api.Reason    `json:"reason,omitempty"`
	Payload     map[string]any `json:"payload,omitempty"`
}

// nextActionTime is the earliest time an action of a stuck instance needs attention.
func (d *Detector) nextActionTime(in *inst) time.Time {
	var next time.Time
	for i := range in.extra.actions {
		t := actionDue(in.extra, &in.extra.actions[i])
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// actionDue is when an action must next be looked at: its first attempt (deadline + after),
// the next attempt or the verdict on the last one (last + backoff), or a delivery retry.
func actionDue(x *stuckState, a *actionState) time.Time {
	var due time.Time
	switch {
	case a.sent == 0:
		due = x.deadline.Add(a.action.After)
	case a.sent < a.action.MaxAttempts || a.lastID != "":
		due = a.lastSent.Add(a.action.Backoff)
	default:
		return time.Time{} // exhausted and judged
	}
	if a.nextTry.After(due) {
		due = a.nextTry
	}
	return due
}

// runActions sends the attempts that are due, records the verdict of attempts that had no
// effect, and reschedules the instance.
func (d *Detector) runActions(ctx context.Context, in *inst, now time.Time) {
	x := in.extra
	tenant, flow, key := d.fams.split(in.id)
	for i := range x.actions {
		a := &x.actions[i]
		due := actionDue(x, a)
		if due.IsZero() || now.Before(due) {
			continue
		}
		if a.sent > 0 && a.lastID != "" {
			// Backoff passed and the instance is still stuck here: the last attempt did nothing.
			d.recordOutcome(in, x, a, OutcomeNoEffect, now)
		}
		if a.sent >= a.action.MaxAttempts {
			continue
		}
		attempt := a.sent + 1
		id := CommandID(tenant, flow, key, x.checkpoint, a.index, attempt)
		if rec, done := d.commandsDone[id]; done && rec.Outcome != OutcomeFailed {
			a.sent, a.lastSent, a.lastID = attempt, rec.Time, id
			continue
		}
		sink := d.sinks[a.action.Sink]
		rec := storage.CommandRecord{ID: id, Time: now, Tenant: tenant, Flow: flow, Version: d.fams.flow(in).Version,
			Key: key, Checkpoint: x.checkpoint, Attempt: attempt, Sink: a.action.Sink, Subject: a.action.Subject}
		if sink == nil {
			rec.Outcome, rec.Error = OutcomeFailed, fmt.Sprintf("no sink named %q is configured", a.action.Sink)
			d.cmdRec = append(d.cmdRec, rec)
			d.m.commands.WithLabelValues(a.action.Sink, OutcomeFailed).Inc()
			d.log.Warn("on_stuck names a sink that is not configured", "sink", a.action.Sink, "flow", flow, "checkpoint", x.checkpoint)
			a.sent, a.lastID = a.action.MaxAttempts, "" // nothing can ever be sent
			continue
		}
		if !sink.allow(now) {
			a.nextTry = now.Add(time.Second)
			d.m.rateLimited.WithLabelValues(a.action.Sink).Inc()
			continue
		}
		ev := CloudEvent{SpecVersion: "1.0", ID: id, Source: d.cfg.Source, Type: a.action.Type,
			Subject: flow + "/" + key, Time: now.UTC(), DataContentType: "application/json", CorrelationID: key,
			Data: CommandData{Tenant: tenant, Flow: flow, Version: d.fams.flow(in).Version, Key: key, Checkpoint: x.checkpoint,
				Attempt: attempt, MaxAttempts: a.action.MaxAttempts, Reason: api.ReasonFromModel(x.reason),
				Payload: a.action.Payload}}
		body, err := json.Marshal(ev)
		if err != nil {
			rec.Outcome, rec.Error = OutcomeFailed, fmt.Sprintf("encode command: %v", err)
			d.cmdRec = append(d.cmdRec, rec)
			a.sent = a.action.MaxAttempts
			continue
		}
		rec.Payload = string(body)
		rec.Outcome = OutcomeDryRun
		if !sink.cfg.DryRun {
			rec.Outcome = OutcomeSent
			if err := sink.cfg.Sink.Send(ctx, Command{ID: id, Subject: a.action.Subject, Type: a.action.Type, Body: body}); err != nil {
				rec.Outcome, rec.Error = OutcomeFailed, err.Error()
				d.cmdRec = append(d.cmdRec, rec)
				d.m.commands.WithLabelValues(a.action.Sink, OutcomeFailed).Inc()
				d.mu.Lock()
				d.stats.CommandsErr++
				d.mu.Unlock()
				if IsPermanent(err) {
					// The receiver refused it (4xx): sending it again cannot help.
					d.log.Warn("command refused; giving up on this action", "sink", a.action.Sink, "id", id, "err", err)
					a.sent, a.lastID = a.action.MaxAttempts, ""
					continue
				}
				retry := min(time.Second<<min(a.failures, 5), 30*time.Second)
				a.failures++
				a.nextTry = now.Add(retry)
				d.log.Warn("command delivery failed; will retry", "sink", a.action.Sink, "id", id, "retry_in", retry, "err", err)
				continue
			}
		}
		a.nextTry, a.failures = time.Time{}, 0
		a.sent, a.lastSent, a.lastID = attempt, now, id
		d.commandsDone[id] = rec
		d.cmdRec = append(d.cmdRec, rec)
		d.m.commands.WithLabelValues(a.action.Sink, rec.Outcome).Inc()
		d.mu.Lock()
		d.stats.CommandsSent++
		d.mu.Unlock()
	}
	d.scheduleNext(in, time.Time{}, now)
}

// recordOutcome records whether the last attempt of an action was followed by the expected
// checkpoint.
func (d *Detector) recordOutcome(in *inst, x *stuckState, a *actionState, outcome string, now time.Time) {
	prev := d.commandsDone[a.lastID]
	if prev.Outcome == OutcomeDryRun {
		// Nothing was sent: the record stays dry_run rather than claiming an effect.
		a.lastID = ""
		return
	}
	tenant, flow, key := d.fams.split(in.id)
	rec := storage.CommandRecord{ID: a.lastID, Time: now, Tenant: tenant, Flow: flow, Version: d.fams.flow(in).Version,
		Key: key, Checkpoint: x.checkpoint, Attempt: a.sent, Sink: a.action.Sink, Subject: a.action.Subject,
		Outcome: outcome, Payload: prev.Payload}
	d.commandsDone[a.lastID] = rec
	d.cmdRec = append(d.cmdRec, rec)
	d.m.commands.WithLabelValues(a.action.Sink, outcome).Inc()
	a.lastID = ""
}
