package plugin

import (
	"testing"
	"time"
)

func TestSeriesStep(t *testing.T) {
	cases := []struct {
		step     string
		interval time.Duration
		span     time.Duration
		want     time.Duration
	}{
		{"", time.Minute, time.Hour, time.Minute},                     // the panel interval
		{"5m", time.Minute, time.Hour, 5 * time.Minute},               // the query's step wins
		{"", 0, 10 * time.Minute, time.Second},                        // alert rules may send no interval
		{"", 200 * time.Millisecond, time.Minute, time.Second},        // at least 1s
		{"", time.Second, 30 * 24 * time.Hour, 236 * time.Second},     // grown to at most MaxPoints
		{"1s", time.Second, 365 * 24 * time.Hour, 2867 * time.Second}, // even over the query's step
	}
	for _, tc := range cases {
		q := Query{QueryType: QuerySeries, Flow: "f", Step: tc.step}
		if err := q.validate(); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		got := q.step(tc.interval, tc.span)
		if got != tc.want {
			t.Errorf("step %q interval %s span %s: %s, want %s", tc.step, tc.interval, tc.span, got, tc.want)
		}
		if tc.span/got > MaxPoints {
			t.Errorf("step %s gives %d points over %s", got, tc.span/got, tc.span)
		}
	}
}

func TestParseQueryDefaultsAndTrims(t *testing.T) {
	q, err := ParseQuery("", []byte(`{"flow":" order ","key":" k ","status":"stuck"}`))
	if err != nil {
		t.Fatal(err)
	}
	if q.QueryType != QueryInstances || q.Flow != "order" || q.Key != "k" {
		t.Errorf("got %+v", q)
	}
	q, err = ParseQuery("series", []byte(`{"queryType":"graph","flow":"order"}`))
	if err != nil || q.QueryType != QuerySeries || q.By != ByStatus {
		t.Errorf("Grafana's queryType must win and by default to status: %+v %v", q, err)
	}
	if _, err := ParseQuery("", []byte(`{"limit": 99999}`)); err == nil {
		t.Error("a limit beyond MaxLimit was accepted")
	}
	if _, err := ParseQuery("", []byte(`{"flow": 3}`)); err == nil {
		t.Error("a query that is not the model was accepted")
	}
}
