package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// benchInstances are n stuck instances as the API serves them.
func benchInstances(n int) []Instance {
	out := make([]Instance, n)
	t := Time{testNow.Add(-time.Hour)}
	for i := range out {
		out[i] = Instance{Tenant: "default", Flow: "order-fulfilment", Version: 2, Key: fmt.Sprintf("o-%d", i),
			Status: "stuck", StartedAt: t, LastSeen: t, LastCheckpoint: "placed",
			Expected: []Expected{{Checkpoint: "paid", Deadline: Time{testNow.Add(-45 * time.Minute)}}},
			Reason: &Reason{Checkpoint: "paid", OverdueSeconds: 2700, Service: "payments", LastCheckpoint: "placed",
				TraceIDs: []string{"4bf92f3577b34da6a3ce929d0e0e4736"}, Summary: "order-fulfilment: paid overdue",
				LastError: &ErrorNote{Service: "payments", Name: "POST /charge", Message: "card declined"}}}
	}
	return out
}

// BenchmarkInstancesFrame: building the instances table of 1000 instances.
func BenchmarkInstancesFrame(b *testing.B) {
	insts := benchInstances(1000)
	l := newLinks(Settings{TraceURL: "http://jaeger:16686/trace/${traceId}"})
	b.ReportAllocs()
	for b.Loop() {
		instancesFrame("instances", insts, l)
	}
}

// BenchmarkQueryDataInstancesGRPC: one instances query of 1000 rows, end to end over the
// plugin gRPC protocol and HTTP (the API answering from memory).
func BenchmarkQueryDataInstancesGRPC(b *testing.B) {
	body, _ := json.Marshal(map[string]any{"instances": benchInstances(1000), "next_cursor": ""})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	s := dsSettings(0, srv.URL, "", nil)
	q := dataQuery("A", QueryInstances, map[string]any{"limit": 1000}, rangeFrom, rangeTo)
	req := &backend.QueryDataRequest{PluginContext: pluginContext(s), Queries: []backend.DataQuery{q}}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := testPlugin.QueryData(context.Background(), req)
		if err != nil || resp.Responses["A"].Error != nil {
			b.Fatal(err, resp.Responses["A"].Error)
		}
	}
}
