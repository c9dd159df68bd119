package ingestbench

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// The load of the crash test: requests of checkpointsPerRequest checkpoint spans, each its
// own instance, from crashSenders senders each sending a request every crashInterval (about
// 5,000 spans/s together), killRatio of them acknowledged before the kill.
const (
	crashRequests         = 400
	checkpointsPerRequest = 50
	crashSenders          = 4
	crashInterval         = 40 * time.Millisecond
	killRatio             = 0.4
	crashTenant           = "acme"
	crashDatabase         = "killtest" // the server database of the crash and memory tests
)

// exampleConfig is the configuration `flowwatch collector` ships with.
var exampleConfig = filepath.Join("..", "..", "examples", "collector.yaml")

// exampleArgs runs examples/collector.yaml as it is, but for what a test machine must choose:
// the loopback addresses, the folders, the raw traces' backend, and the store (store is the flow exporter's endpoint
// DSN, or "" for the embedded store in the collector's folder).
func exampleArgs(tb testing.TB, col *collector, flowsDir, store string) []string {
	tb.Helper()
	example, err := filepath.Abs(exampleConfig)
	require.NoError(tb, err)
	q := strconv.Quote
	set := []string{
		"receivers::otlp::protocols::grpc::endpoint: " + q(col.otlp),
		"receivers::otlp::protocols::http::endpoint: " + q(col.otlpHTTP),
		"extensions::health_check::endpoint: " + q(col.health),
		"extensions::pprof::endpoint: " + q(col.pprof),
		"extensions::zpages::endpoint: " + q(col.zpages),
		"extensions::file_storage::directory: " + q(filepath.Join(col.dir, "queue")),
		"processors::flow::flows: [" + q(flowsDir) + "]",
		"service::telemetry::logs::level: warn",
		// The raw traces' backend is no part of these tests: the debug exporter stands in.
		"service::pipelines::traces/raw::exporters: [debug]",
		"service::telemetry::metrics::readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: " + strconv.Itoa(col.metricsPort) + "}}}}]",
	}
	if store == "" {
		set = append(set, "exporters::flow::path: "+q(filepath.Join(col.dir, "store")))
	} else {
		set = append(set, `exporters::flow::path: ""`, "exporters::flow::endpoint: "+q(store), "exporters::flow::tls::insecure: true", "exporters::flow::database: "+crashDatabase)
	}
	args := []string{"--config", "file:" + example}
	for _, s := range set {
		args = append(args, "--config", "yaml:"+s)
	}
	return args
}

// checkpointRequest is request n of the crash test's load: checkpointsPerRequest "placed"
// checkpoints of the example order flow, each its own instance. It returns the event ids the
// spans must become.
func checkpointRequest(n int) (ptrace.Traces, []string) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "orders")
	rs.Resource().Attributes().PutStr("tenant.id", crashTenant)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	ids := make([]string, 0, checkpointsPerRequest)
	for i := range checkpointsPerRequest {
		seq := n*checkpointsPerRequest + i
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		copy(tid[:], fmt.Sprintf("kill%012d", seq))
		copy(sid[:], fmt.Sprintf("%08d", seq))
		end := base.Add(time.Duration(seq) * time.Millisecond)
		key := fmt.Sprintf("kill-%06d", seq)
		sp := spans.AppendEmpty()
		sp.SetName("POST /orders")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-20 * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		sp.Status().SetCode(ptrace.StatusCodeOk)
		sp.Attributes().PutInt("http.response.status_code", 201)
		sp.Attributes().PutStr("order.id", key)
		ids = append(ids, storage.EventID(crashTenant, "order-fulfilment", "placed", key,
			hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:]), end.UnixNano(), "POST /orders"))
	}
	return td, ids
}

// crashLoad sends the crash test's requests, each until it is acknowledged, and counts.
type crashLoad struct {
	client ptraceotlp.GRPCClient
	next   atomic.Int64
	// acked spans, attempts and failed attempts (refused, or nothing listening).
	acked, attempts, failures atomic.Int64

	mu       sync.Mutex
	ackedIDs map[string]bool
	sentIDs  map[string]bool
}

func (l *crashLoad) run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, crashSenders)
	for s := range crashSenders {
		wg.Go(func() {
			tick := time.NewTicker(crashInterval)
			defer tick.Stop()
			for n := int(l.next.Add(1)) - 1; n < crashRequests; n = int(l.next.Add(1)) - 1 {
				td, ids := checkpointRequest(n)
				l.mu.Lock()
				for _, id := range ids {
					l.sentIDs[id] = true
				}
				l.mu.Unlock()
				deadline := time.Now().Add(2 * time.Minute)
				for {
					<-tick.C // the load's pace; a failed request is sent again at the next tick
					l.attempts.Add(1)
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := l.client.Export(cctx, ptraceotlp.NewExportRequestFromTraces(td))
					cancel()
					if err == nil {
						break
					}
					l.failures.Add(1)
					if time.Now().After(deadline) {
						errs[s] = fmt.Errorf("request %d not acknowledged in 2 minutes: %w", n, err)
						return
					}
				}
				l.mu.Lock()
				for _, id := range ids {
					l.ackedIDs[id] = true
				}
				l.mu.Unlock()
				l.acked.Add(checkpointsPerRequest)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestKillUnderLoad: `flowwatch collector` on the shipped configuration
// (examples/collector.yaml: the flow exporter's queue on disk, batching after it) is killed
// (SIGKILL) while it takes about 5,000 checkpoint spans a second, then restarted. The senders
// send each request again until it is acknowledged, as an OTLP client does. Every
// acknowledged checkpoint must be stored, and none twice.
func TestKillUnderLoad(t *testing.T) {
	bin := flowwatchBinary(t)
	flowsDir, _ := loadExampleFlows(t)
	t.Run("store=server", func(t *testing.T) {
		ch := testsvc.ClickHouseT(t)
		killUnderLoad(t, bin, flowsDir, ch)
	})
	t.Run("store=embedded", func(t *testing.T) {
		killUnderLoad(t, bin, flowsDir, nil)
	})
}

func killUnderLoad(t *testing.T, bin, flowsDir string, ch *testsvc.ClickHouse) {
	ctx := context.Background()
	col := newCollector(t, bin)
	dsn := ""
	if ch != nil {
		dsn = ch.DSN()
	}
	col.start(t, exampleArgs(t, col, flowsDir, dsn)...)
	conn, err := grpc.NewClient(col.otlp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	load := &crashLoad{client: ptraceotlp.NewGRPCClient(conn), ackedIDs: map[string]bool{}, sentIDs: map[string]bool{}}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.run(ctx) }()

	// Kill it mid-stream, once killRatio of the load is acknowledged.
	total := crashRequests * checkpointsPerRequest
	poll := time.NewTicker(5 * time.Millisecond)
	for load.acked.Load() < int64(killRatio*float64(total)) {
		select {
		case err := <-loadDone:
			t.Fatalf("the load ended before the kill: %v", err)
		case <-poll.C:
		}
	}
	poll.Stop()
	col.kill(t)
	ackedAtKill := load.acked.Load()
	storedAtKill := -1
	if ch != nil {
		storedAtKill = len(readStored(t, ch, ""))
	}
	col.restart(t)
	require.NoError(t, <-loadDone, "every request acknowledged in the end")
	require.Less(t, ackedAtKill, int64(total), "the kill came mid-stream")
	require.Positive(t, load.failures.Load(), "requests failed while the collector was down: the load was on")

	// Wait until the store holds every acknowledged checkpoint (or a minute went by).
	var stored []storage.CheckpointEvent
	read := func() []storage.CheckpointEvent {
		if ch != nil {
			return readStored(t, ch, "")
		}
		col.stop(t) // the embedded store lives in the collector: read it once the collector is done
		evs := readStored(t, nil, filepath.Join(col.dir, "store"))
		col.restart(t)
		return evs
	}
	deadline := time.Now().Add(time.Minute)
	for stored = read(); len(stored) < total && time.Now().Before(deadline); stored = read() {
		time.Sleep(200 * time.Millisecond) // polling the store
	}
	col.stop(t)

	seen := map[string]int{}
	for _, e := range stored {
		seen[e.EventID]++
	}
	lost, twice, phantom := 0, 0, 0
	for id := range load.ackedIDs {
		if seen[id] == 0 {
			lost++
		}
	}
	for id, n := range seen {
		if n > 1 {
			twice++
		}
		if !load.sentIDs[id] {
			phantom++
		}
	}
	rawRows := -1
	if ch != nil {
		rawRows = foldDuplicates(t, ch, len(seen))
	}
	t.Logf("sent %d checkpoint spans in %d requests (%d attempts, %d failed); acknowledged %d (%d at the kill, %d of them stored then); stored %d, rows before merging %d",
		len(load.sentIDs), crashRequests, load.attempts.Load(), load.failures.Load(), len(load.ackedIDs), ackedAtKill, storedAtKill, len(seen), rawRows)
	assert.Equal(t, total, len(load.ackedIDs), "acknowledged")
	assert.Zero(t, lost, "acknowledged checkpoints not stored")
	assert.Zero(t, twice, "checkpoints read back twice")
	assert.Zero(t, phantom, "stored checkpoints that were never sent")
	if ch != nil {
		assert.Less(t, storedAtKill, int(ackedAtKill), "at the kill, acknowledged rows were still waiting in the queue: the kill tested them")
	}
}

// readStored reads every checkpoint row of the crash test's store: the server's database, or
// the embedded store in folder dir.
func readStored(t *testing.T, ch *testsvc.ClickHouse, dir string) []storage.CheckpointEvent {
	t.Helper()
	if ch != nil {
		return readStoredFrom(t, ch.DSN(), crashDatabase)
	}
	ctx := context.Background()
	s, err := storage.OpenEmbedded(ctx, dir, storage.Options{})
	require.NoError(t, err)
	defer s.Close()
	evs, err := s.EventsSince(ctx, time.Time{}, 10*crashRequests*checkpointsPerRequest)
	require.NoError(t, err)
	return evs
}

// readStoredFrom reads every checkpoint row of database db of a ClickHouse server (none when
// the table does not exist yet).
func readStoredFrom(tb testing.TB, dsn, db string) []storage.CheckpointEvent {
	tb.Helper()
	ctx := context.Background()
	s, err := storage.OpenServer(ctx, dsn, storage.Options{Database: db})
	require.NoError(tb, err)
	defer s.Close()
	evs, err := s.EventsSince(ctx, time.Time{}, 100_000_000)
	if err != nil {
		return nil
	}
	return evs
}

// foldDuplicates returns how many rows the server held, then merges them (OPTIMIZE FINAL)
// and checks that duplicates of a replay fold into one row per event: want rows, each event
// id once.
func foldDuplicates(t *testing.T, ch *testsvc.ClickHouse, want int) int {
	t.Helper()
	ctx := context.Background()
	opts, err := clickhouse.ParseDSN(ch.DSN())
	require.NoError(t, err)
	opts.ReadTimeout = time.Minute
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	defer conn.Close()
	count := func() (rows, ids uint64) {
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM "+crashDatabase+".checkpoint_events").Scan(&rows, &ids))
		return rows, ids
	}
	raw, _ := count()
	require.NoError(t, conn.Exec(ctx, "OPTIMIZE TABLE "+crashDatabase+".checkpoint_events FINAL"))
	rows, ids := count()
	assert.Equal(t, uint64(want), ids, "event ids stored")
	assert.Equal(t, ids, rows, "after merging, one row per event id")
	return int(raw)
}
