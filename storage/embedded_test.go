package storage

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// chDB allows one data folder per process: every embedded test shares this one and keeps to
// its own database.
var embeddedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flowwatch-chdb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	embeddedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func openEmbedded(t testing.TB, db string) Store {
	t.Helper()
	ctx := context.Background()
	s, err := OpenEmbedded(ctx, embeddedDir, Options{Database: db, RetentionDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.(*store).b.exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEmbeddedSuite(t *testing.T) {
	runSuite(t, func(t *testing.T, db string) Store { return openEmbedded(t, db) })
}

func TestEmbeddedOtherFolderRefused(t *testing.T) {
	s := openEmbedded(t, "other_folder")
	_ = s
	_, err := OpenEmbedded(context.Background(), t.TempDir(), Options{})
	if err == nil {
		t.Fatal("a second data folder in one process was accepted")
	}
}
