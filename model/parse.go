package model

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// parser turns one YAML document into a Flow, collecting every problem.
type parser struct {
	path  string
	probs Problems
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.probs = append(p.probs, Problem{Pos{p.path, n.Line, n.Column}, fmt.Sprintf(format, args...)})
}

// field is a key/value pair of a mapping.
type field struct {
	key, val *yaml.Node
}

// mapping returns the fields of a mapping node, reporting unknown and duplicate keys.
func (p *parser) mapping(n *yaml.Node, what string, known ...string) map[string]field {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if !contains(known, k.Value) {
			p.errorf(k, "unknown field %q in %s", k.Value, what)
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, "field %q appears twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(fd field, name string) string {
	if fd.val.Kind != yaml.ScalarNode || fd.val.Tag == "!!null" {
		p.errorf(fd.val, "'%s' must be a string", name)
		return ""
	}
	return fd.val.Value
}

func (p *parser) boolean(fd field, name string) bool {
	var b bool
	if fd.val.Kind != yaml.ScalarNode || fd.val.Decode(&b) != nil {
		p.errorf(fd.val, "'%s' must be true or false", name)
	}
	return b
}

func (p *parser) integer(fd field, name string) int {
	var i int
	if fd.val.Kind != yaml.ScalarNode || fd.val.Tag != "!!int" || fd.val.Decode(&i) != nil {
		p.errorf(fd.val, "'%s' must be an integer", name)
		return 0
	}
	return i
}

func (p *parser) strings(fd field, name string) []string {
	if fd.val.Kind != yaml.SequenceNode {
		p.errorf(fd.val, "'%s' must be a list of strings", name)
		return nil
	}
	out := make([]string, 0, len(fd.val.Content))
	for _, it := range fd.val.Content {
		it = resolveAlias(it)
		if it.Kind != yaml.ScalarNode || it.Value == "" {
			p.errorf(it, "'%s' must be a list of non-empty strings", name)
			continue
		}
		out = append(out, it.Value)
	}
	return out
}

// duration parses Go durations plus a `d` (24h) unit; it must be positive, or not negative
// when allowZero.
func (p *parser) duration(fd field, name string, allowZero bool) time.Duration {
	if fd.val.Kind != yaml.ScalarNode {
		p.errorf(fd.val, "'%s' must be a duration such as 15m, 48h or 2d", name)
		return 0
	}
	d, err := ParseDuration(fd.val.Value)
	if err != nil {
		p.errorf(fd.val, "'%s': %v", name, err)
		return 0
	}
	if allowZero && d < 0 {
		p.errorf(fd.val, "'%s' must not be negative", name)
		return 0
	}
	if !allowZero && d <= 0 {
		p.errorf(fd.val, "'%s' must be greater than zero", name)
		return 0
	}
	return d
}

var dayRE = regexp.MustCompile(`(\d+(?:\.\d+)?)d`)

// ParseDuration parses a Go duration that may also use `d` for days (24h): "2d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days float64
	rest := dayRE.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := strconv.ParseFloat(strings.TrimSuffix(m, "d"), 64)
		days += v
		return ""
	})
	var d time.Duration
	if rest != "" && rest != "-" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("invalid duration %q (use Go durations such as 90s, 15m, 48h, or days: 2d)", s)
		}
	} else if days == 0 {
		return 0, fmt.Errorf("invalid duration %q (use Go durations such as 90s, 15m, 48h, or days: 2d)", s)
	}
	d += time.Duration(days * float64(24*time.Hour))
	if strings.HasPrefix(s, "-") && d > 0 {
		d = -d
	}
	return d, nil
}

func (p *parser) flow(n *yaml.Node) *Flow {
	f := &Flow{Source: Pos{p.path, n.Line, n.Column}, aliases: map[string]bool{}}
	fields := p.mapping(n, "flow", "apiVersion", "kind", "name", "version", "key", "active_from", "parent", "checkpoints")
	if fields == nil {
		return f
	}
	required := func(name string) (field, bool) {
		fd, ok := fields[name]
		if !ok {
			p.errorf(n, "missing required field '%s'", name)
		}
		return fd, ok
	}
	if fd, ok := required("apiVersion"); ok {
		if v := p.str(fd, "apiVersion"); v != "" && v != APIVersion {
			p.errorf(fd.val, "unsupported apiVersion %q (want %q)", v, APIVersion)
		}
	}
	if fd, ok := required("kind"); ok {
		if v := p.str(fd, "kind"); v != "" && v != KindFlow {
			p.errorf(fd.val, "unsupported kind %q (want %q)", v, KindFlow)
		}
	}
	if fd, ok := required("name"); ok {
		f.Name = p.str(fd, "name")
		if f.Name != "" && !nameRE.MatchString(f.Name) {
			p.errorf(fd.val, "'name' %q may hold only a-z, 0-9, '_' and '-'", f.Name)
		}
	}
	if fd, ok := required("version"); ok {
		f.Version = p.integer(fd, "version")
		if fd.val.Tag == "!!int" && f.Version < 1 {
			p.errorf(fd.val, "'version' must be 1 or more")
		}
	}
	if fd, ok := required("key"); ok {
		f.Key = p.str(fd, "key")
		if f.Key == "" && fd.val.Kind == yaml.ScalarNode && fd.val.Tag != "!!null" {
			p.errorf(fd.val, "'key' must name the attribute that holds the business key")
		}
	}
	if fd, ok := fields["active_from"]; ok {
		s := p.str(fd, "active_from")
		if s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				p.errorf(fd.val, "'active_from' must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			}
			f.ActiveFrom = t
		}
	}
	if fd, ok := fields["parent"]; ok {
		f.Parent = p.parent(fd)
	}
	fd, ok := required("checkpoints")
	if !ok {
		return f
	}
	if fd.val.Kind != yaml.SequenceNode || len(fd.val.Content) == 0 {
		p.errorf(fd.val, "'checkpoints' must be a non-empty list")
		return f
	}
	if n := len(fd.val.Content); n > MaxCheckpoints {
		p.errorf(fd.val.Content[MaxCheckpoints], "flow %q has %d checkpoints, more than the limit of %d a flow: this is the first one past it",
			f.Name, n, MaxCheckpoints)
		return f
	}
	f.byName = make(map[string]*Checkpoint, len(fd.val.Content))
	nodes := make([]*cpNodes, 0, len(fd.val.Content)) // nodes[c.Index] are c's
	for _, cn := range fd.val.Content {
		c, cnodes := p.checkpoint(resolveAlias(cn), f)
		if c == nil {
			continue
		}
		if prev := f.byName[c.Name]; prev != nil {
			p.errorf(cnodes.name, "duplicate checkpoint name %q", c.Name)
			continue
		}
		c.Index = len(f.Checkpoints)
		f.Checkpoints = append(f.Checkpoints, c)
		f.byName[c.Name] = c
		nodes = append(nodes, cnodes)
	}
	p.link(f, fd.key, nodes)
	return f
}

// cpNodes keeps the YAML nodes of a checkpoint for graph errors.
type cpNodes struct {
	name, after, terminal *yaml.Node
	afterItems            []*yaml.Node
	// compensates is the value of `compensates` (nil when absent); children the `children`
	// mapping's `flow` value (or the mapping when it has none).
	compensates, children *yaml.Node
	compName              string
}

// checkDeadline reports the settings of c that depend on its deadline and could never take
// effect: `within` on a start checkpoint (nothing comes before it to count from) and
// `on_stuck` without `within` (a checkpoint without a deadline is never overdue).
func (p *parser) checkDeadline(c *Checkpoint, fields map[string]field) {
	within, hasWithin := fields["within"]
	if hasWithin && c.Start {
		p.errorf(within.key, "checkpoint %q: 'within' cannot be set on a start checkpoint: its deadline would count from nothing", c.Name)
	}
	if onStuck, ok := fields["on_stuck"]; ok && !hasWithin {
		p.errorf(onStuck.key, "checkpoint %q: 'on_stuck' needs 'within': without a deadline the checkpoint is never overdue, so its actions could never run", c.Name)
	}
}

func (p *parser) checkpoint(n *yaml.Node, f *Flow) (*Checkpoint, *cpNodes) {
	fields := p.mapping(n, "checkpoint", "name", "start", "after", "join", "within", "terminal", "key", "aliases", "match",
		"children", "compensates", "on_stuck")
	if fields == nil {
		return nil, nil
	}
	c := &Checkpoint{Join: JoinAll}
	nodes := &cpNodes{name: n}
	fd, ok := fields["name"]
	if !ok {
		p.errorf(n, "checkpoint: missing required field 'name'")
		return nil, nil
	}
	nodes.name = fd.val
	c.Name = p.str(fd, "name")
	if c.Name == "" && fd.val.Kind == yaml.ScalarNode && fd.val.Tag != "!!null" {
		p.errorf(fd.val, "checkpoint 'name' must not be empty")
	}
	if fd, ok := fields["start"]; ok {
		c.Start = p.boolean(fd, "start")
	}
	if fd, ok := fields["after"]; ok {
		nodes.after = fd.key
		c.After = p.strings(fd, "after")
		if fd.val.Kind == yaml.SequenceNode {
			nodes.afterItems = fd.val.Content
		}
	}
	if fd, ok := fields["join"]; ok {
		switch j := Join(p.str(fd, "join")); j {
		case JoinAll, JoinAny:
			c.Join = j
		default:
			p.errorf(fd.val, "'join' must be all or any, not %q", j)
		}
	}
	if fd, ok := fields["within"]; ok {
		c.Within = p.duration(fd, "within", false)
	}
	if fd, ok := fields["terminal"]; ok {
		nodes.terminal = fd.key
		switch t := Terminal(p.str(fd, "terminal")); t {
		case TerminalSuccess, TerminalFailure:
			c.Terminal = t
		default:
			p.errorf(fd.val, "'terminal' must be success or failure, not %q", t)
		}
	}
	c.Key = f.Key
	if fd, ok := fields["key"]; ok {
		c.Key = p.str(fd, "key")
		if c.Key == "" && fd.val.Kind == yaml.ScalarNode && fd.val.Tag != "!!null" {
			p.errorf(fd.val, "checkpoint 'key' must name an attribute (or be left out to use the flow's key)")
		}
	}
	if fd, ok := fields["aliases"]; ok {
		c.Aliases = p.strings(fd, "aliases")
		for _, a := range c.Aliases {
			f.aliases[a] = true
		}
	}
	if fd, ok := fields["children"]; ok {
		c.Children = p.children(fd)
		nodes.children = fd.val
		if fl, ok := mappingValue(fd.val, "flow"); ok {
			nodes.children = fl
		}
		c.Children.flowAt = Pos{p.path, nodes.children.Line, nodes.children.Column}
	}
	if fd, ok := fields["compensates"]; ok {
		nodes.compensates = fd.val
		nodes.compName = p.str(fd, "compensates") // resolved in link
	}
	fd, hasMatch := fields["match"]
	switch {
	case hasMatch && c.Children != nil:
		p.errorf(fields["children"].key, "checkpoint %q: 'children' and 'match' cannot both be set: a children checkpoint is reached by the instance's children, not by an item", c.Name)
	case hasMatch:
		c.Match = p.match(fd)
	case c.Children == nil:
		p.errorf(n, "checkpoint %q: missing required field 'match'", c.Name)
	}
	p.checkFamily(c, fields)
	if fd, ok := fields["on_stuck"]; ok {
		if fd.val.Kind != yaml.SequenceNode {
			p.errorf(fd.val, "'on_stuck' must be a list of actions")
		} else {
			for _, an := range fd.val.Content {
				c.OnStuck = append(c.OnStuck, p.action(resolveAlias(an)))
			}
		}
	}
	p.checkDeadline(c, fields)
	return c, nodes
}

func (p *parser) match(fd field) Match {
	var m Match
	fields := p.mapping(fd.val, "match", "service", "span", "event", "kind", "status", "attributes")
	if fields == nil {
		return m
	}
	if len(fields) == 0 {
		p.errorf(fd.val, "'match' must set at least one of service, span, event")
	}
	get := func(name string) string {
		if f, ok := fields[name]; ok {
			return p.str(f, name)
		}
		return ""
	}
	m.Service, m.Span, m.Event, m.Kind, m.Status = get("service"), get("span"), get("event"), get("kind"), get("status")
	if m.Span != "" && m.Event != "" {
		p.errorf(fields["event"].key, "'span' and 'event' cannot both be set: a checkpoint is a span or an event")
	}
	if m.Span == "" && m.Event == "" && m.Service == "" {
		p.errorf(fd.val, "'match' must set at least one of service, span, event")
	}
	if m.Kind != "" && !contains(SpanKinds, m.Kind) {
		p.errorf(fields["kind"].val, "'kind' must be one of %s, not %q", strings.Join(SpanKinds, ", "), m.Kind)
	}
	if m.Status != "" && !contains(SpanStatuses, m.Status) {
		p.errorf(fields["status"].val, "'status' must be one of %s, not %q", strings.Join(SpanStatuses, ", "), m.Status)
	}
	if af, ok := fields["attributes"]; ok {
		if af.val.Kind != yaml.MappingNode {
			p.errorf(af.val, "'attributes' must be a mapping of attribute to value")
		} else {
			seen := map[string]bool{}
			for i := 0; i+1 < len(af.val.Content); i += 2 {
				k, v := af.val.Content[i], resolveAlias(af.val.Content[i+1])
				if seen[k.Value] {
					p.errorf(k, "attribute %q appears twice", k.Value)
					continue
				}
				seen[k.Value] = true
				if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
					p.errorf(v, "attribute %q: the value must be a scalar (\"*\" means present)", k.Value)
					continue
				}
				m.Attributes = append(m.Attributes, AttrMatch{Key: k.Value, Value: v.Value, Present: v.Value == "*"})
			}
		}
	}
	return m
}

func (p *parser) action(n *yaml.Node) Action {
	a := Action{MaxAttempts: DefaultMaxAttempts}
	fields := p.mapping(n, "on_stuck action", "sink", "subject", "type", "after", "max_attempts", "backoff", "payload")
	if fields == nil {
		return a
	}
	if fd, ok := fields["sink"]; ok {
		a.Sink = p.str(fd, "sink")
		a.sinkAt = Pos{p.path, fd.val.Line, fd.val.Column}
		if a.Sink == "" && fd.val.Kind == yaml.ScalarNode && fd.val.Tag != "!!null" {
			p.errorf(fd.val, "'sink' must name a sink of the detector's configuration")
		}
	} else {
		p.errorf(n, "on_stuck action: missing required field 'sink' (the name of a sink of the detector's configuration)")
	}
	if fd, ok := fields["subject"]; ok {
		a.Subject = p.str(fd, "subject")
	}
	if fd, ok := fields["type"]; ok {
		a.Type = p.str(fd, "type")
	}
	if fd, ok := fields["after"]; ok {
		a.After = p.duration(fd, "after", true)
	}
	if fd, ok := fields["backoff"]; ok {
		a.Backoff = p.duration(fd, "backoff", false)
	}
	if fd, ok := fields["max_attempts"]; ok {
		a.MaxAttempts = p.integer(fd, "max_attempts")
		if fd.val.Tag == "!!int" && a.MaxAttempts < 1 {
			p.errorf(fd.val, "'max_attempts' must be 1 or more")
		}
	}
	if fd, ok := fields["payload"]; ok {
		if fd.val.Kind != yaml.MappingNode {
			p.errorf(fd.val, "'payload' must be a mapping")
		} else if err := fd.val.Decode(&a.Payload); err != nil {
			p.errorf(fd.val, "'payload': %v", err)
		}
	}
	if a.Type == "" {
		a.Type = DefaultCommandType
	}
	if a.Backoff == 0 {
		a.Backoff = DefaultActionBackoff
	}
	return a
}
