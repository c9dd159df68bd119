package storage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The production tables cannot run on the only server here (18.16), so this checks offline
// that every value the server transport appends has the Go type clickhouse-go wants for the
// column type the production DDL declares: the column encoders are clickhouse-go's own.

// ddlColumns parses "name Type [CODEC(..)] [MATERIALIZED ..]," lines of the rendered CREATE
// TABLE statements into table -> column -> type.
func ddlColumns(t *testing.T) map[string]map[string]string {
	t.Helper()
	out, err := tableColumns(SchemaOptions{Database: "db", RetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is a backend that keeps what the store would send.
type recorder struct {
	events  *EventBatch
	now     int64
	aliases []Alias
	inserts []recorded
}

type recorded struct {
	table string
	cols  []string
	rows  [][]any
}

func (r *recorder) exec(context.Context, string) error          { return nil }
func (r *recorder) query(context.Context, string) (rows, error) { return &binRows{}, nil }
func (r *recorder) close() error                                { return nil }
func (r *recorder) insertEvents(_ context.Context, _ string, b *EventBatch, now int64) error {
	r.events, r.now = b, now
	return nil
}
func (r *recorder) insertAliases(_ context.Context, _ string, aliases []Alias) error {
	r.aliases = append(r.aliases, aliases...)
	return nil
}
func (r *recorder) insert(_ context.Context, table string, cols []string, rs [][]any) error {
	r.inserts = append(r.inserts, recorded{table, cols, rs})
	return nil
}

func newColumn(t *testing.T, name, typ string) column.Interface {
	t.Helper()
	c, err := column.Type(typ).Column(name, &column.ServerContext{})
	if err != nil {
		t.Fatalf("column %s %s: %v", name, typ, err)
	}
	return c
}

func TestServerValuesMatchProductionColumnTypes(t *testing.T) {
	ctx := context.Background()
	tables := ddlColumns(t)
	if len(tables) != 8 || tables["checkpoint_events"]["attributes"] != "Map(LowCardinality(String), String)" {
		t.Fatalf("parsed DDL = %v", tables)
	}
	rec := &recorder{}
	s, err := newStore(rec, Options{Database: "db"})
	if err != nil {
		t.Fatal(err)
	}
	events := []CheckpointEvent{
		{Tenant: "acme", Flow: "order", Checkpoint: "placed", Key: "k1", KeyAttr: "order.id", Time: t0, TraceID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
			SpanID: "00000000000000a1", Service: "orders", Name: "POST /orders", Status: "ok", Attributes: map[string]string{"http.response.status_code": "201"}},
		{Tenant: "acme", Flow: "order", Key: "k1", KeyAttr: "order.id", Time: t0.Add(time.Minute), Service: "ledger", Name: "POST /ledger",
			Status: "error", Message: "ledger: timeout"},
	}
	if err := s.WriteEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	// The events and aliases: column by column, as both transports append them, with the
	// column types both transports use (the embedded one encodes its Native blocks with them).
	if err := s.WriteAliases(ctx, []Alias{{Tenant: "a", Flow: "f", Attr: "x", Value: "v", Key: "k", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table  string
		names  []string
		types  []string
		values []any
		rows   int
	}{
		{"checkpoint_events", eventColumnNames, eventColumnTypes, eventColumnValues(rec.events, rec.now, productionTables{}), rec.events.Len()},
		{"aliases", aliasColumns, aliasColumnTypes, aliasColumnValues(rec.aliases, productionTables{}), len(rec.aliases)},
	} {
		if len(tc.values) != len(tc.names) || len(tc.types) != len(tc.names) {
			t.Fatalf("%s: %d column values and %d types for %d columns", tc.table, len(tc.values), len(tc.types), len(tc.names))
		}
		for i, name := range tc.names {
			typ, ok := tables[tc.table][name]
			if !ok {
				t.Fatalf("column %s.%s is not in the DDL", tc.table, name)
			}
			if tc.types[i] != typ {
				t.Errorf("%s.%s: the transports write %s, the DDL declares %s", tc.table, name, tc.types[i], typ)
			}
			c := newColumn(t, name, typ)
			if _, err := c.Append(tc.values[i]); err != nil {
				t.Errorf("append %T to %s.%s %s: %v", tc.values[i], tc.table, name, typ, err)
			} else if c.Rows() != tc.rows {
				t.Errorf("%s.%s: %d rows appended, want %d", tc.table, name, c.Rows(), tc.rows)
			}
		}
	}
	// Every other table, row by row, as insert appends it.
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0
	if err := s.WriteStates(ctx, []InstanceState{{Tenant: "a", Flow: "f", Key: "k", Version: 1, StartedAt: now, UpdatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAlerts(ctx, []AlertRecord{{Time: now, Tenant: "a", Flow: "f"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteCommands(ctx, []CommandRecord{{ID: "c", Time: now, Tenant: "a", Flow: "f"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFlowVersions(ctx, []FlowVersion{{Flow: "f", Version: 1, LoadedAt: now}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range rec.inserts {
		table := strings.TrimPrefix(in.table, "db.")
		seen[table] = true
		for _, row := range in.rows {
			for i, name := range in.cols {
				typ, ok := tables[table][name]
				if !ok {
					t.Fatalf("%s.%s is not in the DDL", table, name)
				}
				if err := newColumn(t, name, typ).AppendRow(row[i]); err != nil {
					t.Errorf("append %T to %s.%s %s: %v", row[i], table, name, typ, err)
				}
			}
		}
	}
	if len(seen) != 5 {
		t.Fatalf("inserted into %v", seen)
	}
}
