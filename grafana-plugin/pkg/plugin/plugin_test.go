package plugin

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/experimental/datasourcetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testNow is the clock of every test: a fixed instant after the seeded events.
var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testSettingsUpdated keeps the instance manager from re-creating instances mid-test.
var testSettingsUpdated = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// testPlugin is the data source served over the real plugin gRPC protocol on a free
// loopback port for the whole test binary (the SDK registers its metrics once a process).
var testPlugin *datasourcetest.TestPluginClient

func TestMain(m *testing.M) {
	flag.Parse()
	log.DefaultLogger = log.NewNullLogger() // the SDK logs every expected error at error level
	if testing.Verbose() {
		log.DefaultLogger = log.NewWithLevel(log.Warn)
	}
	backend.Logger = log.DefaultLogger
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	addr := l.Addr().String()
	l.Close()
	factory := func(ctx context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
		return newDatasource(ctx, s, func() time.Time { return testNow })
	}
	p, err := datasourcetest.Manage(factory, datasourcetest.ManageOpts{Address: addr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start plugin:", err)
		os.Exit(1)
	}
	testPlugin = p.Client
	code := m.Run()
	if err := p.Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown plugin:", err)
	}
	os.Exit(code)
}

// startPlugin returns the gRPC client of the data source.
func startPlugin(t *testing.T) *datasourcetest.TestPluginClient {
	t.Helper()
	return testPlugin
}

// nextID gives each test's settings their own data source instance.
var nextID atomic.Int64

// dsSettings are data source settings, each a data source instance of its own (the first
// argument only names the case).
func dsSettings(_ int64, url, token string, jsonData map[string]any) *backend.DataSourceInstanceSettings {
	jd, _ := json.Marshal(jsonData)
	s := &backend.DataSourceInstanceSettings{ID: nextID.Add(1), UID: "flowwatch", Name: "flowwatch", Type: PluginID,
		URL: url, JSONData: jd, Updated: testSettingsUpdated,
		DecryptedSecureJSONData: map[string]string{}}
	if token != "" {
		s.DecryptedSecureJSONData[SecureTokenKey] = token
	}
	return s
}

func pluginContext(s *backend.DataSourceInstanceSettings) backend.PluginContext {
	return backend.PluginContext{OrgID: 1, PluginID: PluginID, DataSourceInstanceSettings: s}
}

// dataQuery builds one query of a request.
func dataQuery(refID string, qt QueryType, model map[string]any, from, to time.Time) backend.DataQuery {
	if model == nil {
		model = map[string]any{}
	}
	model["refId"] = refID
	b, _ := json.Marshal(model)
	return backend.DataQuery{RefID: refID, QueryType: string(qt), JSON: b, Interval: time.Minute,
		MaxDataPoints: 1000, TimeRange: backend.TimeRange{From: from, To: to}}
}

func queryData(t *testing.T, c *datasourcetest.TestPluginClient, s *backend.DataSourceInstanceSettings, qs ...backend.DataQuery) *backend.QueryDataResponse {
	t.Helper()
	resp, err := c.QueryData(context.Background(), &backend.QueryDataRequest{PluginContext: pluginContext(s), Queries: qs})
	if err != nil {
		t.Fatalf("QueryData over gRPC: %v", err)
	}
	if len(resp.Responses) != len(qs) {
		t.Fatalf("got %d responses for %d queries", len(resp.Responses), len(qs))
	}
	return resp
}

func checkHealth(t *testing.T, c *datasourcetest.TestPluginClient, s *backend.DataSourceInstanceSettings) *backend.CheckHealthResult {
	t.Helper()
	res, err := c.CheckHealth(context.Background(), &backend.CheckHealthRequest{PluginContext: pluginContext(s)})
	if err != nil {
		t.Fatalf("CheckHealth over gRPC: %v", err)
	}
	return res
}

// recorder remembers the API requests a server received.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Clone(context.Background()))
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) find(path string) []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*http.Request
	for _, q := range r.reqs {
		if q.URL.Path == path {
			out = append(out, q)
		}
	}
	return out
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func wantContains(t *testing.T, what, got string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("%s %q does not contain %q", what, got, p)
		}
	}
}
