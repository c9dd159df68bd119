package storage

import (
	"strings"
)

// The columns of the tables the collector writes, in the order both transports write them,
// and their types in the production DDL (schema/001_checkpoints.sql; a test holds the two
// together). The server transport appends column values (eventColumnValues,
// aliasColumnValues) to clickhouse-go's native-protocol batches; the embedded one encodes
// Native blocks itself (native.go).
const (
	lcString       = "LowCardinality(String)"
	dateTime64     = "DateTime64(9, 'UTC')"
	attributesType = "Map(LowCardinality(String), String)"
)

var (
	eventColumnList  = "event_id, tenant, flow, checkpoint, key, key_attr, time, ingest_time, trace_id, span_id, service, name, status, message, attributes"
	eventColumnTypes = []string{"UInt64", lcString, lcString, lcString, "String", lcString, dateTime64, dateTime64,
		"String", "String", lcString, lcString, lcString, "String", attributesType}
	aliasColumns     = []string{"tenant", "flow", "attr", "value", "key", "time"}
	aliasColumnTypes = []string{lcString, lcString, lcString, "String", "String", dateTime64}
)

// eventColumnValues are the checkpoint_events columns of a batch, one slice per column in
// the order of eventColumnList, typed as the native protocol wants them for the tables of d.
func eventColumnValues(b *EventBatch, now int64, d dialect) []any {
	n := len(b.rows)
	str := func(f func(r *EventRow) string) []string {
		out := make([]string, n)
		for i := range b.rows {
			out[i] = f(&b.rows[i])
		}
		return out
	}
	ids := make([]uint64, n)
	t, it := make([]int64, n), make([]int64, n)
	for i := range b.rows {
		r := &b.rows[i]
		ids[i], t[i], it[i] = r.ID, r.Time, r.IngestTime
		if it[i] == 0 {
			it[i] = now
		}
	}
	columns := []any{
		ids,
		str(func(r *EventRow) string { return r.Tenant }),
		str(func(r *EventRow) string { return r.Flow }),
		str(func(r *EventRow) string { return r.Checkpoint }),
		str(func(r *EventRow) string { return r.Key }),
		str(func(r *EventRow) string { return r.KeyAttr }),
		d.timeColumn(t),
		d.timeColumn(it),
		str(func(r *EventRow) string { return r.TraceID }),
		str(func(r *EventRow) string { return r.SpanID }),
		str(func(r *EventRow) string { return r.Service }),
		str(func(r *EventRow) string { return r.Name }),
		str(func(r *EventRow) string { return r.Status }),
		str(func(r *EventRow) string { return r.Message }),
	}
	return append(columns, d.attributeValues(b)...)
}

// aliasColumnValues are the aliases table's columns of aliases, one slice per column in
// aliasColumns order, typed as clickhouse-go wants them for the tables of d; the zero time
// is the epoch.
func aliasColumnValues(aliases []Alias, d dialect) []any {
	n := len(aliases)
	tenant, flow, attr, value, key := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ns := make([]int64, n)
	for i, a := range aliases {
		tenant[i], flow[i], attr[i], value[i], key[i], ns[i] = a.Tenant, a.Flow, a.Attr, a.Value, a.Key, nanosOf(a.Time)
	}
	return []any{tenant, flow, attr, value, key, d.timeColumn(ns)}
}

// eventColumnNames are eventColumnList's names.
var eventColumnNames = strings.Split(eventColumnList, ", ")
