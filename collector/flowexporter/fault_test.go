package flowexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
)

// loadBatch is push number n of a steady load: size annotated spans, each its own checkpoint
// of its own instance.
func loadBatch(n, size int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := 0; i < size; i++ {
		id := n*size + i
		annotatedSpan(td, "orders", "POST /orders", base.Add(time.Duration(id)*time.Millisecond), byte(id), uint64(id)+1,
			flowattr.Match{Flow: "order", Checkpoint: "placed", Key: fmt.Sprintf("o-%06d", id), KeyAttr: "order.id", Tenant: "acme"})
	}
	return td
}

func serverConfig(ch *testsvc.ClickHouse, db string) *Config {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = ch.DSN()
	cfg.TLS.Insecure = true // the plaintext port
	cfg.Database = db
	cfg.DialTimeout = 500 * time.Millisecond
	cfg.ReadTimeout = 5 * time.Second
	cfg.InitialInterval = 20 * time.Millisecond
	cfg.MaxInterval = 200 * time.Millisecond
	cfg.MaxElapsedTime = 0 // never give up: the store comes back
	q := cfg.QueueConfig.Get()
	q.QueueSize = 10_000
	q.NumConsumers = 2
	return cfg
}

// waitStored polls the store until it holds want events (each once), or fails after a minute.
func waitStored(t *testing.T, ch *testsvc.ClickHouse, db string, want int) {
	t.Helper()
	ctx := context.Background()
	var s storage.Store
	deadline := time.Now().Add(time.Minute)
	got := -1
	for time.Now().Before(deadline) {
		if s == nil {
			var err error
			if s, err = storage.OpenServer(ctx, ch.DSN(), storage.Options{Database: db}); err != nil {
				s = nil
				time.Sleep(50 * time.Millisecond)
				continue
			}
			defer s.Close()
		}
		evs, err := s.EventsSince(ctx, time.Time{}, want+1000)
		if err == nil {
			got = len(evs)
			if got == want {
				seen := map[string]bool{}
				for _, e := range evs {
					require.False(t, seen[e.Key], "instance %s stored twice", e.Key)
					seen[e.Key] = true
				}
				for i := 0; i < want; i++ {
					require.True(t, seen[fmt.Sprintf("o-%06d", i)], "o-%06d lost", i)
				}
				return
			}
			require.Less(t, got, want+1, "more events than sent: duplicates reached the reader")
		}
		time.Sleep(50 * time.Millisecond) // polling for a condition, not waiting out a deadline
	}
	t.Fatalf("store holds %d events after a minute, want %d", got, want)
}

// The store is unavailable for a while under steady load, then back: nothing lost, nothing
// doubled.
func TestStoreOutageUnderLoad(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	ctx := context.Background()
	cfg := serverConfig(ch, "outage")
	te, err := NewFactory().CreateTraces(ctx, exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, te.Start(ctx, componenttest.NewNopHost()))

	const pushes, size = 60, 100
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 0; n < pushes; n++ {
		<-tick.C
		switch n {
		case 15:
			require.NoError(t, ch.Kill())
		case 40:
			require.NoError(t, ch.Start(ctx))
		}
		require.NoError(t, te.ConsumeTraces(ctx, loadBatch(n, size)))
	}
	waitStored(t, ch, "outage", pushes*size)
	require.NoError(t, te.Shutdown(ctx))
}

// extHost is a collector host with extensions (the persistent queue's file_storage).
type extHost struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h extHost) GetExtensions() map[component.ID]component.Component { return h.ext }

func startFileStorage(t *testing.T, id component.ID, dir string) (extension.Extension, component.Host) {
	t.Helper()
	f := filestorage.NewFactory()
	fcfg := f.CreateDefaultConfig().(*filestorage.Config)
	fcfg.Directory = dir
	ext, err := f.Create(context.Background(), extension.Settings{ID: id, TelemetrySettings: componenttest.NewNopTelemetrySettings()}, fcfg)
	require.NoError(t, err)
	host := extHost{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{id: ext}}
	require.NoError(t, ext.Start(context.Background(), host))
	return ext, host
}

// With the persistent queue, rows accepted while the store is down survive a collector
// restart and are written, each once, when the store is back.
func TestPersistentQueueAcrossRestart(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	ctx := context.Background()
	require.NoError(t, ch.Kill()) // the store is down before the collector starts
	queueDir := t.TempDir()
	storageID := component.MustNewIDWithName("file_storage", "flow")
	cfg := serverConfig(ch, "restart")
	cfg.QueueConfig.Get().StorageID = &storageID

	run := func(first, pushes int) {
		ext, host := startFileStorage(t, storageID, queueDir)
		te, err := NewFactory().CreateTraces(ctx, exporter.Settings{ID: component.NewID(metadata.Type),
			TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}, cfg)
		require.NoError(t, err)
		require.NoError(t, te.Start(ctx, host))
		for n := first; n < first+pushes; n++ {
			require.NoError(t, te.ConsumeTraces(ctx, loadBatch(n, 50)))
		}
		require.NoError(t, te.Shutdown(ctx))
		require.NoError(t, ext.Shutdown(ctx))
	}
	run(0, 20) // accepted into the queue on disk; the store is down; the collector stops

	require.NoError(t, ch.Start(ctx))
	ext, host := startFileStorage(t, storageID, queueDir)
	te, err := NewFactory().CreateTraces(ctx, exporter.Settings{ID: component.NewID(metadata.Type),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}, cfg)
	require.NoError(t, err)
	require.NoError(t, te.Start(ctx, host)) // the restarted collector drains the old queue
	for n := 20; n < 30; n++ {
		require.NoError(t, te.ConsumeTraces(ctx, loadBatch(n, 50)))
	}
	waitStored(t, ch, "restart", 30*50)
	require.NoError(t, te.Shutdown(ctx))
	require.NoError(t, ext.Shutdown(ctx))
}
