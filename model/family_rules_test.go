package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// famDoc is one flow document: name, key, optional parent, checkpoints (flow mappings).
func famDoc(name, parent string, cps ...string) string {
	s := fmt.Sprintf("apiVersion: flowwatch/v1\nkind: Flow\nname: %s\nversion: 1\nkey: %s.id\n", name, name)
	if parent != "" {
		s += fmt.Sprintf("parent: {flow: %s, key: p.id}\n", parent)
	}
	s += "checkpoints:\n"
	for _, c := range cps {
		s += "  - " + c + "\n"
	}
	return s
}

const famStart = "{name: a, start: true, match: {service: s}}"

func famKids(flow string) string {
	return "{name: b, after: [a], within: 1h, children: {flow: " + flow + "}}"
}

// TestFamilyRejections checks every rule of sub-flows and compensations (DESIGN.md) at its
// line and column: the flow's own rules, then the links between flows, which Load checks once
// every flow is valid on its own.
func TestFamilyRejections(t *testing.T) {
	kid := "---\n" + famDoc("kid", "f", famStart)
	cases := []struct{ name, doc, want string }{
		{"children and match", header + "checkpoints:\n  - " + famStart + "\n  - {name: b, after: [a], within: 1h, children: {flow: kid}, match: {service: s}}\n" + kid,
			`8:39: checkpoint "b": 'children' and 'match' cannot both be set`},
		{"children on a start checkpoint", header + "checkpoints:\n  - {name: a, start: true, children: {flow: kid}}\n" + kid,
			`7:28: checkpoint "a": a children checkpoint cannot be a start checkpoint`},
		{"children without flow", header + "checkpoints:\n  - " + famStart + "\n  - {name: b, after: [a], within: 1h, children: {complete: all}}\n",
			`8:49: 'children' needs 'flow'`},
		{"bad complete", header + "checkpoints:\n  - " + famStart + "\n  - {name: b, after: [a], within: 1h, children: {flow: kid, complete: most}}\n" + kid,
			`8:71: 'complete' must be all or any, not "most"`},
		{"expect with any", header + "checkpoints:\n  - " + famStart + "\n  - {name: b, after: [a], within: 1h, children: {flow: kid, complete: any, expect: n}}\n" + kid,
			`8:76: 'expect' applies to complete: all only`},
		{"two children checkpoints of one flow", header + "checkpoints:\n  - " + famStart + "\n  - {name: b, after: [a], within: 1h, children: {flow: kid}}\n  - {name: c, after: [a], within: 1h, children: {flow: kid}}\n" + kid,
			`9:56: checkpoint "c": flow "kid" already reaches checkpoint "b"`},
		{"parent without key", header + "parent: {flow: p}\ncheckpoints:\n  - " + famStart + "\n",
			`6:9: 'parent' needs 'key'`},
		{"compensates an unknown checkpoint", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: nope, within: 1h, match: {service: s}}\n",
			`8:28: 'compensates' names unknown checkpoint "nope"`},
		{"compensates itself", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: r, within: 1h, match: {service: s}}\n",
			`8:28: checkpoint "r" cannot compensate itself`},
		{"compensates a compensation", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: a, within: 1h, match: {service: s}}\n  - {name: rr, compensates: r, within: 1h, match: {service: s}}\n",
			`9:29: checkpoint "rr" cannot compensate "r": it is a compensation itself`},
		{"compensation with after", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: a, after: [a], within: 1h, match: {service: s}}\n",
			`8:31: checkpoint "r": a compensation cannot have 'after'`},
		{"compensation with terminal", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: a, terminal: success, within: 1h, match: {service: s}}\n",
			`8:31: checkpoint "r": a compensation cannot have 'terminal'`},
		{"compensation without within", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: a, match: {service: s}}\n",
			`8:15: checkpoint "r": a compensation needs 'within'`},
		{"after a compensation", header + "checkpoints:\n  - " + famStart + "\n  - {name: r, compensates: a, within: 1h, match: {service: s}}\n  - {name: b, after: [r], match: {service: s}}\n",
			`9:23: "b" cannot come after compensation "r"`},
		// Across flows.
		{"parent names an unknown flow", famDoc("kid", "nope", famStart),
			`6:16: 'parent.flow' names unknown flow "nope"`},
		{"parent has no children checkpoint naming the child", famDoc("p", "", famStart) + "---\n" + famDoc("kid", "p", famStart),
			`14:16: flow "p" has no children checkpoint naming "kid"`},
		{"children names an unknown flow", famDoc("p", "", famStart, famKids("nope")),
			`8:56: checkpoint "b": 'children.flow' names unknown flow "nope"`},
		{"children names a flow that is not a child", famDoc("p", "", famStart, famKids("kid")) + "---\n" + famDoc("kid", "", famStart),
			`8:56: checkpoint "b": flow "kid" does not name "p" as its parent`},
		{"cycle of parent links", famDoc("x", "y", famStart, famKids("y")) + "---\n" + famDoc("y", "x", famStart, famKids("x")),
			`6:16: cycle in 'parent': x -> y -> x`},
		{"own parent", famDoc("s", "s", famStart, famKids("s")),
			`9:56: checkpoint "b": flow "s" cannot be its own children`},
		{"nested sub-flows", famDoc("gp", "", famStart, famKids("p")) + "---\n" + famDoc("p", "gp", famStart, famKids("c")) + "---\n" + famDoc("c", "p", famStart),
			`25:16: flow "p" is itself a sub-flow of "gp": sub-flows nest one level`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			set, err := Load(path)
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("accepted an invalid family (%v): %+v", err, set)
			}
			if all := probs.Error(); !strings.Contains(all, path+":"+tc.want) {
				t.Fatalf("want %s:%s, got:\n%s", path, tc.want, all)
			}
		})
	}
}

// TestFamilyCompiled: a valid family compiles its links and compensations.
func TestFamilyCompiled(t *testing.T) {
	set := familySet(t)
	ship, order := set.Latest("shipment"), set.Latest("order")
	if ship.Parent == nil || ship.Parent.Flow != "order" || ship.Parent.Key != "order.id" {
		t.Fatalf("parent = %+v", ship.Parent)
	}
	c := order.Checkpoint("all_delivered")
	if c.Children == nil || c.Children.Flow != "shipment" || c.Children.Complete != CompleteAll || c.Children.Expect != "order.parcel_count" {
		t.Fatalf("children = %+v", c.Children)
	}
	r := order.Checkpoint("refunded")
	if !r.IsCompensation() || r.Compensates != order.Checkpoint("paid") || len(order.Compensations) != 1 {
		t.Fatalf("compensation = %+v", r)
	}
	// 1m paid + 10m shipped + 1h children, then 30m of compensation.
	if h := order.Horizon(); h.String() != "1h41m0s" {
		t.Fatalf("horizon = %s", h)
	}
	if got := order.ExpectAttributes(); len(got) != 1 || got[0] != "order.parcel_count" {
		t.Fatalf("expect attributes = %v", got)
	}
	if set.Latest("auction").Checkpoint("sold").Children.Complete != CompleteAny {
		t.Fatal("complete: any not compiled")
	}
}
