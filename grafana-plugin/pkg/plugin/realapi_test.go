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
	checkpoint string // empty: an error note; model.OperatorCancel: an operator's cancel
	at         string // "15:04"
	service    string
	status     string
	message    string
}

// seedInstance is one seeded instance; parent is the parent's key a sub-flow's rows carry.
type seedInstance struct {
	tenant, flow, key, parent string
	events                    []seedEvent
}

// seedInstances are the instances seedStore writes. Order matters: an instance's trace IDs
// come from its place in the list.
//
//	default/o-1  stuck on paid: placed 10:00, error note 10:01, stock_reserved 10:02 and again 10:03
//	default/o-2  running: placed 11:52
//	default/o-3  completed: placed 11:00 .. delivered 11:45
//	default/o-4  failed: placed 11:10, cancelled 11:20
//	acme/o-5     stuck on stock_reserved and paid: placed 11:00
//	default/eu/o-6  running: placed 11:55 (a key with a slash)
//
// trip (a saga with a compensation, refunded undoes paid) and its sub-flow leg:
//
//	t-1  stuck on legs_confirmed (due 11:05) through its children: booked 10:00, paid 10:05
//	     l-1  completed: reserved 10:10, confirmed 10:25
//	     l-2  stuck on confirmed (due 10:32): reserved 10:12
//	t-2  compensating (refunded due 12:10): booked 11:00, paid 11:05, aborted 11:40
//	t-3  compensated: booked 10:30, paid 10:35, aborted 10:50, refunded 11:10
//	t-4  cancelled by an operator before paying, nothing to undo: booked 11:20, cancel 11:30
//	t-5  stuck on its compensation (refunded due 10:00): booked 09:00, paid 09:05, aborted 09:30
//	t-6  compensating after an operator's cancel (refunded due 12:15): booked 11:30, paid 11:35, cancel 11:45
//	t-7  running past legs_confirmed, its one child done: booked 11:00, paid 11:02
//	     l-3  completed: reserved 11:05, confirmed 11:15
var seedInstances = []seedInstance{
	{"default", "order-fulfilment", "o-1", "", []seedEvent{{"placed", "10:00", "orders", "ok", ""},
		{"", "10:01", "payments", "error", "card declined"},
		{"stock_reserved", "10:02", "inventory", "ok", ""}, {"stock_reserved", "10:03", "inventory", "ok", ""}}},
	{"default", "order-fulfilment", "o-2", "", []seedEvent{{"placed", "11:52", "orders", "ok", ""}}},
	{"default", "order-fulfilment", "o-3", "", []seedEvent{{"placed", "11:00", "orders", "ok", ""}, {"paid", "11:05", "payments", "ok", ""},
		{"stock_reserved", "11:06", "inventory", "ok", ""}, {"shipped", "11:30", "shipping", "ok", ""},
		{"delivered", "11:45", "shipping", "ok", ""}}},
	{"default", "order-fulfilment", "o-4", "", []seedEvent{{"placed", "11:10", "orders", "ok", ""}, {"cancelled", "11:20", "orders", "ok", ""}}},
	{"acme", "order-fulfilment", "o-5", "", []seedEvent{{"placed", "11:00", "orders", "ok", ""}}},
	{"default", "order-fulfilment", "eu/o-6", "", []seedEvent{{"placed", "11:55", "orders", "ok", ""}}},

	{"default", "trip", "t-1", "", []seedEvent{{"booked", "10:00", "trips", "ok", ""}, {"paid", "10:05", "payments", "ok", ""}}},
	{"default", "leg", "l-1", "t-1", []seedEvent{{"reserved", "10:10", "carriers", "ok", ""}, {"confirmed", "10:25", "carriers", "ok", ""}}},
	{"default", "leg", "l-2", "t-1", []seedEvent{{"reserved", "10:12", "carriers", "ok", ""}}},
	{"default", "trip", "t-2", "", []seedEvent{{"booked", "11:00", "trips", "ok", ""}, {"paid", "11:05", "payments", "ok", ""},
		{"aborted", "11:40", "trips", "ok", ""}}},
	{"default", "trip", "t-3", "", []seedEvent{{"booked", "10:30", "trips", "ok", ""}, {"paid", "10:35", "payments", "ok", ""},
		{"aborted", "10:50", "trips", "ok", ""}, {"refunded", "11:10", "payments", "ok", ""}}},
	{"default", "trip", "t-4", "", []seedEvent{{"booked", "11:20", "trips", "ok", ""}, {model.OperatorCancel, "11:30", "", "", "customer asked"}}},
	{"default", "trip", "t-5", "", []seedEvent{{"booked", "09:00", "trips", "ok", ""}, {"paid", "09:05", "payments", "ok", ""},
		{"aborted", "09:30", "trips", "ok", ""}}},
	{"default", "trip", "t-6", "", []seedEvent{{"booked", "11:30", "trips", "ok", ""}, {"paid", "11:35", "payments", "ok", ""},
		{model.OperatorCancel, "11:45", "", "", "duplicate booking"}}},
	{"default", "trip", "t-7", "", []seedEvent{{"booked", "11:00", "trips", "ok", ""}, {"paid", "11:02", "payments", "ok", ""}}},
	{"default", "leg", "l-3", "t-7", []seedEvent{{"reserved", "11:05", "carriers", "ok", ""}, {"confirmed", "11:15", "carriers", "ok", ""}}},
}

// seedStore writes the seedInstances' events, then their states evaluated as the detector
// does (model.Instance.Evaluate at testNow, flowstate.Row; a parent with its children read
// back from the store), and returns the flow set.
func seedStore(t *testing.T, ctx context.Context, st storage.Store) *model.Set {
	t.Helper()
	set, err := model.Load(filepath.Join("testdata", "flows"))
	if err != nil {
		t.Fatalf("load flows: %v", err)
	}
	day := testNow.Truncate(24 * time.Hour)
	var rows []storage.CheckpointEvent
	for n, inst := range seedInstances {
		keyAttr := set.Latest(inst.flow).Key
		for i, e := range inst.events {
			hm, err := time.Parse("15:04", e.at)
			if err != nil {
				t.Fatal(err)
			}
			at := day.Add(time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute)
			if e.checkpoint == model.OperatorCancel {
				row := flowstate.OperatorEvent(inst.tenant, inst.flow, inst.key, model.OperatorCancel, "", "ops@example.com", e.message, at)
				row.IngestTime = at.Add(time.Second)
				rows = append(rows, row)
				continue
			}
			name := e.checkpoint
			if name == "" {
				name = "POST /charge"
			}
			row := storage.CheckpointEvent{Tenant: inst.tenant, Flow: inst.flow, Checkpoint: e.checkpoint,
				Key: inst.key, KeyAttr: keyAttr, Time: at, IngestTime: at.Add(time.Second),
				TraceID: fmt.Sprintf("%032x", n+1), SpanID: fmt.Sprintf("%016x", 100*n+i+1),
				Service: e.service, Name: name, Status: e.status, Message: e.message}
			if inst.parent != "" {
				row.Attributes = map[string]string{storage.AttrParentKey: inst.parent}
			}
			row.EventID = storage.EventID(row.Tenant, inst.flow, row.Checkpoint, row.Key, row.TraceID, row.SpanID, at.UnixNano(), name)
			rows = append(rows, row)
		}
	}
	if err := st.WriteEvents(ctx, rows); err != nil {
		t.Fatalf("seed events: %v", err)
	}
	var states []storage.InstanceState
	for _, inst := range seedInstances {
		versions := set.Versions(inst.flow)
		events, err := st.InstanceEvents(ctx, inst.tenant, inst.flow, inst.key)
		if err != nil {
			t.Fatalf("read back %s/%s: %v", inst.flow, inst.key, err)
		}
		in, _ := flowstate.Rebuild(versions, inst.tenant, inst.key, events, nil)
		var kids []model.Child
		for _, cf := range model.ChildFlowsOf(versions) {
			rows, err := storage.ChildrenEvents(ctx, st, inst.tenant, cf, []string{inst.key}, 0)
			if err != nil {
				t.Fatalf("read the children of %s/%s: %v", inst.flow, inst.key, err)
			}
			kids = append(kids, flowstate.Children(set.Versions(cf), inst.tenant, rows[inst.key], testNow)...)
		}
		if kids != nil {
			in.SetChildren(kids)
		}
		row := flowstate.Row(in.Evaluate(testNow))
		row.UpdatedAt = testNow
		states = append(states, row)
	}
	if err := st.WriteStates(ctx, states); err != nil {
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
		{"flows", QueryFlows, nil, 3},
		// the saga and its sub-flow
		{"trip_instances_all", QueryInstances, map[string]any{"flow": "trip"}, 7},
		{"trip_instances_stuck", QueryInstances, map[string]any{"flow": "trip", "status": "stuck"}, 2},
		{"instances_compensating", QueryInstances, map[string]any{"status": "compensating"}, 2},
		{"instances_compensated", QueryInstances, map[string]any{"status": "compensated"}, 1},
		{"instances_cancelled", QueryInstances, map[string]any{"status": "cancelled"}, 1},
		{"leg_instances_all", QueryInstances, map[string]any{"flow": "leg"}, 3},
		{"trip_timeline_family", QueryTimeline, map[string]any{"flow": "trip", "key": "t-1"}, 3},
		{"trip_timeline_compensation_overdue", QueryTimeline, map[string]any{"flow": "trip", "key": "t-5"}, 4},
		{"trip_timeline_cancelled_compensating", QueryTimeline, map[string]any{"flow": "trip", "key": "t-6"}, 4},
		{"trip_graph", QueryGraph, map[string]any{"flow": "trip"}, 6},
		{"trip_series_status", QuerySeries, map[string]any{"flow": "trip", "step": "3h"}, -1},
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
	t.Run("trip graph contract", func(t *testing.T) { checkNodeGraph(t, resp.Responses["trip_graph"].Frames) })
	t.Run("sagas and families", func(t *testing.T) { checkSagaFrames(t, resp.Responses) })
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
	if res.Status != backend.HealthStatusOk || !strings.Contains(res.Message, "3 flow(s): leg, order-fulfilment, trip") {
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
