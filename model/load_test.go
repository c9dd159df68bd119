package model

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const header = "apiVersion: flowwatch/v1\nkind: Flow\nname: f\nversion: 1\nkey: order.id\n"

func TestLoadExamples(t *testing.T) {
	set, err := Load("../examples/flows")
	if err != nil {
		t.Fatalf("examples must load: %v", err)
	}
	if got := set.Names(); strings.Join(got, ",") != "customer-onboarding,order-fulfilment,payment,shipment" {
		t.Fatalf("names = %v", got)
	}
	f := set.Version("order-fulfilment", 1)
	if f == nil {
		t.Fatal("order-fulfilment v1 missing")
	}
	shipped := f.Checkpoint("shipped")
	if shipped.Join != JoinAll || len(shipped.Preds) != 2 || shipped.Within != 10*time.Minute {
		t.Fatalf("shipped compiled wrong: %+v", shipped)
	}
	paid := f.Checkpoint("paid")
	if paid.Key != "payment.order_id" || len(paid.Aliases) != 1 || !f.IsAlias("payment.id") {
		t.Fatalf("paid key/aliases wrong: %+v", paid)
	}
	if a := paid.OnStuck[0]; a.Sink != "nats" || a.MaxAttempts != 3 || a.After != 5*time.Second ||
		a.Backoff != 20*time.Second || a.Type != DefaultCommandType || a.Payload["action"] != "retry-payment" {
		t.Fatalf("paid action wrong: %+v", a)
	}
	if c := f.Checkpoint("placed"); !c.Start || c.Key != "order.id" || c.Match.Attributes[0] != (AttrMatch{Key: "http.response.status_code", Value: "201"}) {
		t.Fatalf("placed compiled wrong: %+v", c)
	}
	if len(f.Checkpoint("placed").Succs) != 3 {
		t.Fatalf("placed succs = %d", len(f.Checkpoint("placed").Succs))
	}
	v2 := set.Version("order-fulfilment", 2)
	if v2.ActiveFrom.IsZero() || set.At("order-fulfilment", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) != f ||
		set.At("order-fulfilment", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) != v2 {
		t.Fatal("version pinning by active_from is wrong")
	}
	ob := set.Latest("customer-onboarding")
	if ob.Checkpoint("credit_checked").Within != 36*time.Hour || ob.Checkpoint("welcome_kit_shipped").Within != 7*24*time.Hour {
		t.Fatal("day durations not parsed")
	}
	// 3d email, then 2d identity or 1.5d credit, then 1d account, then 7d welcome kit.
	if h := ob.Horizon(); h != 13*24*time.Hour {
		t.Fatalf("onboarding horizon = %s", h)
	}
	if pay := set.Latest("payment"); pay.Checkpoint("authorized").Join != JoinAny ||
		pay.Checkpoint("abandoned").Terminal != TerminalFailure {
		t.Fatal("payment compiled wrong")
	}
}

// TestRejections checks every rejection of DESIGN.md reports the right line and column.
func TestRejections(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // "line:col: substring"
	}{
		{"unknown field in flow", header + "colour: blue\ncheckpoints:\n  - {name: a, start: true, match: {service: s}}\n",
			[]string{`6:1: unknown field "colour" in flow`}},
		{"unknown field in checkpoint", header + "checkpoints:\n  - name: a\n    start: true\n    deadline: 5m\n    match: {service: s}\n",
			[]string{`9:5: unknown field "deadline" in checkpoint`}},
		{"unknown field in match", header + "checkpoints:\n  - name: a\n    start: true\n    match: {service: s, spam: x}\n",
			[]string{`9:25: unknown field "spam" in match`}},
		{"unknown field in action", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    match: {service: s}\n    on_stuck:\n      - {sink: n, retries: 2}\n",
			[]string{`12:19: unknown field "retries" in on_stuck action`}},
		{"duplicate checkpoint", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: a, match: {service: s}}\n",
			[]string{`8:12: duplicate checkpoint name "a"`}},
		{"after unknown", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a, nope]\n    match: {service: s}\n",
			[]string{`9:16: 'after' names unknown checkpoint "nope"`}},
		{"cycle", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a, c]\n    match: {service: s}\n  - name: c\n    after: [b]\n    match: {service: s}\n",
			[]string{`9:16: cycle in 'after': b -> c -> b`, `12:13: cycle in 'after': b -> c -> b`}},
		{"no start", header + "checkpoints:\n  - {name: a, match: {service: s}}\n  - {name: b, after: [a], match: {service: s}}\n",
			[]string{`6:1: flow "f" has no start checkpoint`}},
		{"unreachable", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: orphan, match: {service: s}}\n",
			[]string{`8:12: checkpoint "orphan" is unreachable`}},
		{"zero within", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: b, after: [a], within: 0s, match: {service: s}}\n",
			[]string{`8:35: 'within' must be greater than zero`}},
		{"negative within", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: b, after: [a], within: -5m, match: {service: s}}\n",
			[]string{`8:35: 'within' must be greater than zero`}},
		{"bad duration", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: b, after: [a], within: soon, match: {service: s}}\n",
			[]string{`8:35: 'within': invalid duration "soon"`}},
		{"terminal with successors", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: done\n    after: [a]\n    terminal: success\n    match: {service: s}\n  - {name: c, after: [done], match: {service: s}}\n",
			[]string{`10:5: terminal checkpoint "done" cannot have successors (c come after it)`, `12:23: "c" cannot come after "done"`}},
		{"sink with no name", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    match: {service: s}\n    on_stuck:\n      - {subject: x.y}\n",
			[]string{`12:9: on_stuck action: missing required field 'sink'`}},
		{"empty sink", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    match: {service: s}\n    on_stuck:\n      - {sink: \"\", subject: x.y}\n",
			[]string{`12:16: 'sink' must name a sink`}},
		{"missing key", "apiVersion: flowwatch/v1\nkind: Flow\nname: f\nversion: 1\ncheckpoints:\n  - {name: a, start: true, match: {service: s}}\n",
			[]string{`1:1: missing required field 'key'`}},
		{"empty key", strings.Replace(header, "key: order.id", `key: ""`, 1) + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n",
			[]string{`5:6: 'key' must name the attribute`}},
		{"empty checkpoint name", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - {name: \"\", after: [a], match: {service: s}}\n",
			[]string{`8:12: checkpoint 'name' must not be empty`}},
		{"bad version", strings.Replace(header, "version: 1", "version: 0", 1) + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n",
			[]string{`4:10: 'version' must be 1 or more`}},
		{"bad name", strings.Replace(header, "name: f", "name: Order Flow", 1) + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n",
			[]string{`3:7: 'name' "Order Flow" may hold only`}},
		{"bad kind", header + "checkpoints:\n  - {name: a, start: true, match: {service: s, span: x, kind: sever}}\n",
			[]string{`7:63: 'kind' must be one of`}},
		{"on_stuck without within", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    match: {service: s}\n    on_stuck:\n      - {sink: nats}\n",
			[]string{`11:5: checkpoint "b": 'on_stuck' needs 'within'`}},
		{"within on a start checkpoint", header + "checkpoints:\n  - {name: a, start: true, within: 5m, match: {service: s}}\n",
			[]string{`7:28: checkpoint "a": 'within' cannot be set on a start checkpoint`}},
		{"negative on_stuck after", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    within: 5m\n    match: {service: s}\n    on_stuck:\n      - {sink: nats, after: -1m}\n",
			[]string{`13:29: 'after' must not be negative`}},
		{"zero backoff", header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    within: 5m\n    match: {service: s}\n    on_stuck:\n      - {sink: nats, backoff: 0s}\n",
			[]string{`13:31: 'backoff' must be greater than zero`}},
		{"syntax", header + "checkpoints:\n  - name: a\n   start: true\n",
			[]string{`8:4: invalid YAML: did not find expected '-' indicator`}},
		{"every problem at once", header + "colour: x\ncheckpoints:\n  - {name: a, match: {service: s}}\n  - {name: a, match: {service: s}}\n  - {name: b, after: [zz], within: 0m, match: {service: s}}\n",
			[]string{`6:1: unknown field "colour"`, `7:1: flow "f" has no start checkpoint`, `9:12: duplicate checkpoint name "a"`, `10:23: 'after' names unknown checkpoint "zz"`, `10:36: 'within' must be greater than zero`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flows, probs := Parse("bad.yaml", []byte(tc.doc))
			if len(probs) == 0 {
				t.Fatalf("accepted an invalid flow: %+v", flows)
			}
			all := probs.Error()
			for _, w := range tc.want {
				if !strings.Contains(all, "bad.yaml:"+w) && !strings.Contains(all, w) {
					t.Errorf("want a problem %q, got:\n%s", w, all)
				}
				if strings.Contains(w, ":") && !strings.Contains(all, "bad.yaml:"+strings.SplitN(w, " ", 2)[0]) {
					t.Errorf("want position %q, got:\n%s", strings.SplitN(w, " ", 2)[0], all)
				}
			}
		})
	}
}

func TestMultiDocumentLinesAndDuplicateVersions(t *testing.T) {
	dir := t.TempDir()
	doc := header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n"
	bad := header + "checkpoints:\n  - {name: a, start: true, match: {service: s, bogus: 1}}\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(doc+"---\n"+bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("want Problems, got %v", err)
	}
	s := probs.Error()
	// the second document starts at line 9: its bogus field is on line 15.
	if !strings.Contains(s, "a.yaml:15:48: unknown field \"bogus\" in match") {
		t.Errorf("multi-document line numbers wrong:\n%s", s)
	}
	if !strings.Contains(s, "b.yml:1:1: flow \"f\" version 1 is already defined at") {
		t.Errorf("duplicate version across files not reported:\n%s", s)
	}
}

func TestLoadMissingPath(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml:0:0: cannot read flows") {
		t.Fatalf("got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"15m": 15 * time.Minute, "2d": 48 * time.Hour, "1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "90s": 90 * time.Second,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "5 parsecs", "1x"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../examples/flows/order-fulfilment.yaml", "../examples/flows/payment.yaml", "../examples/flows/onboarding.yaml"} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			// The mutator grows inputs to hundreds of KB; each then costs the instrumented
			// parser seconds and the run stalls. Size limits have their own tests.
			return
		}
		flows, probs := Parse("fuzz.yaml", data)
		for _, p := range probs {
			if p.Line < 0 || p.Col < 0 || p.Msg == "" {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		if len(probs) > 0 {
			return
		}
		// A flow that validates must be evaluable without panicking.
		for _, fl := range flows {
			in := NewInstance([]*Flow{fl}, "t", "k")
			for i, c := range fl.Checkpoints {
				in.Apply(Event{ID: c.Name, Checkpoint: c.Name, Time: time.Unix(int64(100-i), 0)})
			}
			in.Evaluate(time.Unix(1000, 0))
		}
	})
}

// TestCheckSinks: an action naming a sink the detector does not have is reported at its
// `sink` value, every one at once; with the sinks configured the set passes.
func TestCheckSinks(t *testing.T) {
	doc := header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n" +
		"  - name: b\n    after: [a]\n    within: 5m\n    match: {service: s}\n    on_stuck:\n      - {sink: nats}\n      - sink: pager\n" +
		"  - {name: c, after: [a], within: 1m, match: {service: s}, on_stuck: [{sink: nats}]}\n"
	flows, probs := Parse("sinks.yaml", []byte(doc))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	set := NewSet(flows)
	if probs := set.CheckSinks([]string{"nats", "pager"}); len(probs) != 0 {
		t.Fatalf("every sink is configured, got:\n%s", probs)
	}
	got := set.CheckSinks([]string{"webhook", "nats"}).Error()
	want := `sinks.yaml:14:15: checkpoint "b": 'sink' "pager" names no sink of the detector's configuration (configured: nats, webhook)`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	got = set.CheckSinks(nil).Error()
	for _, w := range []string{`sinks.yaml:13:16: checkpoint "b": 'sink' "nats" names no sink of the detector's configuration (no sink is configured)`,
		`sinks.yaml:14:15: checkpoint "b": 'sink' "pager"`, `sinks.yaml:15:78: checkpoint "c": 'sink' "nats"`} {
		if !strings.Contains(got, w) {
			t.Errorf("want %s, got:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 3 {
		t.Errorf("want 3 problems, got %d:\n%s", n, got)
	}
}

// TestEventCheckpointMayNameItsSpan: `kind` and `status` on an event checkpoint match the span
// that holds the event; they are kept, not rejected.
func TestEventCheckpointMayNameItsSpan(t *testing.T) {
	doc := header + "checkpoints:\n  - {name: a, start: true, match: {service: s, event: placed, kind: server, status: ok}}\n"
	flows, probs := Parse("event.yaml", []byte(doc))
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if m := flows[0].Checkpoints[0].Match; m.Event != "placed" || m.Kind != "server" || m.Status != "ok" {
		t.Fatalf("match = %+v", m)
	}
	_, probs = Parse("event.yaml", []byte(strings.Replace(doc, "status: ok", "status: fine", 1)))
	if len(probs) != 1 || !strings.Contains(probs.Error(), `event.yaml:7:85: 'status' must be one of ok, error, unset, not "fine"`) {
		t.Fatalf("a bad status on an event checkpoint: %v", probs)
	}
}
