package api

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// chDB allows one data folder per process: every test of the package that reads the real
// embedded store shares this one, each in a database of its own.
var (
	embeddedDir string
	embeddedDBs atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testsvc.RunInChDBFolder(m, "flowwatch-api-chdb-", &embeddedDir))
}

// openEmbedded opens a fresh, migrated database on the embedded store (needs libchdb.so:
// `make chdb`).
func openEmbedded(t testing.TB) storage.Store {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("api_test_%d", embeddedDBs.Add(1))
	s, err := storage.OpenEmbedded(ctx, embeddedDir, storage.Options{Database: db})
	if err != nil {
		t.Fatalf("open the embedded store (run `make chdb` first): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", db, err)
	}
	return s
}
