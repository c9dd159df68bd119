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
	connect      func(argc int, argv []*byte) unsafe.Pointer // chdb_connection*
	closeConn    func(conn unsafe.Pointer)                   // chdb_close_conn(chdb_connection*)
	query        func(conn unsafe.Pointer, query, format string) unsafe.Pointer
	destroy      func(res unsafe.Pointer)
	resultBuffer func(res unsafe.Pointer) unsafe.Pointer
	resultLength func(res unsafe.Pointer) uintptr
	resultError  func(res unsafe.Pointer) string
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
		purego.RegisterLibFunc(&l.query, h, "chdb_query")
		purego.RegisterLibFunc(&l.destroy, h, "chdb_destroy_query_result")
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := s.lib.query(*(*unsafe.Pointer)(s.conn), query, format)
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
