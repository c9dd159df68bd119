package api

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowwatch/flowwatch/flowstate"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// Flow is one flow version of GET /api/v1/flows.
type Flow struct {
	Name       string    `json:"name"`
	Version    int       `json:"version"`
	Key        string    `json:"key"`
	ActiveFrom time.Time `json:"active_from,omitzero"`
	// Parent is set on a sub-flow: the flow it is a child of, and its key attribute.
	Parent      *Parent      `json:"parent,omitempty"`
	Checkpoints []Checkpoint `json:"checkpoints"`
}

// Parent names the parent of a sub-flow, and the attribute of its items holding the parent's key.
type Parent struct {
	Flow string `json:"flow"`
	Key  string `json:"key"`
}

// Children says which children reach a children checkpoint: the child flow, all or any, and
// the parent's attribute holding how many `all` waits for.
type Children struct {
	Flow     string `json:"flow"`
	Complete string `json:"complete"`
	Expect   string `json:"expect,omitempty"`
}

// Checkpoint is one checkpoint of a flow version.
type Checkpoint struct {
	Name  string   `json:"name"`
	Start bool     `json:"start"`
	After []string `json:"after"`
	Join  string   `json:"join"`
	// Within is a Go duration string; empty for an optional checkpoint (no deadline).
	Within   string   `json:"within,omitempty"`
	Terminal string   `json:"terminal,omitempty"`
	Service  string   `json:"service"`
	Key      string   `json:"key"`
	Aliases  []string `json:"aliases,omitempty"`
	// Children is set on a children checkpoint (reached by the instance's children).
	Children *Children `json:"children,omitempty"`
	// Compensates is set on a compensation: the checkpoint it undoes.
	Compensates string `json:"compensates,omitempty"`
	// OnStuck are the checkpoint's on_stuck actions (where an unblock sends its command);
	// absent when it has none, and then an operator's unblock of it is refused.
	OnStuck []StuckAction `json:"on_stuck,omitempty"`
}

// StuckAction is one on_stuck action of a checkpoint: the sink it sends to, and the
// sink-specific subject (empty when the action names none).
type StuckAction struct {
	Sink    string `json:"sink"`
	Subject string `json:"subject"`
}

// FlowList is the answer of GET /api/v1/flows.
type FlowList struct {
	Flows []Flow `json:"flows"`
}

// InstanceList is the answer of GET /api/v1/instances; NextCursor is empty on the last page.
type InstanceList struct {
	Instances  []Instance `json:"instances"`
	NextCursor string     `json:"next_cursor"`
}

// Graph is the answer of GET /api/v1/flows/{flow}/graph.
type Graph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is a checkpoint with how many instances reached it, and how many are stuck
// expecting it.
type GraphNode struct {
	ID    string `json:"id"`
	Count uint64 `json:"count"`
	Stuck uint64 `json:"stuck"`
}

// GraphEdge is a declared predecessor edge with what was observed on it.
type GraphEdge struct {
	Source string  `json:"source"`
	Target string  `json:"target"`
	Count  uint64  `json:"count"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
}

// SeriesList is the answer of GET /api/v1/flows/{flow}/series.
type SeriesList struct {
	Series []Series `json:"series"`
}

// Series is one named series of [unix_ms, value] points.
type Series struct {
	Name   string       `json:"name"`
	Points [][2]float64 `json:"points"`
}

// Alert is one alert audit record.
type Alert struct {
	Time        time.Time `json:"time"`
	Tenant      string    `json:"tenant"`
	Flow        string    `json:"flow"`
	Version     int       `json:"version"`
	Key         string    `json:"key"`
	Checkpoint  string    `json:"checkpoint"`
	State       string    `json:"state"`
	Sink        string    `json:"sink"`
	Fingerprint string    `json:"fingerprint"`
	Summary     string    `json:"summary"`
	Error       string    `json:"error"`
}

// AlertList is the answer of GET /api/v1/alerts.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
}

// Command is one unblock command audit record. Payload is the CloudEvent as JSON (a JSON
// string when the stored payload is not valid JSON; null when there is none).
type Command struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Tenant     string    `json:"tenant"`
	Flow       string    `json:"flow"`
	Version    int       `json:"version"`
	Key        string    `json:"key"`
	Checkpoint string    `json:"checkpoint"`
	Attempt    int       `json:"attempt"`
	Sink       string    `json:"sink"`
	Subject    string    `json:"subject"`
	Outcome    string    `json:"outcome"`
	// Trigger is manual when an operator's unblock sent it, else auto.
	Trigger string          `json:"trigger"`
	Error   string          `json:"error"`
	Payload json.RawMessage `json:"payload"`
}

// CommandList is the answer of GET /api/v1/commands.
type CommandList struct {
	Commands []Command `json:"commands"`
}

// FlowFromModel converts a flow version to its API document.
func FlowFromModel(f *model.Flow) Flow {
	out := Flow{Name: f.Name, Version: f.Version, Key: f.Key, ActiveFrom: utc(f.ActiveFrom),
		Checkpoints: make([]Checkpoint, 0, len(f.Checkpoints))}
	for _, c := range f.Checkpoints {
		cp := Checkpoint{Name: c.Name, Start: c.Start, After: append([]string{}, c.After...),
			Join: string(c.Join), Terminal: string(c.Terminal), Service: c.Match.Service,
			Key: c.Key, Aliases: nonEmpty(c.Aliases)}
		if cp.Join == "" {
			cp.Join = string(model.JoinAll)
		}
		if c.Within > 0 {
			cp.Within = c.Within.String()
		}
		if ch := c.Children; ch != nil {
			cp.Children = &Children{Flow: ch.Flow, Complete: string(ch.Complete), Expect: ch.Expect}
		}
		if c.Compensates != nil {
			cp.Compensates = c.Compensates.Name
		}
		for _, a := range c.OnStuck {
			cp.OnStuck = append(cp.OnStuck, StuckAction{Sink: a.Sink, Subject: a.Subject})
		}
		out.Checkpoints = append(out.Checkpoints, cp)
	}
	if p := f.Parent; p != nil {
		out.Parent = &Parent{Flow: p.Flow, Key: p.Key}
	}
	return out
}

// query checks a request's parameters: only the allowed names, each at most once. It
// returns the values by name.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &httpError{http.StatusBadRequest, "malformed query string: " + err.Error()}
	}
	out := make(map[string]string, len(q))
	for name, vals := range q {
		if !slices.Contains(allowed, name) {
			return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("unknown parameter %q (this endpoint takes %s)",
				name, strings.Join(allowed, ", "))}
		}
		if len(vals) > 1 {
			return nil, errBadParam(name, "given %d times, want at most one", len(vals))
		}
		out[name] = vals[0]
	}
	return out, nil
}

func parseLimit(q map[string]string) (int, error) {
	s, ok := q["limit"]
	if !ok || s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, errBadParam("limit", "%q is not an integer from 1 to %d", s, MaxLimit)
	}
	return n, nil
}

// parseTime reads RFC 3339 or unix milliseconds.
func parseTime(name, s string) (time.Time, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, errBadParam(name, "%q is out of range for unix milliseconds", s)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errBadParam(name, "%q is neither RFC 3339 (2006-01-02T15:04:05Z) nor unix milliseconds", s)
	}
	return t.UTC(), nil
}

// timeRange reads from and to: to defaults to now, from to DefaultRange before to.
func (s *server) timeRange(q map[string]string) (from, to time.Time, err error) {
	to = s.cfg.Now().UTC()
	if v, ok := q["to"]; ok {
		if to, err = parseTime("to", v); err != nil {
			return
		}
	}
	from = to.Add(-DefaultRange)
	if v, ok := q["from"]; ok {
		if from, err = parseTime("from", v); err != nil {
			return
		}
	}
	if !from.Before(to) {
		err = errBadParam("from", "%s is not before to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return
}

// definedFlow returns the latest version of the path's flow, or a 404.
func (s *server) definedFlow(r *http.Request) (*model.Flow, error) {
	name := r.PathValue("flow")
	if set := s.cfg.Flows(); set != nil {
		if f := set.Latest(name); f != nil {
			return f, nil
		}
	}
	return nil, errNotFound("flow %q is not defined", name)
}

func (s *server) flows(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	out := FlowList{Flows: []Flow{}}
	if set := s.cfg.Flows(); set != nil {
		for _, f := range set.Flows {
			out.Flows = append(out.Flows, FlowFromModel(f))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) instances(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "flow", "status", "checkpoint", "tenant", "key", "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	if st := q["status"]; st != "" && !slices.Contains(Statuses, st) {
		return errBadParam("status", "%q is not one of %s", st, strings.Join(Statuses, ", "))
	}
	if cp, fl := q["checkpoint"], q["flow"]; cp != "" && fl != "" {
		if set := s.cfg.Flows(); set != nil && len(set.Versions(fl)) > 0 && !hasCheckpoint(set.Versions(fl), cp) {
			return errBadParam("checkpoint", "%q is not a checkpoint of flow %q", cp, fl)
		}
	}
	cursor, err := openCursor(q["cursor"])
	if err != nil {
		return err
	}
	states, next, err := s.cfg.Reader.Instances(r.Context(), storage.InstanceFilter{
		Tenant: q["tenant"], Flow: q["flow"], Status: q["status"], Checkpoint: q["checkpoint"],
		Key: q["key"], Limit: limit, Cursor: cursor,
	})
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	out := InstanceList{Instances: make([]Instance, 0, len(states)), NextCursor: sealCursor(next)}
	now := s.cfg.Now()
	for _, st := range states {
		in := s.instanceDoc(r, st)
		in.Violations = nil // the list carries no violations; the instance endpoint does
		refresh(&in, now)
		out.Instances = append(out.Instances, in)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// sealCursor wraps the store's opaque cursor with a checksum, so that a cursor that was not
// issued here (truncated, edited, from another API) is a 400 naming the parameter rather than
// a store error.
func sealCursor(c string) string {
	if c == "" {
		return ""
	}
	return fmt.Sprintf("%s.%08x", c, crc32.ChecksumIEEE([]byte(c)))
}

func openCursor(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	i := strings.LastIndexByte(sealed, '.')
	if i < 0 || fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(sealed[:i]))) != sealed[i+1:] {
		return "", errBadParam("cursor", "not a next_cursor of this API (pass next_cursor back unchanged)")
	}
	return sealed[:i], nil
}

func hasCheckpoint(versions []*model.Flow, name string) bool {
	for _, f := range versions {
		if f.Checkpoint(name) != nil {
			return true
		}
	}
	return false
}

// instanceDoc converts a stored state; a state whose JSON documents do not parse is served
// with what did (and logged), rather than failing the whole answer.
func (s *server) instanceDoc(r *http.Request, st storage.InstanceState) Instance {
	in, err := InstanceFromState(st)
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "api: stored instance state has a bad document", "error", err)
		in = Instance{Tenant: st.Tenant, Flow: st.Flow, Version: st.Version, Key: st.Key, Status: st.Status,
			StartedAt: utc(st.StartedAt), LastSeen: utc(st.LastSeen), LastCheckpoint: st.LastCheckpoint,
			Expected: []Expected{}}
	}
	return in
}

func (s *server) instance(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "tenant")
	if err != nil {
		return err
	}
	tenant := q["tenant"]
	if tenant == "" {
		tenant = DefaultTenant
	}
	flow, key := r.PathValue("flow"), r.PathValue("key")
	st, err := s.cfg.Reader.Instance(r.Context(), tenant, flow, key)
	if err != nil {
		return fmt.Errorf("read instance %s/%s/%s: %w", tenant, flow, key, err)
	}
	if st == nil {
		if _, ferr := s.definedFlow(r); ferr != nil {
			return ferr
		}
		return errNotFound("no instance %q of flow %q in tenant %q", key, flow, tenant)
	}
	events, err := s.cfg.Reader.InstanceEvents(r.Context(), tenant, flow, key)
	if err != nil {
		return fmt.Errorf("read events of %s/%s/%s: %w", tenant, flow, key, err)
	}
	in := s.instanceDoc(r, *st)
	in.Events = make([]Event, 0, len(events))
	for _, e := range events {
		in.Events = append(in.Events, EventFromStorage(e))
	}
	now := s.cfg.Now()
	var parent *InstanceRef
	var children []Child
	if set := s.cfg.Flows(); set != nil && len(set.Versions(flow)) > 0 {
		// The detector stores a compact state for most instances: violations, and the
		// details of a verdict, come from evaluating the events now — by the version the
		// detector pinned the instance to, never a newer one; a parent with its children.
		versions := set.Versions(flow)
		if f := set.Version(flow, in.Version); f != nil {
			versions = []*model.Flow{f}
		}
		mi, _ := flowstate.Rebuild(versions, tenant, key, events, nil)
		if pl := set.Parent(flow); pl != nil {
			if pk := mi.ParentKey(); pk != "" {
				parent = &InstanceRef{Flow: pl.Flow, Key: pk}
			}
		}
		kids, err := s.children(r, set, versions, tenant, key, now)
		if err != nil {
			return err
		}
		if kids != nil {
			mi.SetChildren(kids)
			children = make([]Child, 0, len(kids))
			for _, k := range kids {
				children = append(children, ChildFromModel(k))
			}
		}
		ev := mi.Evaluate(now)
		in.Violations = nonEmpty(ViolationsFromModel(ev.Violations))
		if string(ev.Status) == in.Status && ev.Version == in.Version {
			in.Expected = ExpectedFromModel(ev.Expected)
			in.Reason = ReasonFromModel(ev.Reason)
		}
	}
	refresh(&in, now)
	detail := InstanceDetail{Instance: in, Events: in.Events, Violations: in.Violations, Parent: parent, Children: children}
	if detail.Violations == nil {
		detail.Violations = []Violation{}
	}
	writeJSON(w, http.StatusOK, detail)
	return nil
}

// refresh brings the time-dependent parts of a stored verdict to now: the detector writes a
// stuck state once, when the instance gets stuck, so the stored overdue is how late it was
// then. Expected checkpoints' overdue flags, the reason's overdue and the "overdue by" of its
// summary are recomputed; the verdict itself (status, which checkpoint) is the detector's.
func refresh(in *Instance, now time.Time) {
	switch model.Status(in.Status) {
	case model.StatusRunning, model.StatusStuck, model.StatusCompensating:
	default:
		return
	}
	for i := range in.Expected {
		in.Expected[i].Overdue = now.After(in.Expected[i].Deadline)
	}
	r := in.Reason
	if r == nil || in.Status != string(model.StatusStuck) || !now.After(r.Deadline) {
		return
	}
	over := now.Sub(r.Deadline)
	old := time.Duration(r.Overdue).Round(time.Second).String()
	r.Summary = strings.Replace(r.Summary, "overdue by "+old, "overdue by "+over.Round(time.Second).String(), 1)
	r.Overdue, r.OverdueSeconds = Duration(over), over.Seconds()
}

// Edges returns every declared predecessor edge of a flow version, by target in declaration
// order.
func Edges(f *model.Flow) [][2]string {
	var out [][2]string
	for _, c := range f.Checkpoints {
		for _, p := range c.After {
			out = append(out, [2]string{p, c.Name})
		}
	}
	return out
}

func (s *server) graph(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "tenant", "from", "to")
	if err != nil {
		return err
	}
	f, err := s.definedFlow(r)
	if err != nil {
		return err
	}
	from, to, err := s.timeRange(q)
	if err != nil {
		return err
	}
	counts, err := s.cfg.Reader.CheckpointCounts(r.Context(), q["tenant"], f.Name, from, to)
	if err != nil {
		return fmt.Errorf("count checkpoints of %s: %w", f.Name, err)
	}
	byName := make(map[string]storage.CheckpointCount, len(counts))
	for _, c := range counts {
		byName[c.Checkpoint] = c
	}
	out := Graph{Nodes: make([]GraphNode, 0, len(f.Checkpoints)), Edges: []GraphEdge{}}
	for _, c := range f.Checkpoints {
		n := byName[c.Name]
		out.Nodes = append(out.Nodes, GraphNode{ID: c.Name, Count: n.Count, Stuck: n.Stuck})
	}
	edges := Edges(f)
	if len(edges) > 0 {
		ts, err := s.cfg.Reader.Transitions(r.Context(), q["tenant"], f.Name, edges, from, to)
		if err != nil {
			return fmt.Errorf("measure transitions of %s: %w", f.Name, err)
		}
		measured := make(map[[2]string]storage.Transition, len(ts))
		for _, t := range ts {
			measured[[2]string{t.Source, t.Target}] = t
		}
		for _, e := range edges {
			t := measured[e]
			out.Edges = append(out.Edges, GraphEdge{Source: e[0], Target: e[1], Count: t.Count,
				P50MS: millis(t.P50), P95MS: millis(t.P95)})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *server) series(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "tenant", "from", "to", "step", "by")
	if err != nil {
		return err
	}
	f, err := s.definedFlow(r)
	if err != nil {
		return err
	}
	from, to, err := s.timeRange(q)
	if err != nil {
		return err
	}
	// Buckets are counted in milliseconds, here and in the store.
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	if !from.Before(to) {
		return errBadParam("from", "must be at least 1ms before to")
	}
	step := DefaultStep
	if v, ok := q["step"]; ok {
		if step, err = model.ParseDuration(v); err != nil || step < time.Millisecond || step%time.Millisecond != 0 {
			return errBadParam("step", "%q is not a whole number of milliseconds, at least 1ms (like 500ms, 30s, 5m, 1h)", v)
		}
	}
	by := q["by"]
	var names []string
	switch by {
	case "", "status":
		by, names = "status", Statuses
	case "checkpoint":
		for _, c := range f.Checkpoints {
			names = append(names, c.Name)
		}
	default:
		return errBadParam("by", "%q is not status or checkpoint", by)
	}
	g := newGrid(from, to, step)
	if g.n > MaxPoints {
		return errBadParam("step", "%s over %s gives %d points, more than %d; use a larger step",
			step, to.Sub(from), g.n, MaxPoints)
	}
	got, err := s.cfg.Reader.Series(r.Context(), q["tenant"], f.Name, by, from, to, step)
	if err != nil {
		return fmt.Errorf("read %s series of %s: %w", by, f.Name, err)
	}
	writeJSON(w, http.StatusOK, SeriesList{Series: g.fill(got, names)})
	return nil
}

// grid is the series' time buckets: from + i*step for i in [0, n), covering [from, to), as
// the store aligns them.
type grid struct {
	startMS, stepMS int64
	n               int
}

func newGrid(from, to time.Time, step time.Duration) grid {
	stepMS := step.Milliseconds()
	start := from.UnixMilli()
	span := float64(to.UnixMilli()-start) / float64(stepMS)
	n := int(math.Min(math.Ceil(span), math.MaxInt32))
	return grid{startMS: start, stepMS: stepMS, n: n}
}

// fill converts the store's series to points: a series whose points all lie on the grid gets
// a zero at every empty bucket; the wanted names that the store did not return are added
// (all zeros), and series come sorted by name with points in time order.
func (g grid) fill(got []storage.Series, names []string) []Series {
	byName := map[string][]storage.Point{}
	for _, s := range got {
		byName[s.Name] = append(byName[s.Name], s.Points...)
	}
	for _, n := range names {
		if _, ok := byName[n]; !ok {
			byName[n] = nil
		}
	}
	out := make([]Series, 0, len(byName))
	for name, pts := range byName {
		out = append(out, Series{Name: name, Points: g.points(pts)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g grid) points(pts []storage.Point) [][2]float64 {
	onGrid := true
	for _, p := range pts {
		ms := p.Time.UnixMilli()
		if (ms-g.startMS)%g.stepMS != 0 || ms < g.startMS || ms >= g.startMS+int64(g.n)*g.stepMS {
			onGrid = false
			break
		}
	}
	if !onGrid {
		out := make([][2]float64, 0, len(pts))
		for _, p := range pts {
			out = append(out, [2]float64{float64(p.Time.UnixMilli()), p.Value})
		}
		sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
		return out
	}
	out := make([][2]float64, g.n)
	for i := range out {
		out[i][0] = float64(g.startMS + int64(i)*g.stepMS)
	}
	for _, p := range pts {
		out[(p.Time.UnixMilli()-g.startMS)/g.stepMS][1] += p.Value
	}
	return out
}

func (s *server) alerts(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "flow", "tenant", "key", "limit")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	recs, err := s.cfg.Reader.Alerts(r.Context(), storage.AuditFilter{Tenant: q["tenant"], Flow: q["flow"], Key: q["key"], Limit: limit})
	if err != nil {
		return fmt.Errorf("list alerts: %w", err)
	}
	out := AlertList{Alerts: make([]Alert, 0, len(recs))}
	for _, a := range recs {
		out.Alerts = append(out.Alerts, Alert{Time: utc(a.Time), Tenant: a.Tenant, Flow: a.Flow,
			Version: a.Version, Key: a.Key, Checkpoint: a.Checkpoint, State: a.State, Sink: a.Sink,
			Fingerprint: a.Fingerprint, Summary: a.Summary, Error: a.Error})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) commands(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "flow", "tenant", "key", "limit")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	recs, err := s.cfg.Reader.Commands(r.Context(), storage.AuditFilter{Tenant: q["tenant"], Flow: q["flow"], Key: q["key"], Limit: limit})
	if err != nil {
		return fmt.Errorf("list commands: %w", err)
	}
	out := CommandList{Commands: make([]Command, 0, len(recs))}
	for _, c := range recs {
		out.Commands = append(out.Commands, Command{ID: c.ID, Time: utc(c.Time), Tenant: c.Tenant,
			Flow: c.Flow, Version: c.Version, Key: c.Key, Checkpoint: c.Checkpoint, Attempt: c.Attempt,
			Sink: c.Sink, Subject: c.Subject, Outcome: c.Outcome, Trigger: triggerOf(c.Payload), Error: c.Error,
			Payload: payloadJSON(c.Payload)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func payloadJSON(p string) json.RawMessage {
	switch {
	case p == "":
		return json.RawMessage("null")
	case json.Valid([]byte(p)):
		return json.RawMessage(p)
	}
	b, _ := json.Marshal(p) // a string always marshals
	return b
}

// triggerOf reads the CloudEvent extension trigger of a stored command (manual for an
// operator's unblock); auto when there is none.
func triggerOf(payload string) string {
	var ce struct {
		Trigger string `json:"trigger"`
	}
	if payload != "" && json.Unmarshal([]byte(payload), &ce) == nil && ce.Trigger != "" {
		return ce.Trigger
	}
	return "auto"
}
