package storagetest

import (
	"fmt"
	"time"

	"github.com/flowwatch/flowwatch/storage"
)

// T0 is the time the fixtures start at; its nanoseconds check that none are lost.
var T0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)

// FixtureEvents is one tenant's order flow: k1 goes placed → paid (recording alias p1) →
// settled (keyed by the alias) → shipped; k2 placed → paid plus an error note; k3 placed an
// hour later; and another tenant's k1.
func FixtureEvents() []storage.CheckpointEvent {
	ev := func(tenant, key, keyAttr, cp string, at time.Duration, trace, name, status string, attrs map[string]string) storage.CheckpointEvent {
		return storage.CheckpointEvent{Tenant: tenant, Flow: "order", Checkpoint: cp, Key: key, KeyAttr: keyAttr, Time: T0.Add(at),
			TraceID: trace, SpanID: fmt.Sprintf("%016x", int64(at)+int64(len(cp))), Service: "svc-" + cp, Name: name, Status: status, Attributes: attrs}
	}
	return []storage.CheckpointEvent{
		ev("acme", "k1", "order.id", "placed", 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "POST /orders", "ok", map[string]string{"http.response.status_code": "201", "quote": `it's "quoted"` + "\n\\"}),
		ev("acme", "k1", "order.id", "paid", time.Minute, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "payment.authorized", "ok", map[string]string{"payment.id": "p1"}),
		ev("acme", "p1", "payment.id", "settled", 3*time.Minute, "", "payment.settled", "unset", nil),
		ev("acme", "k1", "order.id", "shipped", 10*time.Minute, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2", "ship parcel", "ok", nil),
		ev("acme", "k2", "order.id", "placed", 30*time.Second, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1", "POST /orders", "ok", nil),
		ev("acme", "k2", "order.id", "paid", 3*time.Minute, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1", "payment.authorized", "ok", nil),
		{Tenant: "acme", Flow: "order", Key: "k2", KeyAttr: "order.id", Time: T0.Add(4 * time.Minute), TraceID: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2",
			SpanID: "00000000000000e1", Service: "ledger", Name: "POST /ledger", Status: "error", Message: "ledger: timeout — ünïcode"},
		ev("acme", "k3", "order.id", "placed", time.Hour, "ccccccccccccccccccccccccccccccc1", "POST /orders", "ok", nil),
		ev("globex", "k1", "order.id", "placed", 0, "ddddddddddddddddddddddddddddddd1", "POST /orders", "ok", nil),
	}
}

// StreamEvents makes n realistic events of many instances: batch b of a stream of batches of
// n, each instance going through six checkpoints a minute apart.
func StreamEvents(b, n int) []storage.CheckpointEvent {
	cps := []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"}
	out := make([]storage.CheckpointEvent, n)
	for i := range out {
		inst := (b*n + i) / len(cps)
		cp := cps[(b*n+i)%len(cps)]
		at := T0.Add(time.Duration(inst)*time.Second + time.Duration((b*n+i)%len(cps))*time.Minute)
		out[i] = storage.CheckpointEvent{
			Tenant: "acme", Flow: "order", Checkpoint: cp, Key: fmt.Sprintf("order-%08d", inst), KeyAttr: "order.id",
			Time: at, TraceID: fmt.Sprintf("%032x", uint64(inst)*2654435761), SpanID: fmt.Sprintf("%016x", uint64(b*n+i)*11400714819323198485),
			Service: "svc-" + cp, Name: "handle " + cp, Status: "ok",
			Attributes: map[string]string{"http.method": "POST", "region": "eu-west-1"},
		}
	}
	return out
}

// TrickyKeys are business keys that differ from each other by bytes a text format could
// lose: quotes, escapes, control characters, NUL, characters JSON writers escape, and
// characters that look alike.
var TrickyKeys = []string{
	"u-\u00ff\u00fe", "u-\u00fe\u00ff", "u-\uFFFD\uFFFD", // the valid neighbours of u-\xff\xfe and u-\xfe\xff
	`q-'single'`, `q-"double"`, `b-back\slash`, `b-\\n literal`, "nl-\nline", "tab-\tx", "cr-\rx",
	"nul-\x00-byte", "del-\x7f", "ls-\u2028ps-\u2029", "slash-/", "emoji-\U0001F600",
	"e\u0301", "\u00e9", // é decomposed and composed: two keys
	" lead", "trail ", "",
}

// EveryTable is what Store.Retention returns after SetRetention(days): days for each of
// storage.RetainedTables, or nothing for 0.
func EveryTable(days int) map[string]int {
	out := map[string]int{}
	if days > 0 {
		for _, table := range storage.RetainedTables() {
			out[table] = days
		}
	}
	return out
}
