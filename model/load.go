package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits of what a flow file may hold. The same loader runs in the collector (re-read on
// every reload), in the detector and in `flowwatch run`, so a file must never be able to take
// a process down: what it costs to load is bounded by these, and loading is linear in them.
const (
	// MaxCheckpoints bounds the checkpoints of one flow. Business flows have tens of steps;
	// the detector keeps 8 bytes per checkpoint of every open instance (8 KB an instance at
	// this limit, 8 GB for a million open instances), and every checkpoint is a rule of the
	// collector's index.
	MaxCheckpoints = 1000
	// MaxFileSize bounds one flow file, in bytes. A flow at MaxCheckpoints with rich matches
	// and actions (about 500 bytes a checkpoint) takes half of it; more flows go in more files.
	// Parsing holds about 35 times the file's size while it runs (35 MB, a quarter of a second).
	MaxFileSize = 1 << 20
)

// Problem is one thing wrong in a flow file, at a place.
type Problem struct {
	Pos
	Msg string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.Path, p.Line, p.Col, p.Msg)
}

// Problems is every problem found while loading flows, in file order. As an error it prints
// one `path:line:col: message` per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return ps
}

// APIVersion and KindFlow are the only accepted header values.
const (
	APIVersion = "flowwatch/v1"
	KindFlow   = "Flow"
)

// Load reads flow files and folders (every *.yaml and *.yml below a folder, in lexical order)
// and returns the validated set. On any problem it returns a nil Set and a Problems error
// listing every problem of every file at once.
func Load(paths ...string) (*Set, error) {
	return LoadContext(context.Background(), paths...)
}

// LoadContext is Load that stops when ctx ends: between files and between the documents of a
// file. It then returns ctx's error (wrapped), never a partial set.
func LoadContext(ctx context.Context, paths ...string) (*Set, error) {
	files, probs := FlowFiles(paths...)
	var flows []*Flow
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load flows: %w", context.Cause(ctx))
		}
		data, prob := readFlowFile(path)
		if prob != nil {
			probs = append(probs, *prob)
			continue
		}
		fl, ps, err := parse(ctx, path, data)
		if err != nil {
			return nil, fmt.Errorf("load flows: %w", err)
		}
		flows = append(flows, fl...)
		probs = append(probs, ps...)
	}
	probs = append(probs, checkUnique(flows)...)
	if len(probs) == 0 {
		// Links between flows are checked once every flow is valid on its own: a flow that
		// did not load would only show again as a link to an unknown flow.
		probs = checkFamilies(flows)
	}
	if len(probs) > 0 {
		return nil, probs.sorted()
	}
	return NewSet(flows), nil
}

// readFlowFile reads a flow file, at most one byte past MaxFileSize: Parse says where the
// limit was crossed.
func readFlowFile(path string) ([]byte, *Problem) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Problem{Pos{path, 0, 0}, fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Problem{Pos{path, 0, 0}, fmt.Sprintf("cannot read: %v", err)}
	}
	return data, nil
}

// FlowFiles lists the flow files of paths: files as given, and every *.yaml and *.yml below
// a folder in lexical order, skipping hidden entries (names starting with "."), so that a
// Kubernetes ConfigMap mount (whose ..data and timestamped folders are hidden) loads once.
func FlowFiles(paths ...string) ([]string, Problems) {
	var files []string
	var probs Problems
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			probs = append(probs, Problem{Pos{p, 0, 0}, fmt.Sprintf("cannot read flows: %v", errors.Unwrap(err))})
			continue
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			probs = append(probs, Problem{Pos{p, 0, 0}, fmt.Sprintf("cannot list flows: %v", err)})
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, probs
}

func checkUnique(flows []*Flow) Problems {
	var probs Problems
	seen := map[string]*Flow{}
	for _, f := range flows {
		id := f.Name + "@" + strconv.Itoa(f.Version)
		if prev, dup := seen[id]; dup {
			probs = append(probs, Problem{f.Source, fmt.Sprintf("flow %q version %d is already defined at %s:%d:%d",
				f.Name, f.Version, prev.Source.Path, prev.Source.Line, prev.Source.Col)})
			continue
		}
		seen[id] = f
	}
	return probs
}

// Parse parses and validates the flow documents of one file. It returns the flows that are
// valid and every problem found; callers should treat any problem as a failure of the file.
// A file larger than MaxFileSize is rejected unread.
func Parse(path string, data []byte) ([]*Flow, Problems) {
	flows, probs, _ := parse(context.Background(), path, data)
	return flows, probs
}

// parse is Parse that stops between documents when ctx ends, returning ctx's cause.
func parse(ctx context.Context, path string, data []byte) ([]*Flow, Problems, error) {
	if len(data) > MaxFileSize {
		return nil, Problems{{posOf(path, data, MaxFileSize),
			fmt.Sprintf("flow file is larger than the limit of %d bytes (%d MiB); split its flows over several files", MaxFileSize, MaxFileSize>>20)}}, nil
	}
	in := &countingReader{r: bytes.NewReader(data)}
	dec := yaml.NewDecoder(in)
	var flows []*Flow
	var probs Problems
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, context.Cause(ctx)
		}
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			probs = append(probs, syntaxProblem(path, data, in.n, err))
			break
		}
		if len(doc.Content) == 0 {
			continue // an empty document between separators
		}
		p := &parser{path: path}
		f := p.flow(doc.Content[0])
		if len(p.probs) == 0 {
			flows = append(flows, f)
		}
		probs = append(probs, p.probs...)
	}
	return flows, probs.sorted(), nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// posOf is the line and column (in characters, from 1) of data[off] in file path.
func posOf(path string, data []byte, off int) Pos {
	before := data[:off]
	start := bytes.LastIndexByte(before, '\n') + 1
	return Pos{path, bytes.Count(before, []byte{'\n'}) + 1, utf8.RuneCount(before[start:]) + 1}
}
