// Package model owns flow definitions and the flow-instance state machine.
//
// It parses and validates flow files (YAML, the format of DESIGN.md) into compiled
// Flows, and evaluates an Instance — a set of checkpoint events of one business key —
// against an injected clock. It does no I/O beyond reading flow files in Load, keeps no
// global state, and never imports the collector, storage or network packages: everything
// else builds on it.
package model

import (
	"sort"
	"time"
)

// Join says how a checkpoint's predecessors combine.
type Join string

// The joins of the flow format.
const (
	JoinAll Join = "all" // every predecessor must be seen (AND-join, the default)
	JoinAny Join = "any" // one predecessor is enough (OR-join)
)

// Terminal marks a checkpoint that ends an instance.
type Terminal string

// The terminal kinds of the flow format.
const (
	NotTerminal     Terminal = ""
	TerminalSuccess Terminal = "success"
	TerminalFailure Terminal = "failure"
)

// Span kinds and statuses a match may name.
var (
	SpanKinds    = []string{"server", "client", "producer", "consumer", "internal"}
	SpanStatuses = []string{"ok", "error", "unset"}
)

// Flow is one compiled, validated version of a flow definition.
type Flow struct {
	Name    string
	Version int
	// Key is the default attribute holding the business key.
	Key string
	// ActiveFrom is when this version starts to apply to new instances; zero means always.
	ActiveFrom time.Time
	// Checkpoints in declaration order; Checkpoint.Index is the position here.
	Checkpoints []*Checkpoint
	// Starts are the start checkpoints, in declaration order.
	Starts []*Checkpoint
	// Source is where the flow was declared.
	Source Pos
	// Parent is set on a sub-flow: the flow its instances are children of, and the attribute
	// of its items that carries the parent's key. Nil for a flow that is nobody's child.
	Parent *ParentLink
	// Compensations are the checkpoints with `compensates`, in declaration order.
	Compensations []*Checkpoint

	byName map[string]*Checkpoint
	// childCPs are the children checkpoints.
	childCPs []*Checkpoint
	// aliases holds every attribute declared in some checkpoint's `aliases`.
	aliases map[string]bool
	// topo holds the indexes of Checkpoints in a topological order of `after`: every
	// checkpoint after its predecessors.
	topo []int
}

// Checkpoint is one step of a flow.
type Checkpoint struct {
	Name  string
	Index int
	Start bool
	// After names the predecessors; Preds are the same, resolved.
	After []string
	Preds []*Checkpoint
	// Succs are the checkpoints that name this one in `after`.
	Succs []*Checkpoint
	Join  Join
	// Within is the deadline counted from when the predecessors were satisfied; zero means
	// the checkpoint is optional and never makes an instance stuck.
	Within   time.Duration
	Terminal Terminal
	// Key is the attribute holding the key on this checkpoint's items (the flow's Key
	// unless the checkpoint sets its own).
	Key string
	// Aliases are attributes whose values also identify the instance from here on.
	Aliases []string
	Match   Match
	OnStuck []Action
	// Children is set on a checkpoint that is reached by the instance's children (a sub-flow)
	// rather than by an item of its own: it has no Match.
	Children *Children
	// Compensates is set on a compensation: the checkpoint whose effect it undoes. It is not
	// on the happy path: it becomes expected only when the instance fails after Compensates
	// was reached, due Within after the failure.
	Compensates *Checkpoint
}

// ParentLink names the parent of a sub-flow.
type ParentLink struct {
	// Flow is the parent flow's name.
	Flow string
	// Key is the attribute of the child's items that holds its parent's key.
	Key string

	flowAt Pos // where Flow was written, for the checks across flows
}

// Complete says when a children checkpoint is reached.
type Complete string

// The completions of a children checkpoint.
const (
	// CompleteAll: at least one child, and every child (or Expect of them) succeeded.
	CompleteAll Complete = "all"
	// CompleteAny: one child succeeded.
	CompleteAny Complete = "any"
)

// Children says which children reach a children checkpoint, and when.
type Children struct {
	// Flow is the child flow's name.
	Flow     string
	Complete Complete
	// Expect, when set, is the attribute of the parent's items that says how many children
	// `all` waits for (the latest value wins).
	Expect string

	flowAt Pos
}

// AttrParentKey is the attribute a child's stored rows carry its parent's key in: the flow
// processor copies the value of the child flow's parent.key there, the exporter stores it.
const AttrParentKey = "flow.parent_key"

// Match selects the telemetry items that are this checkpoint. Empty fields match anything.
type Match struct {
	// Service is the resource attribute service.name, exact.
	Service string
	// Span is a span name pattern ('*' is a wildcard). Set for span checkpoints.
	Span string
	// Event is a span event name or a log record's event name, exact. Set for event checkpoints.
	Event string
	// Kind is a span kind (server|client|producer|consumer|internal). On an event checkpoint
	// it is the kind of the span that holds the event.
	Kind string
	// Status is a span status (ok|error|unset). On an event checkpoint it is the status of the
	// span that holds the event.
	Status string
	// Attributes must all hold, looked up on the item, then its scope, then its resource.
	Attributes []AttrMatch
}

// AttrMatch is one attribute condition. Value is compared with the attribute's string form
// (an int 201 matches "201"); Present means the value was "*": the attribute must exist.
type AttrMatch struct {
	Key     string
	Value   string
	Present bool
}

// Action is an on_stuck action: a command sent to a sink when the checkpoint is overdue.
type Action struct {
	// Sink names a sink of the detector's configuration.
	Sink string
	// Subject is the sink-specific destination (a NATS subject, a URL path); may be empty.
	Subject string
	// Type is the CloudEvents type; DefaultCommandType when empty.
	Type string
	// After is the grace period past the deadline before the first attempt.
	After time.Duration
	// MaxAttempts bounds the attempts; at least 1.
	MaxAttempts int
	// Backoff is the wait between attempts; DefaultActionBackoff when zero.
	Backoff time.Duration
	// Payload is passed through to the command's data.
	Payload map[string]any

	// sinkAt is where Sink was written, for CheckSinks.
	sinkAt Pos
}

// Defaults of the flow format.
const (
	DefaultCommandType     = "dev.flowwatch.unblock"
	DefaultActionBackoff   = time.Minute
	DefaultMaxAttempts     = 1
	DefaultTenantAttribute = "tenant.id"
	DefaultTenant          = "default"
)

// Checkpoint returns the named checkpoint, or nil.
func (f *Flow) Checkpoint(name string) *Checkpoint { return f.byName[name] }

// IsAlias reports whether attr is declared as an alias by some checkpoint of the flow, so
// that a key read from it must be resolved to the instance's key.
func (f *Flow) IsAlias(attr string) bool { return f.aliases[attr] }

// KeyAttributes returns every attribute that can carry this flow's key: the flow key,
// checkpoint keys and aliases, sorted and without duplicates.
func (f *Flow) KeyAttributes() []string {
	seen := map[string]bool{f.Key: true}
	for _, c := range f.Checkpoints {
		seen[c.Key] = true
		for _, a := range c.Aliases {
			seen[a] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IsCompensation reports whether the checkpoint is a compensation (it has `compensates`).
func (c *Checkpoint) IsCompensation() bool { return c.Compensates != nil }

// ChildFlows returns the flows the children checkpoints of f name, in declaration order.
func (f *Flow) ChildFlows() []string {
	out := make([]string, 0, len(f.childCPs))
	for _, c := range f.childCPs {
		out = append(out, c.Children.Flow)
	}
	return out
}

// HasChildren reports whether f has a children checkpoint: judging an instance needs its
// children.
func (f *Flow) HasChildren() bool { return len(f.childCPs) > 0 }

// Horizon is the longest an instance can take while it still has a deadline ahead: the
// longest chain of `within`s from a start checkpoint, plus the longest compensation. Past it,
// an instance's verdict no longer changes by itself (optional checkpoints, which have no
// `within`, may still come).
func (f *Flow) Horizon() time.Duration {
	// In topological order every predecessor's chain is known before its successors'.
	at := make([]time.Duration, len(f.Checkpoints))
	var h time.Duration
	for _, i := range f.topo {
		c := f.Checkpoints[i]
		if c.IsCompensation() {
			continue // counted below: after a failure, not along the chain
		}
		var longest time.Duration
		for _, p := range c.Preds {
			longest = max(longest, at[p.Index])
		}
		at[i] = longest + c.Within
		h = max(h, at[i])
	}
	var comp time.Duration
	for _, c := range f.Compensations {
		comp = max(comp, c.Within)
	}
	return h + comp
}

// Pos is a place in a flow file.
type Pos struct {
	Path string
	Line int
	Col  int
}
