package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// bundle reads a bundle order (or item) of the fixture from the API.
func (c *consoleCase) bundle(t *testing.T, flow, key string) familyInstance {
	t.Helper()
	var in familyInstance
	apiGet(t, c.api, "/api/v1/flows/"+flow+"/instances/"+key+"?tenant="+consoleTenant, &in)
	return in
}

// openInstance shows an instance's page and waits for its status badge.
func (c *consoleCase) openInstance(t *testing.T, ctx context.Context, flow, key string) {
	t.Helper()
	step(t, ctx, "open "+flow+" "+key, chromedp.Navigate(c.api+"/#/instance/"+flow+"/"+key+"?tenant="+consoleTenant),
		chromedp.WaitVisible(chromedp.CSS(`.page-head [data-status]`)))
	waitFor(t, ctx, "the page of "+key, `location.hash.startsWith("#/instance/`+flow+`/`+key+`?") && !!document.querySelector('.page-head [data-status]')`)
}

// familyPages checks issue 17 in the browser (DESIGN.md "Sub-flows", "Compensations"): a
// parent lists its children with their statuses and links to them, a child links back to its
// parent; a parent failed by a child says which child, is compensating and shows its refund
// due; a refunded one is compensated; a refund before any failure is a violation.
func (c *consoleCase) familyPages(t *testing.T, ctx context.Context) {
	// The API first: the fixture's family and statuses, judged.
	var family, failed, refunded, early familyInstance
	poll(t, "the bundle orders judged in the API", 30*time.Second, func() bool {
		family, failed = c.bundle(t, "bundle-order", bundleFamily), c.bundle(t, "bundle-order", bundleFailed)
		refunded, early = c.bundle(t, "bundle-order", bundleRefunded), c.bundle(t, "bundle-order", bundleEarlyRefund)
		return len(family.Children) == 2 && failed.Status == "compensating" && refunded.Status == "compensated" && len(early.Violations) > 0
	})

	// The parent: its children, their statuses as the API has them, each a link.
	c.openInstance(t, ctx, "bundle-order", bundleFamily)
	waitFor(t, ctx, "the children", fmt.Sprintf(`document.querySelectorAll('.family-card tr[data-child]').length === %d`, len(family.Children)))
	shown := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('.family-card tr[data-child]')].map(r => [r.dataset.child, r.querySelector('[data-status]').dataset.status]))`)
	statuses := map[string]bool{}
	for _, k := range family.Children {
		statuses[k.Status] = true
		if shown[k.Key] != k.Status {
			t.Errorf("child %s shows %q, the API has %s", k.Key, shown[k.Key], k.Status)
		}
	}
	if !statuses["completed"] || !statuses["running"] {
		t.Errorf("the fixture's family should have a completed and a running child: %+v", family.Children)
	}
	if got := eval[string](t, ctx, `document.querySelector('.page-head [data-status]').dataset.status`); got != family.Status {
		t.Errorf("the parent shows %q, the API has %s", got, family.Status)
	}
	if !eval[bool](t, ctx, `document.querySelector('li[data-expected="all_packed"]')?.textContent.includes("by its bundle-item children")`) {
		t.Error("the children checkpoint is not shown as reached by the children")
	}

	// Down to a child and back up to its parent by the links.
	child := family.Children[0].Key
	step(t, ctx, "follow the link to a child", chromedp.Click(chromedp.CSS(`.family-card tr[data-child="`+child+`"] a`)))
	waitFor(t, ctx, "the child's page with its parent", `location.hash === "#/instance/bundle-item/`+child+`?tenant=`+consoleTenant+`" && !!document.querySelector('[data-parent] a')`)
	if got := eval[string](t, ctx, `document.querySelector('[data-parent]').textContent`); !strings.Contains(got, "bundle-order "+bundleFamily) {
		t.Errorf("the child's parent reads %q", got)
	}
	if in := c.bundle(t, "bundle-item", child); in.Parent == nil || in.Parent.Flow != "bundle-order" || in.Parent.Key != bundleFamily {
		t.Errorf("the API has %s's parent %+v", child, in.Parent)
	}
	step(t, ctx, "follow the link to the parent", chromedp.Click(chromedp.CSS(`[data-parent] a`)))
	waitFor(t, ctx, "the parent's page", `location.hash === "#/instance/bundle-order/`+bundleFamily+`?tenant=`+consoleTenant+`" && !!document.querySelector('.family-card tr[data-child]')`)

	// Failed by its child: the reason names the child, the refund is due.
	c.openInstance(t, ctx, "bundle-order", bundleFailed)
	f := failed.Reason
	if f == nil || f.Failure == nil || f.Failure.Child == nil || len(failed.Children) != 1 {
		t.Fatalf("the API's failed bundle: %+v", failed)
	}
	waitFor(t, ctx, "the failure by a child", `!!document.querySelector('[data-reason] h2')`)
	head := eval[string](t, ctx, `document.querySelector('[data-reason] h2').textContent`)
	link := eval[string](t, ctx, `document.querySelector('[data-reason] h2 a')?.getAttribute('href') ?? ""`)
	if want := fmt.Sprintf("Failed: child %s %s reached %s", f.Failure.Child.Flow, f.Failure.Child.Key, f.Failure.Child.Checkpoint); head != want ||
		link != "#/instance/"+f.Failure.Child.Flow+"/"+f.Failure.Child.Key+"?tenant="+consoleTenant {
		t.Errorf("the reason reads %q linking to %q, want %q", head, link, want)
	}
	if got := eval[string](t, ctx, `document.querySelector('.page-head [data-status]').dataset.status`); got != failed.Status {
		t.Errorf("the failed bundle shows %q, the API has %s", got, failed.Status)
	}
	if got := eval[string](t, ctx, `document.querySelector('.family-card tr[data-child] [data-status]')?.dataset.status ?? ""`); got != failed.Children[0].Status || got != "failed" {
		t.Errorf("its child shows %q, the API has %s", got, failed.Children[0].Status)
	}
	for _, x := range failed.Expected {
		sel := `li[data-expected="` + x.Checkpoint + `"]`
		if x.Compensates == "" || !eval[bool](t, ctx, `document.querySelector('`+sel+`')?.textContent.includes("compensates `+x.Compensates+`")`) {
			t.Errorf("the due compensation %+v is not shown as one", x)
		}
	}
	if len(failed.Expected) == 0 {
		t.Error("the API has no compensation due on the failed bundle")
	}

	// Refunded: compensated, closed.
	c.openInstance(t, ctx, "bundle-order", bundleRefunded)
	if got := eval[string](t, ctx, `document.querySelector('.page-head [data-status]').dataset.status`); got != refunded.Status {
		t.Errorf("the refunded bundle shows %q, the API has %s", got, refunded.Status)
	}
	if eval[bool](t, ctx, `!!document.querySelector('[data-operator-actions]')`) {
		t.Error("a compensated instance offers operator buttons")
	}

	// A refund with nothing failed: the API's violations, one row each.
	c.openInstance(t, ctx, "bundle-order", bundleEarlyRefund)
	waitFor(t, ctx, "the violations", `!!document.querySelector('.violations-card tr[data-violation]')`)
	rows := eval[[][2]string](t, ctx, `[...document.querySelectorAll('.violations-card tr[data-violation]')].map(r => [r.dataset.violation, r.querySelector('.cp').textContent])`)
	var want [][2]string
	for _, v := range early.Violations {
		want = append(want, [2]string{v.Kind, v.Checkpoint})
	}
	if a, b := jsonOf(rows), jsonOf(want); a != b {
		t.Errorf("the violations shown are %s, the API has %s", a, b)
	}
	if !strings.Contains(jsonOf(want), `["unexpected","refunded"]`) {
		t.Errorf("the refund before any failure is not an unexpected violation in the API: %s", jsonOf(want))
	}
	if got := eval[string](t, ctx, `document.querySelector('.violations-card tr[data-violation] .chip').textContent`); got != strings.ReplaceAll(early.Violations[0].Kind, "_", " ") {
		t.Errorf("the violation's kind reads %q", got)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
