package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// outcomeClass is how the console styles a command's outcome or an alert's state: like the
// status it tells of.
var outcomeClass = map[string]string{
	"succeeded": "st-completed", "resolved": "st-completed", "sent": "st-running", "firing": "st-stuck",
	"no_effect": "st-compensating", "failed": "st-failed", "dry_run": "st-other",
}

type auditRecord struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	Key         string `json:"key"`
	Outcome     string `json:"outcome"`
	State       string `json:"state"`
	Error       string `json:"error"`
}

// shownOutcome is what the console shows of a record: an alert that failed to send is failed.
func (r auditRecord) shownOutcome() string {
	switch {
	case r.Outcome != "":
		return r.Outcome
	case r.Error != "":
		return "failed"
	}
	return r.State
}

// audit reads the commands or alerts the API has for the query q.
func (c *consoleCase) audit(t *testing.T, kind string, q url.Values) []auditRecord {
	t.Helper()
	var list map[string][]auditRecord
	apiGet(t, c.api, "/api/v1/"+kind+"?"+q.Encode(), &list)
	return list[kind]
}

// outcomeBadges checks the command and alert tables of the instance page shown: one row for
// each of the API's records, in its order, with the badge of its outcome.
func (c *consoleCase) outcomeBadges(t *testing.T, ctx context.Context, flow, key string) {
	q := url.Values{"flow": {flow}, "tenant": {consoleTenant}, "key": {key}, "limit": {"1000"}}
	for _, kind := range []string{"commands", "alerts"} {
		agree(t, "the "+kind+" outcome badges of "+key, func() (string, string) {
			want := [][2]string{}
			for _, r := range c.audit(t, kind, q) {
				if r.Key == key {
					want = append(want, [2]string{strings.ReplaceAll(r.shownOutcome(), "_", " "), outcomeClass[r.shownOutcome()]})
				}
			}
			shown := eval[[][2]string](t, ctx, `[...document.querySelectorAll('.`+kind+`-card tbody tr')].map(r => { const b = r.querySelector('.badge'); return [b.textContent, [...b.classList].find(c => c.startsWith("st-")) ?? ""] })`)
			return jsonOf(want), jsonOf(shown)
		})
	}
}

// auditFilters checks the audit page's filters against the API: tenant and flow are the
// API's, key and outcome narrow what it answered.
func (c *consoleCase) auditFilters(t *testing.T, ctx context.Context) {
	ids := func(rows []auditRecord, keep func(auditRecord) bool) string {
		var out []string
		for _, r := range rows {
			if keep(r) {
				out = append(out, r.ID+r.Fingerprint)
			}
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	all := func(auditRecord) bool { return true }
	shown := func(kind string) string {
		attr := map[string]string{"commands": "command", "alerts": "alert"}[kind]
		return eval[string](t, ctx, `[...document.querySelectorAll('tr[data-`+attr+`]')].map(r => r.dataset.`+attr+`).sort().join(" ")`)
	}
	change := func(sel, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(s => { s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})) })(document.querySelector(%q))`, v, sel))
	}

	// Key contains, then an outcome among those listed.
	step(t, ctx, "the commands of one order", chromedp.Navigate(c.api+"/#/audit"), chromedp.WaitVisible(chromedp.CSS(`tr[data-command]`)),
		chromedp.SendKeys(chromedp.CSS(`.filters input[name=key]`), stuckAtPaid+"\r"))
	waitFor(t, ctx, "the key filter", `location.hash.includes("key=`+stuckAtPaid+`")`)
	agree(t, "the commands of "+stuckAtPaid, func() (string, string) {
		return ids(c.audit(t, "commands", url.Values{"key": {stuckAtPaid}}), all), shown("commands")
	})
	outcome := eval[string](t, ctx, `[...document.querySelectorAll('.filters select[name=outcome] option')].map(o => o.value).find(v => v) ?? ""`)
	if outcome == "" {
		t.Fatal("the audit offers no outcome to filter by")
	}
	step(t, ctx, "filter by outcome "+outcome, change(`.filters select[name=outcome]`, outcome))
	waitFor(t, ctx, "the outcome filter", `location.hash.includes("outcome=`+outcome+`")`)
	agree(t, "the "+outcome+" commands of "+stuckAtPaid, func() (string, string) {
		return ids(c.audit(t, "commands", url.Values{"key": {stuckAtPaid}}), func(r auditRecord) bool { return r.Outcome == outcome }), shown("commands")
	})

	// A tenant with nothing sent: nothing, said so.
	step(t, ctx, "the commands of no tenant", chromedp.Navigate(c.api+"/#/audit"), chromedp.WaitVisible(chromedp.CSS(`tr[data-command]`)),
		chromedp.SendKeys(chromedp.CSS(`.filters input[name=tenant]`), "nobody\r"))
	waitFor(t, ctx, "no command of tenant nobody", `location.hash.includes("tenant=nobody") && !document.querySelector('tr[data-command]') && document.querySelector('.card .empty')?.textContent.includes("No unblock command was sent")`)
	if n := len(c.audit(t, "commands", url.Values{"tenant": {"nobody"}})); n != 0 {
		t.Errorf("the API has %d commands of tenant nobody", n)
	}

	// By flow: the bundles sent nothing, the orders' alerts are the API's.
	step(t, ctx, "the alerts of the bundles", chromedp.Navigate(c.api+"/#/audit?tab=alerts"), chromedp.WaitVisible(chromedp.CSS(`tr[data-alert]`)),
		change(`.filters select[name=flow]`, "bundle-order"))
	waitFor(t, ctx, "no alert of the bundles", `location.hash.includes("flow=bundle-order") && !document.querySelector('tr[data-alert]') && document.querySelector('.card .empty')?.textContent.includes("No alert was sent")`)
	if n := len(c.audit(t, "alerts", url.Values{"flow": {"bundle-order"}})); n != 0 {
		t.Errorf("the API has %d alerts of the bundles", n)
	}
	step(t, ctx, "the alerts of the orders", change(`.filters select[name=flow]`, "order-fulfilment"), chromedp.WaitVisible(chromedp.CSS(`tr[data-alert]`)))
	state := eval[string](t, ctx, `[...document.querySelectorAll('.filters select[name=outcome] option')].map(o => o.value).find(v => v) ?? ""`)
	step(t, ctx, "filter by state "+state, change(`.filters select[name=outcome]`, state))
	waitFor(t, ctx, "the state filter", `location.hash.includes("flow=order-fulfilment") && location.hash.includes("outcome=`+state+`")`)
	agree(t, "the "+state+" alerts of the orders", func() (string, string) {
		return ids(c.audit(t, "alerts", url.Values{"flow": {"order-fulfilment"}}), func(r auditRecord) bool { return r.shownOutcome() == state }), shown("alerts")
	})
}
