package detector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Command outcomes recorded in the store.
const (
	// OutcomeSending is the intent, recorded by the sink's worker just before it sends: a
	// detector that dies before the result never sends that id again.
	OutcomeSending = "sending"
	OutcomeSent    = "sent"
	OutcomeDryRun  = "dry_run"
	// OutcomeFailed: the receiver did not accept it (5xx, timeout, unreachable); retried.
	OutcomeFailed = "failed"
	// OutcomeRefused: the receiver refused it (4xx); never sent again.
	OutcomeRefused   = "refused"
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
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	CorrelationID   string    `json:"correlationid"`
	// Trigger is manual when an operator's unblock asked for the attempt, else auto.
	Trigger string      `json:"trigger"`
	Data    CommandData `json:"data"`
}

// Command triggers (the CloudEvent extension trigger).
const (
	TriggerAuto   = "auto"
	TriggerManual = "manual"
)

func trigger(manual bool) string {
	if manual {
		return TriggerManual
	}
	return TriggerAuto
}

// CommandData is the data of an unblock command.
type CommandData struct {
	Tenant      string            `json:"tenant"`
	Flow        string            `json:"flow"`
	Version     int               `json:"version"`
	Key         string            `json:"key"`
	Checkpoint  string            `json:"checkpoint"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"max_attempts"`
	Reason      *flowstate.Reason `json:"reason,omitempty"`
	Payload     map[string]any    `json:"payload,omitempty"`
}

// actionState tracks one on_stuck action of an overdue checkpoint.
type actionState struct {
	action model.Action
	index  int       // position in on_stuck
	sent   int       // attempts delivered (or recorded before a restart)
	last   time.Time // when the last attempt was delivered
	// lastID is the last attempt's command id while its verdict (succeeded or no_effect) is
	// pending, and lastPayload its CloudEvent (the verdict row replaces the sent row).
	lastID, lastPayload string
	nextTry             time.Time // when to retry a failed or postponed delivery
	failures            int       // consecutive failed deliveries, for the backoff
	inflight            bool      // handed to the sink's worker, result pending
	dry                 bool      // the last attempt was a dry run: no verdict to record
	// manual: an operator asked for the next attempt now (past max_attempts if need be).
	manual bool
}

// actionDue is when an action must next be looked at: its first attempt (deadline + after),
// the next attempt or the verdict on the last one (last + backoff), or a delivery retry.
func actionDue(o *overdueCP, a *actionState) time.Time {
	var due time.Time
	switch {
	case a.inflight:
		return time.Time{} // its result will say
	case a.manual:
		return o.deadline // at once
	case a.sent == 0:
		due = o.deadline.Add(a.action.After)
	case a.sent < a.action.MaxAttempts || a.lastID != "":
		due = a.last.Add(a.action.Backoff)
	default:
		return time.Time{} // exhausted and judged
	}
	if a.nextTry.After(due) {
		due = a.nextTry
	}
	return due
}

// restoreAction starts an action's state from the commands recorded for the instance, so that
// no attempt is sent twice, across restarts and shard moves. An attempt recorded as failed is
// sent again; one being sent when a detector died is not (it may have arrived).
func (d *Detector) restoreAction(in *inst, c *model.Checkpoint, index int, a model.Action) actionState {
	s := actionState{action: a, index: index}
	recs := d.recorded[in.id]
	if len(recs) == 0 {
		return s
	}
	tenant, flow, key := d.fams.split(in.id)
	for attempt := 1; attempt <= a.MaxAttempts; attempt++ {
		id := CommandID(tenant, flow, key, c.Name, index, attempt)
		i := slices.IndexFunc(recs, func(r storage.CommandRecord) bool { return r.ID == id })
		if i < 0 || recs[i].Outcome == OutcomeFailed {
			break
		}
		rec := recs[i]
		s.sent, s.last, s.lastID, s.lastPayload = attempt, rec.Time, "", ""
		s.dry = rec.Outcome == OutcomeDryRun
		switch rec.Outcome {
		case OutcomeRefused:
			s.sent = a.MaxAttempts // refused: sending it again cannot help
		case OutcomeSent, OutcomeDryRun:
			s.lastID, s.lastPayload = id, rec.Payload
		}
		// OutcomeSending: a detector stopped while sending it; whether it arrived is not
		// known. It counts as an attempt and is never sent again; no verdict is claimed.
	}
	return s
}

// remember keeps the attempts of an action whose checkpoint is no longer overdue, for as long
// as the instance is open: should it become overdue again, they are not sent again.
func (d *Detector) remember(in *inst, o *overdueCP, a *actionState) {
	tenant, flow, key := d.fams.split(in.id)
	for attempt := 1; attempt <= a.sent; attempt++ {
		id := CommandID(tenant, flow, key, o.checkpoint, a.index, attempt)
		if !slices.ContainsFunc(d.recorded[in.id], func(r storage.CommandRecord) bool { return r.ID == id }) {
			d.recorded[in.id] = append(d.recorded[in.id], storage.CommandRecord{ID: id, Time: a.last, Outcome: OutcomeNoEffect})
		}
	}
}

// loadCommands reads the commands recorded in the rebuild window and keeps this shard's:
// what restoreAction needs. Payloads are kept only where a verdict is still to be written.
func (d *Detector) loadCommands(ctx context.Context, since time.Time) error {
	recs, err := d.cfg.Store.CommandsSince(ctx, since)
	if err != nil {
		if isUnsupported(err) {
			return nil
		}
		return fmt.Errorf("read recorded commands: %w", err)
	}
	for _, r := range recs {
		if ShardOf(r.Tenant, r.Flow, r.Key, d.cfg.Shards) == d.cfg.Shard {
			d.keepCommand(r)
		}
	}
	return nil
}

// keepCommand remembers a recorded command of an instance (once per id). Payloads are kept
// only where a verdict is still to be written.
func (d *Detector) keepCommand(r storage.CommandRecord) {
	if r.Outcome != OutcomeSent {
		r.Payload = ""
	}
	r.Error, r.Subject = "", ""
	id := d.fams.id(r.Tenant, r.Flow, r.Key)
	recs := d.recorded[id]
	if i := slices.IndexFunc(recs, func(x storage.CommandRecord) bool { return x.ID == r.ID }); i >= 0 {
		if !r.Time.Before(recs[i].Time) {
			recs[i] = r
		}
		return
	}
	d.recorded[id] = append(recs, r)
}

// forgetClosedCommands drops, once rebuilt, the recorded commands of instances that are not
// open: only open instances can send again.
func (d *Detector) forgetClosedCommands() {
	for id := range d.recorded {
		if d.open.get(id) == nil {
			delete(d.recorded, id)
		}
	}
}

// runActions hands the attempts that are due to their sinks' workers, and records the verdict
// of attempts that had no effect. It never waits on a sink.
func (d *Detector) runActions(in *inst, o *overdueCP, now time.Time) {
	tenant, flow, key := d.fams.split(in.id)
	version := d.fams.flow(in).Version
	for i := range o.actions {
		a := &o.actions[i]
		due := actionDue(o, a)
		if due.IsZero() || now.Before(due) {
			continue
		}
		if a.sent > 0 && a.lastID != "" {
			// Backoff passed (or an operator asks again) and the instance is still stuck here:
			// the last attempt did nothing.
			d.recordOutcome(in, o, a, OutcomeNoEffect, now)
		}
		if a.sent >= a.action.MaxAttempts && !a.manual {
			continue
		}
		attempt := a.sent + 1
		id := CommandID(tenant, flow, key, o.checkpoint, a.index, attempt)
		rec := storage.CommandRecord{ID: id, Time: now, Tenant: tenant, Flow: flow, Version: version,
			Key: key, Checkpoint: o.checkpoint, Attempt: attempt, Sink: a.action.Sink, Subject: a.action.Subject}
		sw := d.sinks[a.action.Sink]
		if sw == nil {
			rec.Outcome, rec.Error = OutcomeFailed, fmt.Sprintf("no sink named %q is configured", a.action.Sink)
			d.cmdRec = append(d.cmdRec, rec)
			d.m.commands.WithLabelValues(a.action.Sink, OutcomeFailed).Inc()
			d.log.Warn("on_stuck names a sink that is not configured", "sink", a.action.Sink, "flow", flow, "checkpoint", o.checkpoint)
			a.sent, a.lastID = a.action.MaxAttempts, "" // nothing can ever be sent
			continue
		}
		if now.Before(sw.backoffUntil) {
			a.nextTry = sw.backoffUntil // the sink backs off as a whole
			continue
		}
		if !sw.allow(now) {
			a.nextTry = now.Add(time.Second)
			d.m.rateLimited.WithLabelValues(a.action.Sink).Inc()
			continue
		}
		ev := CloudEvent{SpecVersion: "1.0", ID: id, Source: d.cfg.Source, Type: a.action.Type, Trigger: trigger(a.manual),
			Subject: flow + "/" + key, Time: now.UTC(), DataContentType: "application/json", CorrelationID: key,
			Data: CommandData{Tenant: tenant, Flow: flow, Version: version, Key: key, Checkpoint: o.checkpoint,
				Attempt: attempt, MaxAttempts: a.action.MaxAttempts, Reason: flowstate.ReasonOf(o.reason.At(now)),
				Payload: a.action.Payload}}
		body, err := json.Marshal(ev)
		if err != nil {
			rec.Outcome, rec.Error = OutcomeFailed, fmt.Sprintf("encode command: %v", err)
			d.cmdRec = append(d.cmdRec, rec)
			a.sent = a.action.MaxAttempts
			continue
		}
		rec.Payload = string(body)
		if sw.cfg.DryRun {
			rec.Outcome = OutcomeDryRun
			d.cmdRec = append(d.cmdRec, rec)
			d.m.commands.WithLabelValues(a.action.Sink, OutcomeDryRun).Inc()
			a.sent, a.last, a.lastID, a.lastPayload, a.dry, a.manual = attempt, now, id, rec.Payload, true, false
			continue
		}
		job := &cmdJob{inst: in.id, checkpoint: o.checkpoint, action: a.index, rec: rec,
			cmd: Command{ID: id, Subject: a.action.Subject, Type: a.action.Type, Body: body}}
		if !d.offer(sw, job) {
			a.nextTry = now.Add(time.Second)
			continue
		}
		a.inflight = true
	}
}

// recordOutcome records whether the last attempt of an action was followed by the expected
// checkpoint.
func (d *Detector) recordOutcome(in *inst, o *overdueCP, a *actionState, outcome string, now time.Time) {
	id, payload := a.lastID, a.lastPayload
	a.lastID, a.lastPayload = "", ""
	if a.dry {
		return // nothing was sent: the record stays dry_run rather than claiming an effect
	}
	tenant, flow, key := d.fams.split(in.id)
	d.cmdRec = append(d.cmdRec, storage.CommandRecord{ID: id, Time: now, Tenant: tenant, Flow: flow,
		Version: d.fams.flow(in).Version, Key: key, Checkpoint: o.checkpoint, Attempt: a.sent, Sink: a.action.Sink,
		Subject: a.action.Subject, Outcome: outcome, Payload: payload})
	d.m.commands.WithLabelValues(a.action.Sink, outcome).Inc()
}
