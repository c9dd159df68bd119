package storage

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schema management of store: the migrations and the tables' retention.

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
	return nil
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

// RetainedTables are the tables whose rows SetRetention drops by age, in name order.
func RetainedTables() []string {
	cols, err := ttlColumns(SchemaOptions{})
	if err != nil {
		panic(err) // the embedded schema is fixed at build time; its tests parse it
	}
	return slices.Sorted(maps.Keys(cols))
}

// Retention returns the days each table keeps its rows; tables that keep them forever are
// absent. The legacy tables have no TTL (ErrUnsupported).
func (s *store) Retention(ctx context.Context) (map[string]int, error) {
	if !s.d.hasRetention() {
		return nil, s.d.unsupported("read the retention")
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
		return nil, fmt.Errorf("read the tables' retention: %w", err)
	}
	return current, nil
}

// SetRetention makes the tables drop rows older than days (MODIFY TTL), or keep them all for
// 0 (REMOVE TTL). Tables already right are left alone, so calling it on every start costs one
// read of system.tables.
func (s *store) SetRetention(ctx context.Context, days int) error {
	if days < 0 {
		return fmt.Errorf("set retention: %w: %d days", ErrInvalid, days)
	}
	if !s.d.hasRetention() {
		return s.d.unsupported("set retention")
	}
	cols, err := ttlColumns(s.schema)
	if err != nil {
		return err
	}
	current, err := s.Retention(ctx)
	if err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	onCluster := ""
	if s.schema.Cluster != "" {
		onCluster = " ON CLUSTER " + s.schema.Cluster
	}
	for _, table := range slices.Sorted(maps.Keys(cols)) {
		if current[table] == days {
			continue
		}
		alter := "ALTER TABLE " + s.table(table) + onCluster + " REMOVE TTL"
		if days > 0 {
			alter = "ALTER TABLE " + s.table(table) + onCluster + " MODIFY TTL toDateTime(" + cols[table] + ") + INTERVAL " + strconv.Itoa(days) + " DAY"
		}
		if err := s.b.exec(ctx, alter); err != nil {
			return fmt.Errorf("set the retention of %s to %d days: %w", table, days, err)
		}
		s.log.Info("retention changed", "table", table, "from_days", current[table], "to_days", days)
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
