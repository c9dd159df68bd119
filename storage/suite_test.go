package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The storage suite runs against any Store that speaks the production schema: chDB always,
// a modern server when FLOWWATCH_CLICKHOUSE_DSN is set. open returns a fresh, migrated store
// on its own database.
type opener func(t *testing.T, db string) Store

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)

// fixtureEvents is one tenant's order flow: k1 goes placed → paid (recording alias p1) →
// settled (keyed by the alias) → shipped; k2 placed → paid plus an error note; k3 placed an
// hour later; and another tenant's k1.
func fixtureEvents() []CheckpointEvent {
	ev := func(tenant, key, keyAttr, cp string, at time.Duration, trace, name, status string, attrs map[string]string) CheckpointEvent {
		return CheckpointEvent{Tenant: tenant, Flow: "order", Checkpoint: cp, Key: key, KeyAttr: keyAttr, Time: t0.Add(at),
			TraceID: trace, SpanID: fmt.Sprintf("%016x", int64(at)+int64(len(cp))), Service: "svc-" + cp, Name: name, Status: status, Attributes: attrs}
	}
	return []CheckpointEvent{
		ev("acme", "k1", "order.id", "placed", 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "POST /orders", "ok", map[string]string{"http.response.status_code": "201", "quote": `it's "quoted"` + "\n\\"}),
		ev("acme", "k1", "order.id", "paid", time.Minute, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "payment.authorized", "ok", map[string]string{"payment.id": "p1"}),
		ev("acme", "p1", "payment.id", "settled", 3*time.Minute, "", "payment.settled", "unset", nil),
		ev("acme", "k1", "order.id", "shipped", 10*time.Minute, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2", "ship parcel", "ok", nil),
		ev("acme", "k2", "order.id", "placed", 30*time.Second, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1", "POST /orders", "ok", nil),
		ev("acme", "k2", "order.id", "paid", 3*time.Minute, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1", "payment.authorized", "ok", nil),
		{Tenant: "acme", Flow: "order", Key: "k2", KeyAttr: "order.id", Time: t0.Add(4 * time.Minute), TraceID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2",
			SpanID: "00000000000000e1", Service: "ledger", Name: "POST /ledger", Status: "error", Message: "ledger: timeout — ünïcode"},
		ev("acme", "k3", "order.id", "placed", time.Hour, "ccccccccccccccccccccccccccccccc1", "POST /orders", "ok", nil),
		ev("globex", "k1", "order.id", "placed", 0, "ddddddddddddddddddddddddddddddd1", "POST /orders", "ok", nil),
	}
}

func runSuite(t *testing.T, open opener) {
	ctx := context.Background()

	t.Run("MigrateTwice", func(t *testing.T) {
		s := open(t, "suite_migrate")
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		st := s.(*store)
		applied, err := st.appliedVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := Migrations(st.schema)
		if len(applied) != len(ms) {
			t.Fatalf("applied %v, want %d migrations", applied, len(ms))
		}
		var n uint64
		if err := st.each(ctx, "SELECT count() FROM "+st.table("schema_migrations"), func(r rows) error { return r.Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		if n != uint64(len(ms)) {
			t.Fatalf("schema_migrations has %d rows after two migrations, want %d", n, len(ms))
		}
	})

	t.Run("RetentionChange", func(t *testing.T) {
		s := open(t, "suite_retention") // created with 30 days
		st := s.(*store)
		ttls := func() map[string]string {
			out := map[string]string{}
			q := "SELECT name, create_table_query FROM system.tables WHERE database = " + quote(st.db)
			if err := st.each(ctx, q, func(r rows) error {
				var name, create string
				if err := r.Scan(&name, &create); err != nil {
					return err
				}
				if m := ttlCurrentRe.FindStringSubmatch(create); m != nil {
					out[name] = m[1] + "+" + m[2]
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := fmt.Sprint(ttls()); got != "map[alerts:time+30 aliases:time+30 checkpoint_events:time+30 commands:time+30 family_links:time+30 instance_states:updated_at+30]" {
			t.Fatalf("TTLs at creation = %s", got)
		}
		st.schema.RetentionDays = 7
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ttls()); got != "map[alerts:time+7 aliases:time+7 checkpoint_events:time+7 commands:time+7 family_links:time+7 instance_states:updated_at+7]" {
			t.Fatalf("TTLs after retention 7 = %s", got)
		}
		st.schema.RetentionDays = 0
		for i := 0; i < 2; i++ {
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := ttls(); len(got) != 0 {
			t.Fatalf("TTLs after retention 0 = %v", got)
		}
	})

	t.Run("Events", func(t *testing.T) {
		s := open(t, "suite_events")
		evs := fixtureEvents()
		ingest0 := time.Now().Add(-time.Second)
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		// A replayed batch: same items, later ingest time.
		replay := fixtureEvents()
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

		if err := s.WriteAliases(ctx, []Alias{
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k1", Time: t0.Add(time.Minute)},
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k1", Time: t0.Add(time.Minute)},
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p1", Key: "k9", Time: t0.Add(time.Hour)}, // later conflict loses
			{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p2", Key: "k2", Time: t0.Add(3 * time.Minute)},
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
		if strings.Join(cps, ",") != "placed,paid,settled,shipped" {
			t.Fatalf("InstanceEvents(k1) checkpoints = %v", cps)
		}
		want := evs[0]
		g := inst[0]
		if g.EventID != want.EventID || !g.Time.Equal(want.Time) || g.TraceID != want.TraceID || g.SpanID != want.SpanID ||
			g.Service != want.Service || g.Name != want.Name || g.Status != want.Status || g.KeyAttr != want.KeyAttr ||
			len(g.Attributes) != 2 || g.Attributes["quote"] != want.Attributes["quote"] {
			t.Fatalf("InstanceEvents(k1)[0] = %+v\nwant %+v", g, want)
		}
		if g.Time.Nanosecond() != 123456789 {
			t.Fatalf("event time lost its nanoseconds: %v", g.Time)
		}
		k2, err := s.InstanceEvents(ctx, "acme", "order", "k2")
		if err != nil || len(k2) != 3 || k2[2].Checkpoint != "" || k2[2].Message != evs[6].Message {
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
		// Rows, not ids: the replays not merged yet may count too.
		if n, err := s.CountEvents(ctx, ingest0, time.Now().Add(2*time.Minute)); err != nil || n < uint64(len(evs)) || n > uint64(2*len(evs)) {
			t.Fatalf("CountEvents = %d, %v; want %d to %d", n, err, len(evs), 2*len(evs))
		}
		if none, err := s.EventRefs(ctx, ingest0.Add(-time.Hour), ingest0); err != nil || len(none) != 0 {
			t.Fatalf("EventRefs of an empty window = %v, %v", none, err)
		}
		among, err := s.EventsAmong(ctx, ingest0, []string{evs[0].EventID, evs[3].EventID})
		if err != nil || len(among) != 2 || among[0].Key == "" {
			t.Fatalf("EventsAmong = %+v, %v", among, err)
		}
		if _, err := s.EventsAmong(ctx, ingest0, []string{"not-an-id"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("EventsAmong with a bad id: %v", err)
		}

		counts, err := s.CheckpointCounts(ctx, "acme", "order", t0, t0.Add(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(counts); got != "[{paid 2 0} {placed 2 0} {settled 1 0} {shipped 1 0}]" {
			t.Fatalf("CheckpointCounts = %s", got)
		}

		tr, err := s.Transitions(ctx, "acme", "order", [][2]string{{"placed", "paid"}, {"paid", "settled"}, {"settled", "shipped"}, {"shipped", "delivered"}}, t0, t0.Add(30*time.Minute))
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

		series, err := s.Series(ctx, "acme", "order", "checkpoint", t0, t0.Add(15*time.Minute), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string][]Point{}
		for _, sr := range series {
			byName[sr.Name] = sr.Points
		}
		if len(series) != 4 || len(byName["placed"]) != 15 || byName["placed"][0].Value != 2 || byName["paid"][1].Value != 1 ||
			byName["paid"][3].Value != 1 || byName["shipped"][10].Value != 1 || !byName["placed"][2].Time.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("Series by checkpoint = %+v", series)
		}
		if _, err := s.Series(ctx, "acme", "order", "colour", t0, t0.Add(time.Hour), time.Minute); err == nil || !strings.Contains(err.Error(), "'by'") {
			t.Fatalf("Series with a bad 'by': %v", err)
		}
	})

	t.Run("BadEventLosesNothingElse", func(t *testing.T) {
		s := open(t, "suite_bad")
		evs := fixtureEvents()[:3]
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

	t.Run("OldAndZeroTimes", func(t *testing.T) {
		s := open(t, "suite_times")
		old := time.Date(1970, 1, 1, 0, 0, 1, 5, time.UTC)
		if err := s.WriteAliases(ctx, []Alias{{Tenant: "t", Flow: "f", Attr: "a", Value: "v", Key: "k", Time: old},
			{Tenant: "t", Flow: "f", Attr: "a", Value: "w", Key: "k"}}); err != nil {
			t.Fatalf("aliases with an old and a zero time: %v", err)
		}
		if err := s.WriteStates(ctx, []InstanceState{{Tenant: "t", Flow: "f", Key: "k", Status: "running", Version: 1,
			StartedAt: time.Time{}, LastSeen: old, Expected: "[]", Reason: "null", Violations: "[]", UpdatedAt: time.Unix(2e9, 0)}}); err != nil {
			t.Fatalf("a state with zero and old times: %v", err)
		}
		if st, err := s.Instance(ctx, "t", "f", "k"); err != nil || st == nil {
			t.Fatalf("read back: %+v, %v", st, err)
		}
	})

	t.Run("ConflictingAliasFirstWins", func(t *testing.T) {
		s := open(t, "suite_alias_conflict")
		base := time.Now().UTC().Truncate(time.Second)
		if err := s.WriteAliases(ctx, []Alias{{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p1", Key: "k1", Time: base.Add(time.Second)},
			{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p1", Key: "k9", Time: base.Add(2 * time.Second)}}); err != nil {
			t.Fatal(err)
		}
		ev := CheckpointEvent{Tenant: "t", Flow: "f", Checkpoint: "settled", Key: "p1", KeyAttr: "payment.id",
			Time: base.Add(3 * time.Second), Service: "ledger", Name: "settled", Status: "ok"}
		if err := s.WriteEvents(ctx, []CheckpointEvent{ev}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.ResolveAliases(ctx, "t", "f", "payment.id", []string{"p1"}); err != nil || m["p1"] != "k1" {
			t.Fatalf("resolve: %v %v", m, err)
		}
		if all, err := s.EventsSince(ctx, time.Time{}, 10); err != nil || len(all) != 1 {
			t.Fatalf("events: %+v %v", all, err)
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
		evs := []CheckpointEvent{
			{Tenant: tenant, Flow: flow, Checkpoint: "a", Key: key, Time: t0, Name: "n"},
			{Tenant: tenant, Flow: flow, Checkpoint: "b", Key: key, Time: t0.Add(time.Second), Name: "n"},
		}
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		got, err := s.InstanceEvents(ctx, tenant, flow, key)
		if err != nil || len(got) != 2 || got[0].Key != key || got[0].Tenant != tenant || got[0].Flow != flow {
			t.Fatalf("InstanceEvents with quotes and keywords = %+v, %v", got, err)
		}
		tr, err := s.Transitions(ctx, tenant, flow, [][2]string{{"a", "b"}}, t0, t0.Add(time.Hour))
		if err != nil || tr[0].Count != 1 || tr[0].P50 != time.Second {
			t.Fatalf("Transitions with quotes and keywords = %+v, %v", tr, err)
		}
	})

	t.Run("States", func(t *testing.T) {
		s := open(t, "suite_states")
		u := t0.Add(time.Hour)
		st := func(key, status, last, expected string, seen time.Duration, updated time.Duration, shard int) InstanceState {
			return InstanceState{Tenant: "acme", Flow: "order", Version: 2, Key: key, Status: status, StartedAt: t0, LastSeen: t0.Add(seen),
				LastCheckpoint: last, Expected: expected, Reason: `{"checkpoint":"paid"}`, Shard: shard, UpdatedAt: u.Add(updated)}
		}
		if err := s.WriteStates(ctx, []InstanceState{
			st("k1", "running", "placed", `[{"checkpoint":"paid","deadline":"2026-11-20T10:15:00Z"}]`, time.Minute, 0, 0),
			st("k2", "running", "placed", `[]`, 2*time.Minute, 0, 1),
			st("k3", "completed", "delivered", `[]`, 3*time.Minute, 0, 0),
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteStates(ctx, []InstanceState{st("k1", "stuck", "placed", `[{"checkpoint":"paid","deadline":"2026-11-20T10:15:00Z"}]`, time.Minute, time.Minute, 0)}); err != nil {
			t.Fatal(err)
		}
		// An older verdict arriving late changes nothing.
		if err := s.WriteStates(ctx, []InstanceState{st("k1", "running", "placed", `[]`, time.Minute, -time.Minute, 0)}); err != nil {
			t.Fatal(err)
		}
		one, err := s.Instance(ctx, "acme", "order", "k1")
		if err != nil || one == nil || one.Status != "stuck" || one.Version != 2 || !one.StartedAt.Equal(t0) || one.Reason != `{"checkpoint":"paid"}` {
			t.Fatalf("Instance(k1) = %+v, %v", one, err)
		}
		if none, err := s.Instance(ctx, "acme", "order", "nope"); err != nil || none != nil {
			t.Fatalf("Instance(unknown) = %+v, %v", none, err)
		}
		var keys []string
		cursor := ""
		for page := 0; page < 5; page++ {
			states, next, err := s.Instances(ctx, InstanceFilter{Tenant: "acme", Flow: "order", Limit: 2, Cursor: cursor})
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
			f    InstanceFilter
			want string
		}{
			{InstanceFilter{Status: "stuck"}, "k1"},
			{InstanceFilter{Checkpoint: "paid"}, "k1"},
			{InstanceFilter{Checkpoint: "delivered"}, "k3"},
			{InstanceFilter{Shard: 1, Shards: 2}, "k2"},
			{InstanceFilter{Key: "k2"}, "k2"},
			{InstanceFilter{Tenant: "globex"}, ""},
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
		if _, _, err := s.Instances(ctx, InstanceFilter{Cursor: "%%%"}); err == nil || !strings.Contains(err.Error(), "cursor") {
			t.Fatalf("Instances with a bad cursor: %v", err)
		}
		counts, err := s.CheckpointCounts(ctx, "acme", "order", t0, t0.Add(time.Hour))
		if err != nil || fmt.Sprint(counts) != "[{paid 0 1}]" {
			t.Fatalf("CheckpointCounts stuck = %v, %v", counts, err)
		}
		series, err := s.Series(ctx, "acme", "order", "status", t0, t0.Add(5*time.Minute), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(seriesValues(series)); got != "map[completed:[0 0 0 1 0] running:[0 0 1 0 0] stuck:[0 1 0 0 0]]" {
			t.Fatalf("Series by status = %s", got)
		}
	})

	t.Run("StuckCounts", func(t *testing.T) {
		s := open(t, "suite_stuck_counts")
		exp := func(cps ...string) string { // each checkpoint due at t0 + i minutes
			var parts []string
			for i, cp := range cps {
				parts = append(parts, fmt.Sprintf(`{"checkpoint":%q,"deadline":%q,"since":%q,"service":"s","overdue":false}`,
					cp, t0.Add(time.Duration(i)*time.Minute).UTC().Format(time.RFC3339Nano), t0.Add(-time.Hour).UTC().Format(time.RFC3339Nano)))
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		states := []InstanceState{
			{Tenant: "acme", Flow: "order", Version: 1, Key: "a", Status: "stuck", Expected: exp("paid", "reserved"), Reason: `{"checkpoint":"paid"}`, UpdatedAt: t0},
			{Tenant: "acme", Flow: "order", Version: 1, Key: "b", Status: "stuck", Expected: exp("paid"), Reason: `{"checkpoint":"paid","last_error":{"message":"x"}}`, UpdatedAt: t0},
			{Tenant: "acme", Flow: "order", Version: 1, Key: "c", Status: "stuck", Expected: exp("paid"), Reason: `{"checkpoint":"paid"}`, UpdatedAt: t0},
			{Tenant: "acme", Flow: "order", Version: 1, Key: "d", Status: "running", Expected: exp("paid"), Reason: "null", UpdatedAt: t0},
		}
		if err := s.WriteStates(ctx, states); err != nil {
			t.Fatal(err)
		}
		// c moved on since: its newer state is running.
		c := states[2]
		c.Status, c.UpdatedAt = "running", t0.Add(time.Second)
		if err := s.WriteStates(ctx, []InstanceState{c}); err != nil {
			t.Fatal(err)
		}
		got, err := s.StuckCounts(ctx, t0.Add(30*time.Second)) // reserved (t0+1m) is not overdue yet
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[{acme order 1 paid false 1} {acme order 1 paid true 1}]" {
			t.Fatalf("StuckCounts = %v", got)
		}
		got, _ = s.StuckCounts(ctx, t0.Add(2*time.Minute))
		if fmt.Sprint(got) != "[{acme order 1 paid false 1} {acme order 1 paid true 1} {acme order 1 reserved false 1}]" {
			t.Fatalf("StuckCounts later = %v", got)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		s := open(t, "suite_audit")
		alerts := []AlertRecord{
			{Time: t0, Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", State: "firing", Sink: "am", Fingerprint: "f1", Summary: "k1 stuck"},
			{Time: t0.Add(time.Minute), Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", State: "resolved", Sink: "am", Fingerprint: "f1"},
			{Time: t0.Add(2 * time.Minute), Tenant: "acme", Flow: "other", Checkpoint: "x", State: "firing", Sink: "hook", Fingerprint: "f2", Error: "503"},
		}
		for i := 0; i < 2; i++ { // a retried write
			if err := s.WriteAlerts(ctx, alerts); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Alerts(ctx, AuditFilter{Tenant: "acme", Flow: "order", Limit: 10})
		if err != nil || len(got) != 2 || got[0].State != "resolved" || got[1].Summary != "k1 stuck" || !got[1].Time.Equal(t0) {
			t.Fatalf("Alerts = %+v, %v", got, err)
		}
		if all, err := s.Alerts(ctx, AuditFilter{Limit: 10}); err != nil || len(all) != 3 || all[0].Error != "503" {
			t.Fatalf("Alerts(all) = %+v, %v", all, err)
		}
		if lim, err := s.Alerts(ctx, AuditFilter{Limit: 1}); err != nil || len(lim) != 1 {
			t.Fatalf("Alerts(limit 1) = %+v, %v", lim, err)
		}
		cmd := CommandRecord{ID: "c1", Time: t0, Tenant: "acme", Flow: "order", Version: 1, Key: "k1", Checkpoint: "paid", Attempt: 1,
			Sink: "nats", Subject: "payments.retry", Outcome: "sent", Payload: `{"id":"c1"}`}
		later := cmd
		later.Time, later.Outcome = t0.Add(time.Minute), "succeeded"
		other := cmd
		other.ID, other.Attempt, other.Time = "c2", 2, t0.Add(30*time.Second)
		if err := s.WriteCommands(ctx, []CommandRecord{cmd, other}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteCommands(ctx, []CommandRecord{later, cmd}); err != nil {
			t.Fatal(err)
		}
		cmds, err := s.Commands(ctx, AuditFilter{Tenant: "acme", Flow: "order", Limit: 10})
		if err != nil || len(cmds) != 2 || cmds[0].ID != "c1" || cmds[0].Outcome != "succeeded" || cmds[1].Attempt != 2 || cmds[0].Payload != `{"id":"c1"}` {
			t.Fatalf("Commands = %+v, %v", cmds, err)
		}
		since, err := s.CommandsSince(ctx, t0.Add(10*time.Second))
		if err != nil || len(since) != 2 || since[0].ID != "c2" || since[1].ID != "c1" || since[1].Outcome != "succeeded" {
			t.Fatalf("CommandsSince = %+v, %v", since, err)
		}
		if late, err := s.CommandsSince(ctx, t0.Add(45*time.Second)); err != nil || len(late) != 1 || late[0].ID != "c1" {
			t.Fatalf("CommandsSince after c2 = %+v, %v", late, err)
		}
		if of, err := s.CommandsOf(ctx, "acme", "order", []string{"k1", "k9"}); err != nil || len(of) != 2 || of[1].Outcome != "succeeded" {
			t.Fatalf("CommandsOf(k1, k9) = %+v, %v", of, err)
		}
		if of, err := s.CommandsOf(ctx, "acme", "order", []string{"k9"}); err != nil || len(of) != 0 {
			t.Fatalf("CommandsOf(k9) = %+v, %v", of, err)
		}
		// Two detectors record the same version's first load: the earliest wins.
		if err := s.WriteFlowVersions(ctx, []FlowVersion{{Flow: "order", Version: 1, LoadedAt: t0.Add(time.Minute)},
			{Flow: "order", Version: 2, LoadedAt: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteFlowVersions(ctx, []FlowVersion{{Flow: "order", Version: 1, LoadedAt: t0}}); err != nil {
			t.Fatal(err)
		}
		vs, err := s.FlowVersions(ctx)
		if err != nil || len(vs) != 2 || !vs[0].LoadedAt.Equal(t0) || vs[1].Version != 2 || !vs[1].LoadedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("FlowVersions = %+v, %v", vs, err)
		}
		if err := s.WriteFlowVersions(ctx, []FlowVersion{{Flow: "order"}}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a version without a number or a time: %v", err)
		}
	})
}

func seriesValues(ss []Series) map[string][]float64 {
	out := map[string][]float64{}
	for _, s := range ss {
		for _, p := range s.Points {
			out[s.Name] = append(out[s.Name], p.Value)
		}
	}
	return out
}
