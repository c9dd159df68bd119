package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// benchInstances is the size of the benchmark store: instances of the test flow, a quarter
// of them stuck, each with three or four events.
const benchInstances = 20000

var benchStores struct {
	once   sync.Once
	memory *storagetest.Memory
	chdb   storage.Store
	err    error
}

func seedBench(ctx context.Context, w storage.Writer, set *model.Set) error {
	var events []storage.CheckpointEvent
	var states []storage.InstanceState
	flush := func() error {
		if err := w.WriteEvents(ctx, events); err != nil {
			return err
		}
		if err := w.WriteStates(ctx, states); err != nil {
			return err
		}
		events, states = events[:0], states[:0]
		return nil
	}
	for i := range benchInstances {
		key := fmt.Sprintf("order-%06d", i)
		base := now.Add(-time.Duration(benchInstances-i) * 150 * time.Millisecond) // the last 50 minutes
		in := model.NewInstance(set.Versions("order"), "default", key)
		cps := []string{"placed", "reserved", "paid", "settled"}
		if i%4 == 0 {
			cps = cps[:2] // stuck on paid
		}
		for j, cp := range cps {
			e := storage.CheckpointEvent{Tenant: "default", Flow: "order", Checkpoint: cp, Key: key, KeyAttr: "order.id",
				Time: base.Add(time.Duration(j) * 20 * time.Second), Service: "svc-" + cp, Name: cp, Status: "ok",
				TraceID: fmt.Sprintf("%032x", i*8+j), SpanID: fmt.Sprintf("%016x", i*8+j)}
			e.IngestTime = e.Time
			e.EventID = storage.EventID(e.Tenant, e.Flow, cp, key, e.TraceID, e.SpanID, e.Time.UnixNano(), cp)
			events = append(events, e)
			in.Apply(flowstate.ModelEvent(&e))
		}
		st := flowstate.Row(in.Evaluate(now.Add(5 * time.Minute)))
		st.UpdatedAt = now
		states = append(states, st)
		if len(states) == 5000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func benchHandler(b *testing.B, r storage.Reader) http.Handler {
	set := testSet(b)
	return New(Config{Reader: r, Flows: func() *model.Set { return set }, Now: func() time.Time { return now.Add(5 * time.Minute) },
		Registerer: prometheus.NewRegistry()})
}

// staticReader answers from slices read once: what remains is the API's own cost (parameters,
// JSON documents, evaluation on read).
type staticReader struct {
	*storagetest.Memory
	page, stuck []storage.InstanceState
	detail      *storage.InstanceState
	events      []storage.CheckpointEvent
}

func (s *staticReader) Instances(_ context.Context, f storage.InstanceFilter) ([]storage.InstanceState, string, error) {
	if f.Status == "stuck" {
		return s.stuck, "", nil
	}
	return s.page, "next", nil
}

func (s *staticReader) Instance(context.Context, string, string, string) (*storage.InstanceState, error) {
	return s.detail, nil
}

func (s *staticReader) InstanceEvents(context.Context, string, string, string) ([]storage.CheckpointEvent, error) {
	return s.events, nil
}

// BenchmarkAPI measures whole requests through the handler, on a static reader (the API's
// own cost) and on the embedded store (chDB) holding benchInstances instances.
func BenchmarkAPI(b *testing.B) {
	benchStores.once.Do(func() {
		ctx := context.Background()
		set := testSet(b)
		benchStores.memory = &storagetest.Memory{}
		if benchStores.err = seedBench(ctx, benchStores.memory, set); benchStores.err != nil {
			return
		}
		s, err := storage.OpenEmbedded(ctx, embeddedDir, storage.Options{Database: "api_bench"})
		if err != nil {
			benchStores.err = err
			return
		}
		if benchStores.err = s.Migrate(ctx); benchStores.err != nil {
			return
		}
		benchStores.chdb = s
		benchStores.err = seedBench(ctx, s, set)
	})
	if benchStores.err != nil {
		b.Fatal(benchStores.err)
	}
	targets := []struct{ name, target string }{
		{"instances_page_100", "/api/v1/instances?limit=100"},
		{"instances_stuck_page_1000", "/api/v1/instances?status=stuck&limit=1000"},
		{"instance_detail", "/api/v1/flows/order/instances/order-010001"},
		{"graph_1h", "/api/v1/flows/order/graph"},
		{"series_checkpoint_1h_1m", "/api/v1/flows/order/series?by=checkpoint"},
		{"series_status_1h_1m", "/api/v1/flows/order/series?by=status"},
	}
	for _, store := range []struct {
		name string
		r    storage.Reader
	}{{"static", static(b, benchStores.memory)}, {"chdb", benchStores.chdb}} {
		h := benchHandler(b, store.r)
		for _, tg := range targets {
			if store.name == "static" && tg.name != "instances_page_100" && tg.name != "instances_stuck_page_1000" && tg.name != "instance_detail" {
				continue // aggregations are the store's cost
			}
			b.Run(store.name+"/"+tg.name, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, tg.target, nil)
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("%s: %d %s", tg.target, rec.Code, rec.Body.String())
					}
				}
			})
		}
	}
}

func static(b *testing.B, m *storagetest.Memory) *staticReader {
	ctx := context.Background()
	s := &staticReader{Memory: m}
	var err error
	if s.page, _, err = m.Instances(ctx, storage.InstanceFilter{Limit: 100}); err != nil {
		b.Fatal(err)
	}
	if s.stuck, _, err = m.Instances(ctx, storage.InstanceFilter{Status: "stuck", Limit: 1000}); err != nil {
		b.Fatal(err)
	}
	if s.detail, err = m.Instance(ctx, "default", "order", "order-010001"); err != nil || s.detail == nil {
		b.Fatal("no detail instance", err)
	}
	if s.events, err = m.InstanceEvents(ctx, "default", "order", "order-010001"); err != nil {
		b.Fatal(err)
	}
	return s
}
