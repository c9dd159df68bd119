package api

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/flowwatch/flowwatch/storage"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

// spec is openapi.yaml, decoded, with a small checker of JSON values against its schemas:
// type, nullable, required, properties (a property the schema does not document is an error,
// so the document stays exact), items, minItems/maxItems, enum, allOf, $ref and date-time.
type spec struct {
	root map[string]any
}

func loadSpec(t testing.TB) *spec {
	t.Helper()
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi.yaml: openapi version %q, want 3.x", v)
	}
	return &spec{root: root}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// deref follows $ref chains ("#/components/...").
func (s *spec) deref(n map[string]any) map[string]any {
	for i := 0; i < 10; i++ {
		ref, ok := n["$ref"].(string)
		if !ok {
			return n
		}
		var cur any = s.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = asMap(cur)[part]
		}
		if cur == nil {
			panic("openapi.yaml: dangling $ref " + ref)
		}
		n = asMap(cur)
	}
	panic("openapi.yaml: $ref loop")
}

// operations returns "METHOD /path" → operation.
func (s *spec) operations() map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range asMap(s.root["paths"]) {
		for method, op := range asMap(item) {
			out[strings.ToUpper(method)+" "+path] = asMap(op)
		}
	}
	return out
}

// params returns an operation's parameters by "in:name".
func (s *spec) params(op map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := op["parameters"].([]any)
	for _, p := range list {
		p := s.deref(asMap(p))
		out[fmt.Sprint(p["in"], ":", p["name"])] = p
	}
	return out
}

func (s *spec) check(where string, sch map[string]any, v any, errs *[]string) {
	sch = s.deref(sch)
	fail := func(format string, args ...any) { *errs = append(*errs, where+": "+fmt.Sprintf(format, args...)) }
	if v == nil {
		if len(sch) > 0 && sch["nullable"] != true {
			fail("null, but the schema is not nullable")
		}
		return
	}
	if all, ok := sch["allOf"].([]any); ok {
		for _, sub := range all {
			s.check(where, asMap(sub), v, errs)
		}
	}
	if enum, ok := sch["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		fail("%v is not one of %v", v, enum)
	}
	switch sch["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("want an object, got %T", v)
			return
		}
		for _, r := range sch["required"].([]any) {
			if _, ok := m[r.(string)]; !ok {
				fail("required property %q is missing", r)
			}
		}
		props := asMap(sch["properties"])
		for k, pv := range m {
			ps, ok := props[k]
			if !ok {
				if sch["additionalProperties"] != true {
					fail("property %q is not documented", k)
				}
				continue
			}
			s.check(where+"."+k, asMap(ps), pv, errs)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("want an array, got %T", v)
			return
		}
		if n, ok := sch["minItems"].(int); ok && len(a) < n {
			fail("%d items, want at least %d", len(a), n)
		}
		if n, ok := sch["maxItems"].(int); ok && len(a) > n {
			fail("%d items, want at most %d", len(a), n)
		}
		for i, item := range a {
			s.check(fmt.Sprintf("%s[%d]", where, i), asMap(sch["items"]), item, errs)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want a string, got %T", v)
			return
		}
		if sch["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("%q is not RFC 3339", str)
			} else if !strings.HasSuffix(str, "Z") {
				fail("%q is not in UTC", str)
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			fail("want an integer, got %v", v)
		}
		if min, ok := sch["minimum"].(int); ok && f < float64(min) {
			fail("%v is below the minimum %d", v, min)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			fail("want a number, got %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean, got %T", v)
		}
	}
}

// matchPath finds the documented path template of a request path.
func (s *spec) matchPath(escapedPath string) (string, bool) {
	segs := strings.Split(escapedPath, "/")
	for tmpl := range asMap(s.root["paths"]) {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok := true
		for i := range ts {
			if !strings.HasPrefix(ts[i], "{") && ts[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, true
		}
	}
	return "", false
}

// validate checks one answer against the operation's documented response for its status.
func (s *spec) validate(t testing.TB, method, target string, a answer) {
	t.Helper()
	u, _ := url.Parse(target)
	tmpl, ok := s.matchPath(u.EscapedPath())
	if !ok {
		t.Errorf("%s %s: path not documented", method, target)
		return
	}
	op := s.operations()[method+" "+tmpl]
	resp, ok := asMap(op["responses"])[fmt.Sprint(a.status)]
	if !ok {
		t.Errorf("%s %s: status %d not documented for %s", method, target, a.status, tmpl)
		return
	}
	content := asMap(s.deref(asMap(resp))["content"])
	if js := asMap(content["application/json"]); js != nil {
		var v any
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Errorf("%s %s: not JSON: %v", method, target, err)
			return
		}
		var errs []string
		s.check("body", asMap(js["schema"]), v, &errs)
		for _, e := range errs {
			t.Errorf("%s %s (%d): %s", method, target, a.status, e)
		}
		return
	}
	if _, ok := content["text/plain"]; !ok {
		t.Errorf("%s %s: status %d documents no content", method, target, a.status)
	}
}

func TestOpenAPIPathsMatchRoutes(t *testing.T) {
	s := loadSpec(t)
	var documented, served []string
	for k := range s.operations() {
		documented = append(documented, k)
	}
	for _, rt := range append(slices.Clone(routes), operatorRoutes...) {
		served = append(served, rt.method+" "+rt.pattern)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml documents\n  %v\nthe handler serves\n  %v", documented, served)
	}
}

var takesRE = regexp.MustCompile(`this endpoint takes ([a-z_, ]*)\)`)

// TestOpenAPIParametersMatch checks that each /api/ operation documents exactly the query
// parameters its handler accepts (as its unknown-parameter error lists them), and its path
// parameters.
func TestOpenAPIParametersMatch(t *testing.T) {
	s := loadSpec(t)
	f := newFixture(t, withOperatorAPI)
	for key, op := range s.operations() {
		method, path, _ := strings.Cut(key, " ")
		if !strings.HasPrefix(path, "/api/") {
			continue
		}
		documented := map[string]bool{}
		for k := range s.params(op) {
			in, name, _ := strings.Cut(k, ":")
			if in == "query" {
				documented[name] = true
			} else if in == "path" && !strings.Contains(path, "{"+name+"}") {
				t.Errorf("%s: path parameter %q is not in the path", key, name)
			}
		}
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
			if _, ok := s.params(op)["path:"+m[1]]; !ok {
				t.Errorf("%s: path parameter %q is not documented", key, m[1])
			}
		}
		target := strings.NewReplacer("{flow}", "order", "{key}", "o-1").Replace(path) + "?zz_unknown=1"
		a := do(t, f.h, method, target)
		if a.status != 400 {
			t.Fatalf("%s %s: %d, want 400: %s", method, target, a.status, a.body)
		}
		m := takesRE.FindStringSubmatch(a.errorText(t))
		if m == nil {
			t.Errorf("%s: unknown-parameter error does not list the parameters: %s", key, a.body)
			continue
		}
		served := map[string]bool{}
		for _, p := range strings.Split(m[1], ", ") {
			if p != "" {
				served[p] = true
			}
		}
		for p := range served {
			if !documented[p] {
				t.Errorf("%s: query parameter %q is served but not documented", key, p)
			}
		}
		for p := range documented {
			if !served[p] {
				t.Errorf("%s: query parameter %q is documented but not served", key, p)
			}
		}
	}
}

// TestOpenAPIResponsesValidate sends requests covering every operation and its documented
// answers, and checks each answer against the document.
func TestOpenAPIResponsesValidate(t *testing.T) {
	onEachStore(t, func(c *Config) { c.Token = "tok"; withOperatorAPI(c) }, testOpenAPIResponsesValidate)
}

// withOperatorAPI turns the operator actions on, recording into the fixture's store.
func withOperatorAPI(c *Config) {
	c.OperatorAPI, c.Writer = true, c.Reader.(storage.Writer)
}

func testOpenAPIResponsesValidate(t *testing.T, f *fixture) {
	s := loadSpec(t)
	auth := []string{"Authorization", "Bearer tok"}
	requests := []string{
		"/api/v1/flows",
		"/api/v1/flows?bad=1",
		"/api/v1/instances",
		"/api/v1/instances?status=stuck",
		"/api/v1/instances?limit=2",
		"/api/v1/instances?cursor=bogus",
		"/api/v1/instances?limit=0",
		"/api/v1/flows/order/instances/o-1",
		"/api/v1/flows/order/instances/o-2",
		"/api/v1/flows/order/instances/o-4",
		"/api/v1/flows/order/instances/a%2Fb",
		"/api/v1/flows/order/instances/nope",
		"/api/v1/flows/order/instances/o-1?tenant=a&tenant=b",
		"/api/v1/flows/order/graph",
		"/api/v1/flows/order/graph?from=2026-11-26T10:00:00Z&to=2026-11-26T10:10:00Z",
		"/api/v1/flows/order/graph?from=x",
		"/api/v1/flows/nope/graph",
		"/api/v1/flows/order/series?by=checkpoint&step=5m",
		"/api/v1/flows/order/series",
		"/api/v1/flows/order/series?step=1500us",
		"/api/v1/flows/nope/series",
		"/api/v1/alerts",
		"/api/v1/alerts?limit=x",
		"/api/v1/commands",
		"/api/v1/commands?limit=x",
		"/metrics",
		"/healthz",
		"/readyz",
	}
	for _, target := range requests {
		s.validate(t, http.MethodGet, target, do(t, f.h, http.MethodGet, target, auth...))
	}
	// The operator actions: accepted, and every refusal.
	for _, p := range []struct{ target, body string }{
		{"/api/v1/flows/order/instances/o-2/unblock", `{"checkpoint":"paid","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-2/unblock", `{"checkpoint":"reserved","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-2/unblock", `{"checkpoint":"nope","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-2/cancel", `{"reason":"customer asked","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-2/cancel", `{"reason":"","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-2/cancel", `{"reason":"x","by":"ann","extra":1}`},
		{"/api/v1/flows/order/instances/o-2/cancel", ``},
		{"/api/v1/flows/order/instances/nope/cancel", `{"reason":"x","by":"ann"}`},
		{"/api/v1/flows/order/instances/o-4/cancel", `{"reason":"x","by":"ann"}`},
	} {
		s.validate(t, http.MethodPost, p.target, doBody(t, f.h, http.MethodPost, p.target, p.body, auth...))
	}
	// The instance detail with the operator events just recorded (each names its operator).
	s.validate(t, http.MethodGet, "/api/v1/flows/order/instances/o-2", do(t, f.h, http.MethodGet, "/api/v1/flows/order/instances/o-2", auth...))
	// 401 on every /api/ operation.
	for key := range s.operations() {
		method, path, _ := strings.Cut(key, " ")
		if strings.HasPrefix(path, "/api/") {
			target := strings.NewReplacer("{flow}", "order", "{key}", "o-1").Replace(path)
			a := do(t, f.h, method, target)
			if a.status != 401 {
				t.Errorf("%s %s without token: %d", method, target, a.status)
			}
			s.validate(t, method, target, a)
		}
	}
	if f.store == nil {
		return
	}
	// 500 and 503 from the store, and a readyz that is not ready.
	for _, failure := range []error{fmt.Errorf("disk on fire"), context.DeadlineExceeded} {
		f.store.Fail = func(string) error { return failure }
		for _, target := range []string{"/api/v1/instances", "/api/v1/flows/order/instances/o-1", "/api/v1/flows/order/graph",
			"/api/v1/flows/order/series", "/api/v1/alerts", "/api/v1/commands"} {
			s.validate(t, http.MethodGet, target, do(t, f.h, http.MethodGet, target, auth...))
		}
	}
	f.store.Fail = nil
	notReady := New(Config{Reader: f.store, Ready: func(ctx context.Context) error { return fmt.Errorf("rebuilding") },
		Registerer: prometheus.NewRegistry()})
	a := do(t, notReady, http.MethodGet, "/readyz")
	if a.status != 503 {
		t.Errorf("readyz: %d", a.status)
	}
	s.validate(t, http.MethodGet, "/readyz", a)
}
