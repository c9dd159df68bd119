// Package storage is the one place that speaks SQL. It owns the ClickHouse schema (embedded
// .sql files and their migrations), and the writer and reader over two transports with one
// dialect: the native server protocol (clickhouse-go) and the embedded engine (chDB).
//
// It knows rows, not flow semantics: it never evaluates an instance (model/ does) and never
// decides what is stuck (detector/ does).
package storage

import (
	"context"
	"time"
)

// CheckpointEvent is one row of the checkpoint events table: a telemetry item that reached a
// checkpoint of a flow, or — when Checkpoint is empty — an error note on an instance.
type CheckpointEvent struct {
	// EventID is deterministic from the item (see EventID); rows with the same EventID are
	// the same event, however often they are written.
	EventID    string
	Tenant     string
	Flow       string
	Checkpoint string
	// Key is the business key as read from KeyAttr. When KeyAttr is an alias of the flow
	// (model.Flow.IsAlias), Key must be resolved through the aliases table.
	Key     string
	KeyAttr string
	// Time is the event time (nanoseconds); IngestTime when the row was written.
	Time       time.Time
	IngestTime time.Time
	TraceID    string // hex, may be empty (logs)
	SpanID     string // hex, may be empty
	Service    string
	// Name is the span name, span event name or log event name.
	Name string
	// Status is ok, error or unset.
	Status  string
	Message string
	// Attributes are the item's own attributes, as strings.
	Attributes map[string]string
}

// Alias says that, in a flow of a tenant, the value Value of attribute Attr identifies the
// instance whose key is Key.
type Alias struct {
	Tenant string
	Flow   string
	Attr   string
	Value  string
	Key    string
	Time   time.Time
}

// InstanceState is the detector's latest verdict on one instance. A newer UpdatedAt replaces
// an older row for the same (Tenant, Flow, Key).
type InstanceState struct {
	Tenant         string
	Flow           string
	Version        int
	Key            string
	Status         string
	StartedAt      time.Time
	LastSeen       time.Time
	LastCheckpoint string
	// Expected, Reason and Violations are JSON documents (the API's shapes).
	Expected   string
	Reason     string
	Violations string
	// Shard is the detector shard that owns the instance.
	Shard     int
	UpdatedAt time.Time
}

// AlertRecord is the audit record of one alert notification.
type AlertRecord struct {
	Time        time.Time
	Tenant      string
	Flow        string
	Version     int
	Key         string // empty when grouped per checkpoint
	Checkpoint  string
	State       string // firing | resolved
	Sink        string
	Fingerprint string
	Summary     string
	Error       string // empty when delivered
}

// CommandRecord is the audit record of one unblock command and its outcome.
type CommandRecord struct {
	ID         string // the CloudEvent id, deterministic
	Time       time.Time
	Tenant     string
	Flow       string
	Version    int
	Key        string
	Checkpoint string
	Attempt    int
	Sink       string
	Subject    string
	// Outcome: sent | dry_run | failed | succeeded | no_effect. A later row for the same ID
	// replaces an earlier one.
	Outcome string
	Error   string
	Payload string // the CloudEvent JSON
}

// Writer appends rows. Every method is idempotent: writing the same rows twice (a retried
// batch, a replayed queue) leaves the store as if they were written once, as seen by Reader.
// A method returns only after the rows are durable in the store, or an error.
type Writer interface {
	// WriteEvents writes one batch. It fills in place the EventID (see EventID) and the
	// IngestTime (now) of events that lack them. A batch with an invalid row (no tenant,
	// flow or time; a malformed EventID; an identity that is not valid UTF-8, see CheckRow)
	// writes nothing and returns an error wrapping ErrInvalid that names every bad row.
	// Strings are stored byte for byte.
	WriteEvents(ctx context.Context, events []CheckpointEvent) error
	WriteAliases(ctx context.Context, aliases []Alias) error
	WriteStates(ctx context.Context, states []InstanceState) error
	WriteAlerts(ctx context.Context, alerts []AlertRecord) error
	WriteCommands(ctx context.Context, commands []CommandRecord) error
	// WriteFlowVersions records when flow versions were first loaded; the earliest record of
	// a version wins (see FlowVersions).
	WriteFlowVersions(ctx context.Context, versions []FlowVersion) error
}

// InstanceFilter selects instance states. Empty fields select everything.
type InstanceFilter struct {
	Tenant     string
	Flow       string
	Status     string
	Checkpoint string // last checkpoint, or an expected one
	Key        string
	Limit      int    // 0 means 100
	Cursor     string // opaque, from a previous page
	// Shard/Shards select the instances of one detector shard (Shards 0 means all).
	Shard, Shards int
}

// AuditFilter selects alert and command records. Empty fields select everything.
type AuditFilter struct {
	Tenant, Flow, Key string
	Limit             int // 0 means 100
}

// Matches reports whether a record of this tenant, flow and key is selected.
func (f AuditFilter) Matches(tenant, flow, key string) bool {
	return (f.Tenant == "" || f.Tenant == tenant) && (f.Flow == "" || f.Flow == flow) && (f.Key == "" || f.Key == key)
}

// Transition is a declared edge of a flow with what was observed on it.
type Transition struct {
	Source string
	Target string
	Count  uint64
	P50    time.Duration
	P95    time.Duration
}

// CheckpointCount is how many instances reached a checkpoint, and how many are stuck
// expecting it.
type CheckpointCount struct {
	Checkpoint string
	Count      uint64
	Stuck      uint64
}

// Point is one value of a series at a time.
type Point struct {
	Time  time.Time
	Value float64
}

// Series is a named time series.
type Series struct {
	Name   string
	Points []Point
}

// Reader answers the detector's and the API's questions. Methods return empty results, not
// errors, when nothing matches. Results never contain two rows with the same EventID (or
// the same instance).
type Reader interface {
	// EventsSince returns events with IngestTime >= since, ordered by IngestTime, at most
	// limit. Callers keep a cursor with an overlap window and dedup by EventID.
	EventsSince(ctx context.Context, since time.Time, limit int) ([]CheckpointEvent, error)
	// EventRefs returns the ids and ingest times of the events ingested in [from, to]: the
	// cheap re-check of a window already read, for rows another collector wrote late.
	EventRefs(ctx context.Context, from, to time.Time) ([]EventRef, error)
	// CountEvents counts the events ingested in [from, to]: at least the distinct ids there
	// (a replayed row not merged yet may count twice).
	CountEvents(ctx context.Context, from, to time.Time) (uint64, error)
	// EventsAmong returns the events with these ids ingested at or after since.
	EventsAmong(ctx context.Context, since time.Time, ids []string) ([]CheckpointEvent, error)
	// InstanceEvents returns the events of one instance (by its resolved key), in event time.
	InstanceEvents(ctx context.Context, tenant, flow, key string) ([]CheckpointEvent, error)
	// InstancesEvents returns the events of many instances of one flow in one read, by
	// instance key: for each key what InstanceEvents returns. Keys without events are absent.
	InstancesEvents(ctx context.Context, tenant, flow string, keys []string) (map[string][]CheckpointEvent, error)
	// ResolveAliases maps alias values of attr to instance keys; unknown values are absent.
	ResolveAliases(ctx context.Context, tenant, flow, attr string, values []string) (map[string]string, error)
	// Instances lists instance states, newest first, one page at a time.
	Instances(ctx context.Context, f InstanceFilter) (states []InstanceState, next string, err error)
	// Instance returns one instance state, or nil when unknown.
	Instance(ctx context.Context, tenant, flow, key string) (*InstanceState, error)
	// CheckpointCounts counts, per checkpoint of a flow, the instances that reached it in
	// [from, to), and the stuck instances expecting it. Operator actions (rows at the
	// reserved names starting with '@') are no checkpoint: neither counts nor Series show them.
	CheckpointCounts(ctx context.Context, tenant, flow string, from, to time.Time) ([]CheckpointCount, error)
	// Transitions measures the given edges (source→target) of a flow over instances that
	// reached the source in [from, to): count and p50/p95 of the time between them.
	Transitions(ctx context.Context, tenant, flow string, edges [][2]string, from, to time.Time) ([]Transition, error)
	// Series counts events per step in [from, to), by "checkpoint" (one series per
	// checkpoint) or "status" (instances by their current status, by last_seen).
	Series(ctx context.Context, tenant, flow, by string, from, to time.Time, step time.Duration) ([]Series, error)
	// Alerts and Commands return the newest audit records first, at most f.Limit.
	Alerts(ctx context.Context, f AuditFilter) ([]AlertRecord, error)
	Commands(ctx context.Context, f AuditFilter) ([]CommandRecord, error)
	// CommandsSince returns the latest record of every command whose latest record is at or
	// after since, oldest first (the detector's memory of what it sent, on start).
	CommandsSince(ctx context.Context, since time.Time) ([]CommandRecord, error)
	// StuckCounts counts the stuck instances expecting each checkpoint past its deadline at
	// now, by tenant, flow, version and whether the instance carries an error.
	StuckCounts(ctx context.Context, now time.Time) ([]StuckCount, error)
	// CommandsOf returns the latest record of every command of these instances of a flow.
	CommandsOf(ctx context.Context, tenant, flow string, keys []string) ([]CommandRecord, error)
	// FlowVersions returns, per flow version ever recorded, the earliest time it was loaded.
	FlowVersions(ctx context.Context) ([]FlowVersion, error)
	// ChildKeys returns, per parent key, the keys of the instances of flow (a sub-flow) whose
	// rows carry that parent key (AttrParentKey), sorted. Parents without children are absent.
	ChildKeys(ctx context.Context, tenant, flow string, parentKeys []string) (map[string][]string, error)
	// ParentKeys returns, per key of an instance of flow (a sub-flow), the parent key its rows
	// carry; instances none of whose rows carries one are absent.
	ParentKeys(ctx context.Context, tenant, flow string, keys []string) (map[string]string, error)
}

// Store is a transport's writer and reader, with its schema management.
type Store interface {
	Writer
	Reader
	// WriteBatch writes a batch laid out for writing (the collector's path): its aliases,
	// then its events; idempotent like every Writer method (see EventBatch, CheckRow).
	WriteBatch(ctx context.Context, b *EventBatch) error
	// Migrate applies the schema migrations not applied yet; applying twice is a no-op. The
	// tables it creates keep rows for Options.RetentionDays (0: forever); it never changes
	// the retention of tables that exist.
	Migrate(ctx context.Context) error
	// SetRetention makes the tables (RetainedTables) drop rows older than days, or keep them
	// all for 0. Retention has one owner: the schema step — `flowwatch schema --apply`, and
	// the collector's flow exporter with create_schema (its `retention`) — calls it; readers
	// (the detector, the API, replay) never do, so no process that opens the store undoes
	// another's setting.
	SetRetention(ctx context.Context, days int) error
	// Retention returns the days each table keeps its rows; tables that keep them forever
	// are absent.
	Retention(ctx context.Context) (map[string]int, error)
	Close() error
}
