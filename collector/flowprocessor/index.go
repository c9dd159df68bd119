package flowprocessor

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/model"
)

// serviceNameAttr is the resource attribute a match's `service` is compared with.
const serviceNameAttr = "service.name"

// index is the compiled form of a model.Set: the checkpoints' matches, bucketed so that an
// item is compared only with the rules that can match it (its service's and the ones of no
// service, and among those only the ones with its exact name or a name pattern). It is
// immutable once built and shared by concurrent calls.
type index struct {
	set *model.Set
	// byService holds the rules of each match.service.
	byService map[string]*bucket
	// anyService holds the rules without a service; nil when there are none.
	anyService *bucket
	// flows are the flow names with the attributes that can carry their key, for error notes.
	flows []*flowInfo
	rules int
}

// bucket holds the rules of one service (or of no service).
type bucket struct {
	// spanByName holds span rules with an exact span name.
	spanByName nameTable
	// spanOther holds span rules with a name pattern ('*') or no name at all.
	spanOther []*rule
	// eventByName holds event rules, matched by span events and log records.
	eventByName nameTable
}

func (b *bucket) hasSpanRules() bool {
	return b != nil && (b.spanByName.len() > 0 || len(b.spanOther) > 0)
}

func (b *bucket) hasEventRules() bool { return b != nil && b.eventByName.len() > 0 }

// smallTable is the number of names up to which a nameTable scans a slice rather than
// hashing into a map.
const smallTable = 8

// nameTable finds the rules of an exact name. Most names looked up are not in it, so it first
// rejects on the name's length and first byte (two bit sets), then scans a few entries or
// looks up a map.
type nameTable struct {
	lens   [2]uint64 // bit len(name) (lengths >= 127 share the last bit)
	firsts [4]uint64 // bit name[0]
	small  []nameEntry
	big    map[string][]*rule
}

type nameEntry struct {
	name  string
	rules []*rule
}

func (t *nameTable) len() int {
	if t.big != nil {
		return len(t.big)
	}
	return len(t.small)
}

func lenBit(n int) (int, uint64) {
	if n > 127 {
		n = 127
	}
	return n >> 6, 1 << (n & 63)
}

func (t *nameTable) add(name string, r *rule) {
	w, bit := lenBit(len(name))
	t.lens[w] |= bit
	if name != "" {
		t.firsts[name[0]>>6] |= 1 << (name[0] & 63)
	}
	if t.big != nil {
		t.big[name] = append(t.big[name], r)
		return
	}
	for i := range t.small {
		if t.small[i].name == name {
			t.small[i].rules = append(t.small[i].rules, r)
			return
		}
	}
	t.small = append(t.small, nameEntry{name: name, rules: []*rule{r}})
	if len(t.small) > smallTable {
		t.big = make(map[string][]*rule, len(t.small))
		for _, e := range t.small {
			t.big[e.name] = e.rules
		}
		t.small = nil
	}
}

func (t *nameTable) get(name string) []*rule {
	w, bit := lenBit(len(name))
	if t.lens[w]&bit == 0 || name == "" || t.firsts[name[0]>>6]&(1<<(name[0]&63)) == 0 {
		return nil
	}
	if t.big != nil {
		return t.big[name]
	}
	for i := range t.small {
		if t.small[i].name == name {
			return t.small[i].rules
		}
	}
	return nil
}

// rule is one checkpoint's match, compiled. Versions of a flow that declare a checkpoint
// identically share one rule.
type rule struct {
	flow       *flowInfo
	checkpoint string
	service    string
	// span name: exact when spanGlob is nil.
	spanName string
	spanGlob *glob
	event    string
	kind     ptrace.SpanKind // ptrace.SpanKindUnspecified: any
	status   ptrace.StatusCode
	anyState bool // status not constrained
	attrs    []attrCond
	keyAttr  string
	aliases  []string
	// keep are the attributes a row of this flow keeps for its judgement.
	keep []keepAttr
	// counts is the cell of {flow, checkpoint} in the processor's counters.
	counts *counterCell
}

// keepAttr is an attribute an item's row keeps: the value of attribute from, stored as as.
type keepAttr struct {
	from, as string
}

// keepOf are the attributes the rows of a flow version keep for its judgement: a sub-flow's
// parent key (from its parent.key attribute, as model.AttrParentKey), and the counts of
// children its children checkpoints expect.
func keepOf(f *model.Flow) []keepAttr {
	var out []keepAttr
	if f.Parent != nil {
		out = append(out, keepAttr{from: f.Parent.Key, as: model.AttrParentKey})
	}
	for _, a := range f.ExpectAttributes() {
		out = append(out, keepAttr{from: a, as: a})
	}
	return out
}

// flowInfo is what the index knows of a flow name across its versions.
type flowInfo struct {
	name string
	// keyAttrs are every attribute that can carry the key: each version's flow key first
	// (newest version first), then checkpoint keys and aliases, without duplicates.
	keyAttrs []string
	// counts is the cell of {flow} in the processor's counters.
	counts *counterCell
}

// attrCond is a compiled model.AttrMatch: the expected value parsed once for each type an
// attribute may have, so that comparing allocates nothing.
type attrCond struct {
	key     string
	present bool
	str     string
	isInt   bool
	intVal  int64
	isBool  bool
	boolVal bool
}

func compileAttr(a model.AttrMatch) attrCond {
	c := attrCond{key: a.Key, present: a.Present, str: a.Value}
	if v, err := strconv.ParseInt(a.Value, 10, 64); err == nil && strconv.FormatInt(v, 10) == a.Value {
		c.isInt, c.intVal = true, v
	}
	if a.Value == "true" || a.Value == "false" {
		c.isBool, c.boolVal = true, a.Value == "true"
	}
	return c
}

// holds reports whether v's string form equals the expected value.
func (c *attrCond) holds(v pcommon.Value) bool {
	if c.present {
		return true
	}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str() == c.str
	case pcommon.ValueTypeInt:
		return c.isInt && v.Int() == c.intVal
	case pcommon.ValueTypeBool:
		return c.isBool && v.Bool() == c.boolVal
	default:
		return v.AsString() == c.str
	}
}

// glob is a compiled span name pattern: '*' matches any run of characters.
type glob struct {
	prefix, suffix string
	middle         []string
}

func compileGlob(p string) *glob {
	parts := strings.Split(p, "*")
	return &glob{prefix: parts[0], suffix: parts[len(parts)-1], middle: parts[1 : len(parts)-1]}
}

func (g *glob) match(s string) bool {
	if len(s) < len(g.prefix)+len(g.suffix) || !strings.HasPrefix(s, g.prefix) || !strings.HasSuffix(s, g.suffix) {
		return false
	}
	s = s[len(g.prefix) : len(s)-len(g.suffix)]
	for _, m := range g.middle {
		i := strings.Index(s, m)
		if i < 0 {
			return false
		}
		s = s[i+len(m):]
	}
	return true
}

var spanKinds = map[string]ptrace.SpanKind{
	"server":   ptrace.SpanKindServer,
	"client":   ptrace.SpanKindClient,
	"producer": ptrace.SpanKindProducer,
	"consumer": ptrace.SpanKindConsumer,
	"internal": ptrace.SpanKindInternal,
}

var spanStatuses = map[string]ptrace.StatusCode{
	"ok":    ptrace.StatusCodeOk,
	"error": ptrace.StatusCodeError,
	"unset": ptrace.StatusCodeUnset,
}

// newIndex compiles a validated set. Its rules count into cs (a fresh set of counters when nil).
func newIndex(set *model.Set, cs *counters) *index {
	if cs == nil {
		cs = newCounters()
	}
	idx := &index{set: set, byService: map[string]*bucket{}}
	infos := map[string]*flowInfo{}
	for _, name := range set.Names() {
		versions := set.Versions(name)
		fi := &flowInfo{name: name, counts: cs.cell(name, "")}
		seen := map[string]bool{}
		add := func(a string) {
			if a != "" && !seen[a] {
				seen[a] = true
				fi.keyAttrs = append(fi.keyAttrs, a)
			}
		}
		for i := len(versions) - 1; i >= 0; i-- {
			add(versions[i].Key)
		}
		// Then checkpoint keys, aliases last: an error note keyed by the instance's own key
		// joins it at once, one keyed by an alias only once the alias row exists.
		for _, aliases := range []bool{false, true} {
			for i := len(versions) - 1; i >= 0; i-- {
				for _, a := range versions[i].KeyAttributes() {
					if versions[i].IsAlias(a) == aliases {
						add(a)
					}
				}
			}
		}
		infos[name] = fi
		idx.flows = append(idx.flows, fi)
	}
	compiled := map[string]bool{}
	for _, f := range set.Flows {
		fi := infos[f.Name]
		for _, c := range f.Checkpoints {
			if c.Children != nil {
				continue // reached by children, not by an item: nothing to match
			}
			keep := keepOf(f)
			id := ruleIdentity(f.Name, c, keep)
			if compiled[id] {
				continue
			}
			compiled[id] = true
			r := compileRule(fi, c, cs)
			r.keep = keep
			idx.add(r)
		}
	}
	return idx
}

// ruleIdentity is equal for the checkpoints of two versions that match the same items the
// same way, and keep the same attributes of them.
func ruleIdentity(flow string, c *model.Checkpoint, keep []keepAttr) string {
	attrs := append([]model.AttrMatch(nil), c.Match.Attributes...)
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	return fmt.Sprintf("%q %q %q %q %q %q %q %v %q %q %q", flow, c.Name, c.Match.Service, c.Match.Span, c.Match.Event,
		c.Match.Kind, c.Match.Status, attrs, c.Key, c.Aliases, keep)
}

func compileRule(fi *flowInfo, c *model.Checkpoint, cs *counters) *rule {
	r := &rule{
		flow:       fi,
		checkpoint: c.Name,
		service:    c.Match.Service,
		event:      c.Match.Event,
		kind:       spanKinds[c.Match.Kind],
		keyAttr:    c.Key,
		aliases:    c.Aliases,
		counts:     cs.cell(fi.name, c.Name),
	}
	if strings.Contains(c.Match.Span, "*") {
		r.spanGlob = compileGlob(c.Match.Span)
	} else {
		r.spanName = c.Match.Span
	}
	r.status, r.anyState = spanStatuses[c.Match.Status], c.Match.Status == ""
	for _, a := range c.Match.Attributes {
		r.attrs = append(r.attrs, compileAttr(a))
	}
	return r
}

func (idx *index) add(r *rule) {
	idx.rules++
	svc := r.service
	var b *bucket
	if svc == "" {
		if idx.anyService == nil {
			idx.anyService = &bucket{}
		}
		b = idx.anyService
	} else {
		b = idx.byService[svc]
		if b == nil {
			b = &bucket{}
			idx.byService[svc] = b
		}
	}
	switch {
	case r.event != "":
		b.eventByName.add(r.event, r)
	case r.spanGlob == nil && r.spanName != "":
		b.spanByName.add(r.spanName, r)
	default:
		b.spanOther = append(b.spanOther, r)
	}
}
