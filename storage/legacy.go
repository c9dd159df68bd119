package storage

import (
	"errors"
	"fmt"
	"time"
)

// The ClickHouse 18.16 dialect — for the test machine only. Debian ships no newer server, and
// the server transport (batches over the native protocol, timeouts, a killed server, retries,
// authentication, TLS) must be tested against a real one; production needs ClickHouse >= 24.8.
// 18.16 rejects DateTime64, Map, codecs, TTL and skip indexes, so it gets its own tables
// (schema/legacy/: checkpoint events and aliases only, times as Int64 nanoseconds, attributes
// as a Nested pair of arrays), and everything that differs for them is here: OpenServer picks
// this dialect for a server older than legacyBeforeMajor, and the methods those tables cannot
// serve return ErrUnsupported. Nothing else in the package knows about 18.16.

// ErrUnsupported is returned by the Reader and Writer methods the legacy tables cannot serve.
var ErrUnsupported = errors.New("not supported by the legacy (ClickHouse 18.16) tables")

// legacyBeforeMajor: servers with a major version below it get the legacy tables.
const legacyBeforeMajor = 20

// legacySchemaDir holds the legacy tables' migrations; legacyAppliedAtType is the type of
// schema_migrations.applied_at there.
const (
	legacySchemaDir     = "schema/legacy"
	legacyAppliedAtType = "DateTime"
)

// legacyTables is the dialect of the legacy tables.
type legacyTables struct{}

var _ dialect = legacyTables{}

func (legacyTables) ns(col string) string      { return col }
func (legacyTables) ts(t time.Time) string     { return epochNanos(t) }
func (legacyTables) timeColumn(ns []int64) any { return ns }

func (legacyTables) timeValue(t time.Time) any {
	if t.IsZero() {
		return int64(0)
	}
	return t.UnixNano()
}

func (legacyTables) attributeColumns() string { return "attributes.k, attributes.v" }

func (legacyTables) attributeValues(b *EventBatch) []any {
	ks, vs := make([][]string, len(b.rows)), make([][]string, len(b.rows))
	for i := range b.rows {
		attrs := b.Attributes(i)
		ks[i], vs[i] = make([]string, len(attrs)), make([]string, len(attrs))
		for j, a := range attrs {
			ks[i][j], vs[i][j] = a.Key, a.Value
		}
	}
	return []any{ks, vs}
}

func (legacyTables) scanAttributes() ([]any, func(*CheckpointEvent)) {
	var keys, vs []string
	return []any{&keys, &vs}, func(e *CheckpointEvent) {
		if len(keys) == 0 {
			return
		}
		e.Attributes = make(map[string]string, len(keys))
		for i, k := range keys {
			if i < len(vs) {
				e.Attributes[k] = vs[i]
			}
		}
	}
}

func (legacyTables) unsupported(what string) error { return fmt.Errorf("%s: %w", what, ErrUnsupported) }

// joinsAliases: the legacy tables are read by key alone.
func (legacyTables) joinsAliases() bool { return false }

// dedupsBatches: 18.16 has no insert_deduplication_token (rows stay idempotent by event_id).
func (legacyTables) dedupsBatches() bool { return false }

// hasRetention: 18.16 has no TTL.
func (legacyTables) hasRetention() bool { return false }
