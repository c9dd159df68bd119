package model

import "gopkg.in/yaml.v3"

// Parsing of what sub-flows and compensations add to the flow format: a flow's `parent`, a
// checkpoint's `children` and `compensates` (resolved in linkFamily; checked across flows in
// checkFamilies).

// parent parses a flow's `parent`: the flow it is a sub-flow of, and the attribute that
// carries the parent's key on its items.
func (p *parser) parent(fd field) *ParentLink {
	pl := &ParentLink{}
	fields := p.mapping(fd.val, "parent", "flow", "key")
	if fields == nil {
		return pl
	}
	if f, ok := fields["flow"]; ok {
		pl.Flow = p.str(f, "parent.flow")
		pl.flowAt = Pos{p.path, f.val.Line, f.val.Column}
		if pl.Flow != "" && !nameRE.MatchString(pl.Flow) {
			p.errorf(f.val, "'parent.flow' %q may hold only a-z, 0-9, '_' and '-'", pl.Flow)
		}
	} else {
		p.errorf(fd.val, "'parent' needs 'flow': the flow this one is a sub-flow of")
	}
	if k, ok := fields["key"]; ok {
		pl.Key = p.str(k, "parent.key")
		if pl.Key == "" && k.val.Kind == yaml.ScalarNode && k.val.Tag != "!!null" {
			p.errorf(k.val, "'parent.key' must name the attribute that holds the parent's key")
		}
	} else {
		p.errorf(fd.val, "'parent' needs 'key': the attribute of this flow's items that holds the parent's key")
	}
	return pl
}

// children parses a checkpoint's `children`: the child flow whose instances reach it.
func (p *parser) children(fd field) *Children {
	ch := &Children{Complete: CompleteAll}
	fields := p.mapping(fd.val, "children", "flow", "complete", "expect")
	if fields == nil {
		return ch
	}
	if f, ok := fields["flow"]; ok {
		ch.Flow = p.str(f, "children.flow")
		if ch.Flow != "" && !nameRE.MatchString(ch.Flow) {
			p.errorf(f.val, "'children.flow' %q may hold only a-z, 0-9, '_' and '-'", ch.Flow)
		}
	} else {
		p.errorf(fd.val, "'children' needs 'flow': the sub-flow whose instances reach this checkpoint")
	}
	if f, ok := fields["complete"]; ok {
		switch c := Complete(p.str(f, "complete")); c {
		case CompleteAll, CompleteAny:
			ch.Complete = c
		default:
			p.errorf(f.val, "'complete' must be all or any, not %q", c)
		}
	}
	if f, ok := fields["expect"]; ok {
		ch.Expect = p.str(f, "expect")
		if ch.Expect == "" && f.val.Kind == yaml.ScalarNode && f.val.Tag != "!!null" {
			p.errorf(f.val, "'expect' must name the attribute of the parent's items that holds how many children to wait for")
		}
		if ch.Complete == CompleteAny {
			p.errorf(f.key, "'expect' applies to complete: all only (complete: any waits for one child)")
		}
	}
	return ch
}

// mappingValue returns the value of key k in mapping n.
func mappingValue(n *yaml.Node, k string) (*yaml.Node, bool) {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return nil, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			return resolveAlias(n.Content[i+1]), true
		}
	}
	return nil, false
}

// checkFamily reports what a children checkpoint or a compensation cannot have: a children
// checkpoint is reached by children of an instance that has begun, so it is no start; a
// compensation is off the happy path (it follows a failure, not predecessors), so it has no
// 'after', 'join', 'start', 'terminal' or 'children', and needs 'within' (its deadline after
// the failure: without one, a failed instance would wait for it forever).
func (p *parser) checkFamily(c *Checkpoint, fields map[string]field) {
	if c.Children != nil && c.Start {
		p.errorf(fields["children"].key, "checkpoint %q: a children checkpoint cannot be a start checkpoint: it is reached by the children of an instance that has begun", c.Name)
	}
	if _, ok := fields["compensates"]; !ok {
		return
	}
	for _, k := range []string{"after", "join", "start", "terminal", "children"} {
		if fd, ok := fields[k]; ok {
			p.errorf(fd.key, "checkpoint %q: a compensation cannot have '%s': it is not on the happy path, it becomes expected when the instance fails", c.Name, k)
		}
	}
	if _, ok := fields["within"]; !ok {
		p.errorf(fields["compensates"].key, "checkpoint %q: a compensation needs 'within': its deadline after the failure that makes it due", c.Name)
	}
}
