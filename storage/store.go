package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"
)

// Options configure a Store on either transport.
type Options struct {
	// Database, Cluster, RetentionDays and Legacy shape the schema (see SchemaOptions).
	// The database and cluster of a server DSN are used when these are empty. RetentionDays
	// is the retention of the tables Migrate creates; the retention of existing tables
	// changes only through SetRetention.
	Database      string
	Cluster       string
	RetentionDays int
	Legacy        bool
	// Server transport only.
	Username string
	Password string
	// TLS enables TLS; CAFile (PEM) adds the authorities that sign the server's certificate
	// to the system's; InsecureSkipVerify is for tests only.
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	// TLSConfig, when set, is the connection's TLS as the caller built it (the collector's
	// exporter, from its configtls settings: client certificates, reloading, versions); TLS,
	// CAFile and InsecureSkipVerify are then not used.
	TLSConfig *tls.Config
	// DialTimeout and ReadTimeout bound connecting and every read from the server; a read
	// timeout is always set (default 30 s), so a stuck server fails a call instead of hanging.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// Logger receives debug lines per batch; default discards.
	Logger *slog.Logger
	// Now is the clock used for ingest times; default time.Now.
	Now func() time.Time
}

// ErrInvalid marks a write refused for bad input (nothing of the call was written); retrying
// the same input fails the same way.
var ErrInvalid = errors.New("invalid rows")

// backend is what a transport provides: statements, queries and batch inserts.
type backend interface {
	exec(ctx context.Context, sql string) error
	query(ctx context.Context, sql string) (rows, error)
	// insertEvents writes one batch of checkpoint events; rows without an ingest time get now
	// (Unix nanoseconds).
	insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error
	// insertAliases writes alias rows.
	insertAliases(ctx context.Context, table string, aliases []Alias) error
	// insert writes rows of plain values (string, uint32, time.Time, ...) into cols.
	insert(ctx context.Context, table string, cols []string, rows [][]any) error
	close() error
}

// store implements Store over a backend; the SQL is the same on both transports.
type store struct {
	b      backend
	schema SchemaOptions
	db     string
	d      dialect
	// cluster: the tables are Distributed (see global).
	cluster bool
	log     *slog.Logger
	now     func() time.Time
}

func newStore(b backend, o Options) (*store, error) {
	so, err := SchemaOptions{Database: o.Database, Cluster: o.Cluster, RetentionDays: o.RetentionDays, Legacy: o.Legacy}.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &store{b: b, schema: so, db: so.Database, d: dialectOf(so), cluster: so.Cluster != "", log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func (s *store) table(name string) string { return s.db + "." + name }

func (s *store) Close() error { return s.b.close() }

// dialectOf is the dialect of the tables o describes.
func dialectOf(o SchemaOptions) dialect {
	if o.Legacy {
		return legacyTables{}
	}
	return productionTables{}
}

// global prefixes IN and JOIN over a subquery of another Distributed table, so each shard
// does not run the subquery on every shard again (ClickHouse refuses that by default).
func (s *store) global() string {
	if s.cluster {
		return "GLOBAL "
	}
	return ""
}

// each runs q and calls fn for every row.
func (s *store) each(ctx context.Context, q string, fn func(rows) error) error {
	r, err := s.b.query(ctx, q)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		if err := fn(r); err != nil {
			return err
		}
	}
	return r.Err()
}

// unixNano is the inverse of timeValue: the epoch reads back as the zero time.
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
