package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ChDBVersion is the chDB release whose libchdb.so the embedded transport loads; `make chdb`
// fetches it into ChDBDefaultPath.
const ChDBVersion = "26.7.3-stable.1"

// ChDBDefaultPath is where `make chdb` puts libchdb.so: the user cache folder
// ($XDG_CACHE_HOME or ~/.cache) under flowwatch/chdb/<version>/.
func ChDBDefaultPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "flowwatch", "chdb", ChDBVersion, "libchdb.so")
}

// chdbLib holds the few chDB C functions the embedded transport needs, bound at first use
// (never in init: a binary that does not use the embedded store must not need the library).
type chdbLib struct {
	connect   func(argc int, argv []*byte) unsafe.Pointer // chdb_connection*
	closeConn func(conn unsafe.Pointer)                   // chdb_close_conn(chdb_connection*)
	// queryN is chdb_query_n: the query by pointer and length, so that it may hold binary
	// data (an INSERT ... FORMAT RowBinary) and is not copied into a C string.
	queryN  func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr) unsafe.Pointer
	destroy func(res unsafe.Pointer)
	// The insert stream (chdb_stream_insert_n and friends): an INSERT whose data is appended
	// in chunks, of any size and binary-safe, instead of following the statement inline.
	streamInsert  func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr) unsafe.Pointer
	streamAppend  func(stream unsafe.Pointer, data *byte, n uintptr) int32
	streamDone    func(stream unsafe.Pointer) unsafe.Pointer
	streamError   func(stream unsafe.Pointer) string
	streamDestroy func(stream unsafe.Pointer)
	resultBuffer  func(res unsafe.Pointer) unsafe.Pointer
	resultLength  func(res unsafe.Pointer) uintptr
	resultError   func(res unsafe.Pointer) string
}

var (
	libOnce sync.Once
	lib     *chdbLib
	libErr  error
)

// loadChDB opens libchdb.so from CHDB_LIB_PATH, or else from ChDBDefaultPath.
func loadChDB() (*chdbLib, error) {
	libOnce.Do(func() {
		path := os.Getenv("CHDB_LIB_PATH")
		if path == "" {
			path = ChDBDefaultPath()
		}
		if _, err := os.Stat(path); err != nil {
			libErr = fmt.Errorf("load chDB: libchdb.so not found at %q (run `make chdb`, or set CHDB_LIB_PATH): %w", path, err)
			return
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			libErr = fmt.Errorf("load chDB from %q (run `make chdb` to fetch a good copy): %w", path, err)
			return
		}
		l := &chdbLib{}
		defer func() {
			if r := recover(); r != nil {
				libErr = fmt.Errorf("load chDB from %q: missing symbol: %v", path, r)
			}
		}()
		purego.RegisterLibFunc(&l.connect, h, "chdb_connect")
		purego.RegisterLibFunc(&l.closeConn, h, "chdb_close_conn")
		purego.RegisterLibFunc(&l.queryN, h, "chdb_query_n")
		purego.RegisterLibFunc(&l.destroy, h, "chdb_destroy_query_result")
		purego.RegisterLibFunc(&l.streamInsert, h, "chdb_stream_insert_n")
		purego.RegisterLibFunc(&l.streamAppend, h, "chdb_stream_append")
		purego.RegisterLibFunc(&l.streamDone, h, "chdb_stream_done")
		purego.RegisterLibFunc(&l.streamError, h, "chdb_stream_insert_error")
		purego.RegisterLibFunc(&l.streamDestroy, h, "chdb_destroy_insert_stream")
		purego.RegisterLibFunc(&l.resultBuffer, h, "chdb_result_buffer")
		purego.RegisterLibFunc(&l.resultLength, h, "chdb_result_length")
		purego.RegisterLibFunc(&l.resultError, h, "chdb_result_error")
		lib = l
	})
	return lib, libErr
}

// chdbSession is the process's one chDB connection: the engine allows a single active
// connection (one data folder) per process, so stores opened on the same folder share it.
type chdbSession struct {
	lib  *chdbLib
	dir  string
	conn unsafe.Pointer // chdb_connection*
	refs int
	// busy: statements share the connection (read lock); an insert stream has it alone
	// (write lock), as chDB runs no statement while a stream is open.
	busy sync.RWMutex
}

var (
	sessionMu sync.Mutex
	session   *chdbSession
)

// openSession opens (or shares) the chDB connection on dir.
func openSession(dir string) (*chdbSession, error) {
	if dir == "" {
		return nil, errors.New("open chDB session: a data folder is required")
	}
	l, err := loadChDB()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open chDB session: %w", err)
	}
	sessionMu.Lock()
	defer sessionMu.Unlock()
	if session != nil {
		if session.dir != abs {
			return nil, fmt.Errorf("open chDB session on %s: chDB allows one data folder per process and %s is open", abs, session.dir)
		}
		session.refs++
		return session, nil
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("open chDB session: create data folder: %w", err)
	}
	argv := []string{"clickhouse", "--path=" + abs}
	cargv := make([]*byte, len(argv))
	for i, a := range argv {
		b := append([]byte(a), 0)
		cargv[i] = &b[0]
	}
	conn := l.connect(len(cargv), cargv)
	runtime.KeepAlive(cargv)
	if conn == nil || *(*unsafe.Pointer)(conn) == nil {
		return nil, fmt.Errorf("open chDB session on %s: chdb_connect failed", abs)
	}
	session = &chdbSession{lib: l, dir: abs, conn: conn, refs: 1}
	return session, nil
}

func (s *chdbSession) release() {
	sessionMu.Lock()
	defer sessionMu.Unlock()
	s.refs--
	if s.refs == 0 {
		s.lib.closeConn(s.conn)
		if session == s {
			session = nil
		}
	}
}

// run executes one query and returns its output in format (a copy: the C buffer is freed).
// chDB cannot interrupt a running query: ctx is checked before it starts.
func (s *chdbSession) run(ctx context.Context, query, format string) ([]byte, error) {
	return s.runBytes(ctx, unsafe.Slice(unsafe.StringData(query), len(query)), format)
}

// runBytes is run with the query as bytes, which may be binary; chDB reads them in place.
func (s *chdbSession) runBytes(ctx context.Context, query []byte, format string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(query) == 0 {
		return nil, errors.New("empty query")
	}
	s.busy.RLock()
	defer s.busy.RUnlock()
	res := s.lib.queryN(*(*unsafe.Pointer)(s.conn), &query[0], uintptr(len(query)), unsafe.StringData(format), uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(format)
	if res == nil {
		return nil, nil
	}
	defer s.lib.destroy(res)
	if msg := s.lib.resultError(res); msg != "" {
		return nil, errors.New(msg)
	}
	n := s.lib.resultLength(res)
	buf := s.lib.resultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	out := make([]byte, n)
	copy(out, unsafe.Slice((*byte)(buf), n))
	return out, nil
}

// insert runs query (an INSERT without FORMAT or data) with data in format, through an insert
// stream: the data is handed over as it is, whatever its size or bytes. chDB cannot interrupt
// an insert: ctx is checked before it starts.
func (s *chdbSession) insert(ctx context.Context, query, format string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := s.lib
	s.busy.Lock()
	defer s.busy.Unlock()
	st := l.streamInsert(*(*unsafe.Pointer)(s.conn), unsafe.StringData(query), uintptr(len(query)), unsafe.StringData(format), uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(format)
	if st == nil {
		return errors.New("chdb_stream_insert failed")
	}
	defer l.streamDestroy(st)
	if msg := l.streamError(st); msg != "" {
		return errors.New(msg)
	}
	if len(data) > 0 {
		ok := l.streamAppend(st, &data[0], uintptr(len(data)))
		runtime.KeepAlive(data)
		if ok != 0 {
			if msg := l.streamError(st); msg != "" {
				return errors.New(msg)
			}
			return errors.New("chdb_stream_append failed")
		}
	}
	res := l.streamDone(st)
	if res == nil {
		if msg := l.streamError(st); msg != "" {
			return errors.New(msg)
		}
		return errors.New("chdb_stream_done failed")
	}
	defer l.destroy(res)
	if msg := l.resultError(res); msg != "" {
		return errors.New(msg)
	}
	return nil
}
