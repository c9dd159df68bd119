package flowstate

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testflows"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// The hand-written encoders write exactly what encoding/json writes for the same documents.
func TestEncodersMatchEncodingJSON(t *testing.T) {
	st := testflows.StuckOrder(t)
	check := func(name string, got []byte, v any) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	check("expected", appendExpected(nil, st.Expected), ExpectedOf(st.Expected))
	check("reason", appendReason(nil, st.Reason), ReasonOf(st.Reason))
	check("violations", appendViolations(nil, st.Violations), ViolationsOf(st.Violations))

	odd := []string{"", "plain", `quo"te\back`, "tab\tnl\nret\r\x00\x1f\x7f", "<a>&amp;", "é ü 日本",
		"u-\xff\xfe", "\xe2\x80\xa8 \xe2\x80\xa9", "\xed\xa0\x80", "a\u2028b", "\b\f"}
	for _, s := range odd {
		check("string "+s, storage.AppendJSONString(nil, s), s)
		r := *st.Reason
		r.Summary, r.Service, r.Checkpoint = s, s, s
		r.LastError = &model.ErrorNote{Service: s, Name: s, Message: s, Time: time.Unix(0, 123).In(time.FixedZone("X", 3600))}
		r.TraceIDs = nil
		r.LastCheckpointAt = time.Time{}
		check("reason "+s, appendReason(nil, &r), ReasonOf(&r))
	}
	// A compensation overdue after a failed child, a parent stuck at its children.
	r := *st.Reason
	r.Compensates = "paid"
	r.Failure = &model.Failure{Checkpoint: "all_delivered", Time: testflows.T0,
		Child: &model.ChildRef{Flow: "shipment", Key: `s-"2"`, Checkpoint: "lost"}}
	check("reason with a failure", appendReason(nil, &r), ReasonOf(&r))
	r.Failure.Child, r.Compensates = nil, ""
	r.Children = &model.ChildrenReport{Flow: "shipment", Counts: map[model.Status]int{model.StatusStuck: 2, model.StatusCompleted: 1},
		Stuck: []model.StuckChild{{Key: "s-2", Checkpoint: "delivered", Deadline: testflows.T0, Summary: "<late>"}, {Key: "s-3"}}}
	check("reason with children", appendReason(nil, &r), ReasonOf(&r))
	r.Children = &model.ChildrenReport{Flow: "shipment"}
	check("reason with no children", appendReason(nil, &r), ReasonOf(&r))
	xs := append([]model.Expected(nil), st.Expected...)
	xs = append(xs, model.Expected{Checkpoint: "refunded", Compensates: "paid"}, model.Expected{Checkpoint: "all", Children: "shipment"})
	check("expected compensation and children", appendExpected(nil, xs), ExpectedOf(xs))

	for _, d := range []time.Duration{0, 1, 999, time.Microsecond, time.Second, -3 * time.Minute, 1<<63 - 1} {
		r := *st.Reason
		r.Overdue = d
		check("overdue "+d.String(), appendReason(nil, &r), ReasonOf(&r))
	}
}

// appendTime writes what encoding/json writes for the time in UTC (RFC3339Nano), whatever
// the time: fractions with trailing zeros, none, years of fewer digits and past 9999, zones.
func FuzzAppendTime(f *testing.F) {
	for _, ns := range []int64{0, 1, 999, 1_000_000, 1_700_000_000_123_456_789, -62135596800_000_000_0, 1<<63 - 1, -1 << 63} {
		f.Add(ns, int32(0))
	}
	f.Add(int64(1_700_000_000_100_000_000), int32(-7*3600-1800))
	f.Fuzz(func(t *testing.T, ns int64, offset int32) {
		at := time.Unix(0, ns).In(time.FixedZone("z", int(offset%(18*3600))))
		for _, at := range []time.Time{at, at.AddDate(-2000, 0, 0), at.AddDate(9000, 0, 0), {}} {
			want, err := json.Marshal(UTC(at))
			if err != nil {
				continue // a year encoding/json refuses: not a time we store
			}
			if got := appendTime(nil, at); string(got) != string(want) {
				t.Fatalf("%v: got %s want %s", at, got, want)
			}
		}
	})
}

func BenchmarkDocs(b *testing.B) {
	st := testflows.StuckOrder(b)
	b.ReportAllocs()
	for b.Loop() {
		Docs(st)
	}
}

func BenchmarkDocsNoViolations(b *testing.B) {
	st := testflows.StuckOrder(b)
	st.Violations = nil
	b.ReportAllocs()
	for b.Loop() {
		Docs(st)
	}
}
