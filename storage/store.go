package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options configure a Store on either transport.
type Options struct {
	// Database, Cluster, RetentionDays and Legacy shape the schema (see SchemaOptions).
	// The database and cluster of a server DSN are used when these are empty.
	Database      string
	Cluster       string
	RetentionDays int
	Legacy        bool
	// Server transport only.
	Username string
	Password string
	// TLS enables TLS; CAFile (PEM) adds the authorities that sign the server's certificate
	// to the system's; InsecureSkipVerify is for tests only.
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	// DialTimeout and ReadTimeout bound connecting and every read from the server; a read
	// timeout is always set (default 30 s), so a stuck server fails a call instead of hanging.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// Logger receives debug lines per batch; default discards.
	Logger *slog.Logger
	// Now is the clock used for ingest times; default time.Now.
	Now func() time.Time
}

// ErrInvalid marks a write refused for bad input (nothing of the call was written); retrying
// the same input fails the same way.
var ErrInvalid = errors.New("invalid rows")

// ErrUnsupported is returned by reader methods the legacy tables cannot serve.
var ErrUnsupported = errors.New("not supported by the legacy (ClickHouse 18.16) tables")

// backend is what a transport provides: statements, queries and batch inserts.
type backend interface {
	exec(ctx context.Context, sql string) error
	query(ctx context.Context, sql string) (rows, error)
	// insertEvents writes one batch of checkpoint events; rows without an ingest time get now
	// (Unix nanoseconds).
	insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error
	// insertAliases writes alias rows.
	insertAliases(ctx context.Context, table string, aliases []Alias) error
	// insert writes rows of plain values (string, uint32, time.Time, ...) into cols.
	insert(ctx context.Context, table string, cols []string, rows [][]any) error
	close() error
}

// store implements Store over a backend; the SQL is the same on both transports.
type store struct {
	b      backend
	schema SchemaOptions
	db     string
	d      dialect
	log    *slog.Logger
	now    func() time.Time
}

func newStore(b backend, o Options) (*store, error) {
	so, err := SchemaOptions{Database: o.Database, Cluster: o.Cluster, RetentionDays: o.RetentionDays, Legacy: o.Legacy}.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &store{b: b, schema: so, db: so.Database, d: dialect{legacy: so.Legacy, cluster: so.Cluster != ""}, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func (s *store) table(name string) string { return s.db + "." + name }

func (s *store) Close() error { return s.b.close() }

// Migrate creates the database and migrations table, then applies each migration whose
// version is not recorded yet. Every statement is IF NOT EXISTS, so a migration interrupted
// half-way is simply applied again.
func (s *store) Migrate(ctx context.Context) error {
	for _, st := range bootstrapStatements(s.schema) {
		if err := s.b.exec(ctx, st); err != nil {
			return fmt.Errorf("migrate: bootstrap %q: %w", firstLine(st), err)
		}
	}
	ms, err := Migrations(s.schema)
	if err != nil {
		return err
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		for _, st := range m.Statements {
			if err := s.b.exec(ctx, st); err != nil {
				return fmt.Errorf("migrate %03d_%s: %q: %w", m.Version, m.Name, firstLine(stripComments(st)), err)
			}
		}
		err := s.b.insert(ctx, s.table("schema_migrations"), []string{"version", "name", "applied_at"},
			[][]any{{uint32(m.Version), m.Name, s.now().UTC().Truncate(time.Second)}})
		if err != nil {
			return fmt.Errorf("migrate %03d_%s: record: %w", m.Version, m.Name, err)
		}
		s.log.Info("schema migration applied", "version", m.Version, "name", m.Name)
	}
	if s.d.legacy {
		return nil
	}
	return s.syncRetention(ctx)
}

var (
	ttlDeclRe    = regexp.MustCompile(`TTL toDateTime\((\w+)\) \+ INTERVAL \d+ DAY`)
	ttlCurrentRe = regexp.MustCompile(`TTL toDateTime\((\w+)\) \+ toIntervalDay\((\d+)\)`)
)

// ttlColumns maps each table that has a retention TTL to the time column it is on.
func ttlColumns(o SchemaOptions) (map[string]string, error) {
	o.RetentionDays = 1
	ms, err := Migrations(o)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range ms {
		for _, st := range m.Statements {
			t := createTableRe.FindStringSubmatch(st)
			c := ttlDeclRe.FindStringSubmatch(stripComments(st))
			if t != nil && c != nil {
				out[t[2]] = c[1]
			}
		}
	}
	return out, nil
}

// syncRetention brings the tables' TTL to the configured retention when it was changed after
// the tables were created (MODIFY TTL, or REMOVE TTL for 0). Tables already right are left
// alone, so this is a no-op on every start but the first after a change.
func (s *store) syncRetention(ctx context.Context) error {
	cols, err := ttlColumns(s.schema)
	if err != nil {
		return err
	}
	current := map[string]int{}
	q := "SELECT name, create_table_query FROM system.tables WHERE database = " + quote(s.db)
	if err := s.each(ctx, q, func(r rows) error {
		var name, create string
		if err := r.Scan(&name, &create); err != nil {
			return err
		}
		if m := ttlCurrentRe.FindStringSubmatch(create); m != nil {
			current[name], _ = strconv.Atoi(m[2])
		}
		return nil
	}); err != nil {
		return fmt.Errorf("migrate: read the tables' retention: %w", err)
	}
	onCluster := ""
	if s.schema.Cluster != "" {
		onCluster = " ON CLUSTER " + s.schema.Cluster
	}
	want := s.schema.RetentionDays
	for table, col := range cols {
		if current[table] == want {
			continue
		}
		alter := "ALTER TABLE " + s.table(table) + onCluster + " REMOVE TTL"
		if want > 0 {
			alter = "ALTER TABLE " + s.table(table) + onCluster + " MODIFY TTL toDateTime(" + col + ") + INTERVAL " + strconv.Itoa(want) + " DAY"
		}
		if err := s.b.exec(ctx, alter); err != nil {
			return fmt.Errorf("migrate: set the retention of %s to %d days: %w", table, want, err)
		}
		s.log.Info("retention changed", "table", table, "from_days", current[table], "to_days", want)
	}
	return nil
}

// AppliedMigrations returns the versions recorded in the migrations table, ascending.
func (s *store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	r, err := s.b.query(ctx, "SELECT DISTINCT version FROM "+s.table("schema_migrations"))
	if err != nil {
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	defer r.Close()
	out := map[int]bool{}
	for r.Next() {
		var v uint32
		if err := r.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: read applied versions: %w", err)
		}
		out[int(v)] = true
	}
	return out, r.Err()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ---- Writer ----

func (s *store) WriteEvents(ctx context.Context, events []CheckpointEvent) error {
	if len(events) == 0 {
		return nil
	}
	b, err := batchOf(events)
	if err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	now := s.now()
	for i := range events {
		if events[i].IngestTime.IsZero() {
			events[i].IngestTime = now
		}
	}
	return s.writeEvents(ctx, b, now.UnixNano())
}

// WriteBatch writes the batch's aliases, then its events (so that a reader of new events can
// already resolve their aliases). A batch with an invalid row writes nothing and returns an
// error wrapping ErrInvalid that names every bad row (see CheckRow). The batch is not changed:
// rows without an ingest time get the time of this call.
func (s *store) WriteBatch(ctx context.Context, b *EventBatch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := b.check(); err != nil {
		return err
	}
	if err := s.WriteAliases(ctx, b.aliasRows()); err != nil {
		return err
	}
	return s.writeEvents(ctx, b, s.now().UnixNano())
}

func (s *store) writeEvents(ctx context.Context, b *EventBatch, now int64) error {
	start := time.Now()
	if err := s.b.insertEvents(ctx, s.table("checkpoint_events"), b, now); err != nil {
		return fmt.Errorf("write %d events: %w", b.Len(), err)
	}
	s.log.Debug("events written", "rows", b.Len(), "took", time.Since(start))
	return nil
}

func (s *store) WriteAliases(ctx context.Context, aliases []Alias) error {
	if len(aliases) == 0 {
		return nil
	}
	for i, a := range aliases {
		if a.Tenant == "" || a.Flow == "" || a.Attr == "" || a.Key == "" {
			return fmt.Errorf("write aliases: %w: alias %d: tenant, flow, attr and key are required", ErrInvalid, i)
		}
		for _, v := range [...]string{a.Tenant, a.Flow, a.Attr, a.Value, a.Key} {
			if !ValidUTF8(v) {
				return fmt.Errorf("write aliases: alias %d: %w", i, ErrNotUTF8)
			}
		}
	}
	if err := s.b.insertAliases(ctx, s.table("aliases"), aliases); err != nil {
		return fmt.Errorf("write %d aliases: %w", len(aliases), err)
	}
	return nil
}

// timeValue is t as the time columns of the dialect store it; the zero time is stored as
// the epoch (and read back as the zero time).
func (s *store) timeValue(t time.Time) any {
	if t.IsZero() {
		t = time.Unix(0, 0).UTC()
	}
	if s.d.legacy {
		return t.UnixNano()
	}
	return t
}

func (s *store) legacyUnsupported(what string) error {
	if s.d.legacy {
		return fmt.Errorf("%s: %w", what, ErrUnsupported)
	}
	return nil
}

func (s *store) WriteStates(ctx context.Context, states []InstanceState) error {
	if err := s.legacyUnsupported("write states"); err != nil || len(states) == 0 {
		return err
	}
	rs := make([][]any, len(states))
	for i, st := range states {
		if st.Tenant == "" || st.Flow == "" || st.Key == "" {
			return fmt.Errorf("write states: state %d: tenant, flow and key are required", i)
		}
		if st.Version < 0 || st.Shard < 0 {
			return fmt.Errorf("write states: state %d: negative version or shard", i)
		}
		upd := st.UpdatedAt
		if upd.IsZero() {
			upd = s.now()
		}
		rs[i] = []any{st.Tenant, st.Flow, uint32(st.Version), st.Key, st.Status, s.timeValue(st.StartedAt), s.timeValue(st.LastSeen),
			st.LastCheckpoint, jsonOr(st.Expected, "[]"), jsonOr(st.Reason, "{}"), jsonOr(st.Violations, "[]"), uint32(st.Shard), upd}
	}
	cols := []string{"tenant", "flow", "version", "key", "status", "started_at", "last_seen", "last_checkpoint",
		"expected", "reason", "violations", "shard", "updated_at"}
	if err := s.b.insert(ctx, s.table("instance_states"), cols, rs); err != nil {
		return fmt.Errorf("write %d states: %w", len(states), err)
	}
	return nil
}

func jsonOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *store) WriteAlerts(ctx context.Context, alerts []AlertRecord) error {
	if err := s.legacyUnsupported("write alerts"); err != nil || len(alerts) == 0 {
		return err
	}
	rs := make([][]any, len(alerts))
	for i, a := range alerts {
		if a.Version < 0 {
			return fmt.Errorf("write alerts: alert %d: negative version", i)
		}
		rs[i] = []any{s.timeValue(a.Time), a.Tenant, a.Flow, uint32(a.Version), a.Key, a.Checkpoint, a.State, a.Sink, a.Fingerprint, a.Summary, a.Error}
	}
	cols := []string{"time", "tenant", "flow", "version", "key", "checkpoint", "state", "sink", "fingerprint", "summary", "error"}
	if err := s.b.insert(ctx, s.table("alerts"), cols, rs); err != nil {
		return fmt.Errorf("write %d alerts: %w", len(alerts), err)
	}
	return nil
}

func (s *store) WriteCommands(ctx context.Context, commands []CommandRecord) error {
	if err := s.legacyUnsupported("write commands"); err != nil || len(commands) == 0 {
		return err
	}
	rs := make([][]any, len(commands))
	for i, c := range commands {
		if c.ID == "" {
			return fmt.Errorf("write commands: command %d: id is required", i)
		}
		if c.Version < 0 || c.Attempt < 0 {
			return fmt.Errorf("write commands: command %d: negative version or attempt", i)
		}
		rs[i] = []any{c.ID, s.timeValue(c.Time), c.Tenant, c.Flow, uint32(c.Version), c.Key, c.Checkpoint, uint32(c.Attempt), c.Sink, c.Subject, c.Outcome, c.Error, c.Payload}
	}
	cols := []string{"id", "time", "tenant", "flow", "version", "key", "checkpoint", "attempt", "sink", "subject", "outcome", "error", "payload"}
	if err := s.b.insert(ctx, s.table("commands"), cols, rs); err != nil {
		return fmt.Errorf("write %d commands: %w", len(commands), err)
	}
	return nil
}

// ---- Reader ----

func (s *store) eventColumns() string {
	attrs := "attributes"
	if s.d.legacy {
		attrs = "attributes.k, attributes.v"
	}
	return "event_id, tenant, flow, checkpoint, key, key_attr, " + s.d.ns("time") + ", " + s.d.ns("ingest_time") +
		", trace_id, span_id, service, name, status, message, " + attrs
}

func (s *store) scanEvents(r rows) ([]CheckpointEvent, error) {
	defer r.Close()
	var out []CheckpointEvent
	for r.Next() {
		var (
			e        CheckpointEvent
			id       uint64
			t, it    int64
			keys, vs []string
		)
		dest := []any{&id, &e.Tenant, &e.Flow, &e.Checkpoint, &e.Key, &e.KeyAttr, &t, &it, &e.TraceID, &e.SpanID, &e.Service, &e.Name, &e.Status, &e.Message}
		if s.d.legacy {
			dest = append(dest, &keys, &vs)
		} else {
			dest = append(dest, &e.Attributes)
		}
		if err := r.Scan(dest...); err != nil {
			return nil, err
		}
		if s.d.legacy && len(keys) > 0 {
			e.Attributes = make(map[string]string, len(keys))
			for i, k := range keys {
				if i < len(vs) {
					e.Attributes[k] = vs[i]
				}
			}
		}
		if len(e.Attributes) == 0 {
			e.Attributes = nil
		}
		e.EventID = formatEventID(id)
		e.Time = unixNano(t)
		e.IngestTime = unixNano(it)
		out = append(out, e)
	}
	return out, r.Err()
}

func (s *store) EventsSince(ctx context.Context, since time.Time, limit int) ([]CheckpointEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	// LIMIT 1 BY after ORDER BY keeps each event's first ingestion: a replayed duplicate not
	// merged yet never shows twice in one answer.
	q := "SELECT " + s.eventColumns() + " FROM " + s.table("checkpoint_events") +
		" WHERE ingest_time >= " + s.d.ts(since) +
		" ORDER BY ingest_time, event_id LIMIT 1 BY event_id LIMIT " + strconv.Itoa(limit)
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("events since %s: %w", since.Format(time.RFC3339Nano), err)
	}
	evs, err := s.scanEvents(r)
	if err != nil {
		return nil, fmt.Errorf("events since %s: %w", since.Format(time.RFC3339Nano), err)
	}
	return evs, nil
}

func (s *store) InstanceEvents(ctx context.Context, tenant, flow, key string) ([]CheckpointEvent, error) {
	where := "tenant = " + quote(tenant) + " AND flow = " + quote(flow)
	var cond string
	if s.d.legacy {
		cond = where + " AND key = " + quote(key)
	} else {
		// The instance's own rows, and the rows keyed by one of its aliases — by the first
		// mapping of an alias value, as ResolveAliases resolves it, so that a conflicting later
		// mapping never shows one event on two instances.
		aliases := "SELECT attr, value FROM (SELECT attr, value, argMin(key, time) AS k FROM " + s.table("aliases") +
			" WHERE " + where + " AND (attr, value) " + s.d.global() + "IN (SELECT attr, value FROM " + s.table("aliases") +
			" WHERE " + where + " AND key = " + quote(key) + ") GROUP BY attr, value) WHERE k = " + quote(key)
		cond = where + " AND (key = " + quote(key) + " OR (key_attr, key) " + s.d.global() + "IN (" + aliases + "))"
	}
	q := "SELECT " + s.eventColumns() + " FROM " + s.table("checkpoint_events") + " WHERE " + cond +
		" ORDER BY time, event_id LIMIT 1 BY event_id"
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("events of %s/%s/%s: %w", tenant, flow, key, err)
	}
	evs, err := s.scanEvents(r)
	if err != nil {
		return nil, fmt.Errorf("events of %s/%s/%s: %w", tenant, flow, key, err)
	}
	return evs, nil
}

func (s *store) ResolveAliases(ctx context.Context, tenant, flow, attr string, values []string) (map[string]string, error) {
	out := map[string]string{}
	if len(values) == 0 {
		return out, nil
	}
	// The first mapping of a value wins; later conflicting ones are ignored.
	q := "SELECT value, argMin(key, time) FROM " + s.table("aliases") +
		" WHERE tenant = " + quote(tenant) + " AND flow = " + quote(flow) + " AND attr = " + quote(attr) +
		" AND value IN (" + quoteList(values) + ") GROUP BY value"
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("resolve %d aliases of %s: %w", len(values), attr, err)
	}
	defer r.Close()
	for r.Next() {
		var v, k string
		if err := r.Scan(&v, &k); err != nil {
			return nil, fmt.Errorf("resolve aliases of %s: %w", attr, err)
		}
		out[v] = k
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("resolve aliases of %s: %w", attr, err)
	}
	return out, nil
}

const stateColumns = "tenant, flow, toUInt64(version), key, status, toUnixTimestamp64Nano(started_at), toUnixTimestamp64Nano(last_seen), " +
	"last_checkpoint, expected, reason, violations, toUInt64(shard), toUnixTimestamp64Nano(updated_at)"

func scanStates(r rows) ([]InstanceState, error) {
	defer r.Close()
	var out []InstanceState
	for r.Next() {
		var (
			st                     InstanceState
			version, shard         uint64
			started, seen, updated int64
		)
		if err := r.Scan(&st.Tenant, &st.Flow, &version, &st.Key, &st.Status, &started, &seen, &st.LastCheckpoint,
			&st.Expected, &st.Reason, &st.Violations, &shard, &updated); err != nil {
			return nil, err
		}
		st.Version, st.Shard = int(version), int(shard)
		st.StartedAt, st.LastSeen, st.UpdatedAt = unixNano(started), unixNano(seen), unixNano(updated)
		out = append(out, st)
	}
	return out, r.Err()
}

// instanceCursor is the position after the last instance of a page: listings are ordered by
// last_seen descending, then (tenant, flow, key) ascending.
type instanceCursor struct {
	LastSeen int64  `json:"t"`
	Tenant   string `json:"n"`
	Flow     string `json:"f"`
	Key      string `json:"k"`
}

func (c instanceCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeInstanceCursor(s string) (instanceCursor, error) {
	var c instanceCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, fmt.Errorf("%w: invalid cursor %q", ErrInvalid, s)
	}
	return c, nil
}

func (s *store) Instances(ctx context.Context, f InstanceFilter) ([]InstanceState, string, error) {
	if err := s.legacyUnsupported("list instances"); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.Shards < 0 || f.Shard < 0 || (f.Shards > 0 && f.Shard >= f.Shards) {
		return nil, "", fmt.Errorf("list instances: shard %d of %d is out of range", f.Shard, f.Shards)
	}
	var conds []string
	for _, c := range [][2]string{{"tenant", f.Tenant}, {"flow", f.Flow}, {"status", f.Status}, {"key", f.Key}} {
		if c[1] != "" {
			conds = append(conds, c[0]+" = "+quote(c[1]))
		}
	}
	if f.Checkpoint != "" {
		conds = append(conds, "(last_checkpoint = "+quote(f.Checkpoint)+" OR has(expected_checkpoints, "+quote(f.Checkpoint)+"))")
	}
	if f.Shards > 0 {
		conds = append(conds, "shard % "+strconv.Itoa(f.Shards)+" = "+strconv.Itoa(f.Shard))
	}
	if f.Cursor != "" {
		c, err := decodeInstanceCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list instances: %w", err)
		}
		ls := "toUnixTimestamp64Nano(last_seen)"
		n := strconv.FormatInt(c.LastSeen, 10)
		conds = append(conds, "("+ls+" < "+n+" OR ("+ls+" = "+n+" AND (tenant, flow, key) > ("+
			quote(c.Tenant)+", "+quote(c.Flow)+", "+quote(c.Key)+")))")
	}
	q := "SELECT " + stateColumns + " FROM " + s.table("instance_states") + " FINAL"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY last_seen DESC, tenant, flow, key LIMIT " + strconv.Itoa(limit+1)
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("list instances: %w", err)
	}
	states, err := scanStates(r)
	if err != nil {
		return nil, "", fmt.Errorf("list instances: %w", err)
	}
	next := ""
	if len(states) > limit {
		states = states[:limit]
		last := states[limit-1]
		next = instanceCursor{LastSeen: last.LastSeen.UnixNano(), Tenant: last.Tenant, Flow: last.Flow, Key: last.Key}.encode()
	}
	return states, next, nil
}

func (s *store) Instance(ctx context.Context, tenant, flow, key string) (*InstanceState, error) {
	if err := s.legacyUnsupported("read instance"); err != nil {
		return nil, err
	}
	q := "SELECT " + stateColumns + " FROM " + s.table("instance_states") + " FINAL WHERE tenant = " + quote(tenant) +
		" AND flow = " + quote(flow) + " AND key = " + quote(key) + " LIMIT 1"
	r, err := s.b.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read instance %s/%s/%s: %w", tenant, flow, key, err)
	}
	states, err := scanStates(r)
	if err != nil {
		return nil, fmt.Errorf("read instance %s/%s/%s: %w", tenant, flow, key, err)
	}
	if len(states) == 0 {
		return nil, nil
	}
	return &states[0], nil
}

// flowWhere selects one flow, of one tenant or (tenant "") of all.
func (s *store) flowWhere(tenant, flow string) string { return flowWhereAs("", tenant, flow) }

// flowWhereAs is flowWhere with columns qualified by a table alias (prefix "e." for e).
func flowWhereAs(prefix, tenant, flow string) string {
	w := prefix + "flow = " + quote(flow)
	if tenant != "" {
		w = prefix + "tenant = " + quote(tenant) + " AND " + w
	}
	return w
}

func (s *store) CheckpointCounts(ctx context.Context, tenant, flow string, from, to time.Time) ([]CheckpointCount, error) {
	if err := s.legacyUnsupported("checkpoint counts"); err != nil {
		return nil, err
	}
	byCP := map[string]*CheckpointCount{}
	get := func(cp string) *CheckpointCount {
		c := byCP[cp]
		if c == nil {
			c = &CheckpointCount{Checkpoint: cp}
			byCP[cp] = c
		}
		return c
	}
	// Instances, not events: a checkpoint reached twice by one instance counts once.
	q := "SELECT checkpoint, toUInt64(uniqExact(tenant, key)) FROM " + s.table("checkpoint_events") +
		" WHERE " + s.flowWhere(tenant, flow) + " AND checkpoint != '' AND time >= " + s.d.ts(from) + " AND time < " + s.d.ts(to) +
		" GROUP BY checkpoint"
	if err := s.each(ctx, q, func(r rows) error {
		var cp string
		var n uint64
		if err := r.Scan(&cp, &n); err != nil {
			return err
		}
		get(cp).Count = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("checkpoint counts of %s: %w", flow, err)
	}
	// A stuck instance counts at the checkpoint its reason names (the most overdue one), not at
	// every checkpoint it awaits.
	q = "SELECT cp, count() FROM (SELECT JSONExtractString(reason, 'checkpoint') AS cp FROM " + s.table("instance_states") +
		" FINAL WHERE " + s.flowWhere(tenant, flow) + " AND status = 'stuck') WHERE cp != '' GROUP BY cp"
	if err := s.each(ctx, q, func(r rows) error {
		var cp string
		var n uint64
		if err := r.Scan(&cp, &n); err != nil {
			return err
		}
		get(cp).Stuck = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("stuck counts of %s: %w", flow, err)
	}
	out := make([]CheckpointCount, 0, len(byCP))
	for _, c := range byCP {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Checkpoint < out[j].Checkpoint })
	return out, nil
}

// each runs q and calls fn for every row.
func (s *store) each(ctx context.Context, q string, fn func(rows) error) error {
	r, err := s.b.query(ctx, q)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		if err := fn(r); err != nil {
			return err
		}
	}
	return r.Err()
}

func (s *store) Transitions(ctx context.Context, tenant, flow string, edges [][2]string, from, to time.Time) ([]Transition, error) {
	if err := s.legacyUnsupported("transitions"); err != nil {
		return nil, err
	}
	if len(edges) == 0 {
		return nil, nil
	}
	var cps []string
	col := map[string]string{} // checkpoint -> its column in the per-instance row
	for _, e := range edges {
		for _, c := range e {
			if _, ok := col[c]; !ok {
				col[c] = "t" + strconv.Itoa(len(cps))
				cps = append(cps, c)
			}
		}
	}
	// The flow's events of these checkpoints, alias-keyed rows resolved to their instance's
	// key: only rows keyed by an alias attribute go through the join.
	where := flowWhereAs("", tenant, flow) + " AND checkpoint IN (" + quoteList(cps) + ") AND time >= " + s.d.ts(from)
	aliasAttrs := "SELECT DISTINCT attr FROM " + s.table("aliases") + " WHERE " + s.flowWhere(tenant, flow)
	events := "SELECT tenant, key AS ikey, checkpoint, time FROM " + s.table("checkpoint_events") +
		" WHERE " + where + " AND key_attr " + s.d.global() + "NOT IN (" + aliasAttrs + ")" +
		" UNION ALL " +
		"SELECT e.tenant AS tenant, if(a.key != '', a.key, e.key) AS ikey, e.checkpoint AS checkpoint, e.time AS time FROM (" +
		"SELECT tenant, key, key_attr, checkpoint, time FROM " + s.table("checkpoint_events") +
		" WHERE " + where + " AND key_attr " + s.d.global() + "IN (" + aliasAttrs + ")) AS e " + s.d.global() +
		"LEFT JOIN (SELECT tenant, attr, value, argMin(key, time) AS key FROM " + s.table("aliases") +
		" WHERE " + s.flowWhere(tenant, flow) + " GROUP BY tenant, attr, value) AS a" +
		" ON e.tenant = a.tenant AND e.key_attr = a.attr AND e.key = a.value"
	// One row per instance: the first time it reached each checkpoint (0: never).
	var firsts []string
	for _, c := range cps {
		firsts = append(firsts, "minIf(toUnixTimestamp64Nano(time), checkpoint = "+quote(c)+") AS "+col[c])
	}
	perInstance := "SELECT " + strings.Join(firsts, ", ") + " FROM (" + events + ") GROUP BY tenant, ikey"
	// Per edge: instances that reached the source in [from, to) and the target afterwards.
	var aggs []string
	fromNs, toNs := strconv.FormatInt(from.UnixNano(), 10), strconv.FormatInt(to.UnixNano(), 10)
	for _, e := range edges {
		src, dst := col[e[0]], col[e[1]]
		cond := src + " >= " + fromNs + " AND " + src + " < " + toNs + " AND " + dst + " >= " + src + " AND " + src + " > 0"
		d := "toFloat64(" + dst + " - " + src + ")"
		aggs = append(aggs, "countIf("+cond+")", "quantileIf(0.5)("+d+", "+cond+")", "quantileIf(0.95)("+d+", "+cond+")")
	}
	q := "SELECT " + strings.Join(aggs, ", ") + " FROM (" + perInstance + ")"
	out := make([]Transition, len(edges))
	for i, e := range edges {
		out[i] = Transition{Source: e[0], Target: e[1]}
	}
	if err := s.each(ctx, q, func(r rows) error {
		counts := make([]uint64, len(edges))
		qs := make([]float64, 2*len(edges))
		dest := make([]any, 0, 3*len(edges))
		for i := range edges {
			dest = append(dest, &counts[i], &qs[2*i], &qs[2*i+1])
		}
		if err := r.Scan(dest...); err != nil {
			return err
		}
		for i := range edges {
			out[i].Count = counts[i]
			if counts[i] > 0 {
				out[i].P50, out[i].P95 = nanos(qs[2*i]), nanos(qs[2*i+1])
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("transitions of %s: %w", flow, err)
	}
	return out, nil
}

// nanos converts a quantile of nanoseconds; NaN (no values) is 0.
func nanos(v float64) time.Duration {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return time.Duration(v)
}

func (s *store) Series(ctx context.Context, tenant, flow, by string, from, to time.Time, step time.Duration) ([]Series, error) {
	if err := s.legacyUnsupported("series"); err != nil {
		return nil, err
	}
	if step < time.Millisecond {
		return nil, fmt.Errorf("series of %s: step must be at least 1ms, got %s", flow, step)
	}
	if !to.After(from) {
		return nil, fmt.Errorf("series of %s: 'to' must be after 'from'", flow)
	}
	buckets := int((to.Sub(from) + step - 1) / step)
	if buckets > 11000 {
		return nil, fmt.Errorf("series of %s: %d points is too many (at most 11000); use a larger step", flow, buckets)
	}
	fromMs := strconv.FormatInt(from.UnixMilli(), 10)
	stepMs := strconv.FormatInt(step.Milliseconds(), 10)
	var q string
	switch by {
	case "checkpoint":
		q = "SELECT checkpoint, toInt64(intDiv(toUnixTimestamp64Milli(time) - " + fromMs + ", " + stepMs + ")) AS b, toUInt64(uniqExact(event_id))" +
			" FROM " + s.table("checkpoint_events") + " WHERE " + s.flowWhere(tenant, flow) + " AND checkpoint != ''" +
			" AND time >= " + s.d.ts(from) + " AND time < " + s.d.ts(to) + " GROUP BY checkpoint, b"
	case "status":
		q = "SELECT status, toInt64(intDiv(toUnixTimestamp64Milli(last_seen) - " + fromMs + ", " + stepMs + ")) AS b, count()" +
			" FROM " + s.table("instance_states") + " FINAL WHERE " + s.flowWhere(tenant, flow) +
			" AND last_seen >= " + s.d.ts(from) + " AND last_seen < " + s.d.ts(to) + " GROUP BY status, b"
	default:
		return nil, fmt.Errorf("series of %s: 'by' must be checkpoint or status, got %q", flow, by)
	}
	byName := map[string][]Point{}
	if err := s.each(ctx, q, func(r rows) error {
		var name string
		var b int64
		var n uint64
		if err := r.Scan(&name, &b, &n); err != nil {
			return err
		}
		pts := byName[name]
		if pts == nil {
			pts = make([]Point, buckets)
			for i := range pts {
				pts[i].Time = from.Add(time.Duration(i) * step).UTC()
			}
			byName[name] = pts
		}
		if b >= 0 && int(b) < buckets {
			pts[b].Value = float64(n)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("series of %s by %s: %w", flow, by, err)
	}
	out := make([]Series, 0, len(byName))
	for n, pts := range byName {
		out = append(out, Series{Name: n, Points: pts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func auditWhere(f AuditFilter) string {
	var conds []string
	for _, c := range [][2]string{{"tenant", f.Tenant}, {"flow", f.Flow}, {"key", f.Key}} {
		if c[1] != "" {
			conds = append(conds, c[0]+" = "+quote(c[1]))
		}
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

func (f AuditFilter) limit() string {
	if f.Limit <= 0 {
		return "100"
	}
	return strconv.Itoa(f.Limit)
}

func (s *store) Alerts(ctx context.Context, f AuditFilter) ([]AlertRecord, error) {
	if err := s.legacyUnsupported("alerts"); err != nil {
		return nil, err
	}
	q := "SELECT toUnixTimestamp64Nano(time), tenant, flow, toUInt64(version), key, checkpoint, state, sink, fingerprint, summary, error FROM " +
		s.table("alerts") + auditWhere(f) +
		" ORDER BY time DESC, tenant, flow, fingerprint LIMIT 1 BY tenant, flow, time, fingerprint, state, sink LIMIT " + f.limit()
	var out []AlertRecord
	if err := s.each(ctx, q, func(r rows) error {
		var a AlertRecord
		var t int64
		var v uint64
		if err := r.Scan(&t, &a.Tenant, &a.Flow, &v, &a.Key, &a.Checkpoint, &a.State, &a.Sink, &a.Fingerprint, &a.Summary, &a.Error); err != nil {
			return err
		}
		a.Time, a.Version = unixNano(t), int(v)
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}

func (s *store) Commands(ctx context.Context, f AuditFilter) ([]CommandRecord, error) {
	if err := s.legacyUnsupported("commands"); err != nil {
		return nil, err
	}
	q := "SELECT id, toUnixTimestamp64Nano(time), tenant, flow, toUInt64(version), key, checkpoint, toUInt64(attempt), sink, subject, outcome, error, payload FROM " +
		s.table("commands") + " FINAL" + auditWhere(f) + " ORDER BY time DESC, id LIMIT " + f.limit()
	var out []CommandRecord
	if err := s.each(ctx, q, func(r rows) error {
		c, err := scanCommand(r)
		out = append(out, c)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read commands: %w", err)
	}
	return out, nil
}

// scanCommand reads one row of the commands columns Commands and CommandsSince select.
func scanCommand(r rows) (CommandRecord, error) {
	var c CommandRecord
	var t int64
	var v, a uint64
	if err := r.Scan(&c.ID, &t, &c.Tenant, &c.Flow, &v, &c.Key, &c.Checkpoint, &a, &c.Sink, &c.Subject, &c.Outcome, &c.Error, &c.Payload); err != nil {
		return c, err
	}
	c.Time, c.Version, c.Attempt = unixNano(t), int(v), int(a)
	return c, nil
}

// unixNano is the inverse of timeValue: the epoch reads back as the zero time.
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
