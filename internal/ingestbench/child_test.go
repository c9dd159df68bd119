package ingestbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// collector is a `flowwatch collector` child process: started, stopped or killed by its PID,
// restarted on the same configuration and addresses, its CPU time, memory and metrics read
// from outside.
type collector struct {
	bin  string
	args []string // after "collector"
	dir  string   // its folder: configuration, log, queue, store
	log  string   // its stderr and stdout, every run appended

	// The loopback addresses it listens on (the configuration must use them).
	otlp, otlpHTTP, health, pprof, zpages string
	metricsPort                           int

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	stopped bool
}

// newCollector chooses the child's addresses and folder; start runs it.
func newCollector(tb testing.TB, bin string) *collector {
	tb.Helper()
	ports := freePorts(tb, 6)
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])) }
	dir := tb.TempDir()
	return &collector{bin: bin, dir: dir, log: filepath.Join(dir, "collector.log"),
		otlp: addr(0), otlpHTTP: addr(1), health: addr(2), pprof: addr(3), zpages: addr(4), metricsPort: ports[5]}
}

// metricsURL is the child's Prometheus endpoint.
func (c *collector) metricsURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(c.metricsPort) + "/metrics"
}

// start runs the child with args and waits until its health check answers.
func (c *collector) start(tb testing.TB, args ...string) {
	tb.Helper()
	c.args = args
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(tb, err)
	c.cmd = exec.Command(c.bin, append([]string{"collector"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	require.NoError(tb, c.cmd.Start(), "start the collector")
	c.exited, c.stopped = make(chan struct{}), false
	exited := c.exited
	go func() {
		c.waitErr = c.cmd.Wait()
		logf.Close()
		close(exited)
	}()
	tb.Cleanup(func() { c.stop(tb) })

	health := "http://" + c.health + "/"
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			tb.Fatalf("the collector exited at start (%v):\n%s", c.waitErr, c.logTail())
		case <-time.After(50 * time.Millisecond): // polling the health check
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the collector is not healthy after 90s:\n%s", c.logTail())
		}
	}
}

// restart runs the child again with the same arguments.
func (c *collector) restart(tb testing.TB) { c.start(tb, c.args...) }

// stop ends the collector by its PID: SIGTERM, then SIGKILL if it has not exited in 30s.
func (c *collector) stop(tb testing.TB) {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		tb.Errorf("the collector did not stop on SIGTERM within 30s:\n%s", c.logTail())
	}
}

// kill ends the collector at once (SIGKILL by its PID), as a crash would.
func (c *collector) kill(tb testing.TB) {
	tb.Helper()
	c.stopped = true
	require.NoError(tb, c.cmd.Process.Signal(syscall.SIGKILL))
	<-c.exited
}

func (c *collector) logTail() string {
	data, _ := os.ReadFile(c.log)
	if len(data) > 8000 {
		data = data[len(data)-8000:]
	}
	return string(data)
}

// cpuTimes is CPU time (user+system) the collector process has used so far: total, all its
// threads, exited ones included; native, its live threads that are not Go's — the embedded
// store's own threads (insert pipeline, parsing, merges), which name themselves, while Go
// threads keep the process's name. Threads that exited take their time out of native, which
// is therefore a lower bound.
type cpuTimes struct {
	total, native time.Duration
}

func (a cpuTimes) add(b cpuTimes) cpuTimes { return cpuTimes{a.total + b.total, a.native + b.native} }
func (a cpuTimes) sub(b cpuTimes) cpuTimes { return cpuTimes{a.total - b.total, a.native - b.native} }

func (c *collector) cpuTimes() (cpuTimes, error) {
	proc := fmt.Sprintf("/proc/%d", c.cmd.Process.Pid)
	total, err := statCPU(filepath.Join(proc, "stat"))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read the collector's CPU time: %w", err)
	}
	name, err := os.ReadFile(filepath.Join(proc, "comm"))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read the collector's name: %w", err)
	}
	tasks, err := os.ReadDir(filepath.Join(proc, "task"))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("list the collector's threads: %w", err)
	}
	t := cpuTimes{total: total}
	for _, task := range tasks {
		dir := filepath.Join(proc, "task", task.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || string(comm) == string(name) {
			continue // gone, or a Go thread
		}
		if d, err := statCPU(filepath.Join(dir, "stat")); err == nil {
			t.native += d
		}
	}
	return t, nil
}

// statCPU reads utime+stime from a /proc stat file (a process's covers all its threads).
func statCPU(path string) (time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses, which may hold spaces): state is
	// field 3, utime 14 and stime 15.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat %q", s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse stat %q: %w", s, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// settle waits until the collector has used no CPU for quiet (the store's merges done), or
// for at most limit.
func (c *collector) settle(ctx context.Context, quiet, limit time.Duration) error {
	const poll = 100 * time.Millisecond
	deadline := time.Now().Add(limit)
	last, err := c.cpuTimes()
	if err != nil {
		return err
	}
	still := time.Duration(0)
	for still < quiet && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.exited:
			return fmt.Errorf("the collector exited (%v):\n%s", c.waitErr, c.logTail())
		case <-time.After(poll):
		}
		now, err := c.cpuTimes()
		if err != nil {
			return err
		}
		// One tick of slack: an idle collector still wakes up now and then.
		if now.total-last.total <= time.Second/clockTicks {
			still += poll
		} else {
			still = 0
		}
		last = now
	}
	return nil
}

// profile starts a CPU profile of the collector when INGESTBENCH_CPUPROFILE names a folder;
// the returned func waits for it and saves it as <folder>/<name>.pprof.
func (c *collector) profile(tb testing.TB, name string) func() {
	dir := os.Getenv("INGESTBENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	seconds := envInt(tb, "INGESTBENCH_PROFILE_SECONDS", 10)
	done := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", c.pprof, seconds)
		resp, err := http.Get(url)
		if err != nil {
			done <- fmt.Errorf("get a CPU profile: %w", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, data)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), data, 0o644)
		}
		if err != nil {
			err = fmt.Errorf("save a CPU profile: %w", err)
		}
		done <- err
	}()
	return func() { require.NoError(tb, <-done) }
}

func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// The flowwatch binary is built once per test process (unless FLOWWATCH_BIN names one) into a
// folder TestMain removes.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func flowwatchBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("FLOWWATCH_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "ingestbench-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "flowwatch")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/flowwatch/flowwatch/cmd/flowwatch").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build flowwatch: %w\n%s", err, out)
		}
	})
	require.NoError(tb, binErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// rss returns the child's resident memory now and its peak so far (VmRSS, VmHWM).
func (c *collector) rss() (now, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read the collector's memory: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %q: %w", line, err)
		}
		switch f[0] {
		case "VmRSS:":
			now = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return now, peak, nil
}

// The collector's own telemetry (Prometheus names; v0.165 exposes counters without the
// _total suffix, which parseMetrics drops if present).
const (
	sentItemsMetric     = "otelcol_exporter_sent_spans"
	failedItemsMetric   = "otelcol_exporter_send_failed_spans"
	acceptedSpansMetric = "otelcol_receiver_accepted_spans"
	refusedSpansMetric  = "otelcol_receiver_refused_spans"
)

// waitSent waits until the flow exporter reports want items (rows) sent: written to the
// store without error. It polls the collector's Prometheus endpoint only while waiting.
func (c *collector) waitSent(ctx context.Context, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.scrape(ctx, `exporter="flow"`)
		if err != nil {
			return err
		}
		sent := int(m[sentItemsMetric])
		if failed := m[failedItemsMetric]; failed > 0 {
			return fmt.Errorf("the flow exporter failed to send %v rows:\n%s", failed, c.logTail())
		}
		switch {
		case sent == want:
			return nil
		case sent > want:
			return fmt.Errorf("the flow exporter sent %d rows, more than the %d expected", sent, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the flow exporter sent %d of %d rows in %s:\n%s", sent, want, timeout, c.logTail())
		}
		select {
		case <-c.exited:
			return fmt.Errorf("the collector exited (%v):\n%s", c.waitErr, c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling the metrics
		}
	}
}

// scrape reads the collector's metrics whose labels contain label, summed per name.
func (c *collector) scrape(ctx context.Context, label string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metricsURL(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape the collector's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape the collector's metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body, label)
}

// parseMetrics sums, per metric name (without a _total suffix), the samples of the
// Prometheus text exposition in r whose labels contain label.
func parseMetrics(r io.Reader, label string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		brace := strings.IndexByte(line, '{')
		end := strings.LastIndexByte(line, '}')
		if strings.HasPrefix(line, "#") || brace < 0 || end < brace || !strings.Contains(line[brace:end], label) {
			continue
		}
		fields := strings.Fields(line[end+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("parse metric line %q: %w", line, err)
		}
		out[strings.TrimSuffix(line[:brace], "_total")] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the collector's metrics: %w", err)
	}
	return out, nil
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP otelcol_exporter_sent_spans_total Number of spans successfully sent to destination.
# TYPE otelcol_exporter_sent_spans_total counter
otelcol_exporter_sent_spans_total{exporter="flow",otel_scope_name="x"} 1500
otelcol_exporter_sent_spans_total{exporter="debug",otel_scope_name="x"} 7
otelcol_exporter_sent_spans{exporter="flow",otel_scope_name="y"} 500
otelcol_exporter_send_failed_spans{exporter="flow"} 0
otelcol_process_uptime 12.5
`
	m, err := parseMetrics(strings.NewReader(text), `exporter="flow"`)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{sentItemsMetric: 2000, failedItemsMetric: 0}, m)
}
