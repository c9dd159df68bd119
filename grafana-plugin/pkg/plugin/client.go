package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds what the client reads of one API answer.
const maxBody = 32 << 20

// Client reads the flowwatch query API v1 (DESIGN.md "Query API v1"). It is safe for
// concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client of the API at base (scheme and host, optionally a path prefix).
func NewClient(base *url.URL, token string, hc *http.Client) *Client {
	return &Client{base: base, token: token, http: hc}
}

// APIError is an answer of the API with a 4xx/5xx status.
type APIError struct {
	Status int
	// Message is the API's {"error": "..."} text, or the start of the body when the answer
	// was not the API's error shape.
	Message string
	// Path is the request path (no host, no token).
	Path string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("flowwatch API %s: HTTP %d: %s", e.Path, e.Status, e.Message)
}

// NotFlowwatchError says that the server answered with something that is not the flowwatch
// API's JSON.
type NotFlowwatchError struct {
	Path   string
	Status int
	Detail string
}

func (e *NotFlowwatchError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d, not a flowwatch API answer: %s", e.Path, e.Status, e.Detail)
}

// UnreachableError says the API could not be reached at all (DNS, connection refused,
// timeout, TLS).
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("GET %s: %v", e.Path, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Time is an RFC 3339 time that may be empty ("" or null) in the API's JSON.
type Time struct{ time.Time }

// UnmarshalJSON accepts an RFC 3339 string, "" or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" || s == `""` {
		t.Time = time.Time{}
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	v, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		return fmt.Errorf("time %q: %w", str, err)
	}
	t.Time = v
	return nil
}

// Flow is one flow version of GET /api/v1/flows.
type Flow struct {
	Name        string       `json:"name"`
	Version     int          `json:"version"`
	Checkpoints []Checkpoint `json:"checkpoints"`
}

// Checkpoint is one checkpoint of a flow: the API may list names or objects with a name.
type Checkpoint struct {
	Name    string `json:"name"`
	Service string `json:"service,omitempty"`
}

// UnmarshalJSON accepts "name" or {"name": ..., "service": ...}.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &c.Name)
	}
	type plain Checkpoint
	return json.Unmarshal(b, (*plain)(c))
}

// Expected is a checkpoint an instance awaits.
type Expected struct {
	Checkpoint string `json:"checkpoint"`
	Deadline   Time   `json:"deadline"`
	// Service owns the checkpoint (its match.service); may be empty.
	Service string `json:"service"`
	// Compensates is set on a compensation: the step it undoes.
	Compensates string `json:"compensates"`
	// Children is set on a children checkpoint: the child flow that reaches it.
	Children string `json:"children"`
}

// ErrorNote is the last error seen on an instance.
type ErrorNote struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	Message string `json:"message"`
	TraceID string `json:"trace_id"`
	Time    Time   `json:"time"`
}

// Reason explains why an instance is stuck.
type Reason struct {
	Checkpoint     string     `json:"checkpoint"`
	Since          Time       `json:"since"`
	Deadline       Time       `json:"deadline"`
	OverdueSeconds float64    `json:"overdue_seconds"`
	Service        string     `json:"service"`
	LastCheckpoint string     `json:"last_checkpoint"`
	LastError      *ErrorNote `json:"last_error"`
	TraceIDs       []string   `json:"trace_ids"`
	Summary        string     `json:"summary"`
}

// Event is one checkpoint of an instance, an error note (Checkpoint empty) or an operator
// action (Checkpoint "@cancel", "@unblock": see IsOperator).
type Event struct {
	Checkpoint string `json:"checkpoint"`
	Time       Time   `json:"time"`
	Service    string `json:"service"`
	Name       string `json:"name"`
	TraceID    string `json:"trace_id"`
	SpanID     string `json:"span_id"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

// IsOperator reports whether the event is an operator's action through the operator API
// rather than a checkpoint: its checkpoint starts with '@'.
func (e *Event) IsOperator() bool { return strings.HasPrefix(e.Checkpoint, "@") }

// Violation is a conformance problem of an instance.
type Violation struct {
	Kind       string `json:"kind"`
	Checkpoint string `json:"checkpoint"`
	Time       Time   `json:"time"`
	Detail     string `json:"detail"`
}

// Instance is one flow instance; Events and Violations are set only by Client.Instance.
type Instance struct {
	Tenant         string      `json:"tenant"`
	Flow           string      `json:"flow"`
	Version        int         `json:"version"`
	Key            string      `json:"key"`
	Status         string      `json:"status"`
	StartedAt      Time        `json:"started_at"`
	LastSeen       Time        `json:"last_seen"`
	LastCheckpoint string      `json:"last_checkpoint"`
	Expected       []Expected  `json:"expected"`
	Reason         *Reason     `json:"reason"`
	Events         []Event     `json:"events"`
	Violations     []Violation `json:"violations"`
}

// InstanceFilter selects instances; empty fields select everything.
type InstanceFilter struct {
	Flow, Status, Checkpoint, Tenant, Key string
	Limit                                 int
	Cursor                                string
}

// GraphNode is a checkpoint of a flow graph.
type GraphNode struct {
	ID    string `json:"id"`
	Count uint64 `json:"count"`
	Stuck uint64 `json:"stuck"`
}

// GraphEdge is a declared transition of a flow graph with what was observed on it.
type GraphEdge struct {
	Source string  `json:"source"`
	Target string  `json:"target"`
	Count  uint64  `json:"count"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
}

// Graph is the answer of GET /api/v1/flows/{flow}/graph.
type Graph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// Series is one named time series of GET /api/v1/flows/{flow}/series.
type Series struct {
	Name   string       `json:"name"`
	Points [][2]float64 `json:"points"` // [unix_ms, value]
}

// Flows lists the loaded flow versions. A server whose answer lacks "flows" is not
// flowwatch.
func (c *Client) Flows(ctx context.Context) ([]Flow, error) {
	var out struct {
		Flows *[]Flow `json:"flows"`
	}
	const path = "/api/v1/flows"
	status, err := c.get(ctx, path, nil, &out)
	if err != nil {
		return nil, err
	}
	if out.Flows == nil {
		return nil, &NotFlowwatchError{Path: path, Status: status, Detail: `the JSON has no "flows" list`}
	}
	return *out.Flows, nil
}

// Instances returns one page of instances and the cursor of the next ("" at the end).
func (c *Client) Instances(ctx context.Context, f InstanceFilter) ([]Instance, string, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("flow", f.Flow)
	set("status", f.Status)
	set("checkpoint", f.Checkpoint)
	set("tenant", f.Tenant)
	set("key", f.Key)
	set("cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct {
		Instances *[]Instance `json:"instances"`
		Next      string      `json:"next_cursor"`
	}
	const path = "/api/v1/instances"
	status, err := c.get(ctx, path, q, &out)
	if err != nil {
		return nil, "", err
	}
	if out.Instances == nil {
		return nil, "", &NotFlowwatchError{Path: path, Status: status, Detail: `the JSON has no "instances" list`}
	}
	return *out.Instances, out.Next, nil
}

// Instance returns one instance with its events and violations. tenant may be empty.
func (c *Client) Instance(ctx context.Context, tenant, flow, key string) (*Instance, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var out Instance
	if _, err := c.get(ctx, "/api/v1/flows/"+url.PathEscape(flow)+"/instances/"+url.PathEscape(key), q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Graph returns the flow graph over [from, to).
func (c *Client) Graph(ctx context.Context, tenant, flow string, from, to time.Time) (*Graph, error) {
	q := rangeQuery(tenant, from, to)
	var out Graph
	if _, err := c.get(ctx, "/api/v1/flows/"+url.PathEscape(flow)+"/graph", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Series returns counts over time by "status" or "checkpoint", one point per step.
func (c *Client) Series(ctx context.Context, tenant, flow, by string, from, to time.Time, step time.Duration) ([]Series, error) {
	q := rangeQuery(tenant, from, to)
	q.Set("by", by)
	q.Set("step", step.String())
	var out struct {
		Series []Series `json:"series"`
	}
	if _, err := c.get(ctx, "/api/v1/flows/"+url.PathEscape(flow)+"/series", q, &out); err != nil {
		return nil, err
	}
	return out.Series, nil
}

func rangeQuery(tenant string, from, to time.Time) url.Values {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	q.Set("from", from.UTC().Format(time.RFC3339Nano))
	q.Set("to", to.UTC().Format(time.RFC3339Nano))
	return q
}

// get fetches path with the query q and decodes the JSON answer into dst. It returns the
// HTTP status, and an *APIError, *NotFlowwatchError or *UnreachableError.
func (c *Client) get(ctx context.Context, path string, q url.Values, dst any) (int, error) {
	// path is escaped already (keys may hold '/', which must stay one segment).
	u, err := url.Parse(strings.TrimSuffix(c.base.String(), "/") + path)
	if err != nil {
		return 0, fmt.Errorf("build URL for %s: %w", path, err)
	}
	u.RawQuery = q.Encode()
	show := path
	if u.RawQuery != "" {
		show += "?" + u.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("build request GET %s: %w", show, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in Path already
		}
		return 0, &UnreachableError{Path: show, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, &UnreachableError{Path: show, Err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error *string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != nil {
			return resp.StatusCode, &APIError{Status: resp.StatusCode, Message: *e.Error, Path: show}
		}
		return resp.StatusCode, &APIError{Status: resp.StatusCode, Message: snippet(body), Path: show}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return resp.StatusCode, &NotFlowwatchError{Path: show, Status: resp.StatusCode,
			Detail: fmt.Sprintf("%v (answer starts %q)", err, snippet(body))}
	}
	return resp.StatusCode, nil
}

// snippet returns the start of a body, on one line.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 120 {
		b = b[:120]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
