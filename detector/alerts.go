package detector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// AlertName is the alertname label of every flowwatch alert.
const AlertName = "FlowStuck"

// Reason label values: low-cardinality codes; the prose is in the annotations.
const (
	ReasonOverdue = "overdue"    // the deadline passed, no error seen
	ReasonError   = "error_seen" // the deadline passed and the instance carries an error
)

// AlertConfig configures alerting.
type AlertConfig struct {
	Notifiers []Notifier
	// GroupByCheckpoint sends one alert per (tenant, flow, version, checkpoint, reason) instead
	// of one per instance, so an outage pages once, not ten thousand times.
	GroupByCheckpoint bool
	// Resend is how often firing alerts are sent again (Alertmanager resolves alerts it does not
	// hear about for resolve_timeout).
	Resend time.Duration
	// ResolvedResends is how many times a resolved alert is sent.
	ResolvedResends int
	// ExternalURL is the query API's base URL, for generatorURL links.
	ExternalURL string
}

// Alert is one alert in Alertmanager's API v2 shape.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Fingerprint identifies an alert by its label set, as Alertmanager does.
func (a Alert) Fingerprint() string { return labelsFingerprint(a.Labels) }

func labelsFingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Notifier delivers alerts. Notify returns an error when any part was not accepted; the
// detector sends the same alerts again later (delivery is idempotent by label set).
type Notifier interface {
	Name() string
	Notify(ctx context.Context, alerts []Alert) error
}

// alertState is one alert the detector is responsible for: per instance, or per checkpoint
// group with its members.
type alertState struct {
	alert      Alert
	tenant     string
	flow       string
	version    int
	key        string
	checkpoint string
	members    map[string]bool // group mode only
	resolved   bool
	// per notifier
	lastSent     []time.Time
	dirty        []bool
	resolvedSent []int
}

func (d *Detector) newAlertState(a Alert) *alertState {
	n := len(d.cfg.Alerting.Notifiers)
	return &alertState{alert: a, lastSent: make([]time.Time, n), dirty: make([]bool, n), resolvedSent: make([]int, n)}
}

func (s *alertState) markDirty() {
	for i := range s.dirty {
		s.dirty[i] = true
	}
}

// enterStuck records that an instance is stuck (st is its full evaluation): it starts or
// updates its alert and prepares the on_stuck actions of the overdue checkpoint.
func (d *Detector) enterStuck(in *inst, st model.State, now time.Time) {
	r := st.Reason
	if r == nil {
		return
	}
	if in.extra != nil && in.extra.checkpoint == r.Checkpoint {
		in.extra.reason = r
		d.updateAlert(in, st, now) // a new error or trace: refresh the annotations
		return
	}
	if in.extra != nil {
		d.leaveStuck(in, now)
	}
	d.stuck++
	in.status = statusStuck
	x := &stuckState{checkpoint: r.Checkpoint, deadline: r.Deadline, reason: r}
	if c := d.fams.flow(in).Checkpoint(r.Checkpoint); c != nil {
		for i, a := range c.OnStuck {
			x.actions = append(x.actions, d.restoreAction(in, c, i, a))
		}
	}
	in.extra = x
	d.updateAlert(in, st, now)
}

// restoreAction starts an action's state from the commands already recorded in the store, so
// a restarted detector never sends an attempt again.
func (d *Detector) restoreAction(in *inst, c *model.Checkpoint, index int, a model.Action) actionState {
	s := actionState{action: a, index: index}
	tenant, flow, key := d.fams.split(in.id)
	for attempt := 1; attempt <= a.MaxAttempts; attempt++ {
		rec, ok := d.commandsDone[CommandID(tenant, flow, key, c.Name, index, attempt)]
		if !ok || rec.Outcome == OutcomeFailed {
			break
		}
		s.sent, s.lastSent = attempt, rec.Time
		s.lastID = ""
		if rec.Outcome == OutcomeSent || rec.Outcome == OutcomeDryRun {
			s.lastID = rec.ID
		}
	}
	return s
}

func (d *Detector) updateAlert(in *inst, st model.State, now time.Time) {
	if len(d.cfg.Alerting.Notifiers) == 0 {
		return
	}
	r := st.Reason
	reason := ReasonOverdue
	if r.LastError != nil {
		reason = ReasonError
	}
	labels := map[string]string{
		"alertname":    AlertName,
		"flow":         st.Flow,
		"flow_version": strconv.Itoa(st.Version),
		"checkpoint":   r.Checkpoint,
		"reason":       reason,
		"tenant":       st.Tenant,
	}
	if !d.cfg.Alerting.GroupByCheckpoint {
		labels["key"] = st.Key
	}
	ann := map[string]string{
		"summary":         r.Summary,
		"overdue":         r.Overdue.Round(time.Second).String(),
		"deadline":        r.Deadline.UTC().Format(time.RFC3339),
		"since":           r.Since.UTC().Format(time.RFC3339),
		"service":         r.Service,
		"last_checkpoint": r.LastCheckpoint,
		"trace_ids":       strings.Join(r.TraceIDs, ","),
	}
	if r.LastError != nil {
		ann["last_error"] = fmt.Sprintf("%s %s: %s", r.LastError.Service, r.LastError.Name, r.LastError.Message)
	}
	gen := ""
	if base := strings.TrimRight(d.cfg.Alerting.ExternalURL, "/"); base != "" {
		gen = fmt.Sprintf("%s/api/v1/flows/%s/instances/%s?tenant=%s", base,
			url.PathEscape(st.Flow), url.PathEscape(st.Key), url.QueryEscape(st.Tenant))
	}
	fp := labelsFingerprint(labels)
	s := d.alerts[fp]
	if s == nil || s.resolved {
		s = d.newAlertState(Alert{Labels: labels, StartsAt: now.UTC()})
		s.tenant, s.flow, s.version, s.checkpoint = st.Tenant, st.Flow, st.Version, r.Checkpoint
		if !d.cfg.Alerting.GroupByCheckpoint {
			s.key = st.Key
		} else {
			s.members = map[string]bool{}
		}
		d.alerts[fp] = s
	}
	if s.members != nil {
		s.members[in.id] = true
		ann["instances"] = strconv.Itoa(len(s.members))
		ann["summary"] = fmt.Sprintf("%d instance(s) of %s stuck expecting %q from %s; latest: %s",
			len(s.members), st.Flow, r.Checkpoint, r.Service, r.Summary)
		ann["example_key"] = st.Key
	}
	s.alert.Annotations = ann
	s.alert.GeneratorURL = gen
	s.markDirty()
	if old := in.extra.alert; old != nil && old != s {
		// The label set changed (an error arrived: reason overdue → error_seen): the alert
		// under the old labels resolves, or loses this member.
		d.detachAlert(in, old, now)
	}
	in.extra.alert = s
}

// leaveStuck records that an instance is no longer stuck at its checkpoint: outcomes of the
// commands in flight, and the resolution of its alert.
func (d *Detector) leaveStuck(in *inst, now time.Time) {
	x := in.extra
	if x == nil {
		return
	}
	d.stuck--
	in.extra = nil
	in.status = statusRunning
	arrived := false
	if c := d.fams.flow(in).Checkpoint(x.checkpoint); c != nil && in.first[c.Index] != 0 {
		arrived = true
	}
	tenant, flow, key := d.fams.split(in.id)
	for i := range x.actions {
		a := &x.actions[i]
		if a.lastID != "" {
			outcome := OutcomeNoEffect
			if arrived {
				outcome = OutcomeSucceeded
			}
			d.recordOutcome(in, x, a, outcome, now)
		}
		if arrived {
			// The checkpoint is reached for good: no attempt of this action can be due again,
			// so its ids need not be remembered (the store keeps the records).
			for attempt := 1; attempt <= a.sent; attempt++ {
				delete(d.commandsDone, CommandID(tenant, flow, key, x.checkpoint, a.index, attempt))
			}
		}
	}
	if x.alert != nil {
		d.detachAlert(in, x.alert, now)
	}
}

// detachAlert takes an instance off an alert: a per-instance alert resolves; a group alert
// loses a member and resolves with its last one.
func (d *Detector) detachAlert(in *inst, s *alertState, now time.Time) {
	if s.members != nil {
		delete(s.members, in.id)
		if len(s.members) > 0 {
			s.alert.Annotations["instances"] = strconv.Itoa(len(s.members))
			s.markDirty()
			return
		}
	}
	end := now.UTC()
	s.alert.EndsAt = &end
	s.resolved = true
	s.markDirty()
}

// deliverAlerts sends what changed to every notifier, and re-sends firing alerts (and
// resolved ones a few times) every Resend. A notifier that fails is retried with backoff; its
// alerts stay dirty until delivered.
func (d *Detector) deliverAlerts(ctx context.Context, now time.Time) {
	resend := d.cfg.Alerting.Resend
	for n, notifier := range d.cfg.Alerting.Notifiers {
		if now.Before(d.notifyAt[n]) {
			continue
		}
		var batch []*alertState
		for _, s := range d.alerts {
			due := s.dirty[n] || now.Sub(s.lastSent[n]) >= resend
			if s.resolved && s.resolvedSent[n] >= d.cfg.Alerting.ResolvedResends {
				due = false
			}
			if due {
				batch = append(batch, s)
			}
		}
		if len(batch) == 0 {
			continue
		}
		alerts := make([]Alert, len(batch))
		for i, s := range batch {
			alerts[i] = s.alert
		}
		err := notifier.Notify(ctx, alerts)
		for _, s := range batch {
			if s.dirty[n] {
				d.recordAlert(s, notifier.Name(), now, err)
			}
		}
		if err != nil {
			d.m.alertsFailed.WithLabelValues(notifier.Name()).Add(float64(len(batch)))
			d.mu.Lock()
			d.stats.AlertsFailed += uint64(len(batch))
			d.mu.Unlock()
			d.notifyFails[n]++
			backoff := min(time.Second<<min(d.notifyFails[n]-1, 5), 30*time.Second)
			d.notifyAt[n] = now.Add(backoff)
			d.log.Warn("alert delivery failed; will retry", "notifier", notifier.Name(), "alerts", len(batch), "retry_in", backoff, "err", err)
			continue
		}
		d.notifyAt[n], d.notifyFails[n] = time.Time{}, 0
		d.m.alertsSent.WithLabelValues(notifier.Name()).Add(float64(len(batch)))
		d.mu.Lock()
		d.stats.AlertsSent += uint64(len(batch))
		d.mu.Unlock()
		for _, s := range batch {
			s.dirty[n] = false
			s.lastSent[n] = now
			if s.resolved {
				s.resolvedSent[n]++
			}
		}
	}
	for fp, s := range d.alerts {
		if !s.resolved {
			continue
		}
		done := true
		for n := range d.cfg.Alerting.Notifiers {
			if s.resolvedSent[n] < d.cfg.Alerting.ResolvedResends {
				done = false
			}
		}
		if done {
			delete(d.alerts, fp)
		}
	}
}

func (d *Detector) recordAlert(s *alertState, sink string, now time.Time, err error) {
	state := "firing"
	if s.resolved {
		state = "resolved"
	}
	rec := storage.AlertRecord{Time: now, Tenant: s.tenant, Flow: s.flow, Version: s.version, Key: s.key,
		Checkpoint: s.checkpoint, State: state, Sink: sink, Fingerprint: s.alert.Fingerprint(),
		Summary: s.alert.Annotations["summary"]}
	if err != nil {
		rec.Error = err.Error()
	}
	d.alertRec = append(d.alertRec, rec)
}
