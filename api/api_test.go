package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// now is the clock of the handler tests: ten minutes after t0.
var now = t0.Add(10 * time.Minute)

// ie is one event of a seeded instance.
type ie struct {
	id, cp  string
	d       time.Duration // after t0
	keyAttr string        // default order.id
	key     string        // default the instance key
	status  string
}

// seedInstance writes an instance's events (and aliases) and its evaluated state, as the
// detector would, and returns the state.
func seedInstance(t testing.TB, ctx context.Context, w storage.Writer, set *model.Set, tenant, key string, evs ...ie) model.State {
	t.Helper()
	in := model.NewInstance(set.Versions("order"), tenant, key)
	var rows []storage.CheckpointEvent
	for _, e := range evs {
		ka, k := e.keyAttr, e.key
		if ka == "" {
			ka, k = "order.id", key
		}
		st := e.status
		if st == "" {
			st = "ok"
		}
		row := storage.CheckpointEvent{Tenant: tenant, Flow: "order",
			Checkpoint: e.cp, Key: k, KeyAttr: ka, Time: t0.Add(e.d), IngestTime: t0.Add(e.d + time.Second),
			TraceID: fmt.Sprintf("%032x", len(rows)+1), SpanID: fmt.Sprintf("%016x", len(rows)+1),
			Service: "svc-" + e.cp, Name: "name-" + e.cp, Status: st}
		row.EventID = storage.EventID(tenant, "order", e.cp, k, row.TraceID, row.SpanID, row.Time.UnixNano(), row.Name+e.id)
		if e.cp == "" {
			row.Message = "boom"
		}
		rows = append(rows, row)
		in.Apply(model.Event{ID: row.EventID, Checkpoint: row.Checkpoint, Time: row.Time, Service: row.Service,
			Name: row.Name, TraceID: row.TraceID, SpanID: row.SpanID, Status: row.Status, Message: row.Message})
	}
	if err := w.WriteEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	st := in.Evaluate(now)
	row := flowstate.Row(st)
	row.UpdatedAt = now
	if err := w.WriteStates(ctx, []storage.InstanceState{row}); err != nil {
		t.Fatal(err)
	}
	return st
}

// seedAll writes the fixture every handler test uses:
//
//	default/o-1  completed (placed, paid, reserved, settled via alias p-1, shipped, delivered)
//	default/o-2  stuck on paid (placed at t0, deadline t0+2m), with an error note
//	default/o-3  failed (cancelled)
//	default/o-4  running (placed at now-1m), duplicate placed
//	acme/o-1     stuck on paid; tenant isolation
//	default/a/b  running; a key with a slash
func seedAll(t testing.TB, ctx context.Context, w storage.Writer) *model.Set {
	t.Helper()
	set := testSet(t)
	if err := w.WriteAliases(ctx, []storage.Alias{{Tenant: "default", Flow: "order", Attr: "payment.id", Value: "p-1", Key: "o-1", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	seedInstance(t, ctx, w, set, "default", "o-1",
		ie{id: "1", cp: "placed"}, ie{id: "2", cp: "paid", d: 30 * time.Second, keyAttr: "payment.order_id", key: "o-1"},
		ie{id: "3", cp: "reserved", d: 40 * time.Second}, ie{id: "4", cp: "settled", d: 90 * time.Second, keyAttr: "payment.id", key: "p-1"},
		ie{id: "5", cp: "shipped", d: 3 * time.Minute}, ie{id: "6", cp: "delivered", d: 4 * time.Minute})
	seedInstance(t, ctx, w, set, "default", "o-2",
		ie{id: "1", cp: "placed", d: time.Second}, ie{id: "2", cp: "reserved", d: 20 * time.Second},
		ie{id: "3", d: 25 * time.Second, status: "error"})
	seedInstance(t, ctx, w, set, "default", "o-3",
		ie{id: "1", cp: "placed", d: 2 * time.Second}, ie{id: "2", cp: "cancelled", d: 10 * time.Second})
	seedInstance(t, ctx, w, set, "default", "o-4",
		ie{id: "1", cp: "placed", d: 9 * time.Minute}, ie{id: "2", cp: "placed", d: 9*time.Minute + time.Second})
	seedInstance(t, ctx, w, set, "acme", "o-1", ie{id: "1", cp: "placed", d: 3 * time.Second})
	seedInstance(t, ctx, w, set, "default", "a/b", ie{id: "1", cp: "placed", d: 8 * time.Minute})
	if err := w.WriteAlerts(ctx, []storage.AlertRecord{
		{Time: t0.Add(5 * time.Minute), Tenant: "default", Flow: "order", Version: 1, Key: "o-2", Checkpoint: "paid", State: "firing", Sink: "am", Fingerprint: "f1", Summary: "stuck"},
		{Time: t0.Add(6 * time.Minute), Tenant: "acme", Flow: "order", Version: 1, Key: "o-1", Checkpoint: "paid", State: "firing", Sink: "am", Fingerprint: "f2", Summary: "stuck", Error: "refused"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCommands(ctx, []storage.CommandRecord{
		{ID: "c1", Time: t0.Add(5 * time.Minute), Tenant: "default", Flow: "order", Version: 1, Key: "o-2", Checkpoint: "paid", Attempt: 1, Sink: "nats", Subject: "payments.retry", Outcome: "sent", Payload: `{"specversion":"1.0","id":"c1"}`},
		{ID: "c2", Time: t0.Add(7 * time.Minute), Tenant: "acme", Flow: "order", Version: 1, Key: "o-1", Checkpoint: "paid", Attempt: 1, Sink: "nats", Outcome: "failed", Error: "no route", Payload: "not json"},
	}); err != nil {
		t.Fatal(err)
	}
	return set
}

// readWriter is a store the fixture seeds and the API reads.
type readWriter interface {
	storage.Reader
	storage.Writer
}

type fixture struct {
	store *storagetest.Memory // the in-memory store; nil on the real one
	rw    readWriter
	set   *model.Set
	h     http.Handler
}

// newFixture seeds the in-memory store and serves it.
func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	fake := &storagetest.Memory{}
	f := newFixtureOn(t, fake, mod)
	f.store = fake
	return f
}

func newFixtureOn(t testing.TB, rw readWriter, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{rw: rw}
	f.set = seedAll(t, context.Background(), rw)
	cfg := Config{Reader: rw, Flows: func() *model.Set { return f.set }, Now: func() time.Time { return now },
		Registerer: prometheus.NewRegistry()}
	if mod != nil {
		mod(&cfg)
	}
	f.h = New(cfg)
	return f
}

// onEachStore runs a test on the in-memory store and on the real embedded store (chDB),
// seeded alike.
func onEachStore(t *testing.T, mod func(*Config), test func(t *testing.T, f *fixture)) {
	t.Run("memory", func(t *testing.T) { test(t, newFixture(t, mod)) })
	t.Run("chdb", func(t *testing.T) { test(t, newFixtureOn(t, openEmbedded(t), mod)) })
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func (a answer) errorText(t testing.TB) string {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	a.decode(t, &e)
	if e.Error == nil {
		t.Fatalf("no error in %s", a.body)
	}
	return *e.Error
}

func do(t testing.TB, h http.Handler, method, target string, hdr ...string) answer {
	t.Helper()
	return doBody(t, h, method, target, "", hdr...)
}

// doBody is do with a request body.
func doBody(t testing.TB, h http.Handler, method, target, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out, _ := io.ReadAll(rec.Result().Body)
	if ct := rec.Header().Get("Content-Type"); rec.Code != 200 || !strings.HasPrefix(target, "/metrics") {
		if ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q, want application/json", method, target, ct)
		}
	}
	return answer{rec.Code, rec.Header(), out}
}

func get(t testing.TB, h http.Handler, target string, want int) answer {
	t.Helper()
	a := do(t, h, http.MethodGet, target)
	if a.status != want {
		t.Fatalf("GET %s: status %d, want %d: %s", target, a.status, want, a.body)
	}
	return a
}

func TestFlows(t *testing.T) {
	f := newFixture(t, nil)
	var out FlowList
	get(t, f.h, "/api/v1/flows", 200).decode(t, &out)
	if len(out.Flows) != 1 || out.Flows[0].Name != "order" || out.Flows[0].Version != 1 || len(out.Flows[0].Checkpoints) != 7 {
		t.Fatalf("flows = %+v", out)
	}
	paid := out.Flows[0].Checkpoints[1]
	if paid.Name != "paid" || paid.Within != "2m0s" || paid.Service != "payments" || paid.Join != "all" ||
		len(paid.After) != 1 || paid.After[0] != "placed" || paid.Key != "payment.order_id" || len(paid.Aliases) != 1 {
		t.Errorf("paid = %+v", paid)
	}
	if c := out.Flows[0].Checkpoints[6]; c.Terminal != "failure" || c.Within != "" {
		t.Errorf("cancelled = %+v", c)
	}
	// The on_stuck actions an unblock sends: paid has one, a checkpoint without any has none.
	if got := paid.OnStuck; len(got) != 1 || got[0] != (StuckAction{Sink: "nats", Subject: "payments.retry"}) {
		t.Errorf("paid's on_stuck = %+v", got)
	}
	if a := get(t, f.h, "/api/v1/flows", 200); strings.Count(string(a.body), `"on_stuck"`) != 1 ||
		!strings.Contains(string(a.body), `"on_stuck":[{"sink":"nats","subject":"payments.retry"}]`) {
		t.Errorf("only paid has on_stuck actions: %s", a.body)
	}

	empty := New(Config{Reader: f.store, Registerer: prometheus.NewRegistry()})
	if a := get(t, empty, "/api/v1/flows", 200); strings.TrimSpace(string(a.body)) != `{"flows":[]}` {
		t.Errorf("no flows: %s", a.body)
	}
}

func keys(list InstanceList) []string {
	var out []string
	for _, in := range list.Instances {
		out = append(out, in.Tenant+"/"+in.Key+":"+in.Status)
	}
	return out
}

func TestInstancesFilters(t *testing.T) {
	onEachStore(t, nil, testInstancesFilters)
}

func testInstancesFilters(t *testing.T, f *fixture) {
	cases := []struct {
		query string
		want  string
	}{
		{"", "default/o-4:running default/a/b:running default/o-1:completed default/o-2:stuck default/o-3:failed acme/o-1:stuck"},
		{"?tenant=default&status=stuck", "default/o-2:stuck"},
		{"?status=stuck", "default/o-2:stuck acme/o-1:stuck"},
		{"?tenant=acme", "acme/o-1:stuck"},
		{"?flow=order&checkpoint=paid", "default/o-4:running default/a/b:running default/o-2:stuck acme/o-1:stuck"},
		{"?flow=order&checkpoint=paid&status=stuck", "default/o-2:stuck acme/o-1:stuck"},
		{"?checkpoint=delivered", "default/o-1:completed"},
		{"?key=o-1", "default/o-1:completed acme/o-1:stuck"},
		{"?flow=other", ""},
		{"?tenant=nobody", ""},
	}
	for _, c := range cases {
		var out InstanceList
		get(t, f.h, "/api/v1/instances"+c.query, 200).decode(t, &out)
		if got := strings.Join(keys(out), " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.query, got, c.want)
		}
		if out.NextCursor != "" {
			t.Errorf("%q: next_cursor %q on a single page", c.query, out.NextCursor)
		}
	}
	var out InstanceList
	get(t, f.h, "/api/v1/instances?tenant=default&status=stuck", 200).decode(t, &out)
	in := out.Instances[0]
	if in.Reason == nil || in.Reason.Checkpoint != "paid" || in.Reason.Service != "payments" || in.Reason.LastError == nil ||
		in.Reason.LastError.Message != "boom" || len(in.Expected) != 1 || !in.Expected[0].Overdue || in.Version != 1 {
		t.Errorf("stuck instance = %+v", in)
	}
	if in.Events != nil || in.Violations != nil {
		t.Errorf("list carries events or violations: %+v", in)
	}
}

func TestInstancesPagination(t *testing.T) {
	onEachStore(t, nil, testInstancesPagination)
}

func testInstancesPagination(t *testing.T, f *fixture) {
	var all []string
	cursor := ""
	pages := 0
	for {
		target := "/api/v1/instances?limit=4"
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		var out InstanceList
		get(t, f.h, target, 200).decode(t, &out)
		pages++
		if len(out.Instances) > 4 {
			t.Fatalf("page of %d > limit 4", len(out.Instances))
		}
		all = append(all, keys(out)...)
		if out.NextCursor == "" {
			break
		}
		cursor = out.NextCursor
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 2 || len(all) != 6 {
		t.Fatalf("pages %d, instances %v", pages, all)
	}
	seen := map[string]bool{}
	for _, k := range all {
		if seen[k] {
			t.Errorf("%s on two pages", k)
		}
		seen[k] = true
	}
}

func TestParameterErrors(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		target string
		name   string // the parameter the error must name
	}{
		{"/api/v1/instances?limit=0", "limit"},
		{"/api/v1/instances?limit=1001", "limit"},
		{"/api/v1/instances?limit=ten", "limit"},
		{"/api/v1/instances?status=sleeping", "status"},
		{"/api/v1/instances?stauts=stuck", "stauts"},
		{"/api/v1/instances?status=stuck&status=running", "status"},
		{"/api/v1/instances?flow=order&checkpoint=teleported", "checkpoint"},
		{"/api/v1/instances?limit=%zz", "query"},
		{"/api/v1/instances?cursor=eyJ0IjoxfQ", "cursor"},
		{"/api/v1/instances?cursor=eyJ0IjoxfQ.00000000", "cursor"},
		{"/api/v1/flows/order/graph?from=yesterday", "from"},
		{"/api/v1/flows/order/graph?to=2026-13-01T00:00:00Z", "to"},
		{"/api/v1/flows/order/graph?from=2026-11-26T10:00:00Z&to=2026-11-26T09:00:00Z", "from"},
		{"/api/v1/flows/order/series?step=0s", "step"},
		{"/api/v1/flows/order/series?step=fast", "step"},
		{"/api/v1/flows/order/series?step=1500us", "step"},
		{"/api/v1/flows/order/series?step=-1m", "step"},
		{"/api/v1/flows/order/series?by=service", "by"},
		{"/api/v1/flows/order/series?from=0&to=86400000&step=1s", "step"},
		{"/api/v1/flows/order/instances/o-1?tenant=a&tenant=b", "tenant"},
		{"/api/v1/alerts?limit=-1", "limit"},
		{"/api/v1/commands?limit=5000", "limit"},
		{"/api/v1/commands?status=x", "status"},
		{"/api/v1/flows?x=1", "x"},
	}
	for _, c := range cases {
		a := do(t, f.h, http.MethodGet, c.target)
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", c.target, a.status, a.body)
			continue
		}
		if msg := a.errorText(t); !strings.Contains(msg, c.name) {
			t.Errorf("%s: error %q does not name %q", c.target, msg, c.name)
		}
	}
}

func TestInstanceDetail(t *testing.T) {
	onEachStore(t, nil, testInstanceDetail)
}

func testInstanceDetail(t *testing.T, f *fixture) {
	var in Instance
	get(t, f.h, "/api/v1/flows/order/instances/o-1", 200).decode(t, &in)
	if in.Tenant != "default" || in.Status != "completed" || len(in.Events) != 6 {
		t.Fatalf("o-1 = %+v", in)
	}
	if e := in.Events[3]; e.Checkpoint != "settled" || e.Service != "svc-settled" || e.TraceID == "" || e.SpanID == "" ||
		!e.Time.Equal(t0.Add(90*time.Second)) {
		t.Errorf("settled event (keyed by the alias) = %+v", e)
	}

	get(t, f.h, "/api/v1/flows/order/instances/o-1?tenant=acme", 200).decode(t, &in)
	if in.Tenant != "acme" || in.Status != "stuck" || len(in.Events) != 1 {
		t.Errorf("acme/o-1 = %+v", in)
	}

	var dup Instance
	get(t, f.h, "/api/v1/flows/order/instances/o-4", 200).decode(t, &dup)
	if len(dup.Violations) != 1 || dup.Violations[0].Kind != "duplicate_checkpoint" || dup.Violations[0].Detail == "" {
		t.Errorf("o-4 violations = %+v", dup.Violations)
	}

	var slash Instance
	get(t, f.h, "/api/v1/flows/order/instances/"+url.PathEscape("a/b"), 200).decode(t, &slash)
	if slash.Key != "a/b" || len(slash.Events) != 1 {
		t.Errorf("a/b = %+v", slash)
	}

	// A state whose events have expired still answers with "events": [] and "violations": [].
	if err := f.rw.WriteStates(context.Background(), []storage.InstanceState{{Tenant: "default", Flow: "order", Version: 1,
		Key: "gone", Status: "running", StartedAt: t0, LastSeen: t0, Expected: "[]", Reason: "null", Violations: "[]",
		UpdatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	raw := get(t, f.h, "/api/v1/flows/order/instances/gone", 200)
	var keys map[string]json.RawMessage
	raw.decode(t, &keys)
	if string(keys["events"]) != "[]" || string(keys["violations"]) != "[]" {
		t.Errorf("events %s, violations %s: want both present and empty", keys["events"], keys["violations"])
	}

	if msg := get(t, f.h, "/api/v1/flows/order/instances/o-9", 404).errorText(t); !strings.Contains(msg, `"o-9"`) {
		t.Errorf("unknown key: %q", msg)
	}
	if msg := get(t, f.h, "/api/v1/flows/order/instances/o-2?tenant=acme", 404).errorText(t); !strings.Contains(msg, `"acme"`) {
		t.Errorf("other tenant's key: %q", msg)
	}
	if msg := get(t, f.h, "/api/v1/flows/nope/instances/o-1", 404).errorText(t); !strings.Contains(msg, `flow "nope"`) {
		t.Errorf("unknown flow: %q", msg)
	}
}

func TestGraph(t *testing.T) {
	onEachStore(t, nil, testGraph)
}

func testGraph(t *testing.T, f *fixture) {
	var g Graph
	get(t, f.h, "/api/v1/flows/order/graph?from=2026-11-26T10:00:00Z&to=2026-11-26T10:10:00Z&tenant=default", 200).decode(t, &g)
	nodes := map[string]GraphNode{}
	var order []string
	for _, n := range g.Nodes {
		nodes[n.ID] = n
		order = append(order, n.ID)
	}
	if strings.Join(order, ",") != "placed,paid,reserved,settled,shipped,delivered,cancelled" {
		t.Errorf("node order %v", order)
	}
	if nodes["placed"].Count != 5 || nodes["paid"].Count != 1 || nodes["paid"].Stuck != 1 || nodes["shipped"].Stuck != 0 {
		t.Errorf("nodes = %+v", g.Nodes)
	}
	if len(g.Edges) != 7 {
		t.Fatalf("edges = %+v", g.Edges)
	}
	if e := g.Edges[0]; e.Source != "placed" || e.Target != "paid" || e.Count != 1 || e.P50MS != 30000 || e.P95MS != 30000 {
		t.Errorf("placed→paid = %+v", e)
	}
	if e := g.Edges[1]; e.Source != "placed" || e.Target != "reserved" || e.Count != 2 || e.P50MS != 29500 || e.P95MS != 38950 {
		t.Errorf("placed→reserved = %+v", e)
	}

	// All tenants, default range (the hour before now) in unix ms.
	get(t, f.h, fmt.Sprintf("/api/v1/flows/order/graph?from=%d", t0.UnixMilli()), 200).decode(t, &g)
	if g.Nodes[0].Count != 6 || g.Nodes[1].Stuck != 2 {
		t.Errorf("all tenants: %+v", g.Nodes)
	}
	// A range with nothing in it still lists every node and edge.
	get(t, f.h, "/api/v1/flows/order/graph?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", 200).decode(t, &g)
	if len(g.Nodes) != 7 || len(g.Edges) != 7 || g.Nodes[0].Count != 0 || g.Edges[0].Count != 0 {
		t.Errorf("empty range: %+v", g)
	}
	get(t, f.h, "/api/v1/flows/nope/graph", 404)
}

func TestSeries(t *testing.T) {
	onEachStore(t, nil, testSeries)
}

func testSeries(t *testing.T, f *fixture) {
	var out SeriesList
	get(t, f.h, "/api/v1/flows/order/series?from=2026-11-26T10:00:00Z&to=2026-11-26T10:10:00Z&step=5m&by=status", 200).decode(t, &out)
	byName := map[string][][2]float64{}
	var names []string
	for _, s := range out.Series {
		byName[s.Name] = s.Points
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "cancelled,compensated,compensating,completed,failed,running,stuck" {
		t.Fatalf("series %v", names)
	}
	t5 := float64(t0.Add(5 * time.Minute).UnixMilli())
	want := map[string][][2]float64{
		"completed": {{float64(t0.UnixMilli()), 1}, {t5, 0}},
		"failed":    {{float64(t0.UnixMilli()), 1}, {t5, 0}},
		"running":   {{float64(t0.UnixMilli()), 0}, {t5, 2}},
		"stuck":     {{float64(t0.UnixMilli()), 2}, {t5, 0}},
	}
	for name, w := range want {
		if fmt.Sprint(byName[name]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", name, byName[name], w)
		}
	}

	get(t, f.h, fmt.Sprintf("/api/v1/flows/order/series?from=%d&to=%d&step=1m&by=checkpoint&tenant=acme",
		t0.UnixMilli(), t0.Add(3*time.Minute).UnixMilli()), 200).decode(t, &out)
	if len(out.Series) != 7 {
		t.Fatalf("checkpoint series: %+v", out.Series)
	}
	for _, s := range out.Series {
		if len(s.Points) != 3 {
			t.Errorf("%s has %d points, want 3", s.Name, len(s.Points))
		}
		if s.Name == "placed" && s.Points[0][1] != 1 {
			t.Errorf("acme placed = %v", s.Points)
		}
	}

	// Defaults: the last hour, step 1m: 60 points (now is on a minute boundary).
	get(t, f.h, "/api/v1/flows/order/series", 200).decode(t, &out)
	if len(out.Series) != len(Statuses) || len(out.Series[0].Points) != 60 {
		t.Errorf("defaults: %d series, %d points", len(out.Series), len(out.Series[0].Points))
	}
	// Exactly MaxPoints is allowed.
	get(t, f.h, fmt.Sprintf("/api/v1/flows/order/series?from=0&to=%d&step=1s", MaxPoints*1000), 200)
	// Grafana sends steps like "1m0s" and, for short ranges, "200ms".
	get(t, f.h, fmt.Sprintf("/api/v1/flows/order/series?from=%d&to=%d&step=200ms", t0.UnixMilli(), t0.Add(time.Minute).UnixMilli()), 200).decode(t, &out)
	if len(out.Series[0].Points) != 300 {
		t.Errorf("200ms over 1m: %d points", len(out.Series[0].Points))
	}
	get(t, f.h, "/api/v1/flows/order/series?step=1m0s", 200)
	get(t, f.h, "/api/v1/flows/nope/series", 404)
}

func TestGridOffGridPointsPassThrough(t *testing.T) {
	g := newGrid(t0, t0.Add(3*time.Minute), time.Minute)
	got := g.fill([]storage.Series{{Name: "x", Points: []storage.Point{{Time: t0.Add(90 * time.Second), Value: 2}, {Time: t0.Add(30 * time.Second), Value: 1}}}}, nil)
	if fmt.Sprint(got[0].Points) != fmt.Sprint([][2]float64{{float64(t0.Add(30 * time.Second).UnixMilli()), 1}, {float64(t0.Add(90 * time.Second).UnixMilli()), 2}}) {
		t.Errorf("off-grid points = %v", got[0].Points)
	}
	// Buckets start at from; a partial last bucket counts.
	g = newGrid(t0.Add(90*time.Second), t0.Add(3*time.Minute), time.Minute)
	if g.startMS != t0.Add(90*time.Second).UnixMilli() || g.n != 2 {
		t.Errorf("grid = %+v", g)
	}
}

func TestAlertsAndCommands(t *testing.T) {
	onEachStore(t, nil, testAlertsAndCommands)
}

func testAlertsAndCommands(t *testing.T, f *fixture) {
	var al AlertList
	get(t, f.h, "/api/v1/alerts", 200).decode(t, &al)
	if len(al.Alerts) != 2 || al.Alerts[0].Tenant != "acme" || al.Alerts[0].Error != "refused" {
		t.Errorf("alerts = %+v", al)
	}
	get(t, f.h, "/api/v1/alerts?tenant=default&flow=order&limit=5", 200).decode(t, &al)
	if len(al.Alerts) != 1 || al.Alerts[0].Key != "o-2" || al.Alerts[0].Fingerprint != "f1" {
		t.Errorf("default alerts = %+v", al)
	}
	get(t, f.h, "/api/v1/alerts?limit=1", 200).decode(t, &al)
	if len(al.Alerts) != 1 {
		t.Errorf("limit 1: %+v", al)
	}
	get(t, f.h, "/api/v1/alerts?flow=other", 200).decode(t, &al)
	if al.Alerts == nil || len(al.Alerts) != 0 {
		t.Errorf("other flow: %+v", al)
	}

	var raw struct {
		Commands []map[string]any `json:"commands"`
	}
	get(t, f.h, "/api/v1/commands", 200).decode(t, &raw)
	if len(raw.Commands) != 2 || raw.Commands[0]["id"] != "c2" || raw.Commands[0]["payload"] != "not json" {
		t.Fatalf("commands = %+v", raw)
	}
	if p, ok := raw.Commands[1]["payload"].(map[string]any); !ok || p["specversion"] != "1.0" {
		t.Errorf("payload of c1 = %#v", raw.Commands[1]["payload"])
	}
	get(t, f.h, "/api/v1/commands?tenant=default", 200).decode(t, &raw)
	if len(raw.Commands) != 1 || raw.Commands[0]["outcome"] != "sent" {
		t.Errorf("default commands = %+v", raw)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Token = "s3cret" })
	for _, target := range []string{"/api/v1/flows", "/api/v1/instances", "/api/v1/flows/order/instances/o-1",
		"/api/v1/flows/order/graph", "/api/v1/flows/order/series", "/api/v1/alerts", "/api/v1/commands", "/api/v1/nope"} {
		a := do(t, f.h, http.MethodGet, target)
		if a.status != 401 || a.header.Get("WWW-Authenticate") == "" || !strings.Contains(a.errorText(t), "missing") {
			t.Errorf("%s without token: %d %s", target, a.status, a.body)
		}
		for _, h := range []string{"Bearer wrong", "Bearer s3cret2", "Basic czNjcmV0", "Bearer", "s3cret"} {
			a = do(t, f.h, http.MethodGet, target, "Authorization", h)
			if a.status != 401 {
				t.Errorf("%s with %q: %d %s", target, h, a.status, a.body)
			}
		}
		if a = do(t, f.h, http.MethodGet, target, "Authorization", "Bearer s3cret"); a.status == 401 {
			t.Errorf("%s with the token: %d %s", target, a.status, a.body)
		}
	}
	if a := do(t, f.h, http.MethodGet, "/api/v1/flows", "Authorization", "bearer s3cret"); a.status != 200 {
		t.Errorf("lower-case scheme: %d", a.status)
	}
	for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
		if a := do(t, f.h, http.MethodGet, open); a.status != 200 {
			t.Errorf("%s without token: %d", open, a.status)
		}
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	f := newFixture(t, nil)
	for _, target := range []string{"/api/v1/flows", "/api/v1/instances", "/api/v1/flows/order/instances/o-1", "/healthz"} {
		for _, m := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
			a := do(t, f.h, m, target)
			if a.status != 405 || a.header.Get("Allow") != "GET, HEAD" || !strings.Contains(a.errorText(t), m) {
				t.Errorf("%s %s: %d %q %s", m, target, a.status, a.header.Get("Allow"), a.body)
			}
		}
	}
	if a := do(t, f.h, http.MethodHead, "/api/v1/flows"); a.status != 200 {
		t.Errorf("HEAD: %d", a.status)
	}
	for _, target := range []string{"/", "/api/v2/flows", "/api/v1/flow", "/api/v1/flows/order"} {
		a := do(t, f.h, http.MethodGet, target)
		if a.status != 404 {
			t.Errorf("%s: %d %s", target, a.status, a.body)
		}
		a.errorText(t)
	}
}

func TestStoreErrorsAre5xx(t *testing.T) {
	f := newFixture(t, nil)
	f.store.Fail = func(method string) error { return errors.New(method + " exploded") }
	for _, target := range []string{"/api/v1/instances", "/api/v1/flows/order/instances/o-1", "/api/v1/flows/order/graph",
		"/api/v1/flows/order/series", "/api/v1/alerts", "/api/v1/commands"} {
		a := do(t, f.h, http.MethodGet, target)
		if a.status != 500 || !strings.Contains(a.errorText(t), "exploded") {
			t.Errorf("%s: %d %s", target, a.status, a.body)
		}
	}
	f.store.Fail = func(string) error { return context.DeadlineExceeded }
	if a := do(t, f.h, http.MethodGet, "/api/v1/alerts"); a.status != 503 {
		t.Errorf("deadline: %d", a.status)
	}
	// The instance list goes on past a state whose documents are corrupt.
	f.store.Fail = nil
	_ = f.store.WriteStates(context.Background(), []storage.InstanceState{{Tenant: "default", Flow: "order", Key: "bad",
		Status: "stuck", Reason: "{", Expected: "[", LastSeen: now, UpdatedAt: now}})
	var out InstanceList
	get(t, f.h, "/api/v1/instances?tenant=default&status=stuck", 200).decode(t, &out)
	if got := strings.Join(keys(out), " "); got != "default/bad:stuck default/o-2:stuck" {
		t.Errorf("with a corrupt state: %q", got)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var ready error
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	f := newFixture(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Ready = func(context.Context) error { return ready }
		c.Registerer = reg
		c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
	get(t, f.h, "/healthz", 200)
	get(t, f.h, "/readyz", 200)
	ready = errors.New("store not migrated")
	if msg := get(t, f.h, "/readyz", 503).errorText(t); !strings.Contains(msg, "store not migrated") {
		t.Errorf("readyz: %q", msg)
	}
	if strings.Contains(logs.String(), "level=ERROR") { // a probe polls it during every rebuild
		t.Errorf("a not-ready answer logged as an error:\n%s", logs.String())
	}
	get(t, f.h, "/healthz", 200)
	get(t, f.h, "/api/v1/nope", 404)
	a := get(t, f.h, "/metrics", 200)
	for _, want := range []string{`flowwatch_api_requests_total{code="503",route="/readyz"} 1`,
		`flowwatch_api_requests_total{code="404",route="/api/"} 1`, `flowwatch_api_request_duration_seconds_count{route="/healthz"} 2`} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("metrics lack %q:\n%s", want, a.body)
		}
	}
	// Two handlers on one registerer share the metrics instead of panicking.
	_ = New(Config{Reader: f.store, Registerer: reg})
}

func TestStuckOverdueIsRefreshed(t *testing.T) {
	later := now.Add(time.Hour)
	onEachStore(t, func(c *Config) { c.Now = func() time.Time { return later } }, func(t *testing.T, f *fixture) {
		deadline := t0.Add(time.Second + 2*time.Minute) // o-2 placed at +1s, paid within 2m
		want := later.Sub(deadline)
		check := func(where string, in Instance) {
			t.Helper()
			r := in.Reason
			if r == nil || time.Duration(r.Overdue) != want || r.OverdueSeconds != want.Seconds() ||
				!strings.Contains(r.Summary, "overdue by "+want.String()+";") || !in.Expected[0].Overdue {
				t.Errorf("%s: reason %+v, want overdue %s", where, r, want)
			}
		}
		var list InstanceList
		get(t, f.h, "/api/v1/instances?tenant=default&status=stuck", 200).decode(t, &list)
		check("list", list.Instances[0])
		var in Instance
		get(t, f.h, "/api/v1/flows/order/instances/o-2", 200).decode(t, &in)
		check("detail", in)
		// A running instance's deadline that passed since the state was written shows as
		// overdue; its status stays the detector's.
		get(t, f.h, "/api/v1/flows/order/instances/o-4", 200).decode(t, &in)
		if in.Status != "running" || len(in.Expected) == 0 || !in.Expected[0].Overdue {
			t.Errorf("o-4 = %+v", in)
		}
	})
}

// TestDetailEvaluatesCompactState: the detector stores running and closed instances without
// violations or error details; the instance endpoint evaluates them from the events.
func TestDetailEvaluatesCompactState(t *testing.T) {
	onEachStore(t, nil, func(t *testing.T, f *fixture) {
		if err := f.rw.WriteStates(context.Background(), compactStates(t, f, "o-2", "o-4")); err != nil {
			t.Fatal(err)
		}
		var in Instance
		get(t, f.h, "/api/v1/flows/order/instances/o-4", 200).decode(t, &in)
		if len(in.Violations) != 1 || in.Violations[0].Kind != "duplicate_checkpoint" || in.Violations[0].EventID == "" {
			t.Errorf("o-4 violations = %+v", in.Violations)
		}
		get(t, f.h, "/api/v1/flows/order/instances/o-2", 200).decode(t, &in)
		if in.Reason == nil || in.Reason.LastError == nil || in.Reason.LastError.Message != "boom" || len(in.Reason.TraceIDs) != 3 {
			t.Errorf("o-2 reason = %+v", in.Reason)
		}
		// The list serves what is stored.
		var list InstanceList
		get(t, f.h, "/api/v1/instances?key=o-2", 200).decode(t, &list)
		if len(list.Instances) != 1 || list.Instances[0].Reason != nil {
			t.Errorf("list = %+v", list)
		}
	})
}
