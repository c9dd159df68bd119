package model

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// link resolves `after`, then checks the graph: start, terminals, cycles, reachability. Every
// step is linear in checkpoints and `after` entries, and none recurses, so a long chain costs
// no more than a wide flow and cannot exhaust the stack. nodes[i] are the YAML nodes of
// f.Checkpoints[i].
func (p *parser) link(f *Flow, listKey *yaml.Node, nodes []*cpNodes) {
	p.linkFamily(f, nodes)
	for _, c := range f.Checkpoints {
		cn := nodes[c.Index]
		for i, name := range c.After {
			pred := f.byName[name]
			at := cn.after
			if i < len(cn.afterItems) {
				at = cn.afterItems[i]
			}
			if pred == nil {
				p.errorf(at, "'after' names unknown checkpoint %q", name)
				continue
			}
			if pred == c {
				p.errorf(at, "checkpoint %q cannot come after itself", name)
				continue
			}
			if pred.IsCompensation() {
				p.errorf(at, "%q cannot come after compensation %q: a compensation is off the happy path (it follows a failure)", c.Name, name)
				continue
			}
			c.Preds = append(c.Preds, pred)
			pred.Succs = append(pred.Succs, c)
		}
		if c.Start {
			f.Starts = append(f.Starts, c)
		}
	}
	if len(f.Starts) == 0 {
		p.errorf(listKey, "flow %q has no start checkpoint: mark the first one with 'start: true'", f.Name)
	}
	for _, c := range f.Checkpoints {
		if c.Terminal != NotTerminal && len(c.Succs) > 0 {
			names := make([]string, len(c.Succs))
			for i, s := range c.Succs {
				names[i] = s.Name
			}
			p.errorf(nodes[c.Index].terminal, "terminal checkpoint %q cannot have successors (%s come after it)", c.Name, strings.Join(names, ", "))
			for _, succ := range c.Succs {
				p.errorf(afterNode(nodes[succ.Index], succ, c.Name), "%q cannot come after %q: a terminal checkpoint ends the flow", succ.Name, c.Name)
			}
		}
	}
	topo, ok := topoOrder(f)
	if !ok {
		cyc := findCycle(f, topo)
		msg := "cycle in 'after': " + cycleText(cyc)
		// Reported at every edge of the cycle: each `after` entry that closes it.
		for i := 0; i+1 < len(cyc); i++ {
			pred, c := cyc[i], cyc[i+1]
			p.errorf(afterNode(nodes[c.Index], c, pred.Name), "%s", msg)
		}
		return // reachability is meaningless with a cycle
	}
	f.topo = topo
	if len(f.Starts) == 0 {
		return
	}
	reach := reachable(f)
	for _, c := range f.Checkpoints {
		if !reach[c.Index] && len(c.Preds) == len(c.After) && nodes[c.Index].compensates == nil {
			why := "it is not a start checkpoint and has no 'after'"
			if len(c.After) > 0 {
				why = "its predecessors can never all be reached from a start checkpoint"
			}
			p.errorf(nodes[c.Index].name, "checkpoint %q is unreachable: %s", c.Name, why)
		}
	}
}

// linkFamily resolves `compensates` and checks what only the whole flow tells: a compensation
// names a checkpoint of the flow that is no compensation itself, and no two children
// checkpoints name the same child flow (a child must know which one it reaches).
func (p *parser) linkFamily(f *Flow, nodes []*cpNodes) {
	byChild := map[string]*Checkpoint{}
	for _, c := range f.Checkpoints {
		cn := nodes[c.Index]
		if c.Children != nil {
			f.childCPs = append(f.childCPs, c)
		}
		if ch := c.Children; ch != nil && ch.Flow != "" {
			if prev := byChild[ch.Flow]; prev != nil {
				p.errorf(cn.children, "checkpoint %q: flow %q already reaches checkpoint %q: each child flow reaches one children checkpoint", c.Name, ch.Flow, prev.Name)
			} else {
				byChild[ch.Flow] = c
			}
		}
		if cn.compensates == nil || cn.compName == "" {
			continue
		}
		target := f.byName[cn.compName]
		switch {
		case target == nil:
			p.errorf(cn.compensates, "'compensates' names unknown checkpoint %q", cn.compName)
		case target == c:
			p.errorf(cn.compensates, "checkpoint %q cannot compensate itself", c.Name)
		case nodes[target.Index].compensates != nil:
			p.errorf(cn.compensates, "checkpoint %q cannot compensate %q: it is a compensation itself", c.Name, cn.compName)
		default:
			c.Compensates = target
			f.Compensations = append(f.Compensations, c)
		}
	}
}

// cycleText names the checkpoints of a cycle (its first repeated at the end), eliding the
// middle of a long one so that the text stays short however long the cycle.
func cycleText(cyc []*Checkpoint) string {
	const ends = 4
	names := make([]string, 0, 2*ends+1)
	for i, c := range cyc {
		if len(cyc) > 2*ends+1 && i == ends {
			names = append(names, fmt.Sprintf("... (%d more)", len(cyc)-2*ends))
		}
		if len(cyc) <= 2*ends+1 || i < ends || i >= len(cyc)-ends {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, " -> ")
}

// afterNode is the YAML node of c's `after` entry naming pred (or the `after` key, or the
// checkpoint's name when there is none).
func afterNode(cn *cpNodes, c *Checkpoint, pred string) *yaml.Node {
	for i, name := range c.After {
		if name == pred && i < len(cn.afterItems) {
			return cn.afterItems[i]
		}
	}
	if cn.after != nil {
		return cn.after
	}
	return cn.name
}

// topoOrder orders the checkpoints' indexes so that each comes after its predecessors, taking
// among those that are free the first declared (Kahn's algorithm: linear, no recursion). When
// `after` has a cycle it returns false and the checkpoints it could order, none of the cycle's.
func topoOrder(f *Flow) ([]int, bool) {
	waiting := make([]int, len(f.Checkpoints)) // predecessors not ordered yet
	order := make([]int, 0, len(f.Checkpoints))
	for _, c := range f.Checkpoints {
		waiting[c.Index] = len(c.Preds)
		if len(c.Preds) == 0 {
			order = append(order, c.Index)
		}
	}
	for next := 0; next < len(order); next++ {
		for _, s := range f.Checkpoints[order[next]].Succs {
			if waiting[s.Index]--; waiting[s.Index] == 0 {
				order = append(order, s.Index)
			}
		}
	}
	return order, len(order) == len(f.Checkpoints)
}

// findCycle returns the checkpoints of one cycle along `after`, the first repeated at the end,
// starting from the earliest declared of them. ordered are the checkpoints topoOrder could
// order: every other one has a predecessor that is not ordered either, so walking such
// predecessors backwards from any of them must come back to a checkpoint already walked.
func findCycle(f *Flow, ordered []int) []*Checkpoint {
	at := make([]int, len(f.Checkpoints)) // position on the walk, +1; 0: not walked
	free := make([]bool, len(f.Checkpoints))
	for _, i := range ordered {
		free[i] = true
	}
	var walk []*Checkpoint // walk[k+1] is a predecessor of walk[k]
	var c *Checkpoint
	for _, x := range f.Checkpoints {
		if !free[x.Index] {
			c = x
			break
		}
	}
	for c != nil && at[c.Index] == 0 {
		walk = append(walk, c)
		at[c.Index] = len(walk)
		var next *Checkpoint
		for _, p := range c.Preds {
			if !free[p.Index] {
				next = p
				break
			}
		}
		c = next
	}
	if c == nil {
		return nil // not a cycle after all: ordered was not topoOrder's
	}
	cycle := walk[at[c.Index]-1:]
	// Forward along `after`, from the earliest declared checkpoint of the cycle, back to it.
	first := 0
	for i, x := range cycle {
		if x.Index < cycle[first].Index {
			first = i
		}
	}
	out := make([]*Checkpoint, 0, len(cycle)+1)
	for k := range cycle {
		out = append(out, cycle[(first-k+len(cycle))%len(cycle)])
	}
	return append(out, cycle[first])
}

// reachable tells which checkpoints can be reached from a start checkpoint: a start, or one
// whose join can be satisfied by reachable predecessors. Each checkpoint is visited once,
// when it becomes reachable, and each `after` entry counted once.
func reachable(f *Flow) []bool {
	reach := make([]bool, len(f.Checkpoints))
	seen := make([]int, len(f.Checkpoints)) // reachable predecessors counted so far
	queue := make([]*Checkpoint, 0, len(f.Checkpoints))
	for _, c := range f.Starts {
		reach[c.Index] = true
		queue = append(queue, c)
	}
	for next := 0; next < len(queue); next++ {
		for _, s := range queue[next].Succs {
			if reach[s.Index] {
				continue
			}
			seen[s.Index]++
			if seen[s.Index] == len(s.Preds) || s.Join == JoinAny {
				reach[s.Index] = true
				queue = append(queue, s)
			}
		}
	}
	return reach
}
