package storage

import (
	"context"
	"fmt"
	"testing"
)

func TestMigrateTwiceRecordsEachMigrationOnce(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "migrate_twice").(*store)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := Migrations(s.schema)
	if len(applied) != len(ms) {
		t.Fatalf("applied %v, want %d migrations", applied, len(ms))
	}
	var n uint64
	if err := s.each(ctx, "SELECT count() FROM "+s.table("schema_migrations"), func(r rows) error { return r.Scan(&n) }); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows after two migrations, want %d", n, len(ms))
	}
}

// ttls returns each table's TTL as column+days.
func ttls(t *testing.T, s *store) string {
	t.Helper()
	out := map[string]string{}
	q := "SELECT name, create_table_query FROM system.tables WHERE database = " + quote(s.db)
	if err := s.each(context.Background(), q, func(r rows) error {
		var name, create string
		if err := r.Scan(&name, &create); err != nil {
			return err
		}
		if m := ttlCurrentRe.FindStringSubmatch(create); m != nil {
			out[name] = m[1] + "+" + m[2]
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

// The tables Migrate creates take Options.RetentionDays; Migrate never changes the retention
// of tables that exist, whatever its options say (SetRetention does).
func TestMigrateCreatesWithRetentionAndNeverChangesIt(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "retention_change").(*store) // created with 30 days
	want30 := "map[alerts:time+30 aliases:time+30 checkpoint_events:time+30 commands:time+30 family_links:time+30 instance_states:updated_at+30]"
	if got := ttls(t, s); got != want30 {
		t.Fatalf("TTLs at creation = %s", got)
	}
	if got := fmt.Sprint(RetainedTables()); got != "[alerts aliases checkpoint_events commands family_links instance_states]" {
		t.Fatalf("RetainedTables = %s", got)
	}
	s.schema.RetentionDays = 0 // a reader that opened the store with no retention of its own
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ttls(t, s); got != want30 {
		t.Fatalf("TTLs after a Migrate with retention 0 = %s", got)
	}
	if err := s.SetRetention(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if got := ttls(t, s); got != "map[alerts:time+7 aliases:time+7 checkpoint_events:time+7 commands:time+7 family_links:time+7 instance_states:updated_at+7]" {
		t.Fatalf("TTLs after SetRetention(7) = %s", got)
	}
}
