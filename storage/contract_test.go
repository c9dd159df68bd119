package storage_test

import (
	"context"
	"os"
	"testing"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// The storage contract (storagetest.Run) on every real store here: the embedded engine, the
// same with every Scan checked against the server transport's scanner, Debian's ClickHouse
// 18.16 (the legacy tables, what they serve), and a modern server when
// FLOWWATCH_CLICKHOUSE_DSN names one. The in-memory store runs it in package storagetest.
func TestContract(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		storagetest.Run(t, storagetest.Target{Open: func(t *testing.T, db string) storage.Store {
			return storage.OpenEmbeddedForTest(t, db)
		}})
	})

	t.Run("embedded-scan-types", func(t *testing.T) {
		checked := map[string]bool{}
		storagetest.Run(t, storagetest.Target{Open: func(t *testing.T, db string) storage.Store {
			return storage.CheckScanTypes(t, storage.OpenEmbeddedForTest(t, db), checked)
		}})
		if len(checked) < 7 {
			t.Fatalf("only %d column/destination pairs checked: %v", len(checked), checked)
		}
		t.Logf("%d column type / destination pairs checked", len(checked))
	})

	t.Run("server-18.16", func(t *testing.T) {
		ch := testsvc.ClickHouseT(t)
		storagetest.Run(t, storagetest.Target{Legacy: true, Open: func(t *testing.T, db string) storage.Store {
			s := openServer(t, ch.DSN(), db)
			if !storage.IsLegacy(s) {
				t.Fatal("an 18.16 server was not given the legacy tables")
			}
			return s
		}})
	})

	dsn := os.Getenv("FLOWWATCH_CLICKHOUSE_DSN")
	if dsn == "" {
		t.Log("FLOWWATCH_CLICKHOUSE_DSN not set: no modern server to run the contract on")
		return
	}
	t.Run("server", func(t *testing.T) {
		storagetest.Run(t, storagetest.Target{Open: func(t *testing.T, db string) storage.Store {
			s := openServer(t, dsn, db)
			if storage.IsLegacy(s) {
				t.Fatal("FLOWWATCH_CLICKHOUSE_DSN must point at ClickHouse >= 24.8; the old server has its own target")
			}
			return s
		}})
	})
}

// openServer opens a server store on database db, empty and migrated, closed when t ends.
func openServer(t *testing.T, dsn, db string) storage.Store {
	t.Helper()
	ctx := context.Background()
	s, err := storage.OpenServer(ctx, dsn, storage.Options{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := storage.Exec(ctx, s, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
