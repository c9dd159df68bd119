package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testctx"
	"github.com/flowwatch/flowwatch/storage"
)

// TestMain lets a test run this package's binary as a real flowwatch process (to kill it with
// SIGKILL, say): with FLOWWATCH_TEST_CHILD=main the test binary is flowwatch, its arguments the
// command line; with FLOWWATCH_TEST_CHILD=seed it writes fixture events into an embedded store,
// and with detector-store it opens one as the detector does and prints the tables' retention
// (chDB opens one data folder per process, so the test process never opens the child's).
func TestMain(m *testing.M) {
	switch os.Getenv("FLOWWATCH_TEST_CHILD") {
	case "main":
		sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		var ctx context.Context = sigCtx
		if ready := os.Getenv("FLOWWATCH_TEST_READY"); ready != "" {
			// The file appears when the command first checks its context: signals are
			// caught and the work is under way.
			ctx = &testctx.OnFirstCheck{Context: sigCtx, Do: func() {
				if err := os.WriteFile(ready, nil, 0o600); err != nil {
					fmt.Fprintln(os.Stderr, "test child: ready file:", err)
				}
			}}
		}
		code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case "detector-store":
		if err := openAsDetector(os.Args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "detector-store:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "seed":
		if err := seedStore(os.Args[1], os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a flowwatch process started from the test binary.
type child struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild runs `flowwatch ARGS...` as a child process; it is killed at the end of the test.
func startChild(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), out: &lockedBuffer{}}
	c.cmd.Env = append(os.Environ(), "FLOWWATCH_TEST_CHILD="+mode)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

// seedStore writes the fixture of TestDetectorKilledMidDelivery: n payouts requested ten
// minutes ago, none sent (so each is stuck, its on_stuck action due).
func seedStore(dir, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := storage.OpenEmbedded(ctx, dir, storage.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	at := time.Now().Add(-10 * time.Minute)
	evs := make([]storage.CheckpointEvent, 0, n)
	for i := 0; i < n; i++ {
		evs = append(evs, storage.CheckpointEvent{Tenant: "default", Flow: "payout", Checkpoint: "requested",
			Key: fmt.Sprintf("p-%04d", i), KeyAttr: "payout.id", Time: at, IngestTime: at, Service: "payouts",
			Name: "request", Status: "ok", TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1)})
	}
	return st.WriteEvents(ctx, evs)
}
