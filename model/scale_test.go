package model

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/internal/testctx"
)

// chainYAML is a flow of n checkpoints in one chain: each comes after the one before, within 1m.
func chainYAML(n int) []byte {
	var b strings.Builder
	b.Grow(100 * n)
	b.WriteString(header + "checkpoints:\n  - {name: cp000000, start: true, match: {service: svc, span: cp000000}}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: cp%06d, after: [cp%06d], within: 1m, match: {service: svc, span: cp%06d}}\n", i, i-1, i)
	}
	return []byte(b.String())
}

// TestCheckpointLimit: a flow of MaxCheckpoints loads; one more is rejected at the first
// checkpoint past the limit, naming it.
func TestCheckpointLimit(t *testing.T) {
	flows, probs := Parse("chain.yaml", chainYAML(MaxCheckpoints))
	if len(probs) > 0 || len(flows[0].Checkpoints) != MaxCheckpoints {
		t.Fatalf("a flow at the limit must load: %v", probs)
	}
	if h := flows[0].Horizon(); h != (MaxCheckpoints-1)*time.Minute {
		t.Fatalf("horizon = %s", h)
	}
	_, probs = Parse("chain.yaml", chainYAML(MaxCheckpoints+1))
	want := fmt.Sprintf(`chain.yaml:%d:5: flow "f" has %d checkpoints, more than the limit of %d a flow`, 7+MaxCheckpoints, MaxCheckpoints+1, MaxCheckpoints)
	if len(probs) != 1 || !strings.HasPrefix(probs.Error(), want) {
		t.Fatalf("want one problem %q, got:\n%s", want, probs)
	}
}

// TestFileSizeLimit: a file past MaxFileSize (here the 200,000-checkpoint chain that once
// took a process down) is rejected quickly, where the limit is crossed, without being parsed.
func TestFileSizeLimit(t *testing.T) {
	data := chainYAML(200_000)
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Load(path)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	line := strings.Count(string(data[:MaxFileSize]), "\n") + 1
	col := MaxFileSize - strings.LastIndexByte(string(data[:MaxFileSize]), '\n')
	want := fmt.Sprintf("%s:%d:%d: flow file is larger than the limit of %d bytes (1 MiB)", path, line, col, MaxFileSize)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("want %q, got %v", want, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*MaxFileSize {
		t.Errorf("rejecting a %d MB file allocated %d MB", len(data)>>20, alloc>>20)
	}
	if took > 2*time.Second {
		t.Errorf("rejecting took %s", took)
	}
	// Parse given the bytes says the same without reading them.
	if _, probs := Parse(path, data); len(probs) != 1 || !strings.HasPrefix(probs.Error(), want) {
		t.Fatalf("Parse: want %q, got %v", want, probs)
	}
}

// TestTooManyCheckpointsFailsFast: a file within the size limit that holds one flow of ten
// times the checkpoint limit is rejected before any checkpoint is compiled.
func TestTooManyCheckpointsFailsFast(t *testing.T) {
	n := 10 * MaxCheckpoints
	data := chainYAML(n)
	if len(data) > MaxFileSize {
		t.Fatalf("the test file is %d bytes: past the size limit", len(data))
	}
	start := time.Now()
	_, probs := Parse("wide.yaml", data)
	if len(probs) != 1 || !strings.Contains(probs[0].Msg, "more than the limit of 1000 a flow") {
		t.Fatalf("got %v", probs)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}

// graphFlow links a flow built in code (no YAML, no limit) and returns its problems.
func graphFlow(f *Flow) Problems {
	p := &parser{path: "graph"}
	f.byName = map[string]*Checkpoint{}
	nodes := make([]*cpNodes, len(f.Checkpoints))
	for i, c := range f.Checkpoints {
		c.Index = i
		f.byName[c.Name] = c
		nodes[i] = &cpNodes{name: &yaml.Node{Line: i + 1, Column: 1}}
	}
	p.link(f, &yaml.Node{}, nodes)
	return p.probs
}

func chainFlow(n int, cycle bool) *Flow {
	f := &Flow{Name: "chain"}
	for i := range n {
		c := &Checkpoint{Name: fmt.Sprint("c", i), Start: i == 0, Within: time.Minute, Join: JoinAll}
		if i > 0 {
			c.After = []string{fmt.Sprint("c", i-1)}
		}
		f.Checkpoints = append(f.Checkpoints, c)
	}
	if cycle {
		f.Checkpoints[0].After = []string{fmt.Sprint("c", n-1)}
	}
	return f
}

// TestGraphIsLinear: linking, cycle finding, reachability, Horizon and Judge stay linear on
// a chain 200 times the checkpoint limit (which took 24 GB before), and recurse nowhere.
func TestGraphIsLinear(t *testing.T) {
	const n = 200_000
	start := time.Now()
	f := chainFlow(n, false)
	if probs := graphFlow(f); len(probs) > 0 {
		t.Fatal(probs[:1])
	}
	if h := f.Horizon(); h != n*time.Minute {
		t.Fatalf("horizon = %s", h)
	}
	first := make([]time.Time, n)
	for i := range n / 2 {
		first[i] = t0.Add(time.Duration(i) * time.Second)
	}
	v := f.Judge(Progress{First: first}, t0.Add(365*24*time.Hour))
	if v.Status != StatusStuck || len(v.Expected) != 1 || v.Expected[0].Checkpoint != fmt.Sprint("c", n/2) {
		t.Fatalf("verdict = %+v", v)
	}
	// A cycle through the whole chain is found and reported on its every edge.
	probs := graphFlow(chainFlow(n, true))
	want := fmt.Sprintf("cycle in 'after': c0 -> c1 -> c2 -> c3 -> ... (%d more) -> c%d -> c%d -> c%d -> c0", n+1-8, n-3, n-2, n-1)
	if len(probs) != n || probs[0].Msg != want {
		t.Fatalf("%d problems, first %.200s", len(probs), probs[0].Msg)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s", took)
	}
}

// TestPassedIsAncestryOfReached: Judge's "passed by a later checkpoint" is exactly "an
// ancestor of a reached checkpoint", on random flows with joins, branches and several starts.
func TestPassedIsAncestryOfReached(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		n := 2 + rng.IntN(40)
		f := &Flow{Name: "random"}
		for i := range n {
			c := &Checkpoint{Name: fmt.Sprint("c", i), Start: i == 0 || rng.IntN(8) == 0, Join: JoinAll}
			if !c.Start {
				for range 1 + rng.IntN(3) {
					c.After = append(c.After, fmt.Sprint("c", rng.IntN(i)))
				}
			}
			f.Checkpoints = append(f.Checkpoints, c)
		}
		graphFlow(f) // duplicate `after` entries are allowed here: they must not matter
		if f.topo == nil {
			t.Fatalf("round %d: no order", round)
		}
		first := make([]time.Time, n)
		for i := range first {
			if rng.IntN(3) == 0 {
				first[i] = t0
			}
		}
		got := make([]bool, n)
		f.markPassed(first, got)
		for i, c := range f.Checkpoints {
			want := false
			for j, d := range f.Checkpoints {
				if !first[j].IsZero() && j != i && isAncestor(c, d) {
					want = true
				}
			}
			if got[i] != want {
				t.Fatalf("round %d: passed[%s] = %v, want %v", round, c.Name, got[i], want)
			}
		}
	}
}

// isAncestor reports whether a comes before d along `after` (naively, for the test).
func isAncestor(a, d *Checkpoint) bool {
	for _, p := range d.Preds {
		if p == a || isAncestor(a, p) {
			return true
		}
	}
	return false
}

// TestLoadContextStops: a load whose context ends stops between files (and documents), and
// returns the context's error, not a partial set.
func TestLoadContextStops(t *testing.T) {
	dir := t.TempDir()
	doc := header + "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n"
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.yaml", i)), []byte(strings.Replace(doc, "version: 1", fmt.Sprintf("version: %d", i+1), 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if set, err := LoadContext(context.Background(), dir); err != nil || len(set.Flows) != 5 {
		t.Fatalf("uninterrupted: %v", err)
	}
	ctx := &testctx.CancelAfter{Context: context.Background(), N: 4} // two files in
	set, err := LoadContext(ctx, dir)
	if set != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted load: set %v, err %v", set, err)
	}
	if ctx.N > 0 {
		t.Fatalf("the load did not get as far as the cancellation")
	}
}

func BenchmarkLoadChain(b *testing.B) {
	for _, n := range []int{100, MaxCheckpoints} {
		data := chainYAML(n)
		b.Run(fmt.Sprintf("checkpoints=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				flows, probs := Parse("chain.yaml", data)
				if len(probs) > 0 || len(flows) != 1 {
					b.Fatal(probs)
				}
			}
		})
	}
}

// BenchmarkJudgeChain judges an instance halfway through a chain at the checkpoint limit.
func BenchmarkJudgeChain(b *testing.B) {
	flows, probs := Parse("chain.yaml", chainYAML(MaxCheckpoints))
	if len(probs) > 0 {
		b.Fatal(probs)
	}
	f := flows[0]
	first := make([]time.Time, len(f.Checkpoints))
	for i := range first[:len(first)/2] {
		first[i] = t0.Add(time.Duration(i) * time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := f.Judge(Progress{First: first}, t0.Add(time.Hour)); v.Status != StatusStuck {
			b.Fatal(v.Status)
		}
	}
}
