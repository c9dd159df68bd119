package ingestbench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// The overload of the memory test: overloadSenders senders, each with its own realistic batch
// (Payload, 1,000 spans), send overloadBatches batches as fast as the collector takes them, to
// a collector whose memory_limiter allows overloadLimitMiB of heap (spike overloadSpikeMiB).
const (
	overloadSenders  = 16
	overloadBatches  = 250
	overloadLimitMiB = 64
	overloadSpikeMiB = 16
)

// overloadRetry is how long a sender waits before it sends a refused batch again.
const overloadRetry = 20 * time.Millisecond

// TestMemoryLimiterRefusesRetryably drives the shipped configuration past its memory limit:
// more batches in flight than the heap the memory_limiter allows, into the embedded store (in
// the collector's process) and into a ClickHouse server (the scaled-out shape). Past the limit
// the collector refuses data with an error an OTLP client retries (gRPC Unavailable); the
// senders send a refused batch again, as a client does; in the end every checkpoint of every
// batch is stored, once. The figures (refusals, resident memory) go to the README's scaling
// section.
func TestMemoryLimiterRefusesRetryably(t *testing.T) {
	bin := flowwatchBinary(t)
	flowsDir, _ := loadExampleFlows(t)
	t.Run("store=embedded", func(t *testing.T) { overload(t, bin, flowsDir, nil) })
	t.Run("store=server", func(t *testing.T) { overload(t, bin, flowsDir, testsvc.ClickHouseT(t)) })
}

func overload(t *testing.T, bin, flowsDir string, ch *testsvc.ClickHouse) {
	_, set := loadExampleFlows(t)
	start := time.Now()
	per := runFlowProcessor(t, flowsDir, NewPayload(set, start).Traces)
	require.Positive(t, per.rows)

	col := newCollector(t, bin)
	dsn := ""
	if ch != nil {
		dsn = ch.DSN()
	}
	args := exampleArgs(t, col, flowsDir, dsn)
	for _, s := range []string{
		"processors::memory_limiter::check_interval: 100ms",
		"processors::memory_limiter::limit_percentage: 0",
		"processors::memory_limiter::spike_limit_percentage: 0",
		fmt.Sprintf("processors::memory_limiter::limit_mib: %d", overloadLimitMiB),
		fmt.Sprintf("processors::memory_limiter::spike_limit_mib: %d", overloadSpikeMiB),
	} {
		args = append(args, "--config", "yaml:"+s)
	}
	col.start(t, args...)
	idle, _, err := col.rss()
	require.NoError(t, err)
	conn, err := grpc.NewClient(col.otlp, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)

	var mem rssSampler
	stopSampling := mem.sample(col)
	var next, seq, refused, attempts atomic.Int64
	codesSeen := sync.Map{}
	var wg sync.WaitGroup
	errs := make([]error, overloadSenders)
	for s := range overloadSenders {
		wg.Go(func() {
			p := NewPayload(set, start)
			for next.Add(1) <= overloadBatches {
				p.Renumber(uint64(seq.Add(1)))
				for try := 0; ; try++ {
					attempts.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(p.Traces))
					cancel()
					if err == nil {
						break
					}
					code := status.Code(err)
					codesSeen.Store(code, true)
					if code != codes.Unavailable || try == 1000 {
						errs[s] = fmt.Errorf("export a batch (attempt %d): %w", try+1, err)
						return
					}
					refused.Add(1)
					<-time.After(overloadRetry) // a client's backoff before it sends again
				}
			}
		})
	}
	wg.Wait()
	stopSampling()
	require.NoError(t, errors.Join(errs...))
	require.NoError(t, mem.err)
	m, err := col.scrape(context.Background(), `receiver="otlp"`)
	require.NoError(t, err)
	require.NoError(t, col.waitSent(context.Background(), overloadBatches*per.rows, 2*time.Minute))
	col.stop(t)

	var stored int
	if ch != nil {
		stored = len(readStored(t, ch, ""))
	} else {
		stored = storedEvents(t, filepath.Join(col.dir, "store"))
	}
	var seen []string
	codesSeen.Range(func(k, _ any) bool { seen = append(seen, k.(codes.Code).String()); return true })
	t.Logf("%d batches of %d spans sent by %d senders in %d attempts: %d refused (codes %v; the receiver counted %.0f refused spans), rows stored %d of %d; collector RSS idle %.0f MiB, loaded mean %.0f MiB, peak %.0f MiB (memory_limiter: %d MiB, spike %d MiB)",
		overloadBatches, SpansPerBatch, overloadSenders, attempts.Load(), refused.Load(), seen, m[refusedSpansMetric],
		stored, overloadBatches*per.rows, float64(idle)/(1<<20), mem.mean()/(1<<20), float64(mem.peak)/(1<<20), overloadLimitMiB, overloadSpikeMiB)
	assert.Positive(t, refused.Load(), "the load went past the memory limit: some batches were refused")
	assert.Equal(t, float64(refused.Load()*SpansPerBatch), m[refusedSpansMetric], "every refusal the senders saw, the receiver counted")
	assert.Equal(t, overloadBatches*per.rows, stored, "every checkpoint of every batch stored once: nothing refused was lost")
}
