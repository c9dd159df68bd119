package model

import (
	"sort"
	"time"
)

// Set is a validated collection of flows, several versions per name allowed.
// It is immutable once built and safe for concurrent use.
type Set struct {
	// Flows in a stable order: by name, then version.
	Flows    []*Flow
	families map[string][]*Flow // versions of a name, ascending
}

// NewSet builds a Set from flows that were validated individually. It does not check that
// (name, version) pairs are unique; Load does.
func NewSet(flows []*Flow) *Set {
	s := &Set{families: map[string][]*Flow{}}
	s.Flows = append(s.Flows, flows...)
	sort.SliceStable(s.Flows, func(i, j int) bool {
		if s.Flows[i].Name != s.Flows[j].Name {
			return s.Flows[i].Name < s.Flows[j].Name
		}
		return s.Flows[i].Version < s.Flows[j].Version
	})
	for _, f := range s.Flows {
		s.families[f.Name] = append(s.families[f.Name], f)
	}
	return s
}

// Names returns the flow names, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.families))
	for n := range s.families {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Versions returns every version of the named flow, ascending; nil if unknown.
func (s *Set) Versions(name string) []*Flow { return s.families[name] }

// Version returns one version of a flow, or nil.
func (s *Set) Version(name string, version int) *Flow {
	for _, f := range s.families[name] {
		if f.Version == version {
			return f
		}
	}
	return nil
}

// Latest returns the highest version of the named flow, or nil.
func (s *Set) Latest(name string) *Flow {
	v := s.families[name]
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1]
}

// At returns the version of the named flow that was active at t: the highest version whose
// active_from is not after t. When no version was active yet (every active_from is after t),
// the earliest-activating version is used, so an instance is never left without a definition.
// Nil if the flow is unknown.
func (s *Set) At(name string, t time.Time) *Flow {
	return pinVersion(s.families[name], t)
}

func pinVersion(versions []*Flow, t time.Time) *Flow {
	var best, earliest *Flow
	for _, f := range versions {
		if !f.ActiveFrom.After(t) {
			if best == nil || f.Version > best.Version {
				best = f
			}
		}
		if earliest == nil || f.ActiveFrom.Before(earliest.ActiveFrom) {
			earliest = f
		}
	}
	if best != nil {
		return best
	}
	return earliest
}

// Activated returns the set with every version that has no active_from made active from when
// it was first loaded (loaded says when; a version it does not know keeps its active_from).
// A version without active_from is never active "since forever": loading v2 must not re-pin
// the instances v1 started. The flows are shallow copies; s is not changed.
func (s *Set) Activated(loaded func(name string, version int) (time.Time, bool)) *Set {
	flows := make([]*Flow, len(s.Flows))
	for i, f := range s.Flows {
		flows[i] = f
		if !f.ActiveFrom.IsZero() {
			continue
		}
		if t, ok := loaded(f.Name, f.Version); ok {
			c := *f
			c.ActiveFrom = t
			flows[i] = &c
		}
	}
	return NewSet(flows)
}

// Parent returns the parent link of a sub-flow (as its latest version declares it), or nil
// for a flow that is nobody's child. The detector shards a child's instances by the parent's
// key it names.
func (s *Set) Parent(flow string) *ParentLink {
	if f := s.Latest(flow); f != nil {
		return f.Parent
	}
	return nil
}
