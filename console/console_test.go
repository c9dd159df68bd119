package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// apiStub stands for the query API handler: it names the path it was asked for.
var apiStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTeapot)
	_, _ = io.WriteString(w, `{"api":"`+r.Method+" "+r.URL.Path+`"}`)
})

func newHandler(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	h, err := Handler(apiStub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesThePage(t *testing.T) {
	h := newHandler(t, Config{})
	rec := do(h, "GET", "/")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	for _, want := range []string{`src="console/app.js"`, `href="console/app.css"`, `id="app"`} {
		if !strings.Contains(body, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}
	if got := do(h, "HEAD", "/"); got.Code != 200 || got.Body.Len() != 0 {
		t.Errorf("HEAD / = %d with %d bytes", got.Code, got.Body.Len())
	}
}

func TestHandlerServesAssetsWithValidators(t *testing.T) {
	h := newHandler(t, Config{})
	for path, ctype := range map[string]string{
		"/console/app.js":      "text/javascript",
		"/console/app.css":     "text/css",
		"/console/favicon.svg": "image/svg+xml",
	} {
		rec := do(h, "GET", path)
		etag := rec.Header().Get("ETag")
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || etag == "" ||
			rec.Header().Get("Cache-Control") != "no-cache" || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d %q etag %q cache %q, %d bytes", path, rec.Code, rec.Header().Get("Content-Type"),
				etag, rec.Header().Get("Cache-Control"), rec.Body.Len())
			continue
		}
		if again := do(h, "GET", path, "If-None-Match", etag); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", path, again.Code)
		}
	}
	for _, path := range []string{"/console/nope.js", "/console/index.html"} {
		if rec := do(h, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
	}
}

func TestHandlerPassesEverythingElseToTheAPI(t *testing.T) {
	h := newHandler(t, Config{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/flows"},
		{"GET", "/metrics"},
		{"GET", "/healthz"},
		{"GET", "/nope"},
		{"POST", "/"},
		{"POST", "/api/v1/flows/order/instances/k1/cancel"},
	} {
		rec := do(h, c.method, c.path)
		if rec.Code != http.StatusTeapot || !strings.Contains(rec.Body.String(), c.method+" "+c.path) {
			t.Errorf("%s %s = %d %s, want the API's answer", c.method, c.path, rec.Code, rec.Body)
		}
	}
}

func TestHandlerServesThePageConfiguration(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want pageConfig
	}{
		{Config{}, pageConfig{RefreshMS: 5000}},
		{Config{TraceURL: "https://jaeger.example/trace/{trace_id}", OperatorAPI: true, TokenRequired: true, Refresh: time.Second},
			pageConfig{TraceURL: "https://jaeger.example/trace/{trace_id}", OperatorAPI: true, TokenRequired: true, RefreshMS: 1000}},
	} {
		rec := do(newHandler(t, c.cfg), "GET", "/console/config.json")
		var got pageConfig
		if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("GET /console/config.json = %d, Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got != c.want {
			t.Errorf("config of %+v = %s (%v), want %+v", c.cfg, rec.Body, err, c.want)
		}
		// The names are a contract with web/src/config.ts.
		for _, name := range []string{`"trace_url"`, `"operator_api"`, `"token_required"`, `"refresh_ms"`} {
			if !strings.Contains(rec.Body.String(), name) {
				t.Errorf("config lacks %s: %s", name, rec.Body)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string // "" when valid
	}{
		{Config{}, ""},
		{Config{TraceURL: "https://jaeger.example/trace/{trace_id}"}, ""},
		{Config{TraceURL: "http://tempo:3200/explore?traceId={trace_id}&x=1"}, ""},
		{Config{TraceURL: "https://jaeger.example/trace/"}, "has no {trace_id}"},
		{Config{TraceURL: "jaeger.example/trace/{trace_id}"}, "absolute http(s) URL"},
		{Config{TraceURL: "javascript:alert({trace_id})"}, "absolute http(s) URL"},
		{Config{TraceURL: "http://[::1/{trace_id}"}, "trace URL"},
		{Config{Refresh: -time.Second}, "must not be negative"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one saying %q", c.cfg, err, c.want)
		}
	}
	if _, err := Handler(apiStub, Config{TraceURL: "nope"}); err == nil {
		t.Error("Handler accepted an invalid configuration")
	}
}

// TestAssetsNeedNoOtherHost: the page loads only its own files, and its code names no host to
// fetch from (the W3C namespace URIs an SVG library carries are names, not fetches).
func TestAssetsNeedNoOtherHost(t *testing.T) {
	files, err := assets()
	if err != nil {
		t.Fatal(err)
	}
	index := string(files["index.html"].body)
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1) {
		name, ok := strings.CutPrefix(m[1], "console/")
		if !ok || files[name] == nil {
			t.Errorf("index.html refers to %q, which is not an embedded console file", m[1])
		}
	}
	url := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'()]*`)
	for _, name := range []string{"app.js", "app.css", "index.html"} {
		for _, u := range url.FindAllString(string(files[name].body), -1) {
			if !strings.HasPrefix(u, "http://www.w3.org/") {
				t.Errorf("%s names another host: %s", name, u)
			}
		}
	}
	if strings.Contains(string(files["app.css"].body), "@import") {
		t.Error("app.css imports another stylesheet")
	}
}
