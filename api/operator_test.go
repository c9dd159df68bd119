package api

import (
	"context"
	"github.com/flowwatch/flowwatch/flowstate"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

func TestOperatorActionsOffByDefault(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"cancel", "unblock"} {
		a := doBody(t, f.h, http.MethodPost, "/api/v1/flows/order/instances/o-2/"+p, `{"reason":"x","checkpoint":"paid","by":"ann"}`)
		if a.status != 404 {
			t.Fatalf("%s with the operator API off: %d %s", p, a.status, a.body)
		}
	}
	events, _ := f.store.InstanceEvents(context.Background(), "default", "order", "o-2")
	for _, e := range events {
		if strings.HasPrefix(e.Checkpoint, "@") {
			t.Fatalf("an operator event was recorded with the API off: %+v", e)
		}
	}
}

// The operator actions are recorded in the store as operator events of the instance (who,
// when, why), which the detector reads like any row; refusals change nothing.
func TestOperatorActionsRecordEvents(t *testing.T) {
	onEachStore(t, func(c *Config) { c.Token = "tok"; withOperatorAPI(c) }, func(t *testing.T, f *fixture) {
		auth := []string{"Authorization", "Bearer tok"}
		post := func(target, body string, want int) answer {
			t.Helper()
			a := doBody(t, f.h, http.MethodPost, target, body, auth...)
			if a.status != want {
				t.Fatalf("POST %s %s: %d, want %d: %s", target, body, a.status, want, a.body)
			}
			return a
		}
		if a := doBody(t, f.h, http.MethodPost, "/api/v1/flows/order/instances/o-2/cancel", `{"reason":"x","by":"ann"}`); a.status != 401 {
			t.Fatalf("without the token: %d", a.status)
		}
		post("/api/v1/flows/order/instances/o-2/unblock", `{"checkpoint":"reserved","by":"ann"}`, 409) // no on_stuck action
		post("/api/v1/flows/order/instances/o-1/cancel", `{"reason":"x","by":"ann"}`, 409)             // completed
		post("/api/v1/flows/order/instances/o-2/cancel", `{"by":"ann"}`, 400)                          // no reason
		post("/api/v1/flows/order/instances/o-2/cancel", `{"reason":"x","by":"ann"}{}`, 400)           // two objects
		post("/api/v1/flows/nope/instances/o-2/cancel", `{"reason":"x","by":"ann"}`, 404)
		var un ActionAccepted
		post("/api/v1/flows/order/instances/o-2/unblock", `{"checkpoint":"paid","by":"ann"}`, 202).decode(t, &un)
		var ca ActionAccepted
		post("/api/v1/flows/order/instances/o-2/cancel", `{"reason":"customer asked","by":"bob"}`, 202).decode(t, &ca)
		if un.Action != "unblock" || un.Checkpoint != "paid" || ca.Action != "cancel" || ca.By != "bob" || !ca.Time.Equal(now) || ca.EventID == "" {
			t.Fatalf("answers: %+v %+v", un, ca)
		}
		events, err := f.rw.InstanceEvents(context.Background(), "default", "order", "o-2")
		if err != nil {
			t.Fatal(err)
		}
		var ops []storage.CheckpointEvent
		for _, e := range events {
			if strings.HasPrefix(e.Checkpoint, "@") {
				ops = append(ops, e)
			}
		}
		if len(ops) != 2 {
			t.Fatalf("operator events: %+v", ops)
		}
		byCP := map[string]storage.CheckpointEvent{ops[0].Checkpoint: ops[0], ops[1].Checkpoint: ops[1]}
		c, u := byCP[model.OperatorCancel], byCP[model.OperatorUnblock]
		if c.Attributes[flowstate.AttrOperatorBy] != "bob" || c.Attributes[flowstate.AttrOperatorReason] != "customer asked" || c.Message != "customer asked" ||
			c.EventID != ca.EventID || !c.Time.Equal(now) || c.Service != flowstate.OperatorService {
			t.Fatalf("cancel event = %+v", c)
		}
		if u.Attributes[flowstate.AttrOperatorCheckpoint] != "paid" || u.Attributes[flowstate.AttrOperatorBy] != "ann" {
			t.Fatalf("unblock event = %+v", u)
		}
		// The instance detail shows them, and they are no checkpoints: no violation, no error.
		var in InstanceDetail
		get(t, f.h, "/api/v1/flows/order/instances/o-2", 401)
		a := do(t, f.h, http.MethodGet, "/api/v1/flows/order/instances/o-2", auth...)
		a.decode(t, &in)
		for _, v := range in.Violations {
			if strings.HasPrefix(v.Checkpoint, "@") {
				t.Fatalf("an operator event is a violation: %+v", v)
			}
		}
		if in.Reason == nil || in.Reason.LastError == nil || in.Reason.LastError.Service == flowstate.OperatorService {
			t.Fatalf("reason = %+v", in.Reason)
		}
		// Each operator event names who took it (and a cancel why); no other event names anyone.
		by := map[string]Event{}
		for _, e := range in.Events {
			if strings.HasPrefix(e.Checkpoint, "@") {
				by[e.Checkpoint] = e
			} else if e.By != "" {
				t.Errorf("a checkpoint event names an operator: %+v", e)
			}
		}
		if e := by[model.OperatorCancel]; e.By != "bob" || e.Message != "customer asked" {
			t.Errorf("the cancel in the detail = %+v", e)
		}
		if e := by[model.OperatorUnblock]; e.By != "ann" || e.Name != "unblock paid" {
			t.Errorf("the unblock in the detail = %+v", e)
		}
	})
}

var _ = time.Second

// A cursor that passes the checksum but holds nothing the store issued is a 400, never a 500.
func TestForgedCursorIsABadRequest(t *testing.T) {
	onEachStore(t, nil, func(t *testing.T, f *fixture) {
		for _, c := range []string{"bogus", "AAAA", "eyJ0IjoieCJ9"} {
			target := "/api/v1/instances?cursor=" + sealCursor(c)
			if msg := get(t, f.h, target, 400).errorText(t); !strings.Contains(msg, "cursor") {
				t.Fatalf("%s: %s", target, msg)
			}
		}
	})
}
