package distribution_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// poisonConfig: OTLP/HTTP in, the flow processor, the flow exporter on a persistent queue
// into a ClickHouse server, the collector's metrics and warnings where the test reads them.
const poisonConfig = `
extensions:
  file_storage:
    directory: {{queue}}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{{http}}
processors:
  flow:
    flows: [{{flows}}]
    drop_unmatched: true
exporters:
  flow:
    endpoint: {{dsn}}
    tls: { insecure: true }
    database: poison
    attributes: [deep] # a row keeps it: the poison pill reaches the queue
    dial_timeout: 500ms
    read_timeout: 5s
    sending_queue:
      storage: file_storage
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
      max_elapsed_time: 0s
service:
  extensions: [file_storage]
  telemetry:
    logs:
      level: warn
      output_paths: [{{log}}]
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{metrics}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [flow]
      exporters: [flow]
`

// checkpointJSON is an OTLP/JSON request with one checkpoint span of key, and attrs (JSON
// key-values) on the span.
func checkpointJSON(key string, n int, attrs ...string) string {
	var tid [16]byte
	var sid [8]byte
	copy(tid[:], fmt.Sprintf("%016d", n))
	copy(sid[:], fmt.Sprintf("%08d", n))
	end := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond).UnixNano()
	return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
"scopeSpans":[{"spans":[{"traceId":"` + hex.EncodeToString(tid[:]) + `","spanId":"` + hex.EncodeToString(sid[:]) + `",
"name":"POST /orders","kind":2,"startTimeUnixNano":"` + strconv.FormatInt(end-1e6, 10) + `","endTimeUnixNano":"` + strconv.FormatInt(end, 10) + `",
"attributes":[{"key":"order.id","value":{"stringValue":"` + key + `"}},{"key":"http.response.status_code","value":{"intValue":"201"}}` + strings.Join(append([]string{""}, attrs...), ",") + `]}]}]}]}`
}

// nestedJSON is an attribute holding maps nested depth levels deep.
func nestedJSON(depth int) string {
	v := `{"stringValue":"leaf"}`
	for range depth {
		v = `{"kvlistValue":{"values":[{"key":"level","value":` + v + `}]}}`
	}
	return `{"key":"deep","value":` + v + `}`
}

// post sends one OTLP/HTTP request and returns its status.
func post(url, contentType string, body []byte) (int, error) {
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

// A request the receiver accepts can always be queued on disk, read back and stored, or is
// rejected alone, counted and logged — never taking other clients' checkpoints with it. 100
// clients send a checkpoint each, at the same time as one with an attribute nested 40 levels
// deep and one whose request holds a key that is not UTF-8 beside a good one. The store is
// down: everything waits in the persistent queue, across a restart of the collector, and is
// read back from disk once the store is up.
func TestPoisonPillIsolatedThroughPersistentQueue(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	require.NoError(t, ch.Kill()) // down: rows stay in the queue on disk
	dir := t.TempDir()
	flows, err := filepath.Abs(filepath.Join("..", "flowprocessor", "testdata", "flows"))
	require.NoError(t, err)
	httpPort, err := testsvc.FreePort()
	require.NoError(t, err)
	metricsPort, err := testsvc.FreePort()
	require.NoError(t, err)
	logFile := filepath.Join(dir, "collector.log")
	path := filepath.Join(dir, "collector.yaml")
	conf := strings.NewReplacer("{{queue}}", filepath.Join(dir, "queue"), "{{http}}", strconv.Itoa(httpPort), "{{flows}}", flows,
		"{{dsn}}", ch.DSN(), "{{log}}", logFile, "{{metrics}}", strconv.Itoa(metricsPort)).Replace(poisonConfig)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "queue"), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	url := "http://127.0.0.1:" + strconv.Itoa(httpPort) + "/v1/traces"

	stop := runCollector(t, path)
	const clients = 100
	var wg sync.WaitGroup
	status := make([]int, clients+2)
	errs := make([]error, clients+2)
	for i := range clients {
		wg.Go(func() {
			status[i], errs[i] = post(url, "application/json", []byte(checkpointJSON(fmt.Sprintf("c-%03d", i), i)))
		})
	}
	wg.Go(func() {
		status[clients], errs[clients] = post(url, "application/json", []byte(checkpointJSON("poison", clients, nestedJSON(40))))
	})
	wg.Go(func() {
		// Protobuf carries any bytes: a key that is not UTF-8, and a good one in the same request.
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "orders")
		for i, key := range []string{"u-\xff\xfe", "beside-bad"} {
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetName("POST /orders")
			sp.SetKind(ptrace.SpanKindServer)
			sp.Attributes().PutInt("http.response.status_code", 201)
			sp.SetTraceID(pcommon.TraceID{9, byte(i + 1)})
			sp.SetSpanID(pcommon.SpanID{9, byte(i + 1)})
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Date(2026, 11, 20, 11, 0, i, 0, time.UTC)))
			sp.Attributes().PutStr("order.id", key)
		}
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			errs[clients+1] = err
			return
		}
		status[clients+1], errs[clients+1] = post(url, "application/x-protobuf", body)
	})
	wg.Wait()
	for i := range status {
		require.NoError(t, errs[i], "request %d", i)
		require.Equal(t, http.StatusOK, status[i], "request %d: the receiver accepts it", i)
	}
	rejected := scrape(t, metricsPort, "otelcol_exporter_flow_rejected_rows", `reason="invalid_utf8"`)
	assert.Equal(t, 1.0, rejected, "the row whose key is not UTF-8 is rejected and counted")
	assert.Positive(t, scrape(t, metricsPort, "otelcol_exporter_flow_cut_values", `field="attribute"`), "the nested value is cut, and counted")
	stop() // the store is still down: every accepted row is in the queue on disk

	log, err := os.ReadFile(logFile)
	require.NoError(t, err)
	assert.Contains(t, string(log), "checkpoint rows rejected", "a warning names the rejection")

	require.NoError(t, ch.Start(context.Background()))
	stop = runCollector(t, path) // reads the queue back from disk
	defer stop()
	s, err := storage.OpenServer(context.Background(), ch.DSN(), storage.Options{Database: "poison"})
	require.NoError(t, err)
	defer s.Close()
	var evs []storage.CheckpointEvent
	require.Eventually(t, func() bool {
		evs, err = s.EventsSince(context.Background(), time.Time{}, 1000)
		return err == nil && len(evs) >= clients+2
	}, time.Minute, 50*time.Millisecond, "rows stored: %d (%v)", len(evs), err)
	keys := map[string]storage.CheckpointEvent{}
	for _, e := range evs {
		keys[e.Key] = e
	}
	for i := range clients {
		assert.Contains(t, keys, fmt.Sprintf("c-%03d", i), "every other client's checkpoint is stored")
	}
	assert.Contains(t, keys, "beside-bad", "the good row of the request with the bad key is stored")
	require.Contains(t, keys, "poison", "the deeply nested item is stored, its value flattened and cut")
	assert.True(t, strings.HasPrefix(keys["poison"].Attributes["deep"], `{"level":{"level":`), "%q", keys["poison"].Attributes["deep"])
	assert.LessOrEqual(t, len(keys["poison"].Attributes["deep"]), 256)
	assert.Len(t, keys, clients+2, "nothing else: the key that is not UTF-8 is not stored")
}

// scrape reads the sum of a counter's samples whose labels contain label from the collector's
// Prometheus endpoint.
func scrape(t *testing.T, port int, name, label string) float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, label) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		require.NoError(t, err, line)
		sum += v
	}
	require.NoError(t, sc.Err())
	return sum
}
