package model

import (
	"fmt"
	"slices"
	"strings"
)

// CheckSinks reports every on_stuck action of the set whose `sink` is not one of configured
// (the sinks of the detector's configuration), at its `sink` value, in file order. The flow
// format alone cannot know the sinks: what knows them (`flowwatch detector` and `run` at start
// and on every reload, `flowwatch validate --config`) calls this after Load.
func (s *Set) CheckSinks(configured []string) Problems {
	have := "no sink is configured"
	if len(configured) > 0 {
		sorted := slices.Clone(configured)
		slices.Sort(sorted)
		have = "configured: " + strings.Join(slices.Compact(sorted), ", ")
	}
	var probs Problems
	for _, f := range s.Flows {
		for _, c := range f.Checkpoints {
			for _, a := range c.OnStuck {
				if !slices.Contains(configured, a.Sink) {
					probs = append(probs, Problem{a.sinkAt, fmt.Sprintf("checkpoint %q: 'sink' %q names no sink of the detector's configuration (%s)",
						c.Name, a.Sink, have)})
				}
			}
		}
	}
	return probs.sorted()
}
