package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

func init() {
	register("replay", "re-evaluate stored instances against other flow definitions: flowwatch replay --flows PATH (--store DIR | --dsn DSN)", runReplay)
}

const replayUsage = `usage: flowwatch replay --flows PATH (--store DIR | --dsn DSN) [--database NAME] [--flow NAME] [--tenant T] [--at TIME]

Re-evaluates the stored events of every stored instance against the flow definitions in PATH
(a file or folder) and prints one line per instance whose status would change, then a summary
line. Nothing is written. The old status is the stored one, brought to the evaluation time (a
running instance whose stored deadline has passed counts as stuck), so that only the
definitions differ. The embedded store opens in one process at a time: stop flowwatch run
(or the detector) on that folder first.`

// replayOptions select what replay reads and when it evaluates.
type replayOptions struct {
	Flow, Tenant string
	// At is the evaluation time.
	At time.Time
	// PageSize is how many instance states are listed per query.
	PageSize int
}

// replaySummary counts what a replay saw.
type replaySummary struct {
	Instances int
	Flows     map[string]bool
	Changed   int
	// Transitions counts changes by "old -> new".
	Transitions map[string]int
	// Skipped counts instances per stored flow that PATH does not define.
	Skipped map[string]int
	// Foreign counts alias-keyed events that resolved to another instance and were left out.
	Foreign int
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, replayUsage); fs.PrintDefaults() }
	flows := fs.String("flows", "", "flow definitions to replay against: a file or folder (required)")
	dir := fs.String("store", "", "data folder of the embedded store (chdb:PATH also works)")
	dsn := fs.String("dsn", "", "ClickHouse server DSN (clickhouse://host:9000/db)")
	database := fs.String("database", "", "database name (default "+storage.DefaultDatabase+", or the DSN's)")
	flow := fs.String("flow", "", "replay only this flow")
	tenant := fs.String("tenant", "", "replay only this tenant")
	at := fs.String("at", "", "evaluate at this RFC 3339 time instead of now")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "flowwatch replay: %s\n", msg)
		fs.Usage()
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageErr(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	case *flows == "":
		return usageErr("--flows is required")
	case (*dir == "") == (*dsn == ""):
		return usageErr("give exactly one of --store and --dsn")
	}
	*dir = strings.TrimPrefix(*dir, "chdb:")
	opts := replayOptions{Flow: *flow, Tenant: *tenant, At: time.Now()}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return usageErr(fmt.Sprintf("--at %q is not an RFC 3339 time", *at))
		}
		opts.At = t
	}

	set, err := model.Load(*flows)
	if err != nil {
		printLoadError(stderr, "flowwatch replay", err)
		return 1
	}
	if *flow != "" && set.Latest(*flow) == nil {
		fmt.Fprintf(stderr, "flowwatch replay: flow %q is not defined in %s\n", *flow, *flows)
		return 1
	}

	var store storage.Store
	o := storage.Options{Database: *database}
	if *dir != "" {
		store, err = storage.OpenEmbedded(ctx, *dir, o)
	} else {
		store, err = storage.OpenServer(ctx, *dsn, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch replay: %v\n", err)
		if *dir != "" {
			fmt.Fprintln(stderr, "flowwatch replay: (the embedded store opens in one process at a time: is flowwatch run or the detector using this folder?)")
		}
		return 1
	}
	defer store.Close()

	if _, err := replay(ctx, store, set, opts, stdout); err != nil {
		fmt.Fprintf(stderr, "flowwatch replay: %v\n", err)
		return 1
	}
	return 0
}

// replay re-evaluates every stored instance selected by opts against set, printing one line
// per status change and a summary line to w.
//
// An instance's events are Reader.InstanceEvents (the store returns the rows keyed by the
// instance's key and by its recorded aliases). A row keyed by an attribute that the new
// definitions call an alias is checked through Reader.ResolveAliases, and left out when it
// belongs to another instance.
func replay(ctx context.Context, r storage.Reader, set *model.Set, opts replayOptions, w io.Writer) (replaySummary, error) {
	sum := replaySummary{Flows: map[string]bool{}, Transitions: map[string]int{}, Skipped: map[string]int{}}
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	res := &aliasResolver{r: r, known: map[string]string{}}
	cursor := ""
	for {
		states, next, err := r.Instances(ctx, storage.InstanceFilter{Tenant: opts.Tenant, Flow: opts.Flow,
			Limit: opts.PageSize, Cursor: cursor})
		if err != nil {
			return sum, fmt.Errorf("list stored instances: %w", err)
		}
		for _, st := range states {
			versions := set.Versions(st.Flow)
			if len(versions) == 0 {
				sum.Skipped[st.Flow]++
				continue
			}
			sum.Instances++
			sum.Flows[st.Flow] = true
			rows, err := r.InstanceEvents(ctx, st.Tenant, st.Flow, st.Key)
			if err != nil {
				return sum, fmt.Errorf("read events of %s/%s/%s: %w", st.Tenant, st.Flow, st.Key, err)
			}
			if err := res.lookup(ctx, st.Tenant, st.Flow, st.Key, versions, rows); err != nil {
				return sum, err
			}
			in, foreign := flowstate.Rebuild(versions, st.Tenant, st.Key, rows, res.owner(st.Tenant, st.Flow))
			sum.Foreign += foreign
			if err := replayChildren(ctx, r, set, in, opts.At); err != nil {
				return sum, err
			}
			now := in.Evaluate(opts.At)
			old := agedStatus(st, opts.At)
			if string(now.Status) == old {
				continue
			}
			sum.Changed++
			sum.Transitions[old+" -> "+string(now.Status)]++
			line := fmt.Sprintf("%s/%s/%s: %s -> %s (version %d -> %d)", st.Tenant, st.Flow, st.Key,
				old, now.Status, st.Version, now.Version)
			if now.Reason != nil {
				line += ": " + now.Reason.Summary
			}
			fmt.Fprintln(w, line)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	fmt.Fprintln(w, sum.String(opts.At))
	return sum, nil
}

// replayChildren gives a parent its stored children, judged at at by set's definitions: a
// stored family is re-judged under the new definitions as a whole.
func replayChildren(ctx context.Context, r storage.Reader, set *model.Set, in *model.Instance, at time.Time) error {
	var kids []model.Child
	for _, cf := range model.ChildFlowsOf(set.Versions(in.Flow)) {
		rows, err := storage.ChildrenEvents(ctx, r, in.Tenant, cf, []string{in.Key}, 0)
		if err != nil {
			return fmt.Errorf("read the children of %s/%s/%s: %w", in.Tenant, in.Flow, in.Key, err)
		}
		kids = append(kids, flowstate.Children(set.Versions(cf), in.Tenant, rows[in.Key], at)...)
	}
	in.SetChildren(kids)
	return nil
}

// agedStatus is the stored verdict brought to at: a running instance whose stored expected
// checkpoint is past its deadline by then is stuck under the definitions that judged it, even
// if no detector has written that yet (the embedded store is read while the detector is
// stopped). So only the definitions differ between the old status and the new.
func agedStatus(st storage.InstanceState, at time.Time) string {
	if st.Status != string(model.StatusRunning) && st.Status != string(model.StatusCompensating) {
		return st.Status
	}
	doc, err := flowstate.Parse(st)
	if err != nil {
		return st.Status
	}
	for _, x := range doc.Expected {
		if at.After(x.Deadline) {
			return string(model.StatusStuck)
		}
	}
	return st.Status
}

// String is the summary line.
func (s replaySummary) String(at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "replayed %s of %s at %s: %d would change status",
		plural(s.Instances, "instance"), plural(len(s.Flows), "flow"), at.UTC().Format(time.RFC3339), s.Changed)
	if len(s.Transitions) > 0 {
		b.WriteString(" (" + countList(s.Transitions) + ")")
	}
	if len(s.Skipped) > 0 {
		n := 0
		for _, c := range s.Skipped {
			n += c
		}
		fmt.Fprintf(&b, "; %d skipped, their flow not defined: %s", n, countList(s.Skipped))
	}
	if s.Foreign > 0 {
		fmt.Fprintf(&b, "; %d alias-keyed events of other instances left out", s.Foreign)
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// countList formats counts as "a 2, b 1", by name.
func countList(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// maxKnownAliases bounds the alias cache of one replay.
const maxKnownAliases = 1 << 20

// aliasResolver resolves alias-keyed rows to instance keys, remembering what it looked up.
type aliasResolver struct {
	r     storage.Reader
	known map[string]string // tenant\x00flow\x00attr\x00value → key ("" when unknown)
}

func aliasID(tenant, flow, attr, value string) string {
	return tenant + "\x00" + flow + "\x00" + attr + "\x00" + value
}

// lookup resolves, one query per alias attribute, the alias values of rows that the cache
// does not know yet.
func (a *aliasResolver) lookup(ctx context.Context, tenant, flow, key string, versions []*model.Flow, rows []storage.CheckpointEvent) error {
	want := map[string][]string{}
	for i := range rows {
		e := &rows[i]
		if e.Key == key || !flowstate.IsAlias(versions, e.KeyAttr) {
			continue
		}
		if _, ok := a.known[aliasID(tenant, flow, e.KeyAttr, e.Key)]; !ok {
			want[e.KeyAttr] = append(want[e.KeyAttr], e.Key)
		}
	}
	attrs := make([]string, 0, len(want))
	for attr := range want {
		attrs = append(attrs, attr)
	}
	sort.Strings(attrs)
	for _, attr := range attrs {
		got, err := a.r.ResolveAliases(ctx, tenant, flow, attr, want[attr])
		if err != nil {
			return fmt.Errorf("resolve %s aliases of %s/%s: %w", attr, tenant, flow, err)
		}
		if len(a.known) > maxKnownAliases {
			clear(a.known) // a cache: bounded, refilled from the store on demand
		}
		for _, v := range want[attr] {
			a.known[aliasID(tenant, flow, attr, v)] = got[v]
		}
	}
	return nil
}

// owner answers flowstate.Rebuild from what lookup resolved.
func (a *aliasResolver) owner(tenant, flow string) flowstate.Owner {
	return func(attr, value string) (string, bool) {
		k := a.known[aliasID(tenant, flow, attr, value)]
		return k, k != ""
	}
}
