package flowstate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

func TestDocsJSONShape(t *testing.T) {
	x, r, v := Docs(testflows.StuckOrder(t))
	var reason map[string]any
	if err := json.Unmarshal([]byte(r), &reason); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"checkpoint", "since", "deadline", "overdue", "overdue_seconds", "service",
		"last_checkpoint", "last_checkpoint_at", "last_error", "trace_ids", "summary"} {
		if _, ok := reason[k]; !ok {
			t.Errorf("reason has no %q: %s", k, r)
		}
	}
	// deadline is placed+2m = 10:02:00.123456789; evaluated at 10:05:00 → 2m59.876543211s.
	if reason["overdue"] != "2m59.876543211s" {
		t.Errorf("overdue = %v", reason["overdue"])
	}
	if reason["deadline"] != "2026-11-26T10:02:00.123456789Z" {
		t.Errorf("deadline = %v, want RFC 3339 UTC", reason["deadline"])
	}
	le := reason["last_error"].(map[string]any)
	for _, k := range []string{"service", "name", "message", "trace_id", "span_id", "time"} {
		if _, ok := le[k]; !ok {
			t.Errorf("last_error has no %q", k)
		}
	}
	var expected []map[string]any
	if err := json.Unmarshal([]byte(x), &expected); err != nil {
		t.Fatal(err)
	}
	if len(expected) != 1 || expected[0]["checkpoint"] != "paid" || expected[0]["overdue"] != true {
		t.Errorf("expected = %s", x)
	}
	for _, k := range []string{"checkpoint", "deadline", "since", "service", "overdue"} {
		if _, ok := expected[0][k]; !ok {
			t.Errorf("expected has no %q", k)
		}
	}
	if !strings.Contains(v, `"kind":"duplicate_checkpoint"`) || !strings.Contains(v, `"event_id":"e3"`) {
		t.Errorf("violations = %s", v)
	}
}

func TestDocsEmpties(t *testing.T) {
	in := model.NewInstance(testflows.OrderSet(t).Versions("order"), "default", "o-2")
	in.Apply(model.Event{ID: "a", Checkpoint: "placed", Time: testflows.T0})
	in.Apply(model.Event{ID: "b", Checkpoint: "cancelled", Time: testflows.T0.Add(time.Second)})
	st := in.Evaluate(testflows.T0.Add(time.Hour))
	x, r, v := Docs(st)
	if x != EmptyExpected || r != EmptyReason || v != EmptyViolations {
		t.Fatalf("empties = %q %q %q", x, r, v)
	}
	for _, docs := range [][3]string{{x, r, v}, {"", "", ""}, {"null", "null", "null"}, {"[]", "{}", "[]"}} {
		row := Row(st)
		row.Expected, row.Reason, row.Violations = docs[0], docs[1], docs[2]
		got, err := Parse(row)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "failed" || got.Expected == nil || len(got.Expected) != 0 || got.Reason != nil || got.Violations != nil {
			t.Errorf("docs %q: got %+v", docs, got)
		}
	}
}

func TestParseBadJSON(t *testing.T) {
	row := Row(testflows.StuckOrder(t))
	row.Reason = `{"overdue": 12}`
	if _, err := Parse(row); err == nil || !strings.Contains(err.Error(), "parse reason of acme/order/o-1") {
		t.Fatalf("err = %v", err)
	}
	row = Row(testflows.StuckOrder(t))
	row.Expected = `{`
	if _, err := Parse(row); err == nil || !strings.Contains(err.Error(), "parse expected") {
		t.Fatalf("err = %v", err)
	}
}

func TestRebuildLeavesOutOtherInstancesAliasRows(t *testing.T) {
	set := testflows.OrderSet(t)
	versions := set.Versions("order")
	rows := []storage.CheckpointEvent{
		{EventID: "1", Tenant: "acme", Flow: "order", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Time: testflows.T0},
		{EventID: "2", Tenant: "acme", Flow: "order", Checkpoint: "settled", Key: "pay-1", KeyAttr: "payment.id", Time: testflows.T0.Add(time.Minute)},
		{EventID: "3", Tenant: "acme", Flow: "order", Checkpoint: "settled", Key: "pay-9", KeyAttr: "payment.id", Time: testflows.T0.Add(time.Minute)},
		{EventID: "4", Tenant: "acme", Flow: "order", Key: "o-1", KeyAttr: "order.id", Time: testflows.T0.Add(2 * time.Minute), Status: "error", Message: "boom"},
	}
	owner := func(attr, value string) (string, bool) {
		switch value {
		case "pay-1":
			return "o-1", true
		case "pay-9":
			return "o-9", true
		}
		return "", false
	}
	in, foreign := Rebuild(versions, "acme", "o-1", rows, owner)
	if foreign != 1 || len(in.Events()) != 3 {
		t.Fatalf("foreign = %d, events = %d; want 1 left out and 3 kept", foreign, len(in.Events()))
	}
	if !HasCheckpoint(in) {
		t.Fatal("HasCheckpoint = false")
	}
	all, foreign := Rebuild(versions, "acme", "o-1", rows, nil)
	if foreign != 0 || len(all.Events()) != 4 {
		t.Fatalf("without an owner every row is kept: foreign %d, events %d", foreign, len(all.Events()))
	}
	only, _ := Rebuild(versions, "acme", "o-1", rows[3:], nil)
	if HasCheckpoint(only) {
		t.Fatal("an instance of only error notes has no checkpoint")
	}
}
