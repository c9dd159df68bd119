package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// openAsDetector opens the embedded store in dir as `flowwatch detector` does (creating the
// schema, as its embedded store always does) and prints each table's retention as JSON.
func openAsDetector(dir string) error {
	ctx := context.Background()
	st, err := openStore(ctx, detector.StoreConfig{Embedded: dir, CreateSchema: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := st.Retention(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// runChild runs the test binary as a child in mode and returns its output, failing the test
// unless it exits 0.
func runChild(t *testing.T, mode string, args ...string) string {
	t.Helper()
	c := startChild(t, mode, args...)
	err := c.cmd.Wait()
	require.NoError(t, err, "flowwatch %v: %s", args, c.out.String())
	return c.out.String()
}

// Retention has one owner, the schema step: a detector opening the store (with the defaults,
// which once removed the TTL) leaves it as the schema set it; `flowwatch schema --apply`
// changes it.
func TestRetentionHasOneOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	retentionOf := func() map[string]int {
		var r map[string]int
		out := runChild(t, "detector-store", dir)
		require.NoError(t, json.Unmarshal([]byte(out), &r), out)
		return r
	}
	runChild(t, "main", "schema", "--retention-days", "7", "--apply", "chdb:"+dir)
	assert.Equal(t, storagetest.EveryTable(7), retentionOf(), "a detector that opened the store changed its retention")
	assert.Equal(t, storagetest.EveryTable(7), retentionOf(), "a second detector start changed the store's retention")
	runChild(t, "main", "schema", "--retention-days", "30", "--apply", "chdb:"+dir)
	assert.Equal(t, storagetest.EveryTable(30), retentionOf(), "the schema step sets the retention of existing tables")
}

func TestRunRetentionFlag(t *testing.T) {
	o, err := parseRunFlags([]string{"--retention", "240h"}, os.Stderr)
	require.NoError(t, err)
	conf := collectorConfig(o, "flows", "data")
	assert.Contains(t, conf, "retention: "+(240*time.Hour).String())
	o, err = parseRunFlags(nil, os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, o.retention, "the flow exporter's default")
	for _, bad := range []string{"25h", "-24h"} {
		_, err := parseRunFlags([]string{"--retention", bad}, os.Stderr)
		require.Error(t, err, bad)
		assert.True(t, strings.Contains(err.Error(), "--retention"), fmt.Sprint(err))
	}
}

// A detector configuration that still sets a retention is refused with what to do instead.
func TestDetectorConfigRefusesRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detector.yaml")
	require.NoError(t, os.WriteFile(path, []byte("store: { embedded: ./data, retention_days: 7 }\nflows: [./flows]\n"), 0o600))
	_, err := detector.LoadConfig(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "'store.retention_days'")
	assert.Contains(t, err.Error(), "flowwatch schema --apply --retention-days")
}
