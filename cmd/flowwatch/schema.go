package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/flowwatch/flowwatch/storage"
)

func init() {
	register("schema", "print or apply the ClickHouse DDL: flowwatch schema [--cluster NAME] [--apply DSN]", runSchema)
}

const schemaUsage = `usage: flowwatch schema [--database DB] [--cluster NAME] [--retention-days N] [--apply DSN]

Prints the DDL of the store (every migration, in order). With --apply it applies the
migrations not applied yet instead (twice is a no-op). DSN is a server,
clickhouse://[user:password@]host:9000[/database], or the embedded store's folder, chdb:PATH.`

// runSchema prints the DDL (exit 0), or applies it with --apply (exit 0, or 1 on failure).
func runSchema(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, schemaUsage) }
	database := fs.String("database", "", "database holding the tables (default "+storage.DefaultDatabase+", or the DSN's)")
	cluster := fs.String("cluster", "", "generate the cluster DDL: ON CLUSTER NAME, Replicated*MergeTree local tables and Distributed tables")
	retention := fs.Int("retention-days", 30, "drop rows older than this many days (0 keeps them)")
	apply := fs.String("apply", "", "apply the migrations to this store instead of printing them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flowwatch schema: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *retention < 0 {
		fmt.Fprintln(stderr, "flowwatch schema: --retention-days must not be negative")
		return 2
	}
	if *apply == "" {
		db := *database
		ddl, err := storage.DDL(storage.SchemaOptions{Database: db, Cluster: *cluster, RetentionDays: *retention})
		if err != nil {
			fmt.Fprintf(stderr, "flowwatch schema: %v\n", err)
			return 2
		}
		fmt.Fprint(stdout, ddl)
		return 0
	}

	o := storage.Options{Database: *database, Cluster: *cluster, RetentionDays: *retention}
	var (
		s   storage.Store
		err error
	)
	if dir, ok := strings.CutPrefix(*apply, "chdb:"); ok {
		s, err = storage.OpenEmbedded(ctx, dir, o)
	} else {
		s, err = storage.OpenServer(ctx, *apply, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch schema: %v\n", err)
		return 1
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		fmt.Fprintf(stderr, "flowwatch schema: %v\n", err)
		return 1
	}
	// The schema step owns the retention: it makes existing tables match too.
	switch err := s.SetRetention(ctx, *retention); {
	case errors.Is(err, storage.ErrUnsupported):
		fmt.Fprintf(stderr, "flowwatch schema: %v: the tables keep every row\n", err)
	case err != nil:
		fmt.Fprintf(stderr, "flowwatch schema: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "schema up to date")
	return 0
}
