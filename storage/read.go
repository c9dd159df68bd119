package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Reader side of store: one query per call (two for CheckpointCounts), values bound by
// quote (see sqltext.go); what differs between the tables of a modern server and the legacy
// ones is asked of the dialect.

func (s *store) eventColumns() string {
	return "event_id, tenant, flow, checkpoint, key, key_attr, " + s.d.ns("time") + ", " + s.d.ns("ingest_time") +
		", trace_id, span_id, service, name, status, message, " + s.d.attributeColumns()
}

func (s *store) scanEvents(r rows) ([]CheckpointEvent, error) {
	defer r.Close()
	var out []CheckpointEvent
	for r.Next() {
		var (
			e     CheckpointEvent
			id    uint64
			t, it int64
		)
		attrs, into := s.d.scanAttributes()
		dest := append([]any{&id, &e.Tenant, &e.Flow, &e.Checkpoint, &e.Key, &e.KeyAttr, &t, &it, &e.TraceID, &e.SpanID, &e.Service, &e.Name, &e.Status, &e.Message}, attrs...)
		if err := r.Scan(dest...); err != nil {
			return nil, err
		}
		into(&e)
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
	if !s.d.joinsAliases() {
		cond = where + " AND key = " + quote(key)
	} else {
		// The instance's own rows, and the rows keyed by one of its aliases — by the first
		// mapping of an alias value, as ResolveAliases resolves it, so that a conflicting later
		// mapping never shows one event on two instances.
		aliases := "SELECT attr, value FROM (SELECT attr, value, argMin(key, time) AS k FROM " + s.table("aliases") +
			" WHERE " + where + " AND (attr, value) " + s.global() + "IN (SELECT attr, value FROM " + s.table("aliases") +
			" WHERE " + where + " AND key = " + quote(key) + ") GROUP BY attr, value) WHERE k = " + quote(key)
		cond = where + " AND (key = " + quote(key) + " OR (key_attr, key) " + s.global() + "IN (" + aliases + "))"
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

// InstanceCursor is the position after the last instance of a page of Reader.Instances,
// whose listings are ordered by LastSeen descending, then (tenant, flow, key) ascending. Its
// text (String) is opaque to callers; every store reads and writes the same.
type InstanceCursor struct {
	LastSeen int64  `json:"t"` // Unix nanoseconds
	Tenant   string `json:"n"`
	Flow     string `json:"f"`
	Key      string `json:"k"`
}

// CursorAfter is the cursor of the page that follows st.
func CursorAfter(st InstanceState) InstanceCursor {
	return InstanceCursor{LastSeen: st.LastSeen.UnixNano(), Tenant: st.Tenant, Flow: st.Flow, Key: st.Key}
}

func (c InstanceCursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseInstanceCursor reads a cursor's text; anything a store did not issue is an error
// wrapping ErrInvalid.
func ParseInstanceCursor(s string) (InstanceCursor, error) {
	var c InstanceCursor
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
	if err := s.d.unsupported("list instances"); err != nil {
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
		c, err := ParseInstanceCursor(f.Cursor)
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
		next = CursorAfter(states[limit-1]).String()
	}
	return states, next, nil
}

func (s *store) Instance(ctx context.Context, tenant, flow, key string) (*InstanceState, error) {
	if err := s.d.unsupported("read instance"); err != nil {
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

// checkpointRows selects the rows that reached a checkpoint: neither error notes (no
// checkpoint) nor operator actions (reserved names starting with '@', model.OperatorCancel and
// model.OperatorUnblock), which are rows of an instance but no checkpoint of its flow.
// substring, which every ClickHouse the tests reach has, 18.16 included.
const checkpointRows = "checkpoint != '' AND substring(checkpoint, 1, 1) != '@'"

func (s *store) CheckpointCounts(ctx context.Context, tenant, flow string, from, to time.Time) ([]CheckpointCount, error) {
	if err := s.d.unsupported("checkpoint counts"); err != nil {
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
		" WHERE " + s.flowWhere(tenant, flow) + " AND " + checkpointRows + " AND time >= " + s.d.ts(from) + " AND time < " + s.d.ts(to) +
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

func (s *store) Transitions(ctx context.Context, tenant, flow string, edges [][2]string, from, to time.Time) ([]Transition, error) {
	if err := s.d.unsupported("transitions"); err != nil {
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
		" WHERE " + where + " AND key_attr " + s.global() + "NOT IN (" + aliasAttrs + ")" +
		" UNION ALL " +
		"SELECT e.tenant AS tenant, if(a.key != '', a.key, e.key) AS ikey, e.checkpoint AS checkpoint, e.time AS time FROM (" +
		"SELECT tenant, key, key_attr, checkpoint, time FROM " + s.table("checkpoint_events") +
		" WHERE " + where + " AND key_attr " + s.global() + "IN (" + aliasAttrs + ")) AS e " + s.global() +
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
	if err := s.d.unsupported("series"); err != nil {
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
			" FROM " + s.table("checkpoint_events") + " WHERE " + s.flowWhere(tenant, flow) + " AND " + checkpointRows +
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
	if err := s.d.unsupported("alerts"); err != nil {
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
	if err := s.d.unsupported("commands"); err != nil {
		return nil, err
	}
	return s.commands(ctx, auditWhere(f)+" ORDER BY time DESC, id LIMIT "+f.limit(), "read commands")
}

// commands reads the latest record of each command the clause selects (WHERE, ORDER BY, ...).
func (s *store) commands(ctx context.Context, clause, what string) ([]CommandRecord, error) {
	q := "SELECT id, toUnixTimestamp64Nano(time), tenant, flow, toUInt64(version), key, checkpoint, toUInt64(attempt), sink, subject, outcome, error, payload FROM " +
		s.table("commands") + " FINAL" + clause
	var out []CommandRecord
	if err := s.each(ctx, q, func(r rows) error {
		c, err := scanCommand(r)
		out = append(out, c)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
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
