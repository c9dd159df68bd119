package storage

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
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

// embedded is the chDB backend. Events and aliases are inserted as Native blocks through an
// insert stream; the other tables, written rarely, as JSONCompactEachRow.
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

var nativePool = sync.Pool{New: func() any { return &nativeWriter{buf: make([]byte, 0, 1<<20)} }}

// insertEvents sends the batch as one Native block through an insert stream (see native.go):
// strings go in as their bytes, whatever they hold, and the engine parses no text.
func (e *embedded) insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error {
	w := nativePool.Get().(*nativeWriter)
	defer nativePool.Put(w)
	w.buf = w.buf[:0]
	appendNativeEvents(w, b, now)
	return e.sess.insert(ctx, "INSERT INTO "+table+" ("+eventColumnList+") SETTINGS insert_deduplication_token = '"+dedupToken(b)+"'", "Native", w.buf)
}

// insertAliases sends the aliases as one Native block (see insertEvents).
func (e *embedded) insertAliases(ctx context.Context, table string, aliases []Alias) error {
	w := nativePool.Get().(*nativeWriter)
	defer nativePool.Put(w)
	w.buf = w.buf[:0]
	appendNativeAliases(w, aliases)
	return e.sess.insert(ctx, "INSERT INTO "+table+" ("+strings.Join(aliasColumns, ", ")+")", "Native", w.buf)
}

func (e *embedded) insert(ctx context.Context, table string, cols []string, rs [][]any) error {
	w := nativePool.Get().(*nativeWriter)
	defer nativePool.Put(w)
	w.buf = w.buf[:0]
	ok, err := appendNativePlain(w, table, cols, rs)
	if err != nil {
		return err
	}
	if ok {
		return e.sess.insert(ctx, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+")", "Native", w.buf)
	}
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
				b = AppendJSONString(b, x)
			case uint32:
				b = strconv.AppendUint(b, uint64(x), 10)
			case uint64:
				b = strconv.AppendUint(b, x, 10)
			case int:
				b = strconv.AppendInt(b, int64(x), 10)
			case int64:
				b = strconv.AppendInt(b, x, 10)
			case time.Time:
				// Integer nanoseconds, as the RowBinary rows hold them: every time column of the
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
