package plugin

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowwatch/flowwatch/api"
	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// seedEvent is one event of a seeded instance, at a time of the day of testNow.
type seedEvent struct {
	checkpoint string // empty: an error note
	at         string // "15:04"
	service    string
	status     string
	message    string
}

// seedStore writes instances' events and their evaluated states as the detector does
// (model.Instance.Evaluate at testNow, flowstate.Row), and returns the flow set:
//
//	default/o-1  stuck on paid: placed 10:00, error note 10:01, stock_reserved 10:02 and again 10:03
//	default/o-2  running: placed 11:52
//	default/o-3  completed: placed 11:00 .. delivered 11:45
//	default/o-4  failed: placed 11:10, cancelled 11:20
//	acme/o-5     stuck on stock_reserved and paid: placed 11:00
//	default/eu/o-6  running: placed 11:55 (a key with a slash)
func seedStore(t *testing.T, ctx context.Context, w storage.Writer) *model.Set {
	t.Helper()
	set, err := model.Load(filepath.Join("testdata", "flows"))
	if err != nil {
		t.Fatalf("load flows: %v", err)
	}
	instances := []struct {
		tenant, key string
		events      []seedEvent
	}{
		{"default", "o-1", []seedEvent{{"placed", "10:00", "orders", "ok", ""},
			{"", "10:01", "payments", "error", "card declined"},
			{"stock_reserved", "10:02", "inventory", "ok", ""}, {"stock_reserved", "10:03", "inventory", "ok", ""}}},
		{"default", "o-2", []seedEvent{{"placed", "11:52", "orders", "ok", ""}}},
		{"default", "o-3", []seedEvent{{"placed", "11:00", "orders", "ok", ""}, {"paid", "11:05", "payments", "ok", ""},
			{"stock_reserved", "11:06", "inventory", "ok", ""}, {"shipped", "11:30", "shipping", "ok", ""},
			{"delivered", "11:45", "shipping", "ok", ""}}},
		{"default", "o-4", []seedEvent{{"placed", "11:10", "orders", "ok", ""}, {"cancelled", "11:20", "orders", "ok", ""}}},
		{"acme", "o-5", []seedEvent{{"placed", "11:00", "orders", "ok", ""}}},
		{"default", "eu/o-6", []seedEvent{{"placed", "11:55", "orders", "ok", ""}}},
	}
	const flow = "order-fulfilment"
	day := testNow.Truncate(24 * time.Hour)
	var rows []storage.CheckpointEvent
	var states []storage.InstanceState
	for n, inst := range instances {
		in := model.NewInstance(set.Versions(flow), inst.tenant, inst.key)
		for i, e := range inst.events {
			hm, err := time.Parse("15:04", e.at)
			if err != nil {
				t.Fatal(err)
			}
			at := day.Add(time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute)
			name := e.checkpoint
			if name == "" {
				name = "POST /charge"
			}
			row := storage.CheckpointEvent{Tenant: inst.tenant, Flow: flow, Checkpoint: e.checkpoint,
				Key: inst.key, KeyAttr: "order.id", Time: at, IngestTime: at.Add(time.Second),
				TraceID: fmt.Sprintf("%032x", n+1), SpanID: fmt.Sprintf("%016x", 100*n+i+1),
				Service: e.service, Name: name, Status: e.status, Message: e.message}
			row.EventID = storage.EventID(row.Tenant, flow, row.Checkpoint, row.Key, row.TraceID, row.SpanID, at.UnixNano(), name)
			rows = append(rows, row)
			in.Apply(model.Event{ID: row.EventID, Checkpoint: row.Checkpoint, Time: row.Time, Service: row.Service,
				Name: row.Name, TraceID: row.TraceID, SpanID: row.SpanID, Status: row.Status, Message: row.Message})
		}
		st := flowstate.Row(in.Evaluate(testNow))
		st.UpdatedAt = testNow
		states = append(states, st)
	}
	if err := w.WriteEvents(ctx, rows); err != nil {
		t.Fatalf("seed events: %v", err)
	}
	if err := w.WriteStates(ctx, states); err != nil {
		t.Fatalf("seed states: %v", err)
	}
	return set
}

// realAPI serves the real flowwatch query API over a seeded embedded store (chDB; needs
// libchdb.so: `make chdb`).
func realAPI(t *testing.T, token string) string {
	t.Helper()
	ctx := context.Background()
	st, err := storage.OpenEmbedded(ctx, t.TempDir(), storage.Options{Database: "grafana_plugin_test"})
	if err != nil {
		t.Fatalf("open the embedded store (run `make chdb` first): %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	set := seedStore(t, ctx, st)
	h := api.New(api.Config{Reader: st, Flows: func() *model.Set { return set }, Token: token,
		Now: func() time.Time { return testNow }, Registerer: prometheus.NewRegistry()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The plugin over the real API on a seeded embedded store: every query type, frames frozen
// in golden files; the health check with a good and a bad token.
func TestRealAPI(t *testing.T) {
	c := startPlugin(t)
	url := realAPI(t, testToken)
	s := dsSettings(100, url, testToken, map[string]any{"traceUrl": "http://jaeger.example:16686/trace/${traceId}"})
	from, to := testNow.Add(-3*time.Hour), testNow

	cases := []struct {
		name  string
		qt    QueryType
		model map[string]any
		rows  int // rows of the first frame, -1 to skip
	}{
		{"instances_all", QueryInstances, map[string]any{"flow": "order-fulfilment"}, 6},
		{"instances_stuck", QueryInstances, map[string]any{"flow": "order-fulfilment", "status": "stuck"}, 2},
		{"instances_stuck_acme", QueryInstances, map[string]any{"status": "stuck", "tenant": "acme"}, 1},
		{"instances_checkpoint", QueryInstances, map[string]any{"flow": "order-fulfilment", "checkpoint": "cancelled"}, 1},
		{"instances_key", QueryInstances, map[string]any{"flow": "order-fulfilment", "key": "o-3"}, 1},
		{"timeline", QueryTimeline, map[string]any{"flow": "order-fulfilment", "key": "o-1"}, 5},
		{"timeline_slash_key", QueryTimeline, map[string]any{"flow": "order-fulfilment", "key": "eu/o-6"}, 3},
		{"graph", QueryGraph, map[string]any{"flow": "order-fulfilment"}, 6},
		{"series_status", QuerySeries, map[string]any{"flow": "order-fulfilment", "step": "30m"}, -1},
		{"series_checkpoint", QuerySeries, map[string]any{"flow": "order-fulfilment", "by": "checkpoint", "step": "1h"}, -1},
		{"flows", QueryFlows, nil, 1},
	}
	var qs []backend.DataQuery
	for _, tc := range cases {
		qs = append(qs, dataQuery(tc.name, tc.qt, tc.model, from, to))
	}
	resp := queryData(t, c, s, qs...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dr := resp.Responses[tc.name]
			if dr.Error != nil {
				t.Fatalf("error: %v", dr.Error)
			}
			if len(dr.Frames) == 0 {
				t.Fatal("no frames")
			}
			if n, _ := dr.Frames[0].RowLen(); tc.rows >= 0 && n != tc.rows {
				t.Errorf("%d rows, want %d", n, tc.rows)
			}
			experimental.CheckGoldenJSONResponse(t, "testdata", "real_"+tc.name, &dr, *update)
		})
	}
	t.Run("graph contract", func(t *testing.T) { checkNodeGraph(t, resp.Responses["graph"].Frames) })
	t.Run("stuck reason", func(t *testing.T) {
		f := resp.Responses["timeline"].Frames[0]
		if f.Meta == nil || len(f.Meta.Notices) != 1 {
			t.Fatalf("timeline of a stuck instance: notices %+v, want the stuck reason", f.Meta)
		}
		wantContains(t, "notice", f.Meta.Notices[0].Text, `"paid"`, "payments", "card declined")
	})
	t.Run("series counts", func(t *testing.T) {
		var total float64
		for _, f := range resp.Responses["series_checkpoint"].Frames {
			for i := range f.Fields[1].Len() {
				total += f.Fields[1].At(i).(float64)
			}
		}
		if total != 13 { // the checkpoint events of the seed in [09:00, 12:00), error note aside
			t.Errorf("checkpoint events counted %v, want 13", total)
		}
	})

	res := checkHealth(t, c, s)
	if res.Status != backend.HealthStatusOk || !strings.Contains(res.Message, "1 flow(s): order-fulfilment") {
		t.Errorf("health: %v %q", res.Status, res.Message)
	}
	res = checkHealth(t, c, dsSettings(101, url, "wrong", nil))
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "refused the API token") {
		t.Errorf("health with a wrong token: %v %q", res.Status, res.Message)
	}
	res = checkHealth(t, c, dsSettings(102, url, "", nil))
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "requires a token") {
		t.Errorf("health without a token: %v %q", res.Status, res.Message)
	}
	dr := queryData(t, c, s, dataQuery("A", QueryTimeline, map[string]any{"flow": "order-fulfilment", "key": "nope"}, from, to)).Responses["A"]
	if dr.Error == nil || dr.ErrorSource != backend.ErrorSourceDownstream || !strings.Contains(dr.Error.Error(), `no instance "nope"`) {
		t.Errorf("unknown instance: %v (%s)", dr.Error, dr.ErrorSource)
	}
	dr = queryData(t, c, s, dataQuery("A", QueryGraph, map[string]any{"flow": "nosuchflow"}, from, to)).Responses["A"]
	if dr.Error == nil || dr.ErrorSource != backend.ErrorSourceDownstream || dr.Status != 404 {
		t.Errorf("unknown flow: %v (%s, %d)", dr.Error, dr.ErrorSource, dr.Status)
	}
}
