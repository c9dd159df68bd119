package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// Target is a store the contract suite runs against.
type Target struct {
	// Open returns an empty, migrated store of its own for one subtest (db names a database
	// where the store has them) and closes it when t ends.
	Open func(t *testing.T, db string) storage.Store
	// Legacy says that the store holds the legacy tables of ClickHouse 18.16 (events and
	// aliases, read by key alone): the suite runs what they serve and checks that every other
	// method returns storage.ErrUnsupported.
	Legacy bool
}

// Run is the storage contract (storage.Writer, storage.Reader, storage.Store) as a suite of
// subtests that every store passes: the embedded engine, a ClickHouse server (the legacy
// tables of 18.16, what they support), a modern server, and Memory — so that no fake drifts
// from the real stores.
func Run(t *testing.T, target Target) {
	ctx := context.Background()
	open := target.Open
	unsupported := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrUnsupported) {
			t.Errorf("%s on the legacy tables: %v, want storage.ErrUnsupported", what, err)
		}
	}

	t.Run("MigrateTwice", func(t *testing.T) {
		s := open(t, "suite_migrate")
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		if err := s.WriteEvents(ctx, FixtureEvents()[:1]); err != nil {
			t.Fatalf("write after a second migrate: %v", err)
		}
		if got, err := s.EventsSince(ctx, time.Time{}, 10); err != nil || len(got) != 1 {
			t.Fatalf("read after a second migrate: %d events, %v", len(got), err)
		}
	})

	t.Run("Events", func(t *testing.T) {
		s := open(t, "suite_events")
		evs := FixtureEvents()
		ingest0 := time.Now().Add(-time.Second)
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for i, e := range evs {
			if len(e.EventID) != 16 || e.IngestTime.IsZero() {
				t.Fatalf("WriteEvents did not fill event %d's id and ingest time: %q, %v", i, e.EventID, e.IngestTime)
			}
		}
		// A replayed batch: same items, later ingest time.
		replay := FixtureEvents()
		for i := range replay {
			replay[i].IngestTime = time.Now().Add(time.Minute)
		}
		// Re-batched differently, as a persistent queue may do: no batch-level dedup token
		// matches, so only the rows' event ids keep them single.
		if err := s.WriteEvents(ctx, replay[:4]); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteEvents(ctx, replay[4:]); err != nil {
			t.Fatal(err)
		}
		got, err := s.EventsSince(ctx, ingest0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("EventsSince: %d events, want %d (each once)", len(got), len(evs))
		}
		ids := map[string]bool{}
		for i, e := range got {
			if ids[e.EventID] {
				t.Fatalf("EventsSince: event %s twice", e.EventID)
			}
			ids[e.EventID] = true
			if i > 0 && e.IngestTime.Before(got[i-1].IngestTime) {
				t.Fatalf("EventsSince: not ordered by ingest time at %d", i)
			}
		}
		for _, e := range evs {
			if !ids[e.EventID] {
				t.Fatalf("EventsSince: missing %s (%s)", e.EventID, e.Checkpoint)
			}
		}
		limited, err := s.EventsSince(ctx, ingest0, 3)
		if err != nil || len(limited) != 3 {
			t.Fatalf("EventsSince limit 3: %d events, %v", len(limited), err)
		}
		none, err := s.EventsSince(ctx, time.Now().Add(time.Hour), 10)
		if err != nil || len(none) != 0 {
			t.Fatalf("EventsSince future: %v, %v", none, err)
		}

		if err := s.WriteAliases(ctx, []storage.Alias{
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k1", Time: T0.Add(time.Minute)},
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k1", Time: T0.Add(time.Minute)},
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k9", Time: T0.Add(time.Hour)}, // later conflict loses
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p2", Key: "k2", Time: T0.Add(3 * time.Minute)},
		}); err != nil {
			t.Fatal(err)
		}
		res, err := s.ResolveAliases(ctx, "acme", "order", "payment.id", []string{"p1", "p2", "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 || res["p1"] != "k1" || res["p2"] != "k2" {
			t.Fatalf("ResolveAliases = %v", res)
		}
		if res, err := s.ResolveAliases(ctx, "globex", "order", "payment.id", []string{"p1"}); err != nil || len(res) != 0 {
			t.Fatalf("ResolveAliases other tenant = %v, %v", res, err)
		}

		inst, err := s.InstanceEvents(ctx, "acme", "order", "k1")
		if err != nil {
			t.Fatal(err)
		}
		var cps []string
		for _, e := range inst {
			cps = append(cps, e.Checkpoint)
		}
		want := "placed,paid,settled,shipped" // settled is keyed by the alias p1
		if target.Legacy {
			want = "placed,paid,shipped" // the legacy tables are read by key alone
		}
		if strings.Join(cps, ",") != want {
			t.Fatalf("InstanceEvents(k1) checkpoints = %v, want %s", cps, want)
		}
		first := evs[0]
		g := inst[0]
		if g.EventID != first.EventID || !g.Time.Equal(first.Time) || g.TraceID != first.TraceID || g.SpanID != first.SpanID ||
			g.Service != first.Service || g.Name != first.Name || g.Status != first.Status || g.KeyAttr != first.KeyAttr ||
			len(g.Attributes) != 2 || g.Attributes["quote"] != first.Attributes["quote"] {
			t.Fatalf("InstanceEvents(k1)[0] = %+v\nwant %+v", g, first)
		}
		if g.Time.Nanosecond() != 123456789 {
			t.Fatalf("event time lost its nanoseconds: %v", g.Time)
		}
		k2, err := s.InstanceEvents(ctx, "acme", "order", "k2")
		if err != nil || len(k2) != 3 || k2[2].Checkpoint != "" || k2[2].Message != evs[6].Message || k2[1].Attributes != nil {
			t.Fatalf("InstanceEvents(k2) = %+v, %v", k2, err)
		}
		if none, err := s.InstanceEvents(ctx, "acme", "order", "nope"); err != nil || len(none) != 0 {
			t.Fatalf("InstanceEvents(unknown) = %v, %v", none, err)
		}
		// Many instances in one read: each key's events as InstanceEvents returns them.
		many, err := s.InstancesEvents(ctx, "acme", "order", []string{"k1", "k2", "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if len(many) != 2 || len(many["k1"]) != len(inst) || len(many["k2"]) != len(k2) {
			t.Fatalf("InstancesEvents = %d keys: k1 %d (want %d), k2 %d (want %d)", len(many), len(many["k1"]), len(inst), len(many["k2"]), len(k2))
		}
		for i := range inst {
			if many["k1"][i].EventID != inst[i].EventID || many["k1"][i].Checkpoint != inst[i].Checkpoint {
				t.Fatalf("InstancesEvents(k1)[%d] = %+v, InstanceEvents gave %+v", i, many["k1"][i], inst[i])
			}
		}
		if none, err := s.InstancesEvents(ctx, "acme", "order", nil); err != nil || len(none) != 0 {
			t.Fatalf("InstancesEvents(none) = %v, %v", none, err)
		}
		// The ids of a window already read, and the rows of some of them.
		refs, err := s.EventRefs(ctx, ingest0, time.Now().Add(2*time.Minute))
		distinct := map[string]bool{}
		for _, r := range refs {
			distinct[r.EventID] = true
		}
		if err != nil || len(distinct) != len(evs) || len(refs) > 2*len(evs) {
			t.Fatalf("EventRefs: %d refs of %d ids, want %d ids (each once per ingestion): %v", len(refs), len(distinct), len(evs), err)
		}
		// At least the distinct ids; a replayed row not merged yet may count twice.
		if n, err := s.CountEvents(ctx, ingest0, time.Now().Add(2*time.Minute)); err != nil || n < uint64(len(evs)) || n > uint64(2*len(evs)) {
			t.Fatalf("CountEvents = %d, %v; want from %d to %d", n, err, len(evs), 2*len(evs))
		}
		if none, err := s.EventRefs(ctx, ingest0.Add(-time.Hour), ingest0); err != nil || len(none) != 0 {
			t.Fatalf("EventRefs of an empty window = %v, %v", none, err)
		}
		if n, err := s.CountEvents(ctx, ingest0.Add(-time.Hour), ingest0); err != nil || n != 0 {
			t.Fatalf("CountEvents of an empty window = %d, %v", n, err)
		}
		among, err := s.EventsAmong(ctx, ingest0, []string{evs[0].EventID, evs[3].EventID})
		if err != nil || len(among) != 2 || among[0].Key == "" {
			t.Fatalf("EventsAmong = %+v, %v", among, err)
		}
		if _, err := s.EventsAmong(ctx, ingest0, []string{"not-an-id"}); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("EventsAmong with a bad id: %v", err)
		}

		if target.Legacy {
			_, err := s.CheckpointCounts(ctx, "acme", "order", T0, T0.Add(30*time.Minute))
			unsupported(t, "CheckpointCounts", err)
			_, err = s.Transitions(ctx, "acme", "order", [][2]string{{"placed", "paid"}}, T0, T0.Add(30*time.Minute))
			unsupported(t, "Transitions", err)
			_, err = s.Series(ctx, "acme", "order", "checkpoint", T0, T0.Add(15*time.Minute), time.Minute)
			unsupported(t, "Series", err)
			return
		}
		// An operator's action is a row of the instance, not a checkpoint: neither the counts
		// nor the series by checkpoint show it.
		cancel := storage.CheckpointEvent{Tenant: "acme", Flow: "order", Checkpoint: "@cancel", Key: "k1", KeyAttr: "order.id",
			Time: T0.Add(3 * time.Minute), Service: "flowwatch-operator", Name: "cancel", Status: "ok"}
		if err := s.WriteEvents(ctx, []storage.CheckpointEvent{cancel}); err != nil {
			t.Fatal(err)
		}
		counts, err := s.CheckpointCounts(ctx, "acme", "order", T0, T0.Add(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(counts); got != "[{paid 2 0} {placed 2 0} {settled 1 0} {shipped 1 0}]" {
			t.Fatalf("CheckpointCounts = %s", got)
		}

		tr, err := s.Transitions(ctx, "acme", "order", [][2]string{{"placed", "paid"}, {"paid", "settled"}, {"settled", "shipped"}, {"shipped", "delivered"}}, T0, T0.Add(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(tr) != 4 || tr[0].Count != 2 || tr[1].Count != 1 || tr[2].Count != 1 || tr[3].Count != 0 {
			t.Fatalf("Transitions = %+v", tr)
		}
		if tr[0].P50 < time.Minute || tr[0].P50 > 150*time.Second || tr[0].P95 < tr[0].P50 || tr[0].P95 > 150*time.Second {
			t.Fatalf("Transitions placed→paid p50 %v p95 %v, want within [1m, 2m30s]", tr[0].P50, tr[0].P95)
		}
		if tr[1].P50 != 2*time.Minute || tr[2].P50 != 7*time.Minute {
			t.Fatalf("Transitions through the alias: paid→settled %v, settled→shipped %v; want 2m, 7m", tr[1].P50, tr[2].P50)
		}

		series, err := s.Series(ctx, "acme", "order", "checkpoint", T0, T0.Add(15*time.Minute), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string][]storage.Point{}
		for _, sr := range series {
			byName[sr.Name] = sr.Points
		}
		if len(series) != 4 || len(byName["placed"]) != 15 || byName["placed"][0].Value != 2 || byName["paid"][1].Value != 1 ||
			byName["paid"][3].Value != 1 || byName["shipped"][10].Value != 1 || !byName["placed"][2].Time.Equal(T0.Add(2*time.Minute)) {
			t.Fatalf("Series by checkpoint = %+v", series)
		}
		if _, err := s.Series(ctx, "acme", "order", "colour", T0, T0.Add(time.Hour), time.Minute); err == nil || !strings.Contains(err.Error(), "'by'") {
			t.Fatalf("Series with a bad 'by': %v", err)
		}
		if _, err := s.Series(ctx, "acme", "order", "checkpoint", T0, T0.Add(time.Hour), time.Microsecond); err == nil {
			t.Fatal("Series with a step under a millisecond was accepted")
		}
	})

	t.Run("Retention", func(t *testing.T) {
		s := open(t, "suite_retention")
		if target.Legacy {
			unsupported(t, "SetRetention", s.SetRetention(ctx, 7))
			_, err := s.Retention(ctx)
			unsupported(t, "Retention", err)
			return
		}
		all := func(days int) string { return fmt.Sprint(EveryTable(days)) }
		for _, days := range []int{7, 7, 0, 0, 30} {
			if err := s.SetRetention(ctx, days); err != nil {
				t.Fatalf("SetRetention(%d): %v", days, err)
			}
			if got, err := s.Retention(ctx); err != nil || fmt.Sprint(got) != all(days) {
				t.Fatalf("Retention after SetRetention(%d) = %v, %v; want %s", days, got, err, all(days))
			}
		}
		// Migrating again, as every process that opens the store may, changes nothing.
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Retention(ctx); err != nil || fmt.Sprint(got) != all(30) {
			t.Fatalf("Retention after another Migrate = %v, %v; want %s", got, err, all(30))
		}
		if err := s.SetRetention(ctx, -1); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("SetRetention(-1): %v, want storage.ErrInvalid", err)
		}
	})

	t.Run("WriteBatch", func(t *testing.T) {
		s := open(t, "suite_batch")
		var b storage.EventBatch
		for i, key := range []string{"k1", "k2"} {
			r := storage.EventRow{Tenant: "acme", Flow: "order", Checkpoint: "paid", Key: key, KeyAttr: "order.id",
				Time: T0.Add(time.Duration(i) * time.Second).UnixNano(), Service: "payments", Name: "payment.authorized", Status: "ok"}
			r.ID = storage.EventIDValue(r.Tenant, r.Flow, r.Checkpoint, r.Key, r.TraceID, r.SpanID, r.Time, r.Name)
			b.Add(r)
			b.AddAttribute("attempt", fmt.Sprint(i+1))
			b.AddAlias("payment.id", "p-"+key)
		}
		for i := 0; i < 2; i++ { // a retried batch
			if err := s.WriteBatch(ctx, &b); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.ResolveAliases(ctx, "acme", "order", "payment.id", []string{"p-k1", "p-k2"})
		if err != nil || res["p-k1"] != "k1" || res["p-k2"] != "k2" {
			t.Fatalf("the batch's aliases resolve to %v, %v", res, err)
		}
		got, err := s.EventsSince(ctx, time.Time{}, 10)
		if err != nil || len(got) != 2 || got[0].Attributes["attempt"] == "" || got[0].IngestTime.IsZero() {
			t.Fatalf("the batch's events = %+v, %v", got, err)
		}
		var bad storage.EventBatch
		bad.Add(storage.EventRow{ID: 1, Tenant: "acme", Flow: "order", Checkpoint: "paid", Key: "k3", Time: T0.UnixNano()})
		bad.Add(storage.EventRow{ID: 2, Tenant: "", Flow: "order", Checkpoint: "paid", Key: "k4", Time: T0.UnixNano()})
		if err := s.WriteBatch(ctx, &bad); !errors.Is(err, storage.ErrIncomplete) || !strings.Contains(err.Error(), "event 1") {
			t.Fatalf("a batch with a row without a tenant: %v, want storage.ErrIncomplete naming event 1", err)
		}
		if k3, err := s.InstanceEvents(ctx, "acme", "order", "k3"); err != nil || len(k3) != 0 {
			t.Fatalf("a refused batch wrote %d rows (%v)", len(k3), err)
		}
	})

	t.Run("BadEventLosesNothingElse", func(t *testing.T) {
		s := open(t, "suite_bad")
		evs := FixtureEvents()[:3]
		evs[1].EventID = "not-an-id"
		err := s.WriteEvents(ctx, evs)
		if err == nil || !strings.Contains(err.Error(), "event 1") || !strings.Contains(err.Error(), "16 hex digits") {
			t.Fatalf("WriteEvents with a bad id: %v", err)
		}
		// The caller fixes the bad row and writes the batch again: each event once.
		evs[1].EventID = ""
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		got, err := s.EventsSince(ctx, time.Time{}, 100)
		if err != nil || len(got) != 3 {
			t.Fatalf("after the fix: %d events, %v", len(got), err)
		}
	})

	t.Run("ExactKeys", func(t *testing.T) { exactKeys(t, open(t, "suite_exact_keys")) })

	t.Run("OldAndZeroTimes", func(t *testing.T) {
		s := open(t, "suite_times")
		// Rows of 1970 are past any retention: a TTL merge may drop them at any moment.
		if err := s.SetRetention(ctx, 0); err != nil && !errors.Is(err, storage.ErrUnsupported) {
			t.Fatal(err)
		}
		old := time.Date(1970, 1, 1, 0, 0, 1, 5, time.UTC)
		if err := s.WriteAliases(ctx, []storage.Alias{{Tenant: "t", Flow: "f", Attr: "a", Value: "v", Key: "k", Time: old},
			{Tenant: "t", Flow: "f", Attr: "a", Value: "w", Key: "k"}}); err != nil {
			t.Fatalf("aliases with an old and a zero time: %v", err)
		}
		if res, err := s.ResolveAliases(ctx, "t", "f", "a", []string{"v", "w"}); err != nil || len(res) != 2 {
			t.Fatalf("aliases with an old and a zero time resolve to %v, %v", res, err)
		}
		state := storage.InstanceState{Tenant: "t", Flow: "f", Key: "k", Status: "running", Version: 1,
			StartedAt: time.Time{}, LastSeen: old, Expected: "[]", Reason: "null", Violations: "[]", UpdatedAt: time.Unix(2e9, 0)}
		if target.Legacy {
			unsupported(t, "WriteStates", s.WriteStates(ctx, []storage.InstanceState{state}))
			return
		}
		if err := s.WriteStates(ctx, []storage.InstanceState{state}); err != nil {
			t.Fatalf("a state with zero and old times: %v", err)
		}
		st, err := s.Instance(ctx, "t", "f", "k")
		if err != nil || st == nil || !st.StartedAt.IsZero() || !st.LastSeen.Equal(old) {
			t.Fatalf("read back: %+v, %v", st, err)
		}
	})

	t.Run("ConflictingAliasFirstWins", func(t *testing.T) {
		s := open(t, "suite_alias_conflict")
		base := time.Now().UTC().Truncate(time.Second)
		// The later mapping is written first: the earliest in time wins, not the first written.
		if err := s.WriteAliases(ctx, []storage.Alias{{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p1", Key: "k9", Time: base.Add(2 * time.Second)}}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteAliases(ctx, []storage.Alias{{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p1", Key: "k1", Time: base.Add(time.Second)}}); err != nil {
			t.Fatal(err)
		}
		ev := storage.CheckpointEvent{Tenant: "t", Flow: "f", Checkpoint: "settled", Key: "p1", KeyAttr: "payment.id",
			Time: base.Add(3 * time.Second), Service: "ledger", Name: "settled", Status: "ok"}
		if err := s.WriteEvents(ctx, []storage.CheckpointEvent{ev}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.ResolveAliases(ctx, "t", "f", "payment.id", []string{"p1"}); err != nil || m["p1"] != "k1" {
			t.Fatalf("resolve: %v %v", m, err)
		}
		if all, err := s.EventsSince(ctx, time.Time{}, 10); err != nil || len(all) != 1 {
			t.Fatalf("events: %+v %v", all, err)
		}
		if target.Legacy {
			return // the legacy tables are read by key alone
		}
		k1, err1 := s.InstanceEvents(ctx, "t", "f", "k1")
		k9, err9 := s.InstanceEvents(ctx, "t", "f", "k9")
		if err1 != nil || err9 != nil || len(k1) != 1 || len(k9) != 0 {
			t.Fatalf("the event belongs to k1 only: k1 %d (%v), k9 %d (%v)", len(k1), err1, len(k9), err9)
		}
	})

	t.Run("HostileValues", func(t *testing.T) {
		s := open(t, "suite_hostile")
		tenant, flow, key := `it's AND 1=1 --`, `o\'rder AND flow = ''`, "k\n\x00'\\"
		evs := []storage.CheckpointEvent{
			{Tenant: tenant, Flow: flow, Checkpoint: "a", Key: key, Time: T0, Name: "n"},
			{Tenant: tenant, Flow: flow, Checkpoint: "b", Key: key, Time: T0.Add(time.Second), Name: "n"},
		}
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		got, err := s.InstanceEvents(ctx, tenant, flow, key)
		if err != nil || len(got) != 2 || got[0].Key != key || got[0].Tenant != tenant || got[0].Flow != flow {
			t.Fatalf("InstanceEvents with quotes and keywords = %+v, %v", got, err)
		}
		if target.Legacy {
			return
		}
		tr, err := s.Transitions(ctx, tenant, flow, [][2]string{{"a", "b"}}, T0, T0.Add(time.Hour))
		if err != nil || tr[0].Count != 1 || tr[0].P50 != time.Second {
			t.Fatalf("Transitions with quotes and keywords = %+v, %v", tr, err)
		}
	})

	if target.Legacy {
		t.Run("Unsupported", func(t *testing.T) { legacyUnsupported(t, open(t, "suite_unsupported"), unsupported) })
		return
	}
	t.Run("States", func(t *testing.T) { states(t, open(t, "suite_states")) })
	t.Run("StuckCounts", func(t *testing.T) { stuckCounts(t, open(t, "suite_stuck_counts")) })
	t.Run("Audit", func(t *testing.T) { audit(t, open(t, "suite_audit")) })
	t.Run("Families", func(t *testing.T) { families(t, open(t, "suite_families")) })
}

// familyEvents are two orders' shipments: o-1 has s-1 (its start carries the parent key, its
// delivery does not) and s-2; o-2 has s-3; s-4 carries no parent; another tenant's s-1 belongs
// to its own o-9; and a row of the parent flow that carries the attribute is not a link of
// the shipment flow.
func familyEvents() []storage.CheckpointEvent {
	ev := func(tenant, flow, key, parent string, at time.Duration) storage.CheckpointEvent {
		e := storage.CheckpointEvent{Tenant: tenant, Flow: flow, Checkpoint: "packed", Key: key, KeyAttr: "shipment.id",
			Time: T0.Add(at), TraceID: fmt.Sprintf("%032x", int64(at)+1), Service: "warehouse", Name: "pack", Status: "ok"}
		if parent != "" {
			e.Attributes = map[string]string{storage.AttrParentKey: parent}
		}
		return e
	}
	delivered := ev("acme", "shipment", "s-1", "", 5*time.Minute)
	delivered.Checkpoint = "delivered"
	return []storage.CheckpointEvent{
		ev("acme", "shipment", "s-1", "o-1", 0), delivered,
		ev("acme", "shipment", "s-2", "o-1", time.Minute),
		ev("acme", "shipment", "s-3", "o-2", 2*time.Minute),
		ev("acme", "shipment", "s-4", "", 3*time.Minute),
		ev("globex", "shipment", "s-1", "o-9", 4*time.Minute),
		ev("acme", "order", "o-1", "o-0", 6*time.Minute),
	}
}

// families: a parent's children and a child's parent, from the rows that carry the parent key.
func families(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.WriteEvents(ctx, familyEvents()); err != nil {
		t.Fatal(err)
	}
	// Written again (a replayed batch): the links stay one per child.
	if err := s.WriteEvents(ctx, familyEvents()); err != nil {
		t.Fatal(err)
	}
	kids, err := s.ChildKeys(ctx, "acme", "shipment", []string{"o-1", "o-2", "o-3"})
	if want := map[string][]string{"o-1": {"s-1", "s-2"}, "o-2": {"s-3"}}; err != nil || !reflect.DeepEqual(kids, want) {
		t.Fatalf("children = %v, %v; want %v", kids, err, want)
	}
	parents, err := s.ParentKeys(ctx, "acme", "shipment", []string{"s-1", "s-3", "s-4", "s-9"})
	if want := map[string]string{"s-1": "o-1", "s-3": "o-2"}; err != nil || !reflect.DeepEqual(parents, want) {
		t.Fatalf("parents = %v, %v; want %v", parents, err, want)
	}
	if got, err := s.ParentKeys(ctx, "globex", "shipment", []string{"s-1"}); err != nil || len(got) != 1 || got["s-1"] != "o-9" {
		t.Fatalf("another tenant's parent = %v, %v", got, err)
	}
	if got, err := s.ChildKeys(ctx, "acme", "shipment", nil); err != nil || len(got) != 0 {
		t.Fatalf("no parent asked: %v, %v", got, err)
	}
	// The rows of the children, by parent, as InstancesEvents returns them; a batch of one
	// child a query reads the same.
	for _, batch := range []int{1, 1000} {
		rows, err := storage.ChildrenEvents(ctx, s, "acme", "shipment", []string{"o-1", "o-3"}, batch)
		if err != nil || len(rows) != 1 || len(rows["o-1"]) != 2 || len(rows["o-1"]["s-1"]) != 2 || len(rows["o-1"]["s-2"]) != 1 {
			t.Fatalf("ChildrenEvents(batch %d) = %v, %v", batch, rows, err)
		}
	}
}

// exactKeys writes one event per tricky key and reads each back by its key, byte for byte,
// then checks that keys that are not valid UTF-8 are refused, naming the row, with nothing
// of the batch written.
func exactKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	var evs []storage.CheckpointEvent
	for i, k := range TrickyKeys {
		evs = append(evs, storage.CheckpointEvent{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: k, KeyAttr: "order.id",
			Time: T0.Add(time.Duration(i) * time.Second), Service: "svc", Name: "n", Status: "ok"})
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, k := range TrickyKeys {
		got, err := s.InstanceEvents(ctx, "t", "f", k)
		if err != nil {
			t.Fatalf("InstanceEvents(%q): %v", k, err)
		}
		if len(got) != 1 || got[0].Key != k {
			t.Errorf("InstanceEvents(%q) = %d events %q, want the one event of that key", k, len(got), keysOf(got))
		}
	}
	all, err := s.EventsSince(ctx, time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string(nil), TrickyKeys...)
	sort.Strings(want)
	if got := keysOf(all); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("EventsSince keys = %q, want %q", got, want)
	}

	// Alias values are identities too: each resolves to its own key.
	var aliases []storage.Alias
	for i, k := range TrickyKeys {
		aliases = append(aliases, storage.Alias{Tenant: "t", Flow: "f", Attr: "payment.id", Value: k, Key: fmt.Sprintf("o-%d", i), Time: T0})
	}
	if err := s.WriteAliases(ctx, aliases); err != nil {
		t.Fatal(err)
	}
	resolved, err := s.ResolveAliases(ctx, "t", "f", "payment.id", TrickyKeys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range TrickyKeys {
		if got := resolved[k]; got != fmt.Sprintf("o-%d", i) {
			t.Errorf("alias %q resolves to %q, want o-%d", k, got, i)
		}
	}

	bad := []storage.CheckpointEvent{
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "ok-key", KeyAttr: "order.id", Time: T0.Add(time.Hour), Name: "n"},
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "u-\xff\xfe", KeyAttr: "order.id", Time: T0.Add(time.Hour), Name: "n"},
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "u-\xfe\xff", KeyAttr: "order.id", Time: T0.Add(time.Hour), Name: "n"},
	}
	err = s.WriteEvents(ctx, bad)
	if !errors.Is(err, storage.ErrNotUTF8) || !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "event 1") || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("keys that are not UTF-8: %v, want ErrNotUTF8 naming events 1 and 2", err)
	}
	if got, _ := s.InstanceEvents(ctx, "t", "f", "ok-key"); len(got) != 0 {
		t.Fatalf("a refused batch wrote %d rows", len(got))
	}
	if err := s.WriteAliases(ctx, []storage.Alias{{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p-\xff", Key: "k", Time: T0}}); !errors.Is(err, storage.ErrNotUTF8) {
		t.Fatalf("an alias value that is not UTF-8: %v, want ErrNotUTF8", err)
	}
	if err := s.WriteAliases(ctx, []storage.Alias{{Tenant: "t", Flow: "f", Value: "v", Key: "k", Time: T0}}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("an alias without its attribute: %v, want ErrInvalid", err)
	}
}

func keysOf(evs []storage.CheckpointEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Key
	}
	sort.Strings(out)
	return out
}

// legacyUnsupported checks that every method the legacy tables cannot serve says so.
func legacyUnsupported(t *testing.T, s storage.Store, unsupported func(*testing.T, string, error)) {
	ctx := context.Background()
	unsupported(t, "WriteStates", s.WriteStates(ctx, []storage.InstanceState{{Tenant: "t", Flow: "f", Key: "k"}}))
	unsupported(t, "WriteAlerts", s.WriteAlerts(ctx, []storage.AlertRecord{{Time: T0, Tenant: "t", Flow: "f"}}))
	unsupported(t, "WriteCommands", s.WriteCommands(ctx, []storage.CommandRecord{{ID: "c", Time: T0, Tenant: "t", Flow: "f"}}))
	unsupported(t, "WriteFlowVersions", s.WriteFlowVersions(ctx, []storage.FlowVersion{{Flow: "f", Version: 1, LoadedAt: T0}}))
	_, _, err := s.Instances(ctx, storage.InstanceFilter{})
	unsupported(t, "Instances", err)
	_, err = s.Instance(ctx, "t", "f", "k")
	unsupported(t, "Instance", err)
	_, err = s.Alerts(ctx, storage.AuditFilter{})
	unsupported(t, "Alerts", err)
	_, err = s.Commands(ctx, storage.AuditFilter{})
	unsupported(t, "Commands", err)
	_, err = s.CommandsSince(ctx, T0)
	unsupported(t, "CommandsSince", err)
	_, err = s.CommandsOf(ctx, "t", "f", []string{"k"})
	unsupported(t, "CommandsOf", err)
	_, err = s.StuckCounts(ctx, T0)
	unsupported(t, "StuckCounts", err)
	_, err = s.FlowVersions(ctx)
	unsupported(t, "FlowVersions", err)
	_, err = s.ChildKeys(ctx, "t", "f", []string{"k"})
	unsupported(t, "ChildKeys", err)
	_, err = s.ParentKeys(ctx, "t", "f", []string{"k"})
	unsupported(t, "ParentKeys", err)
}

// states: a newer verdict replaces an older one; pages and filters of instance states, and
// the stuck counts and status series the graph reads from them.
func states(t *testing.T, s storage.Store) {
	ctx := context.Background()
	u := T0.Add(time.Hour)
	st := func(key, status, last, expected string, seen time.Duration, updated time.Duration, shard int) storage.InstanceState {
		return storage.InstanceState{Tenant: "acme", Flow: "order", Version: 2, Key: key, Status: status, StartedAt: T0, LastSeen: T0.Add(seen),
			LastCheckpoint: last, Expected: expected, Reason: `{"checkpoint":"paid"}`, Shard: shard, UpdatedAt: u.Add(updated)}
	}
	if err := s.WriteStates(ctx, []storage.InstanceState{
		st("k1", "running", "placed", `[{"checkpoint":"paid","deadline":"2026-11-20T10:15:00Z"}]`, time.Minute, 0, 0),
		st("k2", "running", "placed", `[]`, 2*time.Minute, 0, 1),
		st("k3", "completed", "delivered", `[]`, 3*time.Minute, 0, 0),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteStates(ctx, []storage.InstanceState{st("k1", "stuck", "placed", `[{"checkpoint":"paid","deadline":"2026-11-20T10:15:00Z"}]`, time.Minute, time.Minute, 0)}); err != nil {
		t.Fatal(err)
	}
	// An older verdict arriving late changes nothing.
	if err := s.WriteStates(ctx, []storage.InstanceState{st("k1", "running", "placed", `[]`, time.Minute, -time.Minute, 0)}); err != nil {
		t.Fatal(err)
	}
	one, err := s.Instance(ctx, "acme", "order", "k1")
	if err != nil || one == nil || one.Status != "stuck" || one.Version != 2 || !one.StartedAt.Equal(T0) || one.Reason != `{"checkpoint":"paid"}` {
		t.Fatalf("Instance(k1) = %+v, %v", one, err)
	}
	if none, err := s.Instance(ctx, "acme", "order", "nope"); err != nil || none != nil {
		t.Fatalf("Instance(unknown) = %+v, %v", none, err)
	}
	var keys []string
	cursor := ""
	for page := 0; page < 5; page++ {
		states, next, err := s.Instances(ctx, storage.InstanceFilter{Tenant: "acme", Flow: "order", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range states {
			keys = append(keys, x.Key)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(keys, ",") != "k3,k2,k1" {
		t.Fatalf("Instances pages = %v, want newest last_seen first, each once", keys)
	}
	for _, c := range []struct {
		f    storage.InstanceFilter
		want string
	}{
		{storage.InstanceFilter{Status: "stuck"}, "k1"},
		{storage.InstanceFilter{Checkpoint: "paid"}, "k1"},
		{storage.InstanceFilter{Checkpoint: "delivered"}, "k3"},
		{storage.InstanceFilter{Shard: 1, Shards: 2}, "k2"},
		{storage.InstanceFilter{Key: "k2"}, "k2"},
		{storage.InstanceFilter{Tenant: "globex"}, ""},
	} {
		states, _, err := s.Instances(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, x := range states {
			ks = append(ks, x.Key)
		}
		if strings.Join(ks, ",") != c.want {
			t.Errorf("Instances(%+v) = %v, want %s", c.f, ks, c.want)
		}
	}
	for _, c := range []string{"%%%", "eyJ0IjoieCJ9"} { // not base64; base64 of {"t":"x"}
		if _, _, err := s.Instances(ctx, storage.InstanceFilter{Cursor: c}); !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), "cursor") {
			t.Fatalf("Instances with the bad cursor %q: %v, want storage.ErrInvalid naming the cursor", c, err)
		}
	}
	counts, err := s.CheckpointCounts(ctx, "acme", "order", T0, T0.Add(time.Hour))
	if err != nil || fmt.Sprint(counts) != "[{paid 0 1}]" {
		t.Fatalf("CheckpointCounts stuck = %v, %v", counts, err)
	}
	series, err := s.Series(ctx, "acme", "order", "status", T0, T0.Add(5*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seriesValues(series)); got != "map[completed:[0 0 0 1 0] running:[0 0 1 0 0] stuck:[0 1 0 0 0]]" {
		t.Fatalf("storage.Series by status = %s", got)
	}
}

// stuckCounts: stuck instances counted per overdue checkpoint, as a grouped alert sizes
// itself.
func stuckCounts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	exp := func(cps ...string) string { // each checkpoint due at T0 + i minutes
		var parts []string
		for i, cp := range cps {
			parts = append(parts, fmt.Sprintf(`{"checkpoint":%q,"deadline":%q,"since":%q,"service":"s","overdue":false}`,
				cp, T0.Add(time.Duration(i)*time.Minute).UTC().Format(time.RFC3339Nano), T0.Add(-time.Hour).UTC().Format(time.RFC3339Nano)))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	states := []storage.InstanceState{
		{Tenant: "acme", Flow: "order", Version: 1, Key: "a", Status: "stuck", Expected: exp("paid", "reserved"), Reason: `{"checkpoint":"paid"}`, UpdatedAt: T0},
		{Tenant: "acme", Flow: "order", Version: 1, Key: "b", Status: "stuck", Expected: exp("paid"), Reason: `{"checkpoint":"paid","last_error":{"message":"x"}}`, UpdatedAt: T0},
		{Tenant: "acme", Flow: "order", Version: 1, Key: "c", Status: "stuck", Expected: exp("paid"), Reason: `{"checkpoint":"paid"}`, UpdatedAt: T0},
		{Tenant: "acme", Flow: "order", Version: 1, Key: "d", Status: "running", Expected: exp("paid"), Reason: "null", UpdatedAt: T0},
	}
	if err := s.WriteStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	// c moved on since: its newer state is running.
	c := states[2]
	c.Status, c.UpdatedAt = "running", T0.Add(time.Second)
	if err := s.WriteStates(ctx, []storage.InstanceState{c}); err != nil {
		t.Fatal(err)
	}
	got, err := s.StuckCounts(ctx, T0.Add(30*time.Second)) // reserved (T0+1m) is not overdue yet
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[{acme order 1 paid false 1} {acme order 1 paid true 1}]" {
		t.Fatalf("StuckCounts = %v", got)
	}
	got, _ = s.StuckCounts(ctx, T0.Add(2*time.Minute))
	if fmt.Sprint(got) != "[{acme order 1 paid false 1} {acme order 1 paid true 1} {acme order 1 reserved false 1}]" {
		t.Fatalf("StuckCounts later = %v", got)
	}
}

// audit: alert and command records, and the flow versions detectors loaded.
func audit(t *testing.T, s storage.Store) {
	ctx := context.Background()
	alerts := []storage.AlertRecord{
		{Time: T0, Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", State: "firing", Sink: "am", Fingerprint: "f1", Summary: "k1 stuck"},
		{Time: T0.Add(time.Minute), Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", State: "resolved", Sink: "am", Fingerprint: "f1"},
		{Time: T0.Add(2 * time.Minute), Tenant: "acme", Flow: "other", Checkpoint: "x", State: "firing", Sink: "hook", Fingerprint: "f2", Error: "503"},
	}
	for i := 0; i < 2; i++ { // a retried write
		if err := s.WriteAlerts(ctx, alerts); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Alerts(ctx, storage.AuditFilter{Tenant: "acme", Flow: "order", Limit: 10})
	if err != nil || len(got) != 2 || got[0].State != "resolved" || got[1].Summary != "k1 stuck" || !got[1].Time.Equal(T0) {
		t.Fatalf("Alerts = %+v, %v", got, err)
	}
	if all, err := s.Alerts(ctx, storage.AuditFilter{Limit: 10}); err != nil || len(all) != 3 || all[0].Error != "503" {
		t.Fatalf("Alerts(all) = %+v, %v", all, err)
	}
	if lim, err := s.Alerts(ctx, storage.AuditFilter{Limit: 1}); err != nil || len(lim) != 1 {
		t.Fatalf("Alerts(limit 1) = %+v, %v", lim, err)
	}
	cmd := storage.CommandRecord{ID: "c1", Time: T0, Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", Attempt: 1,
		Sink: "nats", Subject: "payments.retry", Outcome: "sent", Payload: `{"id":"c1"}`}
	later := cmd
	later.Time, later.Outcome = T0.Add(time.Minute), "succeeded"
	other := cmd
	other.ID, other.Attempt, other.Time = "c2", 2, T0.Add(30*time.Second)
	if err := s.WriteCommands(ctx, []storage.CommandRecord{cmd, other}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteCommands(ctx, []storage.CommandRecord{later, cmd}); err != nil {
		t.Fatal(err)
	}
	cmds, err := s.Commands(ctx, storage.AuditFilter{Tenant: "acme", Flow: "order", Limit: 10})
	if err != nil || len(cmds) != 2 || cmds[0].ID != "c1" || cmds[0].Outcome != "succeeded" || cmds[1].Attempt != 2 || cmds[0].Payload != `{"id":"c1"}` {
		t.Fatalf("Commands = %+v, %v", cmds, err)
	}
	since, err := s.CommandsSince(ctx, T0.Add(10*time.Second))
	if err != nil || len(since) != 2 || since[0].ID != "c2" || since[1].ID != "c1" || since[1].Outcome != "succeeded" {
		t.Fatalf("CommandsSince = %+v, %v", since, err)
	}
	if late, err := s.CommandsSince(ctx, T0.Add(45*time.Second)); err != nil || len(late) != 1 || late[0].ID != "c1" {
		t.Fatalf("CommandsSince after c2 = %+v, %v", late, err)
	}
	if of, err := s.CommandsOf(ctx, "acme", "order", []string{"k1", "k9"}); err != nil || len(of) != 2 || of[1].Outcome != "succeeded" {
		t.Fatalf("CommandsOf(k1, k9) = %+v, %v", of, err)
	}
	if of, err := s.CommandsOf(ctx, "acme", "order", []string{"k9"}); err != nil || len(of) != 0 {
		t.Fatalf("CommandsOf(k9) = %+v, %v", of, err)
	}
	// Two detectors record the same version's first load: the earliest wins.
	if err := s.WriteFlowVersions(ctx, []storage.FlowVersion{{Flow: "order", Version: 1, LoadedAt: T0.Add(time.Minute)},
		{Flow: "order", Version: 2, LoadedAt: T0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFlowVersions(ctx, []storage.FlowVersion{{Flow: "order", Version: 1, LoadedAt: T0}}); err != nil {
		t.Fatal(err)
	}
	vs, err := s.FlowVersions(ctx)
	if err != nil || len(vs) != 2 || !vs[0].LoadedAt.Equal(T0) || vs[1].Version != 2 || !vs[1].LoadedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("FlowVersions = %+v, %v", vs, err)
	}
	if err := s.WriteFlowVersions(ctx, []storage.FlowVersion{{Flow: "order"}}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("a version without a number or a time: %v", err)
	}
}

func seriesValues(ss []storage.Series) map[string][]float64 {
	out := map[string][]float64{}
	for _, s := range ss {
		for _, p := range s.Points {
			out[s.Name] = append(out[s.Name], p.Value)
		}
	}
	return out
}
