package storage

import (
	"strconv"
	"time"
)

// dialect is what differs between the production tables (ClickHouse >= 24.8, and chDB) and
// the legacy tables that Debian's ClickHouse 18.16 accepts, which only the test machine runs
// (legacy.go). The store asks its dialect and never tests which one it has.
type dialect interface {
	// ns is an expression giving time column col as Int64 nanoseconds since the epoch.
	ns(col string) string
	// ts is a literal of t comparable with a time column; times before the epoch (the zero
	// time: "from the beginning") are the epoch.
	ts(t time.Time) string
	// timeValue is t as a row insert takes it for a time column.
	timeValue(t time.Time) any
	// timeColumn is a column of Unix nanoseconds as a column insert (clickhouse-go) takes it.
	timeColumn(ns []int64) any
	// attributeColumns names the checkpoint events' attribute column(s), in reads and inserts.
	attributeColumns() string
	// attributeValues are the attribute column(s) of a batch, as a column insert takes them.
	attributeValues(b *EventBatch) []any
	// scanAttributes returns where Scan puts the attribute column(s) of one row, and a func
	// that moves them into e.
	scanAttributes() (dest []any, into func(e *CheckpointEvent))
	// unsupported is nil, or an error wrapping ErrUnsupported: what (a Reader or Writer
	// method) needs tables this dialect does not have.
	unsupported(what string) error
	// joinsAliases: event reads resolve alias-keyed rows through the aliases table.
	joinsAliases() bool
	// dedupsBatches: an events insert carries insert_deduplication_token.
	dedupsBatches() bool
	// hasRetention: the tables drop old rows by a TTL (see SetRetention).
	hasRetention() bool
}

// productionTables is the dialect of the production tables (schema/*.sql): DateTime64(9) times,
// Map attributes, every table.
type productionTables struct{}

var _ dialect = productionTables{}

func (productionTables) ns(col string) string { return "toUnixTimestamp64Nano(" + col + ")" }

func (productionTables) ts(t time.Time) string {
	return "fromUnixTimestamp64Nano(toInt64(" + epochNanos(t) + "), 'UTC')"
}

func (productionTables) timeValue(t time.Time) any {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t
}

func (productionTables) timeColumn(ns []int64) any {
	t := make([]time.Time, len(ns))
	for i := range ns {
		t[i] = time.Unix(0, ns[i]).UTC()
	}
	return t
}

func (productionTables) attributeColumns() string { return "attributes" }

func (productionTables) attributeValues(b *EventBatch) []any {
	attrs := make([]map[string]string, len(b.rows))
	for i := range b.rows {
		as := b.Attributes(i)
		attrs[i] = make(map[string]string, len(as))
		for _, a := range as {
			attrs[i][a.Key] = a.Value
		}
	}
	return []any{attrs}
}

func (productionTables) scanAttributes() ([]any, func(*CheckpointEvent)) {
	var m map[string]string
	return []any{&m}, func(e *CheckpointEvent) { e.Attributes = m }
}

func (productionTables) unsupported(string) error { return nil }
func (productionTables) joinsAliases() bool       { return true }
func (productionTables) dedupsBatches() bool      { return true }
func (productionTables) hasRetention() bool       { return true }

// epochNanos is t in Unix nanoseconds as a decimal literal; times before the epoch are 0.
func epochNanos(t time.Time) string {
	ns := int64(0)
	if t.After(time.Unix(0, 0)) {
		ns = t.UnixNano()
	}
	return strconv.FormatInt(ns, 10)
}
