// Package flowattr owns the annotation contract between the flow processor and the flow
// exporter: the attributes the processor writes on a matched span, span event or log record,
// and how they are read back.
//
// One match is written as plain strings, so that any trace backend shows it as is:
//
//	flow.name       = "order-fulfilment"
//	flow.checkpoint = "paid"
//	flow.key        = "o-42"
//	flow.key_attr   = "payment.order_id"
//	flow.tenant     = "acme"
//	flow.aliases    = ["payment.id=p-7"]          (a string slice; absent when there are none)
//	flow.keep       = ["flow.parent_key=o-42"]    (a string slice; absent when there are none)
//
// flow.keep are the attributes the stored row must keep for the flow's judgement, under the
// name it stores them by: a sub-flow's parent key (the value of its parent.key attribute, as
// flow.parent_key), the count of children a parent expects (its `expect` attribute).
//
// An item that matches several checkpoints (of different flows) gets string slices in parallel
// instead: element i of flow.name, flow.checkpoint, flow.key, flow.key_attr and flow.tenant
// belong to match i. flow.aliases and flow.keep then stay flat string slices whose elements
// carry the index of their match as a decimal prefix: "1:payment.id=p-7" is an alias of match 1.
//
// In an alias or keep element the attribute name ends at the first '='; a '%' or '=' inside the
// attribute name is written as "%25" or "%3D" so that every name round-trips. Values are
// written as they are.
//
// A Match with an empty Checkpoint is an error note: an error-status item carrying one of the
// flow's key attributes that matched no checkpoint of that flow.
//
// The package only encodes and decodes, and says where an item's attributes are looked up
// (Chain); it does no matching and keeps no state.
package flowattr

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The attribute names of the contract.
const (
	AttrName       = "flow.name"
	AttrCheckpoint = "flow.checkpoint"
	AttrKey        = "flow.key"
	AttrKeyAttr    = "flow.key_attr"
	AttrTenant     = "flow.tenant"
	AttrAliases    = "flow.aliases"
	AttrKeep       = "flow.keep"
)

// Match is one checkpoint (or error note) an item was matched to.
type Match struct {
	// Flow is the flow name. The version is decided later, per instance.
	Flow string
	// Checkpoint is the checkpoint name; empty for an error note.
	Checkpoint string
	// Key is the business key read from the item.
	Key string
	// KeyAttr is the attribute the key was read from.
	KeyAttr string
	// Tenant is the tenant of the item's resource.
	Tenant string
	// Aliases are the checkpoint's alias attributes present on the item.
	Aliases []Alias
	// Keep are the attributes the row keeps for the flow (Attr: the name it is stored by).
	Keep []Alias
}

// IsErrorNote reports whether the match is an error note rather than a checkpoint.
func (m *Match) IsErrorNote() bool { return m.Checkpoint == "" }

// Alias is one alias attribute and its value on the item.
type Alias struct {
	Attr, Value string
}

// Put writes ms on attrs, replacing any annotation already there. With no matches it removes
// the annotation.
func Put(attrs pcommon.Map, ms []Match) {
	switch len(ms) {
	case 0:
		Remove(attrs)
	case 1:
		m := &ms[0]
		attrs.EnsureCapacity(attrs.Len() + len(fieldNames) + 2) // one growth, not one per field
		attrs.PutStr(AttrName, m.Flow)
		attrs.PutStr(AttrCheckpoint, m.Checkpoint)
		attrs.PutStr(AttrKey, m.Key)
		attrs.PutStr(AttrKeyAttr, m.KeyAttr)
		attrs.PutStr(AttrTenant, m.Tenant)
		putPairs(attrs, AttrAliases, ms, func(m *Match) []Alias { return m.Aliases })
		putPairs(attrs, AttrKeep, ms, func(m *Match) []Alias { return m.Keep })
	default:
		for f, name := range fieldNames {
			s := attrs.PutEmptySlice(name)
			s.EnsureCapacity(len(ms))
			for i := range ms {
				s.AppendEmpty().SetStr(ms[i].field(f))
			}
		}
		putPairs(attrs, AttrAliases, ms, func(m *Match) []Alias { return m.Aliases })
		putPairs(attrs, AttrKeep, ms, func(m *Match) []Alias { return m.Keep })
	}
}

// putPairs writes the attr=value pairs of ms (their aliases or their kept attributes) as the
// string slice name, each prefixed by the index of its match when there are several matches;
// without pairs it removes name.
func putPairs(attrs pcommon.Map, name string, ms []Match, pairs func(*Match) []Alias) {
	n := 0
	for i := range ms {
		n += len(pairs(&ms[i]))
	}
	if n == 0 {
		attrs.Remove(name)
		return
	}
	s := attrs.PutEmptySlice(name)
	s.EnsureCapacity(n)
	for i := range ms {
		prefix := ""
		if len(ms) > 1 {
			prefix = strconv.Itoa(i) + ":"
		}
		for _, a := range pairs(&ms[i]) {
			s.AppendEmpty().SetStr(encodeAlias(prefix, a))
		}
	}
}

// fieldNames are the attributes of the string fields, in the order of Match.field.
var fieldNames = [...]string{AttrName, AttrCheckpoint, AttrKey, AttrKeyAttr, AttrTenant}

func (m *Match) field(f int) string {
	switch f {
	case 0:
		return m.Flow
	case 1:
		return m.Checkpoint
	case 2:
		return m.Key
	case 3:
		return m.KeyAttr
	default:
		return m.Tenant
	}
}

// IsAnnotation reports whether k is one of the annotation attributes (other attributes that
// merely start with "flow." are the item's own).
func IsAnnotation(k string) bool {
	switch k {
	case AttrName, AttrCheckpoint, AttrKey, AttrKeyAttr, AttrTenant, AttrAliases, AttrKeep:
		return true
	}
	return false
}

// Remove deletes every annotation attribute from attrs.
func Remove(attrs pcommon.Map) {
	attrs.RemoveIf(func(k string, _ pcommon.Value) bool { return IsAnnotation(k) })
}

// Has reports whether attrs carry an annotation.
func Has(attrs pcommon.Map) bool {
	_, ok := attrs.Get(AttrName)
	return ok
}

// Get reads the annotation of attrs and appends its matches to dst. Items without an
// annotation leave dst unchanged. A malformed annotation (slices of different lengths, an
// alias with a bad index) is read as far as it is consistent: missing fields are empty and
// aliases that name no match are skipped.
//
// Get reads attrs in one pass, and reuses the Aliases slices of dst's elements past its
// length (a caller that keeps dst between items allocates nothing for them).
func Get(attrs pcommon.Map, dst []Match) []Match {
	// A zero pcommon.Value cannot be asked its type: absent fields are empty values.
	var fields [len(fieldNames)]pcommon.Value
	for i := range fields {
		fields[i] = emptyValue
	}
	aliases, keep := emptyValue, emptyValue
	found := false
	for k, v := range attrs.All() {
		switch k {
		case AttrName:
			fields[0], found = v, true
		case AttrCheckpoint:
			fields[1] = v
		case AttrKey:
			fields[2] = v
		case AttrKeyAttr:
			fields[3] = v
		case AttrTenant:
			fields[4] = v
		case AttrAliases:
			aliases = v
		case AttrKeep:
			keep = v
		}
	}
	if !found {
		return dst
	}
	if fields[0].Type() != pcommon.ValueTypeSlice {
		m := grow(&dst)
		m.Flow = fields[0].AsString()
		m.Checkpoint, m.Key, m.KeyAttr, m.Tenant = str(fields[1]), str(fields[2]), str(fields[3]), str(fields[4])
		m.Aliases = getPairs(aliases, m.Aliases)
		m.Keep = getPairs(keep, m.Keep)
		return dst
	}
	names := fields[0].Slice()
	base := len(dst)
	for i := 0; i < names.Len(); i++ {
		m := grow(&dst)
		m.Flow = names.At(i).AsString()
		m.Checkpoint, m.Key, m.KeyAttr, m.Tenant = strAt(fields[1], i), strAt(fields[2], i), strAt(fields[3], i), strAt(fields[4], i)
	}
	getIndexedPairs(aliases, dst[base:], func(m *Match, a Alias) { m.Aliases = append(m.Aliases, a) })
	getIndexedPairs(keep, dst[base:], func(m *Match, a Alias) { m.Keep = append(m.Keep, a) })
	return dst
}

// getPairs appends to dst the attr=value pairs of v, the pairs of an item's only match.
func getPairs(v pcommon.Value, dst []Alias) []Alias {
	if v.Type() != pcommon.ValueTypeSlice {
		return dst
	}
	s := v.Slice()
	for i := 0; i < s.Len(); i++ {
		if a, ok := decodeAlias(s.At(i).Str()); ok {
			dst = append(dst, a)
		}
	}
	return dst
}

// getIndexedPairs gives each pair of v ("i:attr=value") to match i of ms; a pair naming no
// match is skipped.
func getIndexedPairs(v pcommon.Value, ms []Match, add func(*Match, Alias)) {
	if v.Type() != pcommon.ValueTypeSlice {
		return
	}
	s := v.Slice()
	for i := 0; i < s.Len(); i++ {
		e := s.At(i).Str()
		colon := strings.IndexByte(e, ':')
		if colon < 0 {
			continue
		}
		idx, err := strconv.Atoi(e[:colon])
		if err != nil || idx < 0 || idx >= len(ms) {
			continue
		}
		if a, ok := decodeAlias(e[colon+1:]); ok {
			add(&ms[idx], a)
		}
	}
}

// emptyValue stands for an absent field (read only).
var emptyValue = pcommon.NewValueEmpty()

// grow appends an empty Match to *dst, keeping the Aliases memory of the element it reuses.
func grow(dst *[]Match) *Match {
	n := len(*dst)
	if n < cap(*dst) {
		*dst = (*dst)[:n+1]
		m := &(*dst)[n]
		*m = Match{Aliases: m.Aliases[:0], Keep: m.Keep[:0]}
		return m
	}
	*dst = append(*dst, Match{})
	return &(*dst)[n]
}

// str is the string form of an annotation field ("" when absent).
func str(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeEmpty {
		return ""
	}
	return v.AsString()
}

// strAt is element i of a slice field ("" when absent, not a slice or too short).
func strAt(v pcommon.Value, i int) string {
	if v.Type() != pcommon.ValueTypeSlice || i >= v.Slice().Len() {
		return ""
	}
	return v.Slice().At(i).AsString()
}

var attrEscaper = strings.NewReplacer("%", "%25", "=", "%3D")

func encodeAlias(prefix string, a Alias) string {
	attr := a.Attr
	if strings.ContainsAny(attr, "%=") {
		attr = attrEscaper.Replace(attr)
	}
	return prefix + attr + "=" + a.Value
}

func decodeAlias(s string) (Alias, bool) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 {
		return Alias{}, false
	}
	attr := s[:eq]
	if strings.IndexByte(attr, '%') >= 0 {
		attr = unescapeAttr(attr)
	}
	return Alias{Attr: attr, Value: s[eq+1:]}, true
}

func unescapeAttr(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "%25"):
			b.WriteByte('%')
			i += 2
		case strings.HasPrefix(s[i:], "%3D"):
			b.WriteByte('=')
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Chain looks an attribute up where flows find an item's attributes (DESIGN.md): on the
// item, then its span (for a span event), then its scope, then its resource. The flow
// processor matches through it; the flow exporter reads the attributes rows keep through it.
type Chain struct {
	Item, Parent, Scope, Resource pcommon.Map
	// HasParent: the item is a span event and Parent its span's attributes.
	HasParent bool
}

// Get returns the first value of k along the chain.
func (c *Chain) Get(k string) (pcommon.Value, bool) {
	if v, ok := c.Item.Get(k); ok {
		return v, true
	}
	if c.HasParent {
		if v, ok := c.Parent.Get(k); ok {
			return v, true
		}
	}
	if v, ok := c.Scope.Get(k); ok {
		return v, true
	}
	return c.Resource.Get(k)
}
