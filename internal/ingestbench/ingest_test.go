package ingestbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// The benchmark's knobs, from the environment (which the collector inherits: GOGC and
// GOMEMLIMIT apply to it, CHDB_LIB_PATH finds the store's library):
//
//	FLOWWATCH_BIN            a flowwatch binary to run (default: built once from this tree)
//	INGESTBENCH_SPANS        spans sent per iteration and pipeline (default 1000000)
//	INGESTBENCH_SENDERS      concurrent OTLP senders (default 4)
//	INGESTBENCH_BATCH        the flow exporter's batch flush timeout (default 1s, as in
//	                         examples/collector.yaml)
//	INGESTBENCH_QUEUE        the flow exporter's sending queue: memory (exporterhelper's
//	                         default) or file (file_storage, as the shipped configs have it)
//	INGESTBENCH_STORE        embedded (default: chDB in the collector, as `flowwatch run`
//	                         and examples/collector.yaml) or server (a ClickHouse server
//	                         started for the run, as the scaled-out shape: the collector's own
//	                         CPU and memory without the engine)
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
	// rssEvery is how often the collector's resident memory is sampled while it is loaded.
	rssEvery = 100 * time.Millisecond
)

// BenchmarkIngestPath measures the whole ingest path: a `flowwatch collector` child process
// receives realistic OTLP batches (Payload) over gRPC, and the benchmark waits until the
// collector's flow exporter reports every row it was handed as written. Two pipelines run on
// the same payload, as the shipped configurations run them (memory_limiter first, batching in
// the flow exporter's sending queue):
//
//   - pipeline=flows: otlp -> memory_limiter -> flow processor (example flows,
//     drop_unmatched) -> flow exporter (rows, queue, batcher) -> embedded store: the product.
//   - pipeline=passthrough: otlp -> memory_limiter -> flow exporter, no flow processor:
//     nothing is annotated, so nothing is queued or written, which is the collector's own
//     cost of taking the spans in.
//
// Afterwards the rows in the store are counted against what the flow processor makes of the
// payload. Reported per pipeline: spans/cpu-s (spans sent per CPU second of the collector process,
// user+system, so the senders' CPU does not count; the store's merges of the new rows are
// waited for and charged), cpu-ns/span, store-cpu-ns/span (the part spent on the embedded
// store's own threads), wall-clock spans/s until the last row was stored (which on a busy
// machine includes waiting for a core), the share of spans kept and of rows written, and the
// collector's resident memory under that load: rss-MiB (the mean of samples every 100 ms)
// and rss-peak-MiB.
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
	dsn              string // a ClickHouse server; "" for the embedded store
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

	col := newCollector(b, r.bin)
	switch v := os.Getenv("INGESTBENCH_STORE"); v {
	case "", "embedded":
	case "server":
		r.dsn = testsvc.ClickHouseT(b).DSN()
	default:
		b.Fatalf("INGESTBENCH_STORE=%q: want embedded or server", v)
	}
	col.start(b, "--config", writeBenchConfig(b, col, r))
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
		require.NoError(b, col.waitSent(ctx, sent*per.rows, 2*time.Minute))
	}

	send(warmupBatches)
	sent += warmupBatches
	waitSent()

	stopProfile := col.profile(b, r.profileName)
	var cpu cpuTimes
	var wall time.Duration
	var mem rssSampler
	measured := 0
	for b.Loop() {
		cpu0, err := col.cpuTimes()
		require.NoError(b, err)
		t0 := time.Now()
		stopSampling := mem.sample(col)
		send(r.batches)
		sent += r.batches
		waitSent()
		stopSampling()
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
	require.NoError(b, mem.err)

	perSpan := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(measured) }
	b.ReportMetric(float64(measured)/cpu.total.Seconds(), "spans/cpu-s")
	b.ReportMetric(perSpan(cpu.total), "cpu-ns/span")
	b.ReportMetric(perSpan(cpu.native), "store-cpu-ns/span")
	b.ReportMetric(float64(measured)/wall.Seconds(), "spans/s")
	b.ReportMetric(float64(per.spans)/SpansPerBatch, "kept/span")
	b.ReportMetric(float64(per.rows)/SpansPerBatch, "rows/span")
	b.ReportMetric(mem.mean()/(1<<20), "rss-MiB")
	b.ReportMetric(float64(mem.peak)/(1<<20), "rss-peak-MiB")

	// Checkpoints stored: the store holds one row per match of every batch sent (none
	// without the flow processor).
	stored := 0
	if r.dsn != "" {
		stored = len(readStoredFrom(b, r.dsn, benchDatabase))
	} else {
		stored = storedEvents(b, filepath.Join(col.dir, "store"))
	}
	require.Equal(b, sent*per.rows, stored, "checkpoint rows stored")
}

// writeBenchConfig writes the benchmark collector's configuration and returns its path.
func writeBenchConfig(tb testing.TB, col *collector, r ingestRun) string {
	tb.Helper()
	processors := "[memory_limiter]"
	if r.withFlows {
		processors = "[memory_limiter, flow]"
	}
	flush := "1s"
	if s := os.Getenv("INGESTBENCH_BATCH"); s != "" {
		_, err := time.ParseDuration(s)
		require.NoError(tb, err, "INGESTBENCH_BATCH")
		flush = s
	}
	q := strconv.Quote
	store := "path: " + q(filepath.Join(col.dir, "store"))
	if r.dsn != "" {
		store = "endpoint: " + q(r.dsn) + "\n    tls: { insecure: true }\n    database: " + benchDatabase
	}
	// The exporter's sending queue: exporterhelper's default (in memory), or on disk through
	// file_storage as the shipped configurations and `flowwatch run` have it.
	storageKey, storageExt, exts := "", "", "[health_check, pprof]"
	switch v := os.Getenv("INGESTBENCH_QUEUE"); v {
	case "", "memory":
	case "file":
		storageExt = `
  file_storage:
    directory: ` + q(filepath.Join(col.dir, "queue")) + `
    create_directory: true`
		storageKey = `
      storage: file_storage`
		exts = "[health_check, pprof, file_storage]"
	default:
		tb.Fatalf("INGESTBENCH_QUEUE=%q: want memory or file", v)
	}
	cfg := `extensions:` + storageExt + `
  health_check:
    endpoint: ` + q(col.health) + `
  pprof:
    endpoint: ` + q(col.pprof) + `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ` + q(col.otlp) + `
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  flow:
    flows: [` + q(r.flowsDir) + `]
    tenant_attribute: tenant.id
    drop_unmatched: true
    reload_interval: 30s
exporters:
  flow:
    ` + store + `
    create_schema: true
    timeout: 30s
    sending_queue:` + storageKey + `
      batch:
        flush_timeout: ` + flush + `
        min_size: 20000
        max_size: 100000
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
                port: ` + strconv.Itoa(col.metricsPort) + `
  pipelines:
    traces:
      receivers: [otlp]
      processors: ` + processors + `
      exporters: [flow]
`
	path := filepath.Join(col.dir, "collector.yaml")
	require.NoError(tb, os.WriteFile(path, []byte(cfg), 0o644))
	return path
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

// benchDatabase is the server database of the benchmark's rows.
const benchDatabase = "ingestbench"

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

// rssSampler samples a collector's resident memory while it is loaded.
type rssSampler struct {
	sum  float64
	n    int
	peak int64
	err  error
	mu   sync.Mutex
}

// sample samples col every rssEvery until the returned func is called.
func (s *rssSampler) sample(col *collector) func() {
	ticker := time.NewTicker(rssEvery)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				now, _, err := col.rss()
				s.mu.Lock()
				if err != nil && s.err == nil {
					s.err = err
				}
				s.sum += float64(now)
				s.n++
				s.peak = max(s.peak, now)
				s.mu.Unlock()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (s *rssSampler) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}
