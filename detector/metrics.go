package detector

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	open            *prometheus.GaugeVec
	eventsRead      prometheus.Counter
	readErrors      prometheus.Counter
	writeErrors     prometheus.Counter
	readLag         prometheus.Gauge
	unknownFlow     prometheus.Counter
	unresolvedAlias prometheus.Counter
	hydrations      prometheus.Counter
	expired         prometheus.Counter
	rejected        prometheus.Counter
	evicted         prometheus.Counter
	rejectedLogged  atomic.Bool
	alertsSent      *prometheus.CounterVec
	alertsFailed    *prometheus.CounterVec
	commands        *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	tickSeconds     prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flowwatch_detector_open_instances",
			Help: "Open flow instances held in memory, by status."}, []string{"status"}),
		eventsRead: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_events_read_total",
			Help: "Checkpoint events read from the store (after dedup)."}),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_read_errors_total",
			Help: "Failed reads of new events; retried on the next tick."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_write_errors_total",
			Help: "Failed writes of states and audit records; retried on the next tick."}),
		readLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowwatch_detector_read_lag_seconds",
			Help: "Now minus the ingest time of the newest event read."}),
		unknownFlow: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_unknown_flow_events_total",
			Help: "Events of flows the detector has no definition for."}),
		unresolvedAlias: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_unresolved_alias_events_total",
			Help: "Events keyed by an alias with no alias row yet; retried."}),
		hydrations: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_instance_reads_total",
			Help: "Instances read back from the store (stuck, late or out-of-order events)."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_deadlines_expired_total",
			Help: "Deadline-heap entries that came due."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_instances_rejected_total",
			Help: "New instances not tracked because max_open was reached."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_instances_evicted_total",
			Help: "Open instances no longer tracked after a rebuild window with no event and nothing to wait for."}),
		alertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_alerts_sent_total",
			Help: "Alerts delivered, by notifier."}, []string{"notifier"}),
		alertsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_alerts_failed_total",
			Help: "Alerts whose delivery failed (retried), by notifier."}, []string{"notifier"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_commands_total",
			Help: "Unblock commands by sink and outcome (sent, dry_run, failed, succeeded, no_effect)."}, []string{"sink", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_commands_rate_limited_total",
			Help: "Command attempts postponed by a sink's rate limit."}, []string{"sink"}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowwatch_detector_tick_seconds",
			Help: "Duration of one detector tick.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.eventsRead, m.readErrors, m.writeErrors, m.readLag, m.unknownFlow,
			m.unresolvedAlias, m.hydrations, m.expired, m.rejected, m.evicted, m.alertsSent, m.alertsFailed,
			m.commands, m.rateLimited, m.tickSeconds)
	}
	return m
}
