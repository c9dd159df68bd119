package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"
)

// DefaultReadTimeout bounds every read from a server when neither Options nor the DSN set one.
const DefaultReadTimeout = 30 * time.Second

// OpenServer connects to a ClickHouse server over the native protocol. dsn is
// clickhouse://[user[:password]@]host:port[,host:port...][/database][?dial_timeout=..&read_timeout=..&secure=true];
// Options override what the DSN says. Servers older than 20.x (Debian's 18.16) cannot hold the
// production tables: OpenServer then switches to the legacy tables (legacy.go) and logs a
// warning. The schema is not touched: call Migrate.
func OpenServer(ctx context.Context, dsn string, o Options) (Store, error) {
	co, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open server store: %w", err)
	}
	if co.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("open server store: only the native protocol is supported (clickhouse:// or tcp://)")
	}
	if o.Database == "" && co.Auth.Database != "" && co.Auth.Database != "default" {
		o.Database = co.Auth.Database
	}
	// Tables are always qualified; the session database must exist before Migrate creates ours.
	co.Auth.Database = "default"
	if o.Username != "" {
		co.Auth.Username = o.Username
	}
	if o.Password != "" {
		co.Auth.Password = o.Password
	}
	if o.TLSConfig != nil {
		co.TLS = o.TLSConfig.Clone()
	} else if o.TLS || o.InsecureSkipVerify || o.CAFile != "" {
		if co.TLS == nil {
			co.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		co.TLS.InsecureSkipVerify = o.InsecureSkipVerify
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("open server store: read CA file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("open server store: CA file %s holds no PEM certificate", o.CAFile)
			}
			co.TLS.RootCAs = pool
		}
	}
	if o.DialTimeout > 0 {
		co.DialTimeout = o.DialTimeout
	} else if co.DialTimeout == 0 {
		co.DialTimeout = 10 * time.Second
	}
	if o.ReadTimeout > 0 {
		co.ReadTimeout = o.ReadTimeout
	} else if co.ReadTimeout == 0 {
		co.ReadTimeout = DefaultReadTimeout
	}
	if o.Logger != nil {
		co.Logger = o.Logger.With("component", "clickhouse-go")
	}
	conn, err := clickhouse.Open(co)
	if err != nil {
		return nil, fmt.Errorf("open server store %s: %w", strings.Join(co.Addr, ","), err)
	}
	v, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open server store %s: %w", strings.Join(co.Addr, ","), err)
	}
	if v.Version.Major < legacyBeforeMajor && !o.Legacy {
		o.Legacy = true
		if o.Logger != nil {
			o.Logger.Warn("old ClickHouse server: using the legacy tables (events and aliases only)", "version", v.String())
		}
	}
	st, err := newStore(&server{conn: conn, d: dialectOf(SchemaOptions{Legacy: o.Legacy}), cluster: o.Cluster != ""}, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return st, nil
}

// server is the clickhouse-go backend. Every insert names its columns (old servers need it)
// and goes through a native batch; values are appended column by column.
type server struct {
	conn driver.Conn
	d    dialect
	// cluster: writes go to Distributed tables, which return once rows are queued on the
	// receiving node unless told to wait; the Writer contract (durable on return) needs the wait.
	cluster bool
}

// insertContext carries the settings every insert of this server needs.
func (s *server) insertContext(ctx context.Context, settings clickhouse.Settings) context.Context {
	if s.cluster {
		if settings == nil {
			settings = clickhouse.Settings{}
		}
		settings["insert_distributed_sync"] = 1 // foreground: into the shards before returning
	}
	if len(settings) == 0 {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(settings))
}

func (s *server) exec(ctx context.Context, sql string) error { return s.conn.Exec(ctx, sql) }

func (s *server) query(ctx context.Context, sql string) (rows, error) {
	r, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s *server) close() error { return s.conn.Close() }

// dedupToken names a batch by its event ids: a server that supports insert_deduplication_token
// drops a retried identical batch as a whole (rows stay idempotent by event_id regardless).
func dedupToken(b *EventBatch) string {
	var d xxhash.Digest
	d.Reset()
	var buf [8]byte
	for i := range b.rows {
		binary.LittleEndian.PutUint64(buf[:], b.rows[i].ID)
		_, _ = d.Write(buf[:])
	}
	binary.BigEndian.PutUint64(buf[:], d.Sum64())
	return hex.EncodeToString(buf[:])
}

func (s *server) insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error {
	cols := strings.Replace(eventColumnList, "attributes", s.d.attributeColumns(), 1)
	var settings clickhouse.Settings
	if s.d.dedupsBatches() {
		settings = clickhouse.Settings{"insert_deduplication_token": dedupToken(b)}
	}
	ctx = s.insertContext(ctx, settings)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+cols+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, c := range eventColumnValues(b, now, s.d) {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return batch.Send()
}

func (s *server) insertAliases(ctx context.Context, table string, aliases []Alias) error {
	ctx = s.insertContext(ctx, nil)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(aliasColumns, ", ")+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, c := range aliasColumnValues(aliases, s.d) {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %s: %w", aliasColumns[i], err)
		}
	}
	return batch.Send()
}

func (s *server) insert(ctx context.Context, table string, cols []string, rs [][]any) error {
	ctx = s.insertContext(ctx, nil)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+")")
	if err != nil {
		return err
	}
	defer batch.Close()
	for _, r := range rs {
		if err := batch.Append(r...); err != nil {
			return err
		}
	}
	return batch.Send()
}
