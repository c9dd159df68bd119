package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

func TestSchemaPrintsClusterDDL(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, dispatch(context.Background(), []string{"schema", "--cluster", "flowwatch"}, &out, &errb), errb.String())
	golden, err := os.ReadFile(filepath.Join("..", "..", "storage", "testdata", "cluster.golden.sql"))
	require.NoError(t, err)
	assert.Equal(t, string(golden), out.String())
}

func TestSchemaUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"schema", "--cluster", "no-dashes"},
		{"schema", "--retention-days", "-1"},
		{"schema", "extra"},
		{"schema", "--nope"},
	} {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, dispatch(context.Background(), args, &out, &errb), "%v", args)
		assert.NotEmpty(t, errb.String())
	}
}

// --apply against a real (old) server: the legacy tables, twice is a no-op.
func TestSchemaApply(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	for i := 0; i < 2; i++ {
		var out, errb bytes.Buffer
		require.Equal(t, 0, dispatch(context.Background(), []string{"schema", "--database", "applied", "--apply", ch.DSN()}, &out, &errb), errb.String())
		assert.Equal(t, "schema up to date\n", out.String())
	}
	s, err := storage.OpenServer(context.Background(), ch.DSN(), storage.Options{Database: "applied"})
	require.NoError(t, err)
	defer s.Close()
	evs, err := s.EventsSince(context.Background(), time.Time{}, 10)
	require.NoError(t, err)
	assert.Empty(t, evs)

	var out, errb bytes.Buffer
	assert.Equal(t, 1, dispatch(context.Background(), []string{"schema", "--apply", "clickhouse://127.0.0.1:1"}, &out, &errb))
	assert.Contains(t, errb.String(), "flowwatch schema:")
}
