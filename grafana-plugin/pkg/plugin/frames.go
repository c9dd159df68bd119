package plugin

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// DrillDownDashboardUID is the provisioned instance drill-down dashboard that instance keys
// link to.
const DrillDownDashboardUID = "flowwatch-instance"

// Node colours of the flow graph: reached without stuck instances, with stuck ones, and
// checkpoints no instance reached in the time range.
const (
	colorOK     = "green"
	colorStuck  = "red"
	colorUnseen = "gray"
)

// links builds the data links of trace IDs and instance keys.
type links struct {
	traceURL      string
	tracingDSUID  string
	drillDownBase string
}

func newLinks(s Settings) links {
	return links{traceURL: s.TraceURL, tracingDSUID: s.TracingDatasourceUID,
		drillDownBase: "/d/" + DrillDownDashboardUID}
}

// trace is the field config of a trace ID column: an external link from the template and
// an Explore link into the tracing data source, each when configured.
func (l links) trace() *data.FieldConfig {
	var ls []data.DataLink
	if l.traceURL != "" {
		ls = append(ls, data.DataLink{Title: "Open trace ${__value.raw}", TargetBlank: true,
			URL: strings.ReplaceAll(l.traceURL, TraceIDPlaceholder, "${__value.raw}")})
	}
	if l.tracingDSUID != "" {
		ls = append(ls, data.DataLink{Title: "Open trace in Explore",
			Internal: &data.InternalDataLink{DatasourceUID: l.tracingDSUID,
				// Tempo reads a trace ID as a TraceQL query; Jaeger opens any non-search
				// query as a trace ID.
				Query: map[string]any{"query": "${__value.raw}", "queryType": "traceql"}}})
	}
	return &data.FieldConfig{DisplayName: "trace", Links: ls}
}

// key is the field config of an instance key column: a link to the drill-down dashboard.
func (l links) key() *data.FieldConfig {
	return &data.FieldConfig{Links: []data.DataLink{{Title: "Open instance ${__value.raw}",
		URL: l.drillDownBase + "?var-flow=${__data.fields.flow}&var-key=${__value.raw}&var-tenant=${__data.fields.tenant}&${__url_time_range}"}}}
}

// statusMappings colour statuses the same everywhere.
func statusConfig() *data.FieldConfig {
	return &data.FieldConfig{Mappings: data.ValueMappings{data.ValueMapper{
		"running":      {Text: "running", Color: "blue"},
		"completed":    {Text: "completed", Color: "green"},
		"failed":       {Text: "failed", Color: "orange"},
		"stuck":        {Text: "stuck", Color: "red"},
		"compensating": {Text: "compensating", Color: "yellow"},
		"compensated":  {Text: "compensated", Color: "purple"},
		"cancelled":    {Text: "cancelled", Color: "text"},
	}}}
}

func nullableTime(t Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.UTC()
	return &v
}

// instancesFrame is the instances table, one row an instance, key first (dashboards use
// the first column for variables).
func instancesFrame(name string, insts []Instance, l links) *data.Frame {
	f := data.NewFrame(name,
		data.NewField("key", nil, []string{}).SetConfig(l.key()),
		data.NewField("flow", nil, []string{}),
		data.NewField("version", nil, []int64{}),
		data.NewField("tenant", nil, []string{}),
		data.NewField("status", nil, []string{}).SetConfig(statusConfig()),
		data.NewField("started_at", nil, []*time.Time{}),
		data.NewField("last_seen", nil, []*time.Time{}),
		data.NewField("last_checkpoint", nil, []string{}),
		data.NewField("expected", nil, []string{}),
		data.NewField("deadline", nil, []*time.Time{}),
		data.NewField("stuck_at", nil, []string{}).SetConfig(&data.FieldConfig{DisplayName: "overdue checkpoint"}),
		data.NewField("overdue", nil, []*float64{}).SetConfig(&data.FieldConfig{Unit: "s"}),
		data.NewField("service", nil, []string{}),
		data.NewField("last_error", nil, []string{}),
		data.NewField("summary", nil, []string{}),
		data.NewField("trace_id", nil, []string{}).SetConfig(l.trace()),
	)
	for _, in := range insts {
		var (
			names    = make([]string, len(in.Expected))
			deadline *time.Time // the earliest
		)
		for j, x := range in.Expected {
			names[j] = x.Checkpoint
			if d := nullableTime(x.Deadline); d != nil && (deadline == nil || d.Before(*deadline)) {
				deadline = d
			}
		}
		var (
			stuckAt, service, lastErr, summary, trace string
			overdue                                   *float64
		)
		if r := in.Reason; r != nil {
			stuckAt, service, summary = r.Checkpoint, r.Service, r.Summary
			overdue = &r.OverdueSeconds
			if len(r.TraceIDs) > 0 {
				trace = r.TraceIDs[0]
			}
			if e := r.LastError; e != nil {
				lastErr = errorText(e)
				if trace == "" {
					trace = e.TraceID
				}
			}
		}
		f.AppendRow(in.Key, in.Flow, int64(in.Version), in.Tenant, in.Status,
			nullableTime(in.StartedAt), nullableTime(in.LastSeen), in.LastCheckpoint,
			strings.Join(names, ", "), deadline, stuckAt, overdue, service, lastErr, summary, trace)
	}
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}

func errorText(e *ErrorNote) string {
	s := e.Service
	if e.Name != "" {
		s += " " + e.Name
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return strings.TrimSpace(s)
}

// Kinds of the timeline rows.
const (
	rowCheckpoint = "checkpoint"
	rowError      = "error"
	rowExpected   = "expected"
	rowOperator   = "operator"
)

// timelineFrames are one instance's frames: "timeline" (checkpoints, error notes, operator
// actions and expected checkpoints at their deadline, in time order), "violations" and "instance" (the
// instance as one row of the instances table). A stuck reason is also a notice on the
// timeline frame.
func timelineFrames(in *Instance, now time.Time, l links) data.Frames {
	type row struct {
		t                                                   time.Time
		kind, checkpoint, service, status, trace, span, det string
	}
	rows := make([]row, 0, len(in.Events)+len(in.Expected))
	for _, e := range in.Events {
		r := row{t: e.Time.UTC(), kind: rowCheckpoint, checkpoint: e.Checkpoint, service: e.Service,
			status: e.Status, trace: e.TraceID, span: e.SpanID}
		switch {
		case e.Checkpoint == "":
			r.kind = rowError
		case e.IsOperator():
			r.kind, r.det = rowOperator, e.Name
			if e.Message != "" {
				r.det += ": " + e.Message
			}
		}
		rows = append(rows, r)
	}
	for _, x := range in.Expected {
		st, det := "pending", "expected by "+x.Deadline.UTC().Format(time.RFC3339)
		if now.After(x.Deadline.Time) {
			st = "overdue"
			det = fmt.Sprintf("overdue by %s", now.Sub(x.Deadline.Time).Round(time.Second))
		}
		switch {
		case x.Compensates != "":
			det = fmt.Sprintf("compensation of %q, %s", x.Compensates, det)
		case x.Children != "":
			det = fmt.Sprintf("reached by its %s children, %s", x.Children, det)
		}
		r := row{t: x.Deadline.UTC(), kind: rowExpected, checkpoint: x.Checkpoint, service: x.Service, status: st, det: det}
		if r.service == "" && in.Reason != nil && in.Reason.Checkpoint == x.Checkpoint {
			r.service = in.Reason.Service
		}
		rows = append(rows, r)
	}
	if in.Reason != nil && in.Reason.LastError != nil {
		// the error note that explains the reason, with its message
		for i := range rows {
			if rows[i].kind == rowError && rows[i].t.Equal(in.Reason.LastError.Time.UTC()) {
				rows[i].det = errorText(in.Reason.LastError)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })

	n := len(rows)
	ts := make([]time.Time, n)
	kind, cp, svc, st, trace, span, det := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		ts[i], kind[i], cp[i], svc[i], st[i], trace[i], span[i], det[i] = r.t, r.kind, r.checkpoint, r.service, r.status, r.trace, r.span, r.det
	}
	tl := data.NewFrame("timeline",
		data.NewField("time", nil, ts),
		data.NewField("kind", nil, kind),
		data.NewField("checkpoint", nil, cp),
		data.NewField("service", nil, svc),
		data.NewField("status", nil, st),
		data.NewField("detail", nil, det),
		data.NewField("trace_id", nil, trace).SetConfig(l.trace()),
		data.NewField("span_id", nil, span),
	)
	tl.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	if r := in.Reason; r != nil && r.Summary != "" {
		tl.Meta.Notices = []data.Notice{{Severity: data.NoticeSeverityWarning, Text: "stuck: " + r.Summary}}
	}

	vn := len(in.Violations)
	vt := make([]time.Time, vn)
	vk, vc, vd := make([]string, vn), make([]string, vn), make([]string, vn)
	for i, v := range in.Violations {
		vt[i], vk[i], vc[i], vd[i] = v.Time.UTC(), v.Kind, v.Checkpoint, v.Detail
	}
	vf := data.NewFrame("violations",
		data.NewField("time", nil, vt),
		data.NewField("kind", nil, vk),
		data.NewField("checkpoint", nil, vc),
		data.NewField("detail", nil, vd),
	)
	vf.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}

	return data.Frames{tl, vf, instancesFrame("instance", []Instance{*in}, l)}
}

// graphFrames are the Node Graph frames of a flow. Each node's arc__ fields sum to 1: of
// the instances that reached the checkpoint (ok) or are stuck expecting it (stuck), the
// share of each; unseen is 1 when there are none in the range.
func graphFrames(g *Graph) data.Frames {
	n := len(g.Nodes)
	id, title, color := make([]string, n), make([]string, n), make([]string, n)
	reached, stuck := make([]int64, n), make([]int64, n)
	arcOK, arcStuck, arcUnseen := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, nd := range g.Nodes {
		id[i], title[i] = nd.ID, nd.ID
		reached[i], stuck[i] = int64(nd.Count), int64(nd.Stuck)
		// of the instances that reached the checkpoint or are overdue expecting it, the
		// share of each
		total := float64(nd.Count + nd.Stuck)
		switch {
		case total == 0:
			arcUnseen[i], color[i] = 1, colorUnseen
		default:
			arcStuck[i] = round4(float64(nd.Stuck) / total)
			arcOK[i] = round4(1 - arcStuck[i])
			color[i] = colorOK
			if nd.Stuck > 0 {
				color[i] = colorStuck
			}
		}
	}
	arc := func(name, col string, v []float64) *data.Field {
		return data.NewField(name, nil, v).SetConfig(&data.FieldConfig{DisplayName: strings.TrimPrefix(name, "arc__"),
			Color: map[string]any{"mode": "fixed", "fixedColor": col}})
	}
	nodes := data.NewFrame("nodes",
		data.NewField("id", nil, id),
		data.NewField("title", nil, title),
		data.NewField("mainstat", nil, reached).SetConfig(&data.FieldConfig{DisplayName: "reached"}),
		data.NewField("secondarystat", nil, stuck).SetConfig(&data.FieldConfig{DisplayName: "stuck"}),
		arc("arc__ok", colorOK, arcOK),
		arc("arc__stuck", colorStuck, arcStuck),
		arc("arc__unseen", colorUnseen, arcUnseen),
		data.NewField("color", nil, color),
	)
	nodes.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}

	m := len(g.Edges)
	eid, src, dst := make([]string, m), make([]string, m), make([]string, m)
	count := make([]int64, m)
	p50, p95 := make([]float64, m), make([]float64, m)
	for i, e := range g.Edges {
		eid[i], src[i], dst[i] = e.Source+"->"+e.Target, e.Source, e.Target
		count[i], p50[i], p95[i] = int64(e.Count), e.P50MS, e.P95MS
	}
	edges := data.NewFrame("edges",
		data.NewField("id", nil, eid),
		data.NewField("source", nil, src),
		data.NewField("target", nil, dst),
		data.NewField("mainstat", nil, count).SetConfig(&data.FieldConfig{DisplayName: "instances"}),
		data.NewField("secondarystat", nil, p95).SetConfig(&data.FieldConfig{DisplayName: "p95", Unit: "ms"}),
		data.NewField("detail__p50", nil, p50).SetConfig(&data.FieldConfig{DisplayName: "p50", Unit: "ms"}),
		data.NewField("detail__p95", nil, p95).SetConfig(&data.FieldConfig{DisplayName: "p95", Unit: "ms"}),
	)
	edges.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeNodeGraph}
	return data.Frames{nodes, edges}
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// seriesFrames are counts over time in the multi-frame time series format: one frame a
// series, a time and a "count" field labelled flow and by=name, so alert rules get one
// dimension a status (or checkpoint).
func seriesFrames(flow, by string, ss []Series) data.Frames {
	frames := make(data.Frames, 0, len(ss))
	for _, s := range ss {
		ts := make([]time.Time, len(s.Points))
		vs := make([]float64, len(s.Points))
		for i, p := range s.Points {
			ts[i] = time.UnixMilli(int64(p[0])).UTC()
			vs[i] = p[1]
		}
		f := data.NewFrame(s.Name,
			data.NewField("time", nil, ts),
			data.NewField("count", data.Labels{"flow": flow, by: s.Name}, vs).
				SetConfig(&data.FieldConfig{DisplayNameFromDS: s.Name}),
		)
		f.Meta = &data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1}}
		frames = append(frames, f)
	}
	return frames
}

// flowsFrame lists flow versions, name first (for variables).
func flowsFrame(fs []Flow) *data.Frame {
	n := len(fs)
	name, cps := make([]string, n), make([]string, n)
	version := make([]int64, n)
	for i, f := range fs {
		name[i], version[i] = f.Name, int64(f.Version)
		parts := make([]string, len(f.Checkpoints))
		for j, c := range f.Checkpoints {
			parts[j] = c.Name
		}
		cps[i] = strings.Join(parts, ", ")
	}
	f := data.NewFrame("flows",
		data.NewField("flow", nil, name),
		data.NewField("version", nil, version),
		data.NewField("checkpoints", nil, cps),
	)
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}
