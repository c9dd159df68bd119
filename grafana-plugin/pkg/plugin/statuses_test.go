package plugin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/flowwatch/flowwatch/model"
)

// The statuses of sub-flows, compensations and operator cancels (compensating, compensated,
// cancelled) reach Grafana: as filters, in the instances table, the timeline, the graph's
// stuck counts and the counts by status.

// Every status the model gives an instance is one a query may filter on, coloured alike
// everywhere.
func TestStatusesAreTheModels(t *testing.T) {
	mapped := statusConfig().Mappings[0].(data.ValueMapper)
	for _, st := range model.Statuses {
		if !slices.Contains(Statuses, string(st)) {
			t.Errorf("status %q of the model cannot be filtered on (plugin.Statuses %v)", st, Statuses)
		}
		if _, ok := mapped[string(st)]; !ok {
			t.Errorf("status %q of the model has no colour in statusConfig", st)
		}
		if _, err := ParseQuery("", []byte(fmt.Sprintf(`{"status":%q}`, st))); err != nil {
			t.Errorf("filter on %q: %v", st, err)
		}
	}
	if len(Statuses) != len(model.Statuses) {
		t.Errorf("plugin.Statuses %v, model.Statuses %v", Statuses, model.Statuses)
	}
}

// Dashboard panels of counts by status colour every status as the plugin's frames do, so a
// compensating instance never shows in the colour of a running one.
func TestDashboardStatusColours(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(pluginDir, "provisioning", "dashboards", "flowwatch", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	mapped := statusConfig().Mappings[0].(data.ValueMapper)
	panels := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					QueryType string `json:"queryType"`
					By        string `json:"by"`
				} `json:"targets"`
				FieldConfig struct {
					Overrides []struct {
						Matcher struct {
							ID      string `json:"id"`
							Options any    `json:"options"`
						} `json:"matcher"`
						Properties []struct {
							ID    string `json:"id"`
							Value any    `json:"value"`
						} `json:"properties"`
					} `json:"overrides"`
				} `json:"fieldConfig"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, p := range d.Panels {
			if !slices.ContainsFunc(p.Targets, func(q struct {
				QueryType string `json:"queryType"`
				By        string `json:"by"`
			}) bool {
				return q.QueryType == string(QuerySeries) && (q.By == "" || q.By == ByStatus)
			}) {
				continue
			}
			panels++
			colour := map[string]any{}
			for _, o := range p.FieldConfig.Overrides {
				for _, pr := range o.Properties {
					if v, ok := pr.Value.(map[string]any); ok && o.Matcher.ID == "byName" && pr.ID == "color" {
						colour[fmt.Sprint(o.Matcher.Options)] = v["fixedColor"]
					}
				}
			}
			for _, st := range Statuses {
				if colour[st] != mapped[st].Color {
					t.Errorf("%s: panel %q colours %s %v, the plugin %q", filepath.Base(file), p.Title, st, colour[st], mapped[st].Color)
				}
			}
		}
	}
	if panels == 0 {
		t.Error("no dashboard panel counts instances by status")
	}
}

// seedStatus evaluates a seeded instance at testNow the way the detector judges it alone
// (no children): the statuses below that do not depend on a family are the model's verdict,
// not strings copied from a golden file.
func seedStatus(t *testing.T, set *model.Set, flow, key string) string {
	t.Helper()
	for _, inst := range seedInstances {
		if inst.flow != flow || inst.key != key {
			continue
		}
		in := model.NewInstance(set.Versions(flow), inst.tenant, key)
		day := testNow.Truncate(24 * time.Hour)
		for i, e := range inst.events {
			hm, _ := time.Parse("15:04", e.at)
			in.Apply(model.Event{ID: fmt.Sprint(i), Checkpoint: e.checkpoint, Service: e.service, Status: e.status,
				Time: day.Add(time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute)})
		}
		return string(in.Evaluate(testNow).Status)
	}
	t.Fatalf("no seeded instance %s/%s", flow, key)
	return ""
}

// column returns a frame's string column by name.
func column(t *testing.T, f *data.Frame, name string) []string {
	t.Helper()
	fd, _ := f.FieldByName(name)
	if fd == nil {
		t.Fatalf("frame %s has no field %q", f.Name, name)
	}
	out := make([]string, fd.Len())
	for i := range out {
		switch v := fd.At(i).(type) {
		case string:
			out[i] = v
		case int64:
			out[i] = fmt.Sprint(v)
		default:
			t.Fatalf("field %s.%s is %T", f.Name, name, v)
		}
	}
	return out
}

// byKey maps the key column of an instances frame to its status column.
func byKey(t *testing.T, f *data.Frame) map[string]string {
	t.Helper()
	keys, sts := column(t, f, "key"), column(t, f, "status")
	out := make(map[string]string, len(keys))
	for i, k := range keys {
		out[k] = sts[i]
	}
	return out
}

// checkSagaFrames checks the frames of the trip/leg queries of TestRealAPI.
func checkSagaFrames(t *testing.T, rs backend.Responses) {
	set, err := model.Load("testdata/flows")
	if err != nil {
		t.Fatal(err)
	}
	trips := byKey(t, rs["trip_instances_all"].Frames[0])
	legs := byKey(t, rs["leg_instances_all"].Frames[0])

	t.Run("statuses", func(t *testing.T) {
		want := map[string]string{"t-1": "stuck", "t-2": "compensating", "t-3": "compensated", "t-4": "cancelled",
			"t-5": "stuck", "t-6": "compensating", "t-7": "running"}
		for k, st := range want {
			if trips[k] != st {
				t.Errorf("trip %s is %q in the table, want %q", k, trips[k], st)
			}
			// a parent's status depends on its children: t-1 alone would be running
			if k != "t-1" {
				if got := seedStatus(t, set, "trip", k); got != trips[k] {
					t.Errorf("trip %s is %q in the table, the model judges %q", k, trips[k], got)
				}
			}
		}
		for k, st := range map[string]string{"l-1": "completed", "l-2": "stuck", "l-3": "completed"} {
			if legs[k] != st {
				t.Errorf("leg %s is %q in the table, want %q", k, legs[k], st)
			}
		}
	})

	t.Run("status filters", func(t *testing.T) {
		for name, st := range map[string]string{"instances_compensating": "compensating",
			"instances_compensated": "compensated", "instances_cancelled": "cancelled", "trip_instances_stuck": "stuck"} {
			f := rs[name].Frames[0]
			var want []string
			for k, s := range trips {
				if s == st {
					want = append(want, k)
				}
			}
			got := column(t, f, "key")
			slices.Sort(got)
			slices.Sort(want)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("%s: keys %v, want the %s trips %v", name, got, st, want)
			}
		}
	})

	t.Run("compensations expected", func(t *testing.T) {
		f := rs["trip_instances_all"].Frames[0]
		keys, expected, stuckAt := column(t, f, "key"), column(t, f, "expected"), column(t, f, "stuck_at")
		for i, k := range keys {
			switch trips[k] {
			case "compensating":
				if expected[i] != "refunded" || stuckAt[i] != "" {
					t.Errorf("compensating %s expects %q (overdue %q), want refunded, not overdue", k, expected[i], stuckAt[i])
				}
			case "compensated", "cancelled":
				if expected[i] != "" {
					t.Errorf("%s %s still expects %q", trips[k], k, expected[i])
				}
			}
		}
	})

	t.Run("timelines", func(t *testing.T) {
		fam := rs["trip_timeline_family"].Frames[0]
		if fam.Meta == nil || len(fam.Meta.Notices) != 1 {
			t.Fatalf("a parent stuck on its children has no notice: %+v", fam.Meta)
		}
		wantContains(t, "family notice", fam.Meta.Notices[0].Text, `"legs_confirmed"`,
			"children: 1 completed, 1 stuck", `"l-2" awaits "confirmed"`)

		over := rs["trip_timeline_compensation_overdue"].Frames[0]
		if over.Meta == nil || len(over.Meta.Notices) != 1 {
			t.Fatalf("an overdue compensation has no notice: %+v", over.Meta)
		}
		wantContains(t, "compensation notice", over.Meta.Notices[0].Text, `compensation "refunded" (of "paid")`, `"aborted"`)

		cc := rs["trip_timeline_cancelled_compensating"].Frames[0]
		if cc.Meta != nil && len(cc.Meta.Notices) > 0 {
			t.Errorf("a compensating instance, not overdue, has notices %v", cc.Meta.Notices)
		}
		kind, cp, det := column(t, cc, "kind"), column(t, cc, "checkpoint"), column(t, cc, "detail")
		var sawCancel, sawRefund bool
		for i := range kind {
			switch {
			case cp[i] == model.OperatorCancel:
				sawCancel = true
				if kind[i] != rowOperator || !strings.Contains(det[i], "duplicate booking") {
					t.Errorf("the operator's cancel is a %q row %q, want an operator row with its reason", kind[i], det[i])
				}
			case cp[i] == "refunded":
				sawRefund = true
				if kind[i] != rowExpected || !strings.Contains(det[i], `compensation of "paid"`) {
					t.Errorf("the due refund is a %q row %q, want an expected compensation of paid", kind[i], det[i])
				}
			case kind[i] == rowOperator:
				t.Errorf("checkpoint %q is shown as an operator action", cp[i])
			}
		}
		if !sawCancel || !sawRefund {
			t.Errorf("timeline of t-6 (cancel %v, refund %v): %v %v", sawCancel, sawRefund, kind, cp)
		}
	})

	t.Run("graph stuck counts", func(t *testing.T) {
		// a stuck instance counts at the checkpoint it is overdue on: a compensation or a
		// children checkpoint like any other
		f := rs["trip_instances_all"].Frames[0]
		keys, stuckAt := column(t, f, "key"), column(t, f, "stuck_at")
		want := map[string]int64{}
		for i, k := range keys {
			if trips[k] == "stuck" {
				want[stuckAt[i]]++
			}
		}
		nodes := rs["trip_graph"].Frames[0]
		ids := column(t, nodes, "id")
		stuck, _ := nodes.FieldByName("secondarystat")
		for i, id := range ids {
			if got := stuck.At(i).(int64); got != want[id] {
				t.Errorf("node %s: %d stuck, want %d", id, got, want[id])
			}
		}
		if want["refunded"] == 0 || want["legs_confirmed"] == 0 {
			t.Errorf("the seed has no instance stuck on a compensation or on children: %v", want)
		}
	})

	t.Run("counts by status", func(t *testing.T) {
		want := map[string]float64{}
		for _, st := range trips {
			want[st]++
		}
		got := map[string]float64{}
		for _, f := range rs["trip_series_status"].Frames {
			for i := range f.Fields[1].Len() {
				got[f.Name] += f.Fields[1].At(i).(float64)
			}
			if l := f.Fields[1].Labels["status"]; l != f.Name {
				t.Errorf("series %s labelled status=%q", f.Name, l)
			}
		}
		for _, st := range Statuses {
			if got[st] != want[st] {
				t.Errorf("counted %v %s trips, the table has %v", got[st], st, want[st])
			}
		}
	})
}
