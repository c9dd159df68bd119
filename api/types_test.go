package api

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
)

var t0 = testflows.T0

func testSet(t testing.TB) *model.Set { return testflows.OrderSet(t) }

func stuckState(t testing.TB) model.State { return testflows.StuckOrder(t) }

func TestStateDocsRoundTrip(t *testing.T) {
	st := stuckState(t)
	row := flowstate.Row(st)
	got, err := InstanceFromState(row)
	if err != nil {
		t.Fatal(err)
	}
	want := InstanceFromModel(st)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	if got.Reason.Overdue != Duration(st.Reason.Overdue) || got.Reason.OverdueSeconds != st.Reason.Overdue.Seconds() {
		t.Errorf("overdue = %v / %v, want %v", got.Reason.Overdue, got.Reason.OverdueSeconds, st.Reason.Overdue)
	}
	if got.Reason.LastError == nil || got.Reason.LastError.Message != "card declined" {
		t.Errorf("last error lost: %+v", got.Reason.LastError)
	}
	if got.Violations[0].Kind != "duplicate_checkpoint" || got.Violations[0].EventID != "e3" || got.Violations[0].Detail == "" {
		t.Errorf("violation = %+v", got.Violations[0])
	}
	if !got.StartedAt.Equal(st.StartedAt) || got.StartedAt.Location() != time.UTC || got.StartedAt.Nanosecond() != 123456789 {
		t.Errorf("started_at = %v, want %v in UTC with nanoseconds", got.StartedAt, st.StartedAt)
	}
}

func TestInstanceFromStateBadJSON(t *testing.T) {
	row := flowstate.Row(stuckState(t))
	row.Reason = `{"overdue": 12}`
	if _, err := InstanceFromState(row); err == nil || !strings.Contains(err.Error(), "parse reason of acme/order/o-1") {
		t.Fatalf("err = %v", err)
	}
	row = flowstate.Row(stuckState(t))
	row.Expected = `{`
	if _, err := InstanceFromState(row); err == nil || !strings.Contains(err.Error(), "parse expected") {
		t.Fatalf("err = %v", err)
	}
}
