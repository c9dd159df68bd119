package storage

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// OpenEmbedded opens the embedded store: the ClickHouse engine running in this process (chDB),
// its data in dir. libchdb.so is loaded on first use from CHDB_LIB_PATH, or else from
// ChDBDefaultPath (`make chdb` puts it there). chDB allows one data folder per process:
// stores opened on the same folder share the engine; another folder is an error until every
// store on the first is closed. The schema is not touched: call Migrate.
func OpenEmbedded(ctx context.Context, dir string, o Options) (Store, error) {
	if o.Cluster != "" {
		return nil, fmt.Errorf("open embedded store: cluster mode needs a server")
	}
	if o.Legacy {
		return nil, fmt.Errorf("open embedded store: the legacy tables are for old servers only")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sess, err := openSession(dir)
	if err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	st, err := newStore(&embedded{sess: sess}, o)
	if err != nil {
		sess.release()
		return nil, err
	}
	return st, nil
}

// embedded is the chDB backend. Inserts send JSONCompactEachRow inline with the statement.
type embedded struct {
	sess   *chdbSession
	closed sync.Once
}

func (e *embedded) exec(ctx context.Context, sql string) error {
	_, err := e.sess.run(ctx, sql, "CSV")
	return err
}

func (e *embedded) query(ctx context.Context, sql string) (rows, error) {
	// Binary rows: byte-exact strings, no text parsing (see binRows).
	out, err := e.sess.run(ctx, sql, "RowBinaryWithNamesAndTypes")
	if err != nil {
		return nil, err
	}
	return newBinRows(out)
}

func (e *embedded) close() error {
	e.closed.Do(e.sess.release)
	return nil
}

var eventColumnList = "event_id, tenant, flow, checkpoint, key, key_attr, time, ingest_time, trace_id, span_id, service, name, status, message, attributes"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (e *embedded) insertEvents(ctx context.Context, table string, events []CheckpointEvent, ids []uint64) error {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, "INSERT INTO "...)
	b = append(b, table...)
	b = append(b, " ("...)
	b = append(b, eventColumnList...)
	b = append(b, ") SETTINGS insert_deduplication_token = '"...)
	b = append(b, dedupToken(ids)...)
	b = append(b, "' FORMAT JSONCompactEachRow\n"...)
	for i := range events {
		b = appendEventJSON(b, &events[i], ids[i])
	}
	err := e.exec(ctx, string(b))
	*bp = b
	bufPool.Put(bp)
	return err
}

// appendEventJSON appends one row of checkpoint_events as a JSONCompactEachRow line.
func appendEventJSON(b []byte, ev *CheckpointEvent, id uint64) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, id, 10)
	for _, s := range [...]string{ev.Tenant, ev.Flow, ev.Checkpoint, ev.Key, ev.KeyAttr} {
		b = append(b, ',')
		b = appendJSONString(b, s)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, ev.Time.UnixNano(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, ev.IngestTime.UnixNano(), 10)
	for _, s := range [...]string{ev.TraceID, ev.SpanID, ev.Service, ev.Name, ev.Status, ev.Message} {
		b = append(b, ',')
		b = appendJSONString(b, s)
	}
	b = append(b, ",{"...)
	first := true
	for k, v := range ev.Attributes {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	b = append(b, "}]\n"...)
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (e *embedded) insert(ctx context.Context, table string, cols []string, rs [][]any) error {
	var b []byte
	b = append(b, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") FORMAT JSONCompactEachRow\n"...)
	for _, r := range rs {
		b = append(b, '[')
		for i, v := range r {
			if i > 0 {
				b = append(b, ',')
			}
			switch x := v.(type) {
			case string:
				b = appendJSONString(b, x)
			case uint32:
				b = strconv.AppendUint(b, uint64(x), 10)
			case uint64:
				b = strconv.AppendUint(b, x, 10)
			case int:
				b = strconv.AppendInt(b, int64(x), 10)
			case int64:
				b = strconv.AppendInt(b, x, 10)
			case time.Time:
				// Integer nanoseconds, as appendEventJSON writes them: every time column of the
				// embedded schema is DateTime64(9), and a decimal string of fewer than ten digits
				// of seconds (a time before 1973) does not parse.
				b = strconv.AppendInt(b, x.UnixNano(), 10)
			case float64:
				if math.IsNaN(x) || math.IsInf(x, 0) {
					return fmt.Errorf("insert into %s: non-finite number", table)
				}
				b = strconv.AppendFloat(b, x, 'g', -1, 64)
			default:
				return fmt.Errorf("insert into %s: unsupported value %T", table, v)
			}
		}
		b = append(b, "]\n"...)
	}
	return e.exec(ctx, string(b))
}
