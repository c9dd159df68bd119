package detector

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the detector's Prometheus metrics.
type Metrics struct {
	open             *prometheus.GaugeVec
	eventsRead       prometheus.Counter
	readErrors       prometheus.Counter
	writeErrors      prometheus.Counter
	readLag          prometheus.Gauge
	unknownFlow      prometheus.Counter
	unresolvedAlias  prometheus.Counter
	unresolvedParent prometheus.Counter
	lateRows         prometheus.Counter
	operatorActions  *prometheus.CounterVec
	readBacks        prometheus.Counter
	readBackSeconds  prometheus.Histogram
	readQueue        prometheus.Gauge
	detectionLag     prometheus.Histogram
	deliveryQueue    *prometheus.GaugeVec
	deliveryBackoff  *prometheus.GaugeVec
	commandsDeferred *prometheus.CounterVec
	expired          prometheus.Counter
	rejected         prometheus.Counter
	evicted          prometheus.Counter
	rejectedLogged   atomic.Bool
	alertsSent       *prometheus.CounterVec
	alertsFailed     *prometheus.CounterVec
	commands         *prometheus.CounterVec
	rateLimited      *prometheus.CounterVec
	tickSeconds      prometheus.Histogram
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
		unresolvedParent: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_unresolved_parent_events_total",
			Help: "Events of a sub-flow given up because their parent's key was never known (after the alias wait)."}),
		operatorActions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_operator_actions_total",
			Help: "Operator actions read and applied, by action (cancel, unblock, unblock_ignored: the checkpoint was not overdue or the attempt already made)."}, []string{"action"}),
		lateRows: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_late_rows_total",
			Help: "Rows found written late into the overlap window behind the cursor (an older ingest time than rows already read)."}),
		readBacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "flowwatch_detector_instance_reads_total",
			Help: "Instances read back from the store, in batches (explaining stuck ones, checking ones first seen in the middle)."}),
		readBackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowwatch_detector_instance_read_seconds",
			Help: "Duration of one batched read-back query.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		readQueue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowwatch_detector_instance_read_queue",
			Help: "Instances waiting for a read-back beyond what the reader holds."}),
		detectionLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowwatch_detector_detection_lag_seconds",
			Help:    "From an expected checkpoint's deadline to its instance's stuck state written to the store.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300}}),
		deliveryQueue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flowwatch_detector_delivery_queue",
			Help: "Per notifier: alerts due but waiting for the next notification; per sink: commands queued for its worker."}, []string{"receiver"}),
		deliveryBackoff: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "flowwatch_detector_delivery_backing_off",
			Help: "1 while a notifier or sink backs off after a failed delivery, 0 while it is open."}, []string{"receiver"}),
		commandsDeferred: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flowwatch_detector_commands_deferred_total",
			Help: "Command attempts not queued because the sink's queue was full; they wait in their action and are tried again."}, []string{"sink"}),
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
			m.unresolvedAlias, m.unresolvedParent, m.operatorActions, m.lateRows, m.readBacks, m.readBackSeconds, m.readQueue, m.detectionLag, m.deliveryQueue,
			m.deliveryBackoff, m.commandsDeferred, m.expired, m.rejected, m.evicted, m.alertsSent, m.alertsFailed,
			m.commands, m.rateLimited, m.tickSeconds)
	}
	return m
}
