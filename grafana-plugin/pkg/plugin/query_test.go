package plugin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"
)

const testToken = "s3cret"

var (
	rangeFrom = time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	rangeTo   = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
)

func fakeSettings(t *testing.T, rec *recorder) *backend.DataSourceInstanceSettings {
	srv := serve(t, rec.wrap(fakeAPI(testToken)))
	return dsSettings(1, srv.URL, testToken, map[string]any{
		"traceUrl":             "http://jaeger.example:16686/trace/${traceId}",
		"tracingDatasourceUid": "tempo",
	})
}

// Every query type over gRPC, frames frozen in golden files (go test -update rewrites them).
func TestQueryTypesGolden(t *testing.T) {
	c := startPlugin(t)
	rec := &recorder{}
	s := fakeSettings(t, rec)
	cases := []struct {
		name  string
		qt    QueryType
		model map[string]any
	}{
		{"instances_all", QueryInstances, map[string]any{"flow": "order-fulfilment"}},
		{"instances_stuck", QueryInstances, map[string]any{"flow": "order-fulfilment", "status": "stuck", "tenant": "acme", "checkpoint": "paid"}},
		{"instances_key", QueryInstances, map[string]any{"flow": "order-fulfilment", "key": "o-2"}},
		{"timeline", QueryTimeline, map[string]any{"flow": "order-fulfilment", "key": "o-1"}},
		{"graph", QueryGraph, map[string]any{"flow": "order-fulfilment"}},
		{"series_status", QuerySeries, map[string]any{"flow": "order-fulfilment", "step": "5m"}},
		{"series_checkpoint", QuerySeries, map[string]any{"flow": "order-fulfilment", "by": "checkpoint"}},
		{"flows", QueryFlows, nil},
	}
	var qs []backend.DataQuery
	for _, tc := range cases {
		qs = append(qs, dataQuery(tc.name, tc.qt, tc.model, rangeFrom, rangeTo))
	}
	resp := queryData(t, c, s, qs...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dr := resp.Responses[tc.name]
			if dr.Error != nil {
				t.Fatalf("error: %v", dr.Error)
			}
			experimental.CheckGoldenJSONResponse(t, "testdata", "fake_"+tc.name, &dr, *update)
		})
	}

	// what the plugin asked the API
	stuck := rec.find("/api/v1/instances")
	var sawFilter bool
	for _, r := range stuck {
		q := r.URL.Query()
		if q.Get("status") == "stuck" && q.Get("tenant") == "acme" && q.Get("checkpoint") == "paid" {
			sawFilter = true
		}
	}
	if !sawFilter {
		t.Error("the instances filters (status, tenant, checkpoint) did not reach the API")
	}
	var steps []string
	for _, r := range rec.find("/api/v1/flows/order-fulfilment/series") {
		steps = append(steps, r.URL.Query().Get("by")+"/"+r.URL.Query().Get("step"))
	}
	if got := strings.Join(steps, ","); !strings.Contains(got, "status/5m0s") || !strings.Contains(got, "checkpoint/1m0s") {
		t.Errorf("series by/step sent = %s, want status/5m0s (the query's) and checkpoint/1m0s (the panel interval)", got)
	}
}

// The instances table follows the API's cursor and stops at the limit.
func TestInstancesPagingAndLimit(t *testing.T) {
	c := startPlugin(t)
	s := fakeSettings(t, &recorder{})
	resp := queryData(t, c, s,
		dataQuery("all", QueryInstances, nil, rangeFrom, rangeTo),
		dataQuery("three", QueryInstances, map[string]any{"limit": 3}, rangeFrom, rangeTo))
	for ref, want := range map[string]int{"all": 4, "three": 3} {
		dr := resp.Responses[ref]
		if dr.Error != nil {
			t.Fatalf("%s: %v", ref, dr.Error)
		}
		if n, _ := dr.Frames[0].RowLen(); n != want {
			t.Errorf("%s: %d rows, want %d (pages of 2 must be followed)", ref, n, want)
		}
	}
}

// The node graph frames follow the Node Graph contract: names, preferred visualisation,
// required fields, arc__ fields summing to 1 on every node.
func TestGraphFramesContract(t *testing.T) {
	c := startPlugin(t)
	s := fakeSettings(t, &recorder{})
	dr := queryData(t, c, s, dataQuery("A", QueryGraph, map[string]any{"flow": "order-fulfilment"}, rangeFrom, rangeTo)).Responses["A"]
	if dr.Error != nil {
		t.Fatal(dr.Error)
	}
	checkNodeGraph(t, dr.Frames)
}

func checkNodeGraph(t *testing.T, frames data.Frames) {
	t.Helper()
	if len(frames) != 2 || frames[0].Name != "nodes" || frames[1].Name != "edges" {
		t.Fatalf("frames %v, want nodes and edges", frameNames(frames))
	}
	for _, f := range frames {
		if f.Meta == nil || f.Meta.PreferredVisualization != data.VisTypeNodeGraph {
			t.Errorf("frame %s: preferred visualisation not nodeGraph", f.Name)
		}
	}
	nodes, edges := frames[0], frames[1]
	for _, name := range []string{"id", "title", "mainstat", "secondarystat", "color"} {
		if _, i := nodes.FieldByName(name); i < 0 {
			t.Errorf("nodes lack %q", name)
		}
	}
	for _, name := range []string{"id", "source", "target", "mainstat"} {
		if _, i := edges.FieldByName(name); i < 0 {
			t.Errorf("edges lack %q", name)
		}
	}
	n, _ := nodes.RowLen()
	if n == 0 {
		t.Fatal("no nodes")
	}
	ids := map[string]bool{}
	idf, _ := nodes.FieldByName("id")
	for i := range n {
		ids[idf.At(i).(string)] = true
		sum := 0.0
		for _, f := range nodes.Fields {
			if strings.HasPrefix(f.Name, "arc__") {
				sum += f.At(i).(float64)
			}
		}
		if sum < 0.9999 || sum > 1.0001 {
			t.Errorf("node %s: arc__ fields sum to %v, want 1", idf.At(i), sum)
		}
	}
	m, _ := edges.RowLen()
	src, _ := edges.FieldByName("source")
	dst, _ := edges.FieldByName("target")
	for i := range m {
		if !ids[src.At(i).(string)] || !ids[dst.At(i).(string)] {
			t.Errorf("edge %s->%s names an unknown node", src.At(i), dst.At(i))
		}
	}
}

func frameNames(fs data.Frames) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// Counts over time are numeric multi-frame time series with labels: what alert rules need.
func TestSeriesUsableByAlerting(t *testing.T) {
	c := startPlugin(t)
	s := fakeSettings(t, &recorder{})
	dr := queryData(t, c, s, dataQuery("A", QuerySeries, map[string]any{"flow": "order-fulfilment"}, rangeFrom, rangeTo)).Responses["A"]
	if dr.Error != nil {
		t.Fatal(dr.Error)
	}
	if len(dr.Frames) != 2 {
		t.Fatalf("%d frames, want one per series", len(dr.Frames))
	}
	for _, f := range dr.Frames {
		if f.Meta == nil || f.Meta.Type != data.FrameTypeTimeSeriesMulti {
			t.Errorf("frame %s is not timeseries-multi", f.Name)
		}
		if f.TimeSeriesSchema().Type != data.TimeSeriesTypeLong && f.TimeSeriesSchema().Type != data.TimeSeriesTypeWide {
			t.Errorf("frame %s is not a time series", f.Name)
		}
		v := f.Fields[1]
		if v.Type() != data.FieldTypeFloat64 || v.Labels["status"] != f.Name || v.Labels["flow"] != "order-fulfilment" {
			t.Errorf("value field %s %v labels %v", v.Name, v.Type(), v.Labels)
		}
	}
}

// Each RefID gets its own answer: bad queries fail alone, as user (downstream) errors.
func TestErrorsPerRefID(t *testing.T) {
	c := startPlugin(t)
	s := fakeSettings(t, &recorder{})
	resp := queryData(t, c, s,
		dataQuery("ok", QueryFlows, nil, rangeFrom, rangeTo),
		dataQuery("unknownType", "nonsense", nil, rangeFrom, rangeTo),
		dataQuery("noKey", QueryTimeline, map[string]any{"flow": "order-fulfilment"}, rangeFrom, rangeTo),
		dataQuery("badStatus", QueryInstances, map[string]any{"status": "sleeping"}, rangeFrom, rangeTo),
		dataQuery("badStep", QuerySeries, map[string]any{"flow": "order-fulfilment", "step": "soon"}, rangeFrom, rangeTo),
		dataQuery("missing", QueryTimeline, map[string]any{"flow": "order-fulfilment", "key": "nope"}, rangeFrom, rangeTo),
		dataQuery("graphNoFlow", QueryGraph, nil, rangeFrom, rangeTo),
	)
	if dr := resp.Responses["ok"]; dr.Error != nil || len(dr.Frames) != 1 {
		t.Errorf("good query next to bad ones: err %v, %d frames", dr.Error, len(dr.Frames))
	}
	want := map[string]string{
		"unknownType": `unknown query type "nonsense"`,
		"noKey":       "needs a flow and a key",
		"badStatus":   `unknown status "sleeping"`,
		"badStep":     `step "soon"`,
		"missing":     `no instance "nope"`,
		"graphNoFlow": "needs a flow",
	}
	for ref, msg := range want {
		dr := resp.Responses[ref]
		if dr.Error == nil {
			t.Errorf("%s: no error", ref)
			continue
		}
		wantContains(t, ref+" error", dr.Error.Error(), msg)
		if dr.ErrorSource != backend.ErrorSourceDownstream {
			t.Errorf("%s: error source %q, want downstream", ref, dr.ErrorSource)
		}
		if dr.Status != backend.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", ref, dr.Status)
		}
	}
}

// API failures are downstream errors carrying the API's status and message.
func TestAPIErrorsAreDownstream(t *testing.T) {
	c := startPlugin(t)
	srv := serve(t, fakeAPI(testToken))
	bad := dsSettings(2, srv.URL, "wrong", nil)
	dr := queryData(t, c, bad, dataQuery("A", QueryFlows, nil, rangeFrom, rangeTo)).Responses["A"]
	if dr.Error == nil || dr.Status != http.StatusUnauthorized || dr.ErrorSource != backend.ErrorSourceDownstream {
		t.Fatalf("bad token: err %v status %d source %q", dr.Error, dr.Status, dr.ErrorSource)
	}
	wantContains(t, "error", dr.Error.Error(), "missing or invalid bearer token", "check the API token")

	down := dsSettings(3, closedURL(t), testToken, nil)
	dr = queryData(t, c, down, dataQuery("A", QueryInstances, nil, rangeFrom, rangeTo)).Responses["A"]
	if dr.Error == nil || dr.ErrorSource != backend.ErrorSourceDownstream {
		t.Fatalf("unreachable API: err %v source %q", dr.Error, dr.ErrorSource)
	}
	wantContains(t, "error", dr.Error.Error(), "cannot reach the flowwatch API")

	misconfigured := dsSettings(4, "", "", nil)
	dr = queryData(t, c, misconfigured, dataQuery("A", QueryInstances, nil, rangeFrom, rangeTo)).Responses["A"]
	if dr.Error == nil || dr.ErrorSource != backend.ErrorSourceDownstream {
		t.Fatalf("no URL: err %v source %q", dr.Error, dr.ErrorSource)
	}
	wantContains(t, "error", dr.Error.Error(), "misconfigured", "URL is empty")
}
