package flowprocessor

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
	spanByName map[string][]*rule
	// spanOther holds span rules with a name pattern ('*') or no name at all.
	spanOther []*rule
	// eventByName holds event rules, matched by span events and log records.
	eventByName map[string][]*rule
}

func (b *bucket) hasSpanRules() bool {
	return b != nil && (len(b.spanByName) > 0 || len(b.spanOther) > 0)
}
func (b *bucket) hasEventRules() bool { return b != nil && len(b.eventByName) > 0 }

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
	// opts are the metric attributes {flow, checkpoint}, built once.
	opts []metric.AddOption
}

// flowInfo is what the index knows of a flow name across its versions.
type flowInfo struct {
	name string
	// keyAttrs are every attribute that can carry the key: each version's flow key first
	// (newest version first), then checkpoint keys and aliases, without duplicates.
	keyAttrs []string
	opts     []metric.AddOption
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

// newIndex compiles a validated set.
func newIndex(set *model.Set) *index {
	idx := &index{set: set, byService: map[string]*bucket{}}
	infos := map[string]*flowInfo{}
	for _, name := range set.Names() {
		versions := set.Versions(name)
		fi := &flowInfo{name: name, opts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("flow", name)))}}
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
		for i := len(versions) - 1; i >= 0; i-- {
			for _, a := range versions[i].KeyAttributes() {
				add(a)
			}
		}
		infos[name] = fi
		idx.flows = append(idx.flows, fi)
	}
	compiled := map[string]bool{}
	for _, f := range set.Flows {
		fi := infos[f.Name]
		for _, c := range f.Checkpoints {
			id := ruleIdentity(f.Name, c)
			if compiled[id] {
				continue
			}
			compiled[id] = true
			idx.add(compileRule(fi, c))
		}
	}
	return idx
}

// ruleIdentity is equal for the checkpoints of two versions that match the same items the
// same way.
func ruleIdentity(flow string, c *model.Checkpoint) string {
	attrs := append([]model.AttrMatch(nil), c.Match.Attributes...)
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Key < attrs[j].Key })
	return fmt.Sprintf("%q %q %q %q %q %q %q %v %q %q", flow, c.Name, c.Match.Service, c.Match.Span, c.Match.Event,
		c.Match.Kind, c.Match.Status, attrs, c.Key, c.Aliases)
}

func compileRule(fi *flowInfo, c *model.Checkpoint) *rule {
	r := &rule{
		flow:       fi,
		checkpoint: c.Name,
		service:    c.Match.Service,
		event:      c.Match.Event,
		kind:       spanKinds[c.Match.Kind],
		keyAttr:    c.Key,
		aliases:    c.Aliases,
		opts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("flow", fi.name), attribute.String("checkpoint", c.Name)))},
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
		if b.eventByName == nil {
			b.eventByName = map[string][]*rule{}
		}
		b.eventByName[r.event] = append(b.eventByName[r.event], r)
	case r.spanGlob == nil && r.spanName != "":
		if b.spanByName == nil {
			b.spanByName = map[string][]*rule{}
		}
		b.spanByName[r.spanName] = append(b.spanByName[r.spanName], r)
	default:
		b.spanOther = append(b.spanOther, r)
	}
}
