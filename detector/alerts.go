package detector

import (
	"context"
	"fmt"
	"net/url"
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
	// Batch bounds the alerts of one notification; more wait for the next one.
	Batch int
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

// labelsFingerprint is Alertmanager's fingerprint of a label set (model.LabelSet's: 16 hex
// digits), so that receivers and the audit name an alert as Alertmanager does.
func labelsFingerprint(labels map[string]string) string {
	return labelSet(labels).Fingerprint().String()
}

// Notifier delivers alerts. Notify returns an error when any part was not accepted; the
// detector sends the same alerts again later (delivery is idempotent by label set). Notify
// runs on the notifier's own worker, never on the detector's owner goroutine.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, alerts []Alert) error
}

// alertState is one alert the detector is responsible for: per instance and overdue
// checkpoint, or per checkpoint group with its members.
type alertState struct {
	labels   map[string]string
	fp       string
	startsAt time.Time
	endsAt   time.Time // when resolved
	resolved bool
	// reason is the instance's reason for this checkpoint (a group's: its latest member's);
	// its overdue and summary are brought to the moment of each send.
	reason     *model.Reason
	generator  string
	exampleKey string
	members    map[string]bool // group mode only
	// shared: the group alert is shared with other shards; storeCount is its size in the
	// store, as of the last count.
	shared     bool
	storeCount uint64

	tenant, flow, key, checkpoint string
	version                       int

	// gen counts changes of content; per notifier, sentGen is the content last delivered.
	gen          uint64
	sentGen      []uint64
	lastSent     []time.Time
	resolvedSent []int
}

func (d *Detector) newAlertState(labels map[string]string, startsAt time.Time) *alertState {
	n := len(d.cfg.Alerting.Notifiers)
	return &alertState{labels: labels, fp: labelsFingerprint(labels), startsAt: startsAt.UTC(), gen: 1,
		sentGen: make([]uint64, n), lastSent: make([]time.Time, n), resolvedSent: make([]int, n)}
}

// due reports whether notifier n must be sent this alert now.
func (s *alertState) due(n int, now time.Time, resend time.Duration, resolvedResends int) bool {
	if s.resolved && s.resolvedSent[n] >= resolvedResends {
		return false
	}
	if s.shared && !s.resolved && len(s.members) == 0 {
		return false // the shards that hold members send it; the store's count resolves it
	}
	return s.sentGen[n] != s.gen || now.Sub(s.lastSent[n]) >= resend
}

// render is the alert as sent at now: its overdue annotation is current at every send.
func (s *alertState) render(now time.Time) Alert {
	at := now
	if s.resolved {
		at = s.endsAt
	}
	r := s.reason.At(at)
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
	switch {
	case s.shared:
		// The same from every shard: what the store counts, nothing of one instance.
		n := max(s.storeCount, uint64(len(s.members)))
		ann = map[string]string{
			"instances": strconv.FormatUint(n, 10),
			"service":   r.Service,
			"summary":   fmt.Sprintf("%d instance(s) of %s stuck expecting %q from %s", n, s.flow, s.checkpoint, r.Service),
		}
	case s.members != nil:
		ann["instances"] = strconv.Itoa(len(s.members))
		ann["summary"] = fmt.Sprintf("%d instance(s) of %s stuck expecting %q from %s; latest: %s",
			len(s.members), s.flow, s.checkpoint, r.Service, r.Summary)
		ann["example_key"] = s.exampleKey
	}
	a := Alert{Labels: s.labels, Annotations: ann, StartsAt: s.startsAt, GeneratorURL: s.generator}
	if s.resolved {
		end := s.endsAt
		a.EndsAt = &end
	}
	return a
}

// updateAlert starts or updates the alert of one overdue checkpoint of a stuck instance.
func (d *Detector) updateAlert(in *inst, st *model.State, o *overdueCP, now time.Time) {
	if len(d.cfg.Alerting.Notifiers) == 0 {
		return
	}
	r := o.reason
	reason := ReasonOverdue
	if r.LastError != nil {
		reason = ReasonError
	}
	labels := map[string]string{
		"alertname":    AlertName,
		"flow":         st.Flow,
		"flow_version": strconv.Itoa(st.Version),
		"checkpoint":   o.checkpoint,
		"reason":       reason,
		"tenant":       st.Tenant,
	}
	if !d.cfg.Alerting.GroupByCheckpoint {
		labels["key"] = st.Key
	}
	fp := labelsFingerprint(labels)
	s := d.alerts[fp]
	if s == nil || s.resolved {
		s = d.newAlertState(labels, o.deadline)
		s.tenant, s.flow, s.version, s.checkpoint = st.Tenant, st.Flow, st.Version, o.checkpoint
		if base := strings.TrimRight(d.cfg.Alerting.ExternalURL, "/"); base != "" {
			s.generator = fmt.Sprintf("%s/api/v1/flows/%s/instances/%s?tenant=%s", base,
				url.PathEscape(st.Flow), url.PathEscape(st.Key), url.QueryEscape(st.Tenant))
		}
		if d.cfg.Alerting.GroupByCheckpoint {
			s.members = map[string]bool{}
			s.shared = d.sharedGroups()
		} else {
			s.key = st.Key
		}
		d.alerts[fp] = s
	}
	if s.members != nil && !s.members[in.id] {
		s.members[in.id] = true
		s.gen++
		d.alertsChanged = true
	}
	if s.reason == nil || !sameReason(s.reason, r) {
		s.reason, s.exampleKey = r, st.Key
		s.gen++
		d.alertsChanged = true
	}
	if old := o.alert; old != nil && old != s {
		// The label set changed (an error arrived: reason overdue → error_seen): the alert
		// under the old labels resolves, or loses this member.
		d.detachAlert(in, old, now)
	}
	o.alert = s
}

// sameReason reports whether two reasons read the same but for how overdue they are.
func sameReason(a, b *model.Reason) bool {
	return a.Checkpoint == b.Checkpoint && a.Deadline.Equal(b.Deadline) && a.Since.Equal(b.Since) &&
		a.LastCheckpoint == b.LastCheckpoint && sameError(a.LastError, b.LastError) &&
		strings.Join(a.TraceIDs, ",") == strings.Join(b.TraceIDs, ",")
}

func sameError(a, b *model.ErrorNote) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// detachAlert takes an instance off an alert: a per-instance alert resolves; a group alert
// loses a member and resolves with its last one.
func (d *Detector) detachAlert(in *inst, s *alertState, now time.Time) {
	s.gen++
	d.alertsChanged = true
	if s.members != nil {
		delete(s.members, in.id)
		if len(s.members) > 0 {
			return
		}
		if s.shared {
			// Other shards may still hold members: the store's next count decides.
			s.storeCount = max(s.storeCount, 1) - 1
			return
		}
	}
	d.resolveAlert(s, now)
}

// resolveAlert ends an alert: it is sent resolved a few more times, then forgotten.
func (d *Detector) resolveAlert(s *alertState, now time.Time) {
	s.gen++
	d.alertsChanged = true
	s.endsAt = now.UTC()
	s.resolved = true
}

// pruneAlerts forgets resolved alerts that every notifier has been sent enough times.
func (d *Detector) pruneAlerts() {
	for fp, s := range d.alerts {
		if !s.resolved {
			continue
		}
		done := true
		for n := range d.notifiers {
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
		Checkpoint: s.checkpoint, State: state, Sink: sink, Fingerprint: s.fp,
		Summary: s.render(now).Annotations["summary"]}
	if err != nil {
		rec.Error = err.Error()
	}
	d.alertRec = append(d.alertRec, rec)
}
