package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/flowwatch/flowwatch/console"
)

// consoleShots is where TestConsole writes its screenshots; `go test ./cmd/flowwatch -run
// TestConsole -console-shots ../../docs` refreshes the README's.
var consoleShots = flag.String("console-shots", "", "folder for the console test's screenshots (default: a temporary folder)")

// chromiumBinary is Debian's Chromium (scripts/deps.sh installs it).
const chromiumBinary = "chromium"

const (
	consoleToken  = "console-test-token"
	consoleTenant = "shop-eu"
	consoleTraces = "https://jaeger.example/trace/{trace_id}"
	// The two stuck orders of the fixture: one overdue at paid after a card issuer timeout,
	// one overdue at shipped with nothing to say why.
	stuckAtPaid    = "ord-7f3a9c21"
	stuckAtShipped = "ord-2b81e6d4"
)

// shopTelemetry sends the fixture's spans like the services of a shop would: one tracer
// provider per service, every hop in its own trace, key order.id on every item.
type shopTelemetry struct {
	providers map[string]*sdktrace.TracerProvider
}

func newShopTelemetry(t *testing.T, grpcAddr string) *shopTelemetry {
	t.Helper()
	s := &shopTelemetry{providers: map[string]*sdktrace.TracerProvider{}}
	for _, svc := range []string{"orders", "payments", "inventory", "ledger", "shipping"} {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(svc), attribute.String("tenant.id", consoleTenant))
		s.providers[svc] = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(256)), sdktrace.WithResource(res))
	}
	return s
}

// span records one root span of service from start to end, with order.id, and options.
func (s *shopTelemetry) span(svc, name string, kind trace.SpanKind, order string, start, end time.Time, opts ...func(trace.Span)) {
	_, sp := s.providers[svc].Tracer(svc).Start(context.Background(), name, trace.WithSpanKind(kind), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("order.id", order)))
	for _, o := range opts {
		o(sp)
	}
	sp.End(trace.WithTimestamp(end))
}

func (s *shopTelemetry) flush(t *testing.T) {
	t.Helper()
	for svc, tp := range s.providers {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatalf("send the spans of %s: %v", svc, err)
		}
	}
}

func event(name string, at time.Time, order string) func(trace.Span) {
	return func(sp trace.Span) {
		sp.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attribute.String("order.id", order)))
	}
}

// sendShopFixture sends the last half hour of a shop as of now: completed orders, a few
// cancelled and running ones, and the two stuck ones.
func sendShopFixture(t *testing.T, s *shopTelemetry, now time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(16, 2026))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }
	placed := func(key string, at time.Time) {
		s.span("orders", "POST /orders", trace.SpanKindServer, key, at, at.Add(ms(20, 60)), func(sp trace.Span) {
			sp.SetAttributes(attribute.Int("http.response.status_code", 201))
		})
	}
	pay := func(key string, at time.Time) time.Time {
		done := at.Add(ms(300, 900))
		s.span("payments", "authorize", trace.SpanKindClient, key, at, done.Add(5*time.Millisecond), event("payment.authorized", done, key))
		return done
	}
	reserve := func(key string, at time.Time) time.Time {
		end := at.Add(ms(120, 700))
		s.span("inventory", "reserve", trace.SpanKindConsumer, key, at, end, func(sp trace.Span) { sp.SetStatus(codes.Ok, "") })
		return end
	}
	settle := func(key string, at time.Time) time.Time {
		done := at.Add(ms(800, 2600))
		s.span("ledger", "settle", trace.SpanKindConsumer, key, at, done.Add(3*time.Millisecond), event("payment.settled", done, key))
		return done
	}
	ship := func(key string, at time.Time) time.Time {
		end := at.Add(ms(1500, 5000))
		s.span("shipping", "ship parcel", trace.SpanKindConsumer, key, at, end)
		return end
	}
	deliver := func(key string, at time.Time) {
		done := at.Add(ms(4000, 30000))
		s.span("shipping", "deliver", trace.SpanKindInternal, key, done.Add(-200*time.Millisecond), done, event("delivered", done, key))
	}
	for i := 0; i < 44; i++ {
		key := fmt.Sprintf("ord-%08x", rng.Uint32())
		at := now.Add(-28*time.Minute + time.Duration(i)*35*time.Second)
		if i == 43 {
			at = now.Add(-12 * time.Second)
		}
		placed(key, at)
		switch {
		case i%13 == 5: // cancelled by the customer
			s.span("orders", "cancel", trace.SpanKindInternal, key, at.Add(ms(1000, 4000)), at.Add(ms(4100, 4500)))
			continue
		case i == 43: // placed moments ago: payment and stock still on their way
			reserve(key, at.Add(ms(50, 200)))
			continue
		}
		paid := pay(key, at.Add(ms(100, 400)))
		reserved := reserve(key, at.Add(ms(50, 200)))
		settled := settle(key, paid)
		if i >= 41 { // shipped, not delivered yet
			ship(key, settled.Add(ms(200, 900)))
			continue
		}
		if reserved.After(settled) {
			settled = reserved // shipping waits for both
		}
		deliver(key, ship(key, settled.Add(ms(200, 900))))
	}
	// Stuck at paid: the card issuer timed out and no payment was authorized.
	at := now.Add(-3 * time.Minute)
	placed(stuckAtPaid, at)
	reserve(stuckAtPaid, at.Add(180*time.Millisecond))
	s.span("payments", "authorize", trace.SpanKindClient, stuckAtPaid, at.Add(250*time.Millisecond), at.Add(10250*time.Millisecond), func(sp trace.Span) {
		sp.SetStatus(codes.Error, "card issuer timeout")
		sp.AddEvent("exception", trace.WithTimestamp(at.Add(10250*time.Millisecond)), trace.WithAttributes(
			attribute.String("exception.type", "IssuerTimeoutError"), attribute.String("exception.message", "card issuer timeout")))
	})
	// Stuck at shipped: paid, settled and reserved 24 minutes ago, never shipped.
	at = now.Add(-24 * time.Minute)
	placed(stuckAtShipped, at)
	reserve(stuckAtShipped, at.Add(300*time.Millisecond))
	settle(stuckAtShipped, pay(stuckAtShipped, at.Add(200*time.Millisecond)))
	s.flush(t)
}

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
	} `json:"events"`
}

// browser starts Debian's Chromium headless, as root, with nothing that reaches the network
// on its own.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath(chromiumBinary)
	if err != nil {
		t.Fatalf("%s is not installed (run `make deps`): %v", chromiumBinary, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	return ctx
}

// consoleErrors collects what a tab writes to its console as an error, and its uncaught
// exceptions, until the tab closes.
type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

func watchConsole(ctx context.Context) *consoleErrors {
	c := &consoleErrors{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.mu.Lock()
				c.msgs = append(c.msgs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// consoleProbe is an error the test writes itself, to see that errors are collected.
const consoleProbe = "console-test-probe"

// list returns the errors collected so far, but the probe.
func (c *consoleErrors) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if !strings.Contains(m, consoleProbe) {
			out = append(out, m)
		}
	}
	return out
}

func (c *consoleErrors) probed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if strings.Contains(m, consoleProbe) {
			return true
		}
	}
	return false
}

// step runs browser actions with a deadline of their own.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
}

// pageState tells where the page is and what it shows, for a failure's message.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return "(page state unknown: " + err.Error() + ")"
	}
	return "page: " + s
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
	return v
}

// waitFor polls a JavaScript condition in the page until it is true.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	run(t, ctx, "wait for "+what, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return run(t, ctx, "evaluate "+js, chromedp.Evaluate[T](js))
}

func screenshot(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	checkPNG(t, name, png)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkPNG(t *testing.T, name string, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s is no PNG: %v", name, err)
	}
	if r := img.Bounds(); r.Dx() < 600 || r.Dy() < 200 {
		t.Fatalf("screenshot %s is only %dx%d", name, r.Dx(), r.Dy())
	}
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
// links to its timeline, the operator buttons follow the configuration, and the page says so
// when the API goes away.
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
	// The summary up to its overdue time, which grows while the test runs.
	summary, _, _ := strings.Cut(detail.Reason.Summary, "overdue by")

	ctx := browser(t)
	errs := watchConsole(ctx)
	step(t, ctx, "open the console", chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(ri.API+"/"),
		chromedp.Evaluate[chromedp.Void](`console.error("`+consoleProbe+`")`))
	poll(t, "the probe error to be collected", 10*time.Second, errs.probed)
	signIn(t, ctx)

	// Flows: the graph with its counts, stuck counts, joins and terminals.
	waitFor(t, ctx, "the graph's counts", `document.querySelector('[data-flow="order-fulfilment"] [data-checkpoint="placed"] [data-count]')?.dataset.count > 0`)
	var graph struct {
		Nodes []struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
			Stuck int    `json:"stuck"`
		} `json:"nodes"`
	}
	apiGet(t, ri.API, "/api/v1/flows/order-fulfilment/graph", &graph)
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
	edges := eval[int](t, ctx, `document.querySelectorAll('[data-flow="order-fulfilment"] .edge-label .lat').length`)
	if edges < 5 {
		t.Errorf("%d transitions show p50/p95, want every traveled one (at least 5)", edges)
	}
	screenshot(t, shots, "console-flows.png", run(t, ctx, "screenshot the flow", chromedp.Screenshot(chromedp.CSS(`#flow-order-fulfilment`))))
	placedIn1h := shown["placed"].Count
	step(t, ctx, "pick the 15 minute range", chromedp.Click(chromedp.CSS(`button[data-range="15m"]`)))
	waitFor(t, ctx, "the graph of the last 15 minutes", fmt.Sprintf(`location.hash.includes("range=15m") &&
		(n => n > 0 && n < %d)(+document.querySelector('[data-flow="order-fulfilment"] [data-checkpoint="placed"] [data-count]')?.dataset.count)`, placedIn1h))

	// Stuck: both orders with their reasons, then a link to one.
	step(t, ctx, "open the stuck list", chromedp.Click(chromedp.CSS(`a[data-nav="stuck"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtShipped+`"]`)))
	row := eval[string](t, ctx, `(() => { const r = document.querySelector('tr[data-key="`+stuckAtPaid+`"]'); return r.textContent + " | " + r.nextElementSibling.textContent })()`)
	for _, want := range []string{"paid", "payments", "card issuer timeout", "stock_reserved", summary} {
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
	// One per page: the API's cursor leads to the other one and back.
	step(t, ctx, "page by one", chromedp.Navigate(ri.API+"/#/stuck?limit=1"))
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
	step(t, ctx, "all stuck", chromedp.Navigate(ri.API+"/#/stuck"), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtShipped+`"]`)))
	screenshot(t, shots, "console-stuck.png", run(t, ctx, "screenshot the stuck list", chromedp.CaptureScreenshot()))
	step(t, ctx, "follow the link to the instance", chromedp.Click(chromedp.CSS(`a[data-instance="`+stuckAtPaid+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-reason]`)))

	// Instance: its timeline across traces, the reason, the command, the buttons.
	if hash := eval[string](t, ctx, `location.hash`); hash != "#/instance/order-fulfilment/"+stuckAtPaid+"?tenant="+consoleTenant {
		t.Errorf("the link led to %s", hash)
	}
	waitFor(t, ctx, "the command in the timeline", `!!document.querySelector('li[data-action-entry="command"]')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('li[data-event]').length`); n != len(detail.Events) {
		t.Errorf("the timeline shows %d events, the API has %d", n, len(detail.Events))
	}
	reason := eval[string](t, ctx, `document.querySelector('[data-reason]').textContent`)
	for _, want := range []string{"Waiting for paid", "payments", "card issuer timeout", summary} {
		if !strings.Contains(reason, want) {
			t.Errorf("the reason lacks %q: %s", want, reason)
		}
	}
	links := eval[[]string](t, ctx, `[...document.querySelectorAll('li[data-event] a.trace')].map(a => a.href)`)
	for i, e := range detail.Events {
		if want := strings.ReplaceAll(consoleTraces, "{trace_id}", e.TraceID); i >= len(links) || links[i] != want {
			t.Errorf("event %d links to %v, want %s", i, links, want)
			break
		}
	}
	if !eval[bool](t, ctx, `!!document.querySelector('li[data-expected="paid"].over') && !!document.querySelector('[data-action="unblock"][data-checkpoint="paid"]') && !!document.querySelector('[data-action="cancel"]')`) {
		t.Error("the overdue checkpoint, its Unblock button or the Cancel button is missing")
	}
	screenshot(t, shots, "console-instance.png", run(t, ctx, "screenshot the instance", chromedp.FullScreenshot(100)))
	step(t, ctx, "ask to cancel, then keep the instance", chromedp.Click(chromedp.CSS(`[data-action="cancel"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")))
	if !eval[bool](t, ctx, `document.querySelector('#confirm-dialog [data-confirm]').disabled`) {
		t.Error("a cancel with no reason and no name can be confirmed")
	}
	step(t, ctx, "keep the instance", chromedp.Click(chromedp.CSS(`#confirm-dialog [data-dismiss]`)), chromedp.WaitNotPresent(chromedp.ID("confirm-dialog")))

	// Audit: the commands, then the alerts.
	step(t, ctx, "open the audit", chromedp.Click(chromedp.CSS(`a[data-nav="audit"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-command]`)))
	step(t, ctx, "open the alerts", chromedp.Click(chromedp.CSS(`button[data-tab="alerts"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-alert]`)))
	if keys := eval[string](t, ctx, `[...document.querySelectorAll('tr[data-alert] .key')].map(a => a.textContent).join(" ")`); !strings.Contains(keys, stuckAtPaid) || !strings.Contains(keys, stuckAtShipped) {
		t.Errorf("the alerts audit lists %q", keys)
	}
	if e := errs.list(); len(e) > 0 {
		t.Errorf("the console logged errors:\n%s", strings.Join(e, "\n"))
	}

	// The same API behind a console with the operator API off and no trace template, through
	// a proxy that can play a broken network.
	api, _ := url.Parse(ri.API)
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
	if !eval[bool](t, tab, `!!document.querySelector('[data-reason]') && document.querySelectorAll('li[data-event]').length === `+fmt.Sprint(len(detail.Events))) {
		t.Error("the page dropped what it showed when the API went away")
	}
	down.Store(false)
	waitFor(t, tab, "the banner to go once the API is back", `!document.querySelector('[data-banner]')`)
}
