package api

import (
	"context"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// orderV1 and orderV2 are two versions of the fixture's flow "order", loaded together. v2
// puts a fraud check, due within 30s, before payment and changes every deadline.
const (
	orderV1 = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 1
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: orders } }
  - { name: paid, after: [placed], within: 5m, match: { service: payments } }
  - { name: delivered, after: [paid], within: 3m, terminal: success, match: { service: shipping } }
`
	orderV2 = `apiVersion: flowwatch/v1
kind: Flow
name: order
version: 2
key: order.id
checkpoints:
  - { name: placed, start: true, match: { service: orders } }
  - { name: fraud_checked, after: [placed], within: 30s, match: { service: risk } }
  - { name: paid, after: [fraud_checked], within: 10m, match: { service: payments } }
  - { name: delivered, after: [paid], within: 1h, terminal: success, match: { service: shipping } }
`
)

// TestDetailKeepsTheInstancesVersion is issue 12's "a flow version is active from its first
// load; loading v2 never re-pins v1 instances" in the API: with v1 and v2 of a flow loaded
// together (neither with active_from, as the API gets them), the detail of an instance the
// detector pinned to v1 is evaluated by v1 — its violations, expected checkpoints and stuck
// reason are v1's — and an instance started after v2's first load is v2's. The detector
// stores both compactly, so the detail has to evaluate their events.
func TestDetailKeepsTheInstancesVersion(t *testing.T) {
	onEachStore(t, nil, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		var flows []*model.Flow
		for _, doc := range []string{orderV1, orderV2} {
			fs, probs := model.Parse("order.yaml", []byte(doc))
			if len(probs) > 0 {
				t.Fatal(probs)
			}
			flows = append(flows, fs...)
		}
		loaded := model.NewSet(flows)
		// The detector first loaded v1 an hour before t0 and v2 at t0+5m, and pins by that.
		firstLoad := map[int]time.Time{1: t0.Add(-time.Hour), 2: t0.Add(5 * time.Minute)}
		activated := loaded.Activated(func(_ string, v int) (time.Time, bool) { t, ok := firstLoad[v]; return t, ok })

		// v-old: placed at t0 (v1), paid at +1m, never delivered: by v1 stuck at delivered
		// since +4m. By v2 it would be stuck at fraud_checked, with paid out of order.
		old := seedInstance(t, ctx, f.rw, activated, "default", "v-old",
			ie{id: "1", cp: "placed"}, ie{id: "2", cp: "paid", d: time.Minute})
		// v-new: placed at +6m (v2): by v2 stuck at fraud_checked since +6m30s. By v1 it
		// would be running, paid due at +11m.
		fresh := seedInstance(t, ctx, f.rw, activated, "default", "v-new", ie{id: "1", cp: "placed", d: 6 * time.Minute})
		if old.Version != 1 || old.Status != model.StatusStuck || fresh.Version != 2 || fresh.Status != model.StatusStuck {
			t.Fatalf("seeded v-old v%d %s, v-new v%d %s; want v1 stuck and v2 stuck", old.Version, old.Status, fresh.Version, fresh.Status)
		}
		// Stored as the detector stores them: no violations, no reason details.
		if err := f.rw.WriteStates(ctx, compactStates(t, f, "v-old", "v-new")); err != nil {
			t.Fatal(err)
		}
		f.set = loaded

		var in InstanceDetail
		get(t, f.h, "/api/v1/flows/order/instances/v-old", 200).decode(t, &in)
		if in.Version != 1 || in.Status != "stuck" || len(in.Violations) != 0 {
			t.Errorf("v-old: v%d %s, violations %+v; want v1, stuck, none", in.Version, in.Status, in.Violations)
		}
		if len(in.Expected) != 1 || in.Expected[0].Checkpoint != "delivered" || !in.Expected[0].Deadline.Equal(t0.Add(4*time.Minute)) {
			t.Errorf("v-old expected = %+v; want delivered due at t0+4m (v1)", in.Expected)
		}
		if r := in.Reason; r == nil || r.Checkpoint != "delivered" || !r.Deadline.Equal(t0.Add(4*time.Minute)) || r.LastCheckpoint != "paid" {
			t.Errorf("v-old reason = %+v; want stuck at delivered due t0+4m after paid (v1)", r)
		}

		get(t, f.h, "/api/v1/flows/order/instances/v-new", 200).decode(t, &in)
		if in.Version != 2 || in.Status != "stuck" || len(in.Violations) != 0 {
			t.Errorf("v-new: v%d %s, violations %+v; want v2, stuck, none", in.Version, in.Status, in.Violations)
		}
		due := t0.Add(6*time.Minute + 30*time.Second)
		if len(in.Expected) != 1 || in.Expected[0].Checkpoint != "fraud_checked" || !in.Expected[0].Deadline.Equal(due) {
			t.Errorf("v-new expected = %+v; want fraud_checked due at t0+6m30s (v2)", in.Expected)
		}
		if r := in.Reason; r == nil || r.Checkpoint != "fraud_checked" || !r.Deadline.Equal(due) {
			t.Errorf("v-new reason = %+v; want stuck at fraud_checked (v2)", r)
		}

		// Both versions are served, each with its own checkpoints.
		var list FlowList
		get(t, f.h, "/api/v1/flows", 200).decode(t, &list)
		cps := map[int]int{}
		for _, fl := range list.Flows {
			if fl.Name == "order" {
				cps[fl.Version] = len(fl.Checkpoints)
			}
		}
		if cps[1] != 3 || cps[2] != 4 {
			t.Errorf("flows served: checkpoints by version %v, want v1: 3, v2: 4", cps)
		}
	})
}

// compactStates reads the stored states of keys and drops their violations and reason, as
// the detector stores most instances.
func compactStates(t *testing.T, f *fixture, keys ...string) []storage.InstanceState {
	t.Helper()
	var out []storage.InstanceState
	for _, key := range keys {
		st, err := f.rw.Instance(context.Background(), "default", "order", key)
		if err != nil || st == nil {
			t.Fatalf("read %s: %v, %v", key, st, err)
		}
		st.Reason, st.Violations, st.UpdatedAt = flowstate.EmptyReason, flowstate.EmptyViolations, now.Add(time.Second)
		out = append(out, *st)
	}
	return out
}
