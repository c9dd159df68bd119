package model

import (
	"fmt"
	"slices"
	"strings"
)

// checkFamilies checks what no single flow tells about sub-flows (DESIGN.md "Sub-flows"): a
// `parent.flow` names a loaded flow with a children checkpoint naming the child, a children
// checkpoint names a loaded flow that declares this one its parent, parent links have no
// cycle, and sub-flows nest one level (a child is judged on its parent's detector shard,
// which is chosen by the parent's key: a grandchild's rows do not carry its grandparent's).
// Every version of a flow is checked against every version of the other.
func checkFamilies(flows []*Flow) Problems {
	byName := map[string][]*Flow{}
	for _, f := range flows {
		byName[f.Name] = append(byName[f.Name], f)
	}
	parentsOf := func(name string) []string { // the parents the versions of name declare
		var out []string
		for _, v := range byName[name] {
			if v.Parent != nil && v.Parent.Flow != "" && !slices.Contains(out, v.Parent.Flow) {
				out = append(out, v.Parent.Flow)
			}
		}
		return out
	}
	namesChild := func(parent, child string) bool {
		for _, v := range byName[parent] {
			if slices.Contains(v.ChildFlows(), child) {
				return true
			}
		}
		return false
	}
	var probs Problems
	for _, f := range flows {
		if pl := f.Parent; pl != nil && pl.Flow != "" {
			switch cyc := parentCycle(f.Name, parentsOf); {
			case cyc != nil:
				probs = append(probs, Problem{pl.flowAt, fmt.Sprintf("cycle in 'parent': %s", strings.Join(cyc, " -> "))})
			case len(byName[pl.Flow]) == 0:
				probs = append(probs, Problem{pl.flowAt, fmt.Sprintf("'parent.flow' names unknown flow %q", pl.Flow)})
			case !namesChild(pl.Flow, f.Name):
				probs = append(probs, Problem{pl.flowAt, fmt.Sprintf("flow %q has no children checkpoint naming %q: give it one (children: {flow: %s})",
					pl.Flow, f.Name, f.Name)})
			case len(parentsOf(pl.Flow)) > 0:
				probs = append(probs, Problem{pl.flowAt, fmt.Sprintf("flow %q is itself a sub-flow of %q: sub-flows nest one level (a family is judged on its parent's shard)",
					pl.Flow, parentsOf(pl.Flow)[0])})
			}
		}
		for _, c := range f.Checkpoints {
			ch := c.Children
			if ch == nil || ch.Flow == "" {
				continue
			}
			switch {
			case ch.Flow == f.Name:
				probs = append(probs, Problem{ch.flowAt, fmt.Sprintf("checkpoint %q: flow %q cannot be its own children", c.Name, f.Name)})
			case len(byName[ch.Flow]) == 0:
				probs = append(probs, Problem{ch.flowAt, fmt.Sprintf("checkpoint %q: 'children.flow' names unknown flow %q", c.Name, ch.Flow)})
			case !slices.Contains(parentsOf(ch.Flow), f.Name):
				probs = append(probs, Problem{ch.flowAt, fmt.Sprintf("checkpoint %q: flow %q does not name %q as its parent (parent: {flow: %s, key: ATTRIBUTE})",
					c.Name, ch.Flow, f.Name, f.Name)})
			}
		}
	}
	return probs
}

// parentCycle returns the cycle of parent links through name (name first and last), or nil.
func parentCycle(name string, parentsOf func(string) []string) []string {
	// Depth-first along parent links; flows have few parents, and a walk never revisits.
	path := []string{name}
	onPath := map[string]bool{name: true}
	done := map[string]bool{}
	var walk func(n string) []string
	walk = func(n string) []string {
		for _, p := range parentsOf(n) {
			if p == name {
				return append(slices.Clone(path), name)
			}
			if onPath[p] || done[p] {
				continue
			}
			path, onPath[p] = append(path, p), true
			if c := walk(p); c != nil {
				return c
			}
			path, onPath[p] = path[:len(path)-1], false
			done[p] = true
		}
		return nil
	}
	return walk(name)
}
