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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// The benchmark's knobs, from the environment (which the collector inherits: GOGC and
// GOMEMLIMIT apply to it, CHDB_LIB_PATH finds the store's library):
//
//	FLOWWATCH_BIN            a flowwatch binary to run (default: built once from this tree)
//	INGESTBENCH_SPANS        spans sent per iteration and pipeline (default 1000000)
//	INGESTBENCH_SENDERS      concurrent OTLP senders (default 4)
//	INGESTBENCH_BATCH        the batch processor's timeout (default 1s, as in
//	                         examples/collector.yaml)
//	INGESTBENCH_QUEUE        the flow exporter's sending queue: memory (exporterhelper's
//	                         default) or file (file_storage, as the example configs have it)
//	INGESTBENCH_CPUPROFILE   a folder: save a CPU profile of the collector per pipeline
//	                         (pprof extension, INGESTBENCH_PROFILE_SECONDS long, default 10)
const (
	defaultSpans   = 1_000_000
	defaultSenders = 4
	// warmupBatches go through before the measurement: connections, the store's first
	// insert, the runtime's heap.
	warmupBatches = 20
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
	clockTicks = 100
)

// BenchmarkIngestPath measures the whole ingest path: a `flowwatch collector` child process
// receives realistic OTLP batches (Payload) over gRPC, and the benchmark waits until the
// collector's flow exporter reports every span it was handed as sent. Two pipelines run on
// the same payload:
//
//   - pipeline=flows: otlp -> flow processor (example flows, drop_unmatched) -> batch ->
//     flow exporter -> embedded store: the product.
//   - pipeline=passthrough: otlp -> batch -> flow exporter, no flow processor: nothing is
//     annotated and nothing is written, which is the collector's own cost of taking the
//     spans in.
//
// Afterwards the rows in the store are counted against what the flow processor makes of the
// payload. Reported per pipeline: spans/cpu-s (spans sent per CPU second of the collector process,
// user+system, so the senders' CPU does not count; the store's merges of the new rows are
// waited for and charged), cpu-ns/span, store-cpu-ns/span (the part spent on the embedded
// store's own threads), wall-clock spans/s until the last span was stored (which on a busy
// machine includes waiting for a core), and the share of spans kept and of rows written.
func BenchmarkIngestPath(b *testing.B) {
	bin := flowwatchBinary(b)
	flowsDir, set := loadExampleFlows(b)
	spans := envInt(b, "INGESTBENCH_SPANS", defaultSpans)
	senders := envInt(b, "INGESTBENCH_SENDERS", defaultSenders)
	batches := max(1, spans/SpansPerBatch)
	for _, withFlows := range []bool{true, false} {
		name := "pipeline=passthrough"
		if withFlows {
			name = "pipeline=flows"
		}
		b.Run(name, func(b *testing.B) {
			runIngest(b, ingestRun{bin: bin, flowsDir: flowsDir, set: set, withFlows: withFlows,
				batches: batches, senders: senders, profileName: strings.TrimPrefix(name, "pipeline=")})
		})
	}
}

type ingestRun struct {
	bin, flowsDir    string
	set              *model.Set
	withFlows        bool
	batches, senders int
	profileName      string
}

func runIngest(b *testing.B, r ingestRun) {
	ctx := context.Background()
	start := time.Now()
	// What one batch becomes: every batch has the same matches (TestPayloadMatchesFlows).
	per := outcome{spans: SpansPerBatch}
	if r.withFlows {
		per = runFlowProcessor(b, r.flowsDir, NewPayload(r.set, start).Traces)
	}
	require.Positive(b, per.spans)

	col := startCollector(b, r)
	conn, err := grpc.NewClient(col.otlp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(b, err)
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	payloads := make([]*Payload, r.senders)
	for i := range payloads {
		payloads[i] = NewPayload(r.set, start)
	}
	var seq atomic.Uint64
	send := func(n int) {
		b.Helper()
		var next atomic.Int64
		next.Store(int64(n))
		var wg sync.WaitGroup
		errs := make([]error, len(payloads))
		for i, p := range payloads {
			wg.Go(func() {
				for next.Add(-1) >= 0 {
					p.Renumber(seq.Add(1))
					if err := export(ctx, client, p); err != nil {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		require.NoError(b, errors.Join(errs...), "send OTLP")
	}
	sent := 0
	waitSent := func() {
		b.Helper()
		require.NoError(b, col.waitSent(ctx, sent*per.spans, 2*time.Minute))
	}

	send(warmupBatches)
	sent += warmupBatches
	waitSent()

	stopProfile := col.profile(b, r.profileName)
	var cpu cpuTimes
	var wall time.Duration
	measured := 0
	for b.Loop() {
		cpu0, err := col.cpuTimes()
		require.NoError(b, err)
		t0 := time.Now()
		send(r.batches)
		sent += r.batches
		waitSent()
		wall += time.Since(t0)
		// The store's background work for these rows (merges of the new parts) is part of
		// their cost: charge it too, up to a bound.
		require.NoError(b, col.settle(ctx, 500*time.Millisecond, 15*time.Second))
		cpu1, err := col.cpuTimes()
		require.NoError(b, err)
		cpu = cpu.add(cpu1.sub(cpu0))
		measured += r.batches * SpansPerBatch
	}
	stopProfile()
	col.stop(b)

	perSpan := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(measured) }
	b.ReportMetric(float64(measured)/cpu.total.Seconds(), "spans/cpu-s")
	b.ReportMetric(perSpan(cpu.total), "cpu-ns/span")
	b.ReportMetric(perSpan(cpu.native), "store-cpu-ns/span")
	b.ReportMetric(float64(measured)/wall.Seconds(), "spans/s")
	b.ReportMetric(float64(per.spans)/SpansPerBatch, "kept/span")
	b.ReportMetric(float64(per.rows)/SpansPerBatch, "rows/span")

	// Checkpoints stored: the store holds one row per match of every batch sent (none
	// without the flow processor).
	require.Equal(b, sent*per.rows, storedEvents(b, col.store), "checkpoint rows stored")
}

func export(ctx context.Context, client ptraceotlp.GRPCClient, p *Payload) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(p.Traces))
	if err != nil {
		return fmt.Errorf("export a batch: %w", err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 {
		return fmt.Errorf("export a batch: %d spans rejected: %s", ps.RejectedSpans(), ps.ErrorMessage())
	}
	return nil
}

// storedEvents counts the checkpoint rows in the store folder of a stopped collector.
func storedEvents(tb testing.TB, dir string) int {
	ctx := context.Background()
	st, err := storage.OpenEmbedded(ctx, dir, storage.Options{})
	require.NoError(tb, err)
	defer func() { require.NoError(tb, st.Close()) }()
	events, err := st.EventsSince(ctx, time.Time{}, 100_000_000)
	require.NoError(tb, err, "read the stored checkpoint rows")
	return len(events)
}

// collector is a running `flowwatch collector` child process.
type collector struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	log     string // its stderr and stdout
	otlp    string // OTLP gRPC address
	metrics string // Prometheus endpoint URL
	pprof   string // pprof extension address
	store   string // the embedded store's folder
	stopped bool
}

func startCollector(tb testing.TB, r ingestRun) *collector {
	tb.Helper()
	dir := tb.TempDir()
	ports := freePorts(tb, 4)
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])) }
	c := &collector{
		exited: make(chan struct{}), log: filepath.Join(dir, "collector.log"),
		otlp: addr(0), metrics: "http://" + addr(1) + "/metrics", pprof: addr(3),
		store: filepath.Join(dir, "store"),
	}
	processors := "[batch]"
	batchTimeout := "1s"
	if s := os.Getenv("INGESTBENCH_BATCH"); s != "" {
		_, err := time.ParseDuration(s)
		require.NoError(tb, err, "INGESTBENCH_BATCH")
		batchTimeout = s
	}
	if r.withFlows {
		processors = "[flow, batch]"
	}
	q := strconv.Quote
	// The exporter's sending queue: exporterhelper's default (in memory), or on disk through
	// file_storage as examples/collector.yaml and `flowwatch run` configure it.
	queue, storageExt, exts := "", "", "[health_check, pprof]"
	switch v := os.Getenv("INGESTBENCH_QUEUE"); v {
	case "", "memory":
	case "file":
		storageExt = `
  file_storage:
    directory: ` + q(filepath.Join(dir, "queue")) + `
    create_directory: true`
		queue = `
    sending_queue:
      storage: file_storage`
		exts = "[health_check, pprof, file_storage]"
	default:
		tb.Fatalf("INGESTBENCH_QUEUE=%q: want memory or file", v)
	}
	cfg := `extensions:` + storageExt + `
  health_check:
    endpoint: ` + q(addr(2)) + `
  pprof:
    endpoint: ` + q(addr(3)) + `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ` + q(c.otlp) + `
processors:
  flow:
    flows: [` + q(r.flowsDir) + `]
    tenant_attribute: tenant.id
    drop_unmatched: true
    reload_interval: 30s
  batch:
    timeout: ` + batchTimeout + `
exporters:
  flow:
    path: ` + q(c.store) + `
    create_schema: true
    timeout: 30s` + queue + `
service:
  extensions: ` + exts + `
  telemetry:
    logs:
      level: warn
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: ` + strconv.Itoa(ports[1]) + `
  pipelines:
    traces:
      receivers: [otlp]
      processors: ` + processors + `
      exporters: [flow]
`
	cfgPath := filepath.Join(dir, "collector.yaml")
	require.NoError(tb, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	logf, err := os.Create(c.log)
	require.NoError(tb, err)
	c.cmd = exec.Command(r.bin, "collector", "--config", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	require.NoError(tb, c.cmd.Start(), "start the collector")
	go func() {
		c.waitErr = c.cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	tb.Cleanup(func() { c.stop(tb) })

	health := "http://" + addr(2) + "/"
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case <-c.exited:
			tb.Fatalf("the collector exited at start (%v):\n%s", c.waitErr, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the collector is not healthy after 90s:\n%s", c.logTail())
		}
	}
}

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

// Exporter metrics of the collector's own telemetry (Prometheus names; v0.165 exposes
// counters without the _total suffix, which parseExporterMetrics drops if present).
const (
	sentSpansMetric   = "otelcol_exporter_sent_spans"
	failedSpansMetric = "otelcol_exporter_send_failed_spans"
)

// waitSent waits until the flow exporter reports want spans sent (pushed to the store
// without error). It polls the collector's Prometheus endpoint only while waiting.
func (c *collector) waitSent(ctx context.Context, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.scrape(ctx)
		if err != nil {
			return err
		}
		sent := int(m[sentSpansMetric])
		if failed := m[failedSpansMetric]; failed > 0 {
			return fmt.Errorf("the flow exporter failed to send %v spans:\n%s", failed, c.logTail())
		}
		switch {
		case sent == want:
			return nil
		case sent > want:
			return fmt.Errorf("the flow exporter sent %d spans, more than the %d handed over", sent, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the flow exporter sent %d of %d spans in %s:\n%s", sent, want, timeout, c.logTail())
		}
		select {
		case <-c.exited:
			return fmt.Errorf("the collector exited (%v):\n%s", c.waitErr, c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scrape reads the collector's metrics: the flow exporter's counters, summed over labels.
func (c *collector) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metrics, nil)
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
	return parseExporterMetrics(resp.Body, "flow")
}

// parseExporterMetrics sums, per metric name (without a _total suffix), the samples of the
// Prometheus text exposition in r that carry the label exporter="<exporter>".
func parseExporterMetrics(r io.Reader, exporter string) (map[string]float64, error) {
	out := map[string]float64{}
	label := `exporter="` + exporter + `"`
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

func TestParseExporterMetrics(t *testing.T) {
	text := `# HELP otelcol_exporter_sent_spans_total Number of spans successfully sent to destination.
# TYPE otelcol_exporter_sent_spans_total counter
otelcol_exporter_sent_spans_total{exporter="flow",otel_scope_name="x"} 1500
otelcol_exporter_sent_spans_total{exporter="debug",otel_scope_name="x"} 7
otelcol_exporter_sent_spans{exporter="flow",otel_scope_name="y"} 500
otelcol_exporter_send_failed_spans{exporter="flow"} 0
otelcol_process_uptime 12.5
`
	m, err := parseExporterMetrics(strings.NewReader(text), "flow")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{sentSpansMetric: 2000, failedSpansMetric: 0}, m)
}
