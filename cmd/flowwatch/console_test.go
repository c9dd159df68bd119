package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowwatch/flowwatch/console"
)

// consoleShots is where TestConsole writes its screenshots; `go test ./cmd/flowwatch -run
// TestConsole -console-shots ../../docs` refreshes the README's.
var consoleShots = flag.String("console-shots", "", "folder for the console test's screenshots (default: a temporary folder)")

const (
	consoleToken  = "console-test-token"
	consoleTraces = "https://jaeger.example/trace/{trace_id}"
)

// apiGet reads a query API document with the bearer token.
func apiGet(t *testing.T, base, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+consoleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

type consoleInstance struct {
	Key    string `json:"key"`
	Status string `json:"status"`
	Reason *struct {
		Checkpoint string `json:"checkpoint"`
		Summary    string `json:"summary"`
	} `json:"reason"`
	Events []struct {
		Checkpoint string `json:"checkpoint"`
		TraceID    string `json:"trace_id"`
		Message    string `json:"message"`
		By         string `json:"by"`
	} `json:"events"`
}

func signIn(t *testing.T, ctx context.Context) {
	t.Helper()
	step(t, ctx, "sign in with the token",
		chromedp.WaitVisible(chromedp.ID("token-dialog")),
		chromedp.SendKeys(chromedp.CSS(`#token-dialog input[name=token]`), consoleToken),
		chromedp.Click(chromedp.CSS(`#token-dialog button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.ID("token-dialog")),
	)
	if got := eval[string](t, ctx, `sessionStorage.getItem("flowwatch.token")`); got != consoleToken {
		t.Fatalf("the token kept in sessionStorage is %q", got)
	}
}

// TestConsole drives the console in Debian's Chromium against a real all-in-one fed over OTLP:
// every page loads with no console error and shows what the API holds, a stuck instance
// links to its timeline, the operator buttons follow the configuration and act through the
// real operator API, and the page says so when the API goes away.
func TestConsole(t *testing.T) {
	shots := *consoleShots
	if shots == "" {
		shots = t.TempDir()
	}
	ns := testNATS(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer hook.Close()

	o := &runOptions{flows: "testdata/console", data: filepath.Join(t.TempDir(), "data"), tick: 200 * time.Millisecond,
		nats: ns.ClientURL(), webhooks: stringList{hook.URL}, token: consoleToken, traceURL: consoleTraces, operatorAPI: true}
	ri, stop := startAllInOne(t, o)
	defer stop()
	sendShopFixture(t, newShopTelemetry(t, o.otlpGRPC), time.Now())

	// The API first: both stuck, the command and the alerts recorded.
	var stuck struct {
		Instances []consoleInstance `json:"instances"`
	}
	poll(t, "both stuck orders, their alerts and the retry command in the API", 30*time.Second, func() bool {
		apiGet(t, ri.API, "/api/v1/instances?status=stuck", &stuck)
		var alerts struct{ Alerts []struct{ Key string } }
		var commands struct{ Commands []struct{ Key string } }
		apiGet(t, ri.API, "/api/v1/alerts", &alerts)
		apiGet(t, ri.API, "/api/v1/commands", &commands)
		keys := map[string]int{}
		for _, a := range alerts.Alerts {
			keys["alert "+a.Key]++
		}
		for _, c := range commands.Commands {
			keys["command "+c.Key]++
		}
		return len(stuck.Instances) == 2 && keys["alert "+stuckAtPaid] > 0 && keys["alert "+stuckAtShipped] > 0 && keys["command "+stuckAtPaid] > 0
	})
	var detail consoleInstance
	apiGet(t, ri.API, "/api/v1/flows/order-fulfilment/instances/"+stuckAtPaid+"?tenant="+consoleTenant, &detail)
	if detail.Reason == nil || detail.Reason.Checkpoint != "paid" || len(detail.Events) < 3 {
		t.Fatalf("the stuck order in the API: %+v", detail)
	}
	c := &consoleCase{api: ri.API, shots: shots, detail: detail}
	c.summary, _, _ = strings.Cut(detail.Reason.Summary, "overdue by")

	ctx := browser(t)
	errs := watchConsole(ctx)
	step(t, ctx, "open the console", chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(ri.API+"/"),
		chromedp.Evaluate[chromedp.Void](`console.error("`+consoleProbe+`")`))
	poll(t, "the probe error to be collected", 10*time.Second, errs.probed)
	signIn(t, ctx)

	c.flowsPage(t, ctx)
	c.stuckPage(t, ctx)
	c.instancePage(t, ctx)
	c.familyPages(t, ctx)
	c.auditPage(t, ctx)
	if e := errs.list(); len(e) > 0 {
		t.Errorf("the console logged errors:\n%s", strings.Join(e, "\n"))
	}
	c.plainConsole(t, ctx)
	c.operatorRoundTrip(t, ctx)
}

// consoleCase is what the parts of TestConsole share: the API, where the screenshots go, and
// the order stuck at paid as the API tells it.
type consoleCase struct {
	api, shots string
	detail     consoleInstance
	// summary is the stuck reason's summary up to its overdue time, which grows while the
	// test runs.
	summary string
}

// flowsPage checks the graph: its counts and stuck counts are the API's, joins and
// terminals are marked apart, every traveled transition has its p50 and p95, and the range
// changes it.
func (c *consoleCase) flowsPage(t *testing.T, ctx context.Context) {
	waitFor(t, ctx, "the graph's counts", `document.querySelector('[data-flow="order-fulfilment"] [data-checkpoint="placed"] [data-count]')?.dataset.count > 0`)
	var graph struct {
		Nodes []struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
			Stuck int    `json:"stuck"`
		} `json:"nodes"`
	}
	apiGet(t, c.api, "/api/v1/flows/order-fulfilment/graph", &graph)
	type shownNode struct {
		Count int    `json:"count"`
		Stuck string `json:"stuck"`
		Class string `json:"class"`
		Join  bool   `json:"join"`
	}
	shown := eval[map[string]shownNode](t, ctx, `Object.fromEntries([...document.querySelectorAll('[data-flow="order-fulfilment"] a.node')].map(a => [a.dataset.checkpoint, {
		count: +a.querySelector('[data-count]').dataset.count,
		stuck: a.querySelector('[data-stuck]')?.textContent ?? "",
		class: a.getAttribute('class'),
		join: !!a.querySelector('.join')}]))`)
	if len(shown) != len(graph.Nodes) {
		t.Fatalf("the graph shows %d checkpoints, the API has %d: %v", len(shown), len(graph.Nodes), shown)
	}
	for _, n := range graph.Nodes {
		s := shown[n.ID]
		wantStuck := ""
		if n.Stuck > 0 {
			wantStuck = fmt.Sprintf("%d stuck", n.Stuck)
		}
		if s.Count != n.Count || s.Stuck != wantStuck {
			t.Errorf("checkpoint %s shows count %d, %q; the API has %d reached, %d stuck", n.ID, s.Count, s.Stuck, n.Count, n.Stuck)
		}
	}
	if shown["paid"].Stuck != "1 stuck" || shown["shipped"].Stuck != "1 stuck" || !shown["shipped"].Join || shown["paid"].Join ||
		!strings.Contains(shown["delivered"].Class, "k-success") || !strings.Contains(shown["cancelled"].Class, "k-failure") ||
		!strings.Contains(shown["placed"].Class, "k-start") {
		t.Errorf("stuck counts, joins and terminals are not told apart: %+v", shown)
	}
	if got := eval[string](t, ctx, `document.querySelector('#flow-order-fulfilment [data-stat="stuck now"] .stat-v').textContent`); got != "2" {
		t.Errorf("stuck now = %q, want 2", got)
	}
	if totals := c.statusTotals(t, ctx, "order-fulfilment"); totals["completed"] == 0 || totals["failed"] == 0 {
		t.Errorf("the fixture's completed and cancelled orders are not counted: %v", totals)
	}
	poll(t, "the failed bundles judged", 30*time.Second, func() bool {
		return c.bundle(t, "bundle-order", bundleFailed).Status == "compensating" && c.bundle(t, "bundle-order", bundleRefunded).Status == "compensated"
	})
	if totals := c.statusTotals(t, ctx, "bundle-order"); totals["compensating"] == 0 || totals["compensated"] == 0 || totals["failed"] == 0 || totals["running"] == 0 {
		t.Errorf("the fixture's bundle statuses are not all counted: %v", totals)
	}
	edges := eval[int](t, ctx, `document.querySelectorAll('[data-flow="order-fulfilment"] .edge-label .lat').length`)
	if edges < 5 {
		t.Errorf("%d transitions show p50/p95, want every traveled one (at least 5)", edges)
	}
	screenshot(t, c.shots, "console-flows.png", run(t, ctx, "screenshot the flow", chromedp.Screenshot(chromedp.CSS(`#flow-order-fulfilment`))))
	placedIn1h := shown["placed"].Count
	step(t, ctx, "pick the 15 minute range", chromedp.Click(chromedp.CSS(`button[data-range="15m"]`)))
	waitFor(t, ctx, "the graph of the last 15 minutes", fmt.Sprintf(`location.hash.includes("range=15m") &&
		(n => n > 0 && n < %d)(+document.querySelector('[data-flow="order-fulfilment"] [data-checkpoint="placed"] [data-count]')?.dataset.count)`, placedIn1h))
}

// stuckPage checks the stuck list: both orders with their reasons, the checkpoint filter,
// paging by the API's cursor, and the link to an instance.
func (c *consoleCase) stuckPage(t *testing.T, ctx context.Context) {
	step(t, ctx, "open the stuck list", chromedp.Click(chromedp.CSS(`a[data-nav="stuck"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtShipped+`"]`)))
	row := eval[string](t, ctx, `(() => { const r = document.querySelector('tr[data-key="`+stuckAtPaid+`"]'); return r.textContent + " | " + r.nextElementSibling.textContent })()`)
	for _, want := range []string{"paid", "payments", "card issuer timeout", "stock_reserved", c.summary} {
		if !strings.Contains(row, want) {
			t.Errorf("the stuck row lacks %q: %s", want, row)
		}
	}
	step(t, ctx, "filter by checkpoint", chromedp.SetValue(chromedp.CSS(`.filters select[name=flow]`), "order-fulfilment"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.filters select[name=flow]').dispatchEvent(new Event('change', {bubbles: true}))`))
	waitFor(t, ctx, "the checkpoint filter", `!!document.querySelector('.filters select[name=checkpoint]')`)
	step(t, ctx, "filter by checkpoint shipped", chromedp.SetValue(chromedp.CSS(`.filters select[name=checkpoint]`), "shipped"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.filters select[name=checkpoint]').dispatchEvent(new Event('change', {bubbles: true}))`))
	waitFor(t, ctx, "only the order stuck at shipped", `location.hash.includes("checkpoint=shipped") && !document.querySelector('tr[data-key="`+stuckAtPaid+`"]') && !!document.querySelector('tr[data-key="`+stuckAtShipped+`"]')`)
	step(t, ctx, "clear the filters", chromedp.Click(chromedp.CSS(`.filters button`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)))
	// By tenant: the API's stuck instances of the tenant; none of a tenant that has none.
	stuckKeys := func(tenant string) string {
		var list struct {
			Instances []consoleInstance `json:"instances"`
		}
		apiGet(t, c.api, "/api/v1/instances?status=stuck&tenant="+tenant, &list)
		var keys []string
		for _, in := range list.Instances {
			keys = append(keys, in.Key)
		}
		slices.Sort(keys)
		return strings.Join(keys, " ")
	}
	shownKeys := `[...document.querySelectorAll('tr[data-key]')].map(r => r.dataset.key).sort().join(" ")`
	step(t, ctx, "filter by tenant nobody", chromedp.SendKeys(chromedp.CSS(`.filters input[name=tenant]`), "nobody\r"))
	waitFor(t, ctx, "no stuck instance of tenant nobody", `location.hash.includes("tenant=nobody") && !document.querySelector('tr[data-key]') && document.querySelector('.card .empty')?.textContent.includes("No stuck instance matches")`)
	if keys := stuckKeys("nobody"); keys != "" {
		t.Errorf("the API has stuck instances of tenant nobody: %s", keys)
	}
	step(t, ctx, "filter by tenant "+consoleTenant, chromedp.Click(chromedp.CSS(`.filters button`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)),
		chromedp.SendKeys(chromedp.CSS(`.filters input[name=tenant]`), consoleTenant+"\r"))
	waitFor(t, ctx, "the tenant filter", `location.hash.includes("tenant=`+consoleTenant+`")`)
	agree(t, "the stuck instances of "+consoleTenant, func() (string, string) { return stuckKeys(consoleTenant), eval[string](t, ctx, shownKeys) })
	step(t, ctx, "clear the tenant", chromedp.Click(chromedp.CSS(`.filters button`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)))
	// One per page: the API's cursor leads to the other one and back.
	step(t, ctx, "page by one", chromedp.Navigate(c.api+"/#/stuck?limit=1"))
	rowKeys := `[...document.querySelectorAll('tr[data-key]')].map(r => r.dataset.key).join(" ")`
	waitFor(t, ctx, "the first page", rowKeys+` !== "" && !document.querySelector('button[data-next]').disabled`)
	first := eval[string](t, ctx, rowKeys)
	step(t, ctx, "the next page", chromedp.Click(chromedp.CSS(`button[data-next]`)))
	waitFor(t, ctx, "the second page", `(k => k !== "" && k !== "`+first+`")(`+rowKeys+`)`)
	if got := first + " " + eval[string](t, ctx, rowKeys); got != stuckAtPaid+" "+stuckAtShipped && got != stuckAtShipped+" "+stuckAtPaid {
		t.Errorf("paging by one shows %q", got)
	}
	step(t, ctx, "back to the first page", chromedp.Click(chromedp.CSS(`button[data-prev]`)))
	waitFor(t, ctx, "the first page again", rowKeys+` === "`+first+`"`)
	step(t, ctx, "all stuck", chromedp.Navigate(c.api+"/#/stuck"), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtShipped+`"]`)))
	step(t, ctx, "fit the window to the list", chromedp.EmulateViewport(1440, 560))
	screenshot(t, c.shots, "console-stuck.png", run(t, ctx, "screenshot the stuck list", chromedp.CaptureScreenshot()))
	step(t, ctx, "restore the window", chromedp.EmulateViewport(1440, 1000))
	step(t, ctx, "follow the link to the instance", chromedp.Click(chromedp.CSS(`a[data-instance="`+stuckAtPaid+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-reason]`)))
}

// instancePage checks the timeline of the order stuck at paid: its events with their trace
// links, the reason, the overdue checkpoint, the command sent, and the operator buttons.
func (c *consoleCase) instancePage(t *testing.T, ctx context.Context) {
	if hash := eval[string](t, ctx, `location.hash`); hash != "#/instance/order-fulfilment/"+stuckAtPaid+"?tenant="+consoleTenant {
		t.Errorf("the link led to %s", hash)
	}
	waitFor(t, ctx, "the command in the timeline", `!!document.querySelector('li[data-action-entry="command"]')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('li[data-event]').length`); n != len(c.detail.Events) {
		t.Errorf("the timeline shows %d events, the API has %d", n, len(c.detail.Events))
	}
	reason := eval[string](t, ctx, `document.querySelector('[data-reason]').textContent`)
	for _, want := range []string{"Waiting for paid", "payments", "card issuer timeout", c.summary} {
		if !strings.Contains(reason, want) {
			t.Errorf("the reason lacks %q: %s", want, reason)
		}
	}
	links := eval[[]string](t, ctx, `[...document.querySelectorAll('li[data-event] a.trace')].map(a => a.href)`)
	for i, e := range c.detail.Events {
		if want := strings.ReplaceAll(consoleTraces, "{trace_id}", e.TraceID); i >= len(links) || links[i] != want {
			t.Errorf("event %d links to %v, want %s", i, links, want)
			break
		}
	}
	if !eval[bool](t, ctx, `!!document.querySelector('li[data-expected="paid"].over') && !!document.querySelector('[data-action="unblock"][data-checkpoint="paid"]') && !!document.querySelector('[data-action="cancel"]')`) {
		t.Error("the overdue checkpoint, its Unblock button or the Cancel button is missing")
	}
	c.outcomeBadges(t, ctx, "order-fulfilment", stuckAtPaid)
	screenshot(t, c.shots, "console-instance.png", run(t, ctx, "screenshot the instance", chromedp.FullScreenshot(100)))
	step(t, ctx, "ask to cancel, then keep the instance", chromedp.Click(chromedp.CSS(`[data-action="cancel"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")))
	if !eval[bool](t, ctx, `document.querySelector('#confirm-dialog [data-confirm]').disabled`) {
		t.Error("a cancel with no reason and no name can be confirmed")
	}
	step(t, ctx, "keep the instance", chromedp.Click(chromedp.CSS(`#confirm-dialog [data-dismiss]`)), chromedp.WaitNotPresent(chromedp.ID("confirm-dialog")))
}

// auditPage checks the audit: the commands, then the alerts of both stuck orders.
func (c *consoleCase) auditPage(t *testing.T, ctx context.Context) {
	step(t, ctx, "open the audit", chromedp.Click(chromedp.CSS(`a[data-nav="audit"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-command]`)))
	step(t, ctx, "open the alerts", chromedp.Click(chromedp.CSS(`button[data-tab="alerts"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-alert]`)))
	if keys := eval[string](t, ctx, `[...document.querySelectorAll('tr[data-alert] .key')].map(a => a.textContent).join(" ")`); !strings.Contains(keys, stuckAtPaid) || !strings.Contains(keys, stuckAtShipped) {
		t.Errorf("the alerts audit lists %q", keys)
	}
	c.auditFilters(t, ctx)
}

// plainConsole puts the same API behind a console with the operator API off and no trace
// template, through a proxy that can play a broken network: a refused token, no operator
// buttons, trace IDs without links, and a banner while the API is unreachable.
func (c *consoleCase) plainConsole(t *testing.T, ctx context.Context) {
	api, _ := url.Parse(c.api)
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(api)
	plain, err := console.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			panic(http.ErrAbortHandler) // the connection drops: the browser cannot reach the API
		}
		proxy.ServeHTTP(w, r)
	}), console.Config{TokenRequired: true, Refresh: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(plain)
	defer srv.Close()
	tab := ctx // the same tab, at another origin: a new session and no token yet
	step(t, tab, "open the plain console", chromedp.Navigate(srv.URL+"/#/instance/order-fulfilment/"+stuckAtPaid+"?tenant="+consoleTenant))
	step(t, tab, "sign in with a wrong token",
		chromedp.WaitVisible(chromedp.ID("token-dialog")),
		chromedp.SendKeys(chromedp.CSS(`#token-dialog input[name=token]`), "wrong"),
		chromedp.Click(chromedp.CSS(`#token-dialog button[type=submit]`)))
	waitFor(t, tab, "the API's refusal in the token dialog", `document.querySelector('#token-dialog [role=alert]')?.textContent.includes("invalid bearer token")`)
	if got := eval[string](t, tab, `sessionStorage.getItem("flowwatch.token") ?? ""`); got != "" {
		t.Errorf("a refused token is kept: %q", got)
	}
	signIn(t, tab)
	step(t, tab, "show the instance", chromedp.WaitVisible(chromedp.CSS(`[data-reason]`)), chromedp.WaitVisible(chromedp.CSS(`li[data-event]`)))
	if eval[bool](t, tab, `!!document.querySelector('[data-operator-actions], [data-action]')`) {
		t.Error("operator buttons are shown while the operator API is off")
	}
	if eval[int](t, tab, `document.querySelectorAll('a.trace').length`) != 0 || eval[int](t, tab, `document.querySelectorAll('code.trace').length`) == 0 {
		t.Error("trace IDs are links with no trace URL template")
	}
	down.Store(true)
	waitFor(t, tab, "the API-down banner", `!!document.querySelector('[data-banner="down"]')`)
	if !eval[bool](t, tab, `!!document.querySelector('[data-reason]') && document.querySelectorAll('li[data-event]').length === `+fmt.Sprint(len(c.detail.Events))) {
		t.Error("the page dropped what it showed when the API went away")
	}
	down.Store(false)
	waitFor(t, tab, "the banner to go once the API is back", `!document.querySelector('[data-banner]')`)
}

// agree polls until the page shows what the API has, both read again each time: the
// detector may move an instance on between two reads, never for long.
func agree(t *testing.T, what string, read func() (api, page string)) {
	t.Helper()
	var a, p string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if a, p = read(); a == p {
			return
		}
	}
	t.Fatalf("%s: the page shows %s, the API has %s", what, p, a)
}

// statusTotals checks a flow's totals by status over the last hour: every one the page shows
// is the API's series total, and the page shows every status the API counts.
func (c *consoleCase) statusTotals(t *testing.T, ctx context.Context, flow string) map[string]int {
	var want map[string]int
	agree(t, "the totals by status of "+flow, func() (string, string) {
		to := time.Now().UnixMilli()
		var s struct {
			Series []struct {
				Name   string      `json:"name"`
				Points [][]float64 `json:"points"`
			} `json:"series"`
		}
		apiGet(t, c.api, fmt.Sprintf("/api/v1/flows/%s/series?from=%d&to=%d&step=3600000ms&by=status", flow, to-3_600_000, to), &s)
		want = map[string]int{"running": 0, "completed": 0, "failed": 0}
		for _, x := range s.Series {
			n := 0
			for _, p := range x.Points {
				n += int(p[1])
			}
			if _, main := want[x.Name]; x.Name != "stuck" && (n > 0 || main) {
				want[x.Name] = n
			}
		}
		shown := eval[map[string]int](t, ctx, `Object.fromEntries([...document.querySelectorAll('#flow-`+flow+` [data-stat]')].filter(s => s.dataset.stat !== "stuck now").map(s => [s.dataset.stat, +s.querySelector('.stat-v').textContent.replace(/\D/g, "")]))`)
		return jsonOf(want), jsonOf(shown)
	})
	return want
}
