package main

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestRunKeysExact: through `flowwatch run` — OTLP in, the collector, the embedded store, the
// detector, the query API — a business key comes back byte for byte; keys that differ only in
// bytes a text format escapes or replaces stay two instances; keys that are not UTF-8 (which
// JSON cannot carry) are not stored, and the other checkpoints of their request are.
func TestRunKeysExact(t *testing.T) {
	// The flows' on_stuck actions name sink "nats": run refuses flows whose sinks it lacks.
	o := &runOptions{flows: "testdata/e2e", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		nats: testNATS(t).ClientURL()}
	ri, stop := startAllInOne(t, o)
	defer stop()
	good := []string{"u-\u00ff\u00fe", "u-\u00fe\u00ff", "u-\uFFFD\uFFFD", `q-"quoted"`, `b-back\slash`, "nl-\nline", "nul-\x00",
		"ls-\u2028", "e\u0301", "\u00e9", "slash/and?query#frag", " spaced "}
	bad := []string{"u-\xff\xfe", "u-\xfe\xff"}

	// One request, the pdata way: the OTel SDK refuses to send strings that are not UTF-8.
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	rs.Resource().Attributes().PutStr("tenant.id", "shop-eu")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i, key := range append(append([]string{}, bad...), good...) {
		sp := spans.AppendEmpty()
		sp.SetName("POST /checkout")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
		sp.SetSpanID(pcommon.SpanID{1, byte(i + 1)})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		sp.Attributes().PutStr("order.id", key)
	}
	conn, err := grpc.NewClient(o.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatalf("export: %v", err)
	}

	var got []string
	poll(t, "every good key listed", 30*time.Second, func() bool {
		var list struct {
			Instances []struct{ Key string } `json:"instances"`
		}
		getJSON(t, ri.API+"/api/v1/instances?flow=checkout&tenant=shop-eu&limit=100", &list)
		got = got[:0]
		for _, in := range list.Instances {
			got = append(got, in.Key)
		}
		return len(got) >= len(good)
	})
	want := append([]string{}, good...)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("instances listed by the API: %q, want exactly %q", got, want)
	}
	for _, key := range good {
		var in struct {
			Key    string `json:"key"`
			Events []struct {
				Checkpoint string `json:"checkpoint"`
			} `json:"events"`
		}
		if code := getJSON(t, ri.API+"/api/v1/flows/checkout/instances/"+url.PathEscape(key)+"?tenant=shop-eu", &in); code != 200 {
			t.Errorf("instance %q: HTTP %d", key, code)
			continue
		}
		if in.Key != key || len(in.Events) != 1 {
			t.Errorf("instance %q: the API returns key %q with %d events, want that key with its one event", key, in.Key, len(in.Events))
		}
	}
}
