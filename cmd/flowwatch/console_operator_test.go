package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consoleCommand is what the operator test reads of a command's audit record.
type consoleCommand struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint"`
	Attempt    int    `json:"attempt"`
	Outcome    string `json:"outcome"`
	Trigger    string `json:"trigger"`
}

// apiPost posts a JSON body to the query API with the bearer token and returns the status and
// the API's error message, if any.
func apiPost(t *testing.T, base, path, body string) (int, string) {
	t.Helper()
	code, b := apiCall(t, "POST", base+path, consoleToken, body)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return code, e.Error
}

// operatorRoundTrip drives Cancel and Unblock in the console against the real operator routes
// of `flowwatch run --operator-api` (DESIGN.md "Operator actions"), and checks what comes of
// them in the API and on the page: an unblock of the order stuck at paid sends a command that
// the API records with trigger manual, and the instance page and the audit show as manual
// (the others as auto), with who asked for it in the timeline; shipped, which has no on_stuck
// action (the API refuses its unblock), is offered no unblock; a cancel of the order stuck
// at shipped makes it cancelled in the API and the page, with the operator's name and reason
// in its events and timeline, no more buttons, and its alert resolved.
func (c *consoleCase) operatorRoundTrip(t *testing.T, ctx context.Context) {
	page := func(key string) string {
		return c.api + "/#/instance/order-fulfilment/" + key + "?tenant=" + consoleTenant
	}
	instance := func(key string) string { return "/api/v1/flows/order-fulfilment/instances/" + key }
	commands := func() []consoleCommand {
		var list struct {
			Commands []consoleCommand `json:"commands"`
		}
		apiGet(t, c.api, "/api/v1/commands?flow=order-fulfilment&tenant="+consoleTenant+"&key="+stuckAtPaid, &list)
		return list.Commands
	}
	before := map[string]bool{}
	for _, cmd := range commands() {
		before[cmd.ID] = true
		if cmd.Trigger != "auto" {
			t.Fatalf("a %s command before any operator action: %+v", cmd.Trigger, cmd)
		}
	}

	// Unblock paid: a command is sent now, recorded with trigger manual, shown on the page.
	step(t, ctx, "open the order stuck at paid", chromedp.Navigate(page(stuckAtPaid)))
	signInIfAsked(t, ctx)
	step(t, ctx, "unblock paid", chromedp.WaitVisible(chromedp.CSS(`[data-action="unblock"][data-checkpoint="paid"]`)),
		chromedp.Click(chromedp.CSS(`[data-action="unblock"][data-checkpoint="paid"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")),
		chromedp.SendKeys(chromedp.CSS(`#confirm-dialog input[name=by]`), "alice@ops"),
		chromedp.Click(chromedp.CSS(`#confirm-dialog [data-confirm]`)),
		chromedp.WaitNotPresent(chromedp.ID("confirm-dialog")))
	waitFor(t, ctx, "the notice of the accepted unblock", `document.querySelector('.notice')?.textContent.includes("Unblock of paid requested")`)
	var manual consoleCommand
	poll(t, "the manual command in the API", 20*time.Second, func() bool {
		for _, cmd := range commands() {
			if !before[cmd.ID] && cmd.Trigger == "manual" {
				manual = cmd
				return true
			}
		}
		return false
	})
	if manual.Checkpoint != "paid" || manual.Key != stuckAtPaid {
		t.Errorf("the unblock sent %+v", manual)
	}
	row := `document.querySelector('.commands-card tr[data-command="` + manual.ID + `"]')`
	waitFor(t, ctx, "the manual command on the instance's page", `!!`+row)
	if got := eval[string](t, ctx, row+`.textContent`); !strings.Contains(got, "#"+strconv.Itoa(manual.Attempt)) || !strings.Contains(got, "paid") {
		t.Errorf("the manual command's row reads %q, the API has attempt %d for paid", got, manual.Attempt)
	}
	step(t, ctx, "open the manual command's payload", chromedp.Click(chromedp.CSS(`.commands-card tr[data-command="`+manual.ID+`"] .payload summary`)),
		chromedp.WaitVisible(chromedp.CSS(`.commands-card tr[data-command="`+manual.ID+`"] .payload pre`)))
	if got := eval[string](t, ctx, row+`.querySelector('.payload pre').textContent`); !strings.Contains(got, `"trigger": "manual"`) {
		t.Errorf("the manual command's payload does not say it was manual: %s", got)
	}
	// Manual and automatic commands are told apart, on the instance's page and in the audit.
	c.commandTriggers(t, ctx, ".commands-card", commands)
	waitFor(t, ctx, "the manual command in the timeline", `[...document.querySelectorAll('li[data-action-entry="command"]')].some(li => li.textContent.includes("Manual unblock command #`+strconv.Itoa(manual.Attempt)+` for paid") && !!li.querySelector('[data-trigger="manual"]'))`)
	step(t, ctx, "the audit of the order stuck at paid", chromedp.Navigate(c.api+"/#/audit?key="+stuckAtPaid),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-command="`+manual.ID+`"]`)))
	c.commandTriggers(t, ctx, ".card", commands)
	step(t, ctx, "back to the order stuck at paid", chromedp.Navigate(page(stuckAtPaid)), chromedp.WaitVisible(chromedp.CSS(`.commands-card tr[data-command="`+manual.ID+`"]`)))
	waitFor(t, ctx, "the unblock and who asked for it in the timeline", `[...document.querySelectorAll('li[data-event][data-checkpoint="@unblock"]')].some(li => li.textContent.includes("unblock paid by alice@ops"))`)

	// Shipped has no on_stuck action: the API refuses its unblock, so the page offers none and
	// says why; the flow document says so too.
	step(t, ctx, "open the order stuck at shipped", chromedp.Navigate(page(stuckAtShipped)))
	waitFor(t, ctx, "shipped without an unblock", `!!document.querySelector('[data-no-unblock="shipped"]')`)
	if eval[bool](t, ctx, `!!document.querySelector('[data-action="unblock"]')`) {
		t.Error("the page offers an unblock of shipped, which has no on_stuck action")
	}
	code, msg := apiPost(t, c.api, instance(stuckAtShipped)+"/unblock?tenant="+consoleTenant, `{"checkpoint":"shipped","by":"alice@ops"}`)
	if code != http.StatusConflict || !strings.Contains(msg, "no on_stuck action") {
		t.Errorf("the API answers the unblock of shipped %d %q, want 409: no on_stuck action", code, msg)
	}
	var flows struct {
		Flows []struct {
			Name        string `json:"name"`
			Checkpoints []struct {
				Name    string            `json:"name"`
				OnStuck []json.RawMessage `json:"on_stuck"`
			} `json:"checkpoints"`
		} `json:"flows"`
	}
	apiGet(t, c.api, "/api/v1/flows", &flows)
	withActions := map[string]int{}
	for _, f := range flows.Flows {
		for _, cp := range f.Checkpoints {
			if f.Name == "order-fulfilment" && len(cp.OnStuck) > 0 {
				withActions[cp.Name] = len(cp.OnStuck)
			}
		}
	}
	if len(withActions) != 1 || withActions["paid"] != 1 {
		t.Errorf("the checkpoints with on_stuck actions in the API: %v, want paid only", withActions)
	}

	// Cancel the order stuck at shipped: cancelled in the API and on the page.
	step(t, ctx, "cancel the instance", chromedp.WaitVisible(chromedp.CSS(`[data-action="cancel"]`)), chromedp.Click(chromedp.CSS(`[data-action="cancel"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")))
	if by := eval[string](t, ctx, `document.querySelector('#confirm-dialog input[name=by]').value`); by != "alice@ops" {
		t.Errorf("the operator's name is not remembered: %q", by)
	}
	if !eval[bool](t, ctx, `document.querySelector('#confirm-dialog [data-confirm]').disabled`) {
		t.Error("a cancel with no reason can be confirmed")
	}
	step(t, ctx, "give the reason and confirm", chromedp.SendKeys(chromedp.CSS(`#confirm-dialog textarea[name=reason]`), "customer called"),
		chromedp.Click(chromedp.CSS(`#confirm-dialog [data-confirm]`)), chromedp.WaitNotPresent(chromedp.ID("confirm-dialog")))
	waitFor(t, ctx, "the notice of the accepted cancel", `document.querySelector('.notice')?.textContent.includes("Cancel requested")`)
	waitFor(t, ctx, "the cancelled status on the page", `!!document.querySelector('.page-head [data-status="cancelled"]')`)
	var cancelled consoleInstance
	apiGet(t, c.api, instance(stuckAtShipped)+"?tenant="+consoleTenant, &cancelled)
	if cancelled.Status != "cancelled" {
		t.Errorf("the API has the cancelled order %s", cancelled.Status)
	}
	if eval[bool](t, ctx, `!!document.querySelector('[data-operator-actions]')`) {
		t.Error("a cancelled instance still offers operator buttons")
	}
	// Who cancelled, and why: in the API's events and in the timeline.
	var cancels []string
	for _, e := range cancelled.Events {
		if e.Checkpoint == "@cancel" {
			cancels = append(cancels, e.By+": "+e.Message)
		}
	}
	if len(cancels) != 1 || cancels[0] != "alice@ops: customer called" {
		t.Errorf("the cancel events in the API: %q, want alice@ops: customer called", cancels)
	}
	waitFor(t, ctx, "the cancel with who and why in the timeline", `[...document.querySelectorAll('li[data-event][data-checkpoint="@cancel"]')].some(li => li.textContent.includes("cancelled by alice@ops: customer called"))`)
	waitFor(t, ctx, "the resolved alert on the page", `[...document.querySelectorAll('.alerts-card tr[data-alert] .badge')].some(b => b.textContent === "resolved")`)
	c.outcomeBadges(t, ctx, "order-fulfilment", stuckAtShipped)
	step(t, ctx, "the stuck list without the cancelled order", chromedp.Navigate(c.api+"/#/stuck"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="`+stuckAtPaid+`"]`)))
	if eval[bool](t, ctx, `!!document.querySelector('tr[data-key="`+stuckAtShipped+`"]')`) {
		t.Error("the cancelled order is still listed as stuck")
	}
}

// commandTriggers checks that each command row under the selector shows the trigger the API
// has for it: manual for an operator's unblock, auto for the others.
func (c *consoleCase) commandTriggers(t *testing.T, ctx context.Context, sel string, commands func() []consoleCommand) {
	t.Helper()
	agree(t, "the triggers of the commands in "+sel, func() (string, string) {
		want := map[string]string{}
		for _, cmd := range commands() {
			want[cmd.ID] = cmd.Trigger
		}
		shown := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('`+sel+` tr[data-command]')].map(r => [r.dataset.command, r.querySelector('[data-trigger]')?.dataset.trigger ?? ""]))`)
		return jsonOf(want), jsonOf(shown)
	})
}

// signInIfAsked signs in when the page asks for the token (a tab keeps it per origin).
func signInIfAsked(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, "the page or the token dialog", `!!document.querySelector('#token-dialog, .page-head')`)
	if eval[bool](t, ctx, `!!document.querySelector('#token-dialog')`) {
		signIn(t, ctx)
	}
}
