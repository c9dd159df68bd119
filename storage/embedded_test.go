package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// chDB allows one data folder per process: every embedded test shares this one and keeps to
// its own database.
var embeddedDir string

func TestMain(m *testing.M) {
	os.Exit(testsvc.RunInChDBFolder(m, "flowwatch-chdb-", &embeddedDir))
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

func TestEmbeddedOtherFolderRefused(t *testing.T) {
	s := openEmbedded(t, "other_folder")
	_ = s
	_, err := OpenEmbedded(context.Background(), t.TempDir(), Options{})
	if err == nil {
		t.Fatal("a second data folder in one process was accepted")
	}
}

// A missing library is a clear error that says what to do; the process does not die. The
// library loads once per process, so the check runs in a child process of this test binary.
func TestMissingLibrary(t *testing.T) {
	if os.Getenv("FLOWWATCH_MISSING_LIB_CHILD") == "1" {
		_, err := OpenEmbedded(context.Background(), t.TempDir(), Options{})
		if err == nil {
			t.Fatal("opened the embedded store without its library")
		}
		fmt.Println(err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingLibrary$", "-test.v")
	cmd.Env = append(os.Environ(), "FLOWWATCH_MISSING_LIB_CHILD=1", "CHDB_LIB_PATH=/nonexistent/libchdb.so")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	t.Logf("child: %s", strings.TrimSpace(string(out)))
	for _, want := range []string{"/nonexistent/libchdb.so", "run `make chdb`", "CHDB_LIB_PATH"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error output lacks %q:\n%s", want, out)
		}
	}
}
