package plugin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// QueryType names what a query asks for.
type QueryType string

// The query types; the frontend's QueryType enum and the dashboards use the same strings.
const (
	// QueryInstances lists instances as a table (filters flow, status, checkpoint, tenant,
	// key) with links to their traces.
	QueryInstances QueryType = "instances"
	// QueryTimeline shows one instance: its checkpoints and expected checkpoints over time,
	// its stuck reason and its violations.
	QueryTimeline QueryType = "timeline"
	// QueryGraph is the flow graph for the Node Graph panel (frames nodes and edges).
	QueryGraph QueryType = "graph"
	// QuerySeries counts over time by status or checkpoint, one frame per series; usable by
	// alert rules.
	QuerySeries QueryType = "series"
	// QueryFlows lists the loaded flow versions and their checkpoints.
	QueryFlows QueryType = "flows"
)

// QueryTypes lists every query type.
var QueryTypes = []QueryType{QueryInstances, QueryTimeline, QueryGraph, QuerySeries, QueryFlows}

// Statuses are the instance statuses a query may filter on.
var Statuses = []string{"running", "completed", "failed", "stuck", "compensating", "compensated", "cancelled"}

// Series groupings.
const (
	ByStatus     = "status"
	ByCheckpoint = "checkpoint"
)

// Bounds of a query.
const (
	DefaultLimit = 100
	MaxLimit     = 5000
	// MaxPoints bounds the points of one series; the step grows to fit.
	MaxPoints = 11000
	MinStep   = time.Second
)

// Query is the JSON model of one query (the frontend's FlowwatchQuery).
type Query struct {
	QueryType  QueryType `json:"queryType"`
	Flow       string    `json:"flow"`
	Status     string    `json:"status"`
	Checkpoint string    `json:"checkpoint"`
	Tenant     string    `json:"tenant"`
	Key        string    `json:"key"`
	// By groups series: "status" (default) or "checkpoint".
	By string `json:"by"`
	// Step of series as a Go duration ("1m"); empty uses the panel's interval.
	Step string `json:"step"`
	// Limit bounds the instances listed (default DefaultLimit).
	Limit int `json:"limit"`
}

// userError is a problem with what the user asked; it is reported as a downstream (user)
// error with HTTP 400.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...)}
}

// ParseQuery reads a query's JSON; queryType, when set by Grafana outside the JSON, wins.
func ParseQuery(queryType string, raw json.RawMessage) (Query, error) {
	var q Query
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &q); err != nil {
			return q, userErrorf("the query cannot be read: %v", err)
		}
	}
	if queryType != "" {
		q.QueryType = QueryType(queryType)
	}
	if q.QueryType == "" {
		q.QueryType = QueryInstances
	}
	q.Flow = strings.TrimSpace(q.Flow)
	q.Key = strings.TrimSpace(q.Key)
	q.Tenant = strings.TrimSpace(q.Tenant)
	q.Checkpoint = strings.TrimSpace(q.Checkpoint)
	q.Status = strings.TrimSpace(q.Status)
	return q, q.validate()
}

func (q *Query) validate() error {
	if !slices.Contains(QueryTypes, q.QueryType) {
		return userErrorf("unknown query type %q: use one of %s", q.QueryType, joinTypes(QueryTypes))
	}
	if q.Status != "" && !slices.Contains(Statuses, q.Status) {
		return userErrorf("unknown status %q: use one of %s", q.Status, strings.Join(Statuses, ", "))
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return userErrorf("limit %d is out of range: use 1 to %d (0 means %d)", q.Limit, MaxLimit, DefaultLimit)
	}
	switch q.QueryType {
	case QueryTimeline:
		if q.Flow == "" || q.Key == "" {
			return userErrorf("an instance timeline needs a flow and a key")
		}
	case QueryGraph:
		if q.Flow == "" {
			return userErrorf("a flow graph needs a flow")
		}
	case QuerySeries:
		if q.Flow == "" {
			return userErrorf("counts over time need a flow")
		}
		if q.By == "" {
			q.By = ByStatus
		}
		if q.By != ByStatus && q.By != ByCheckpoint {
			return userErrorf("counts over time are by %q or %q, not %q", ByStatus, ByCheckpoint, q.By)
		}
		if q.Step != "" {
			d, err := time.ParseDuration(q.Step)
			if err != nil || d < MinStep {
				return userErrorf("step %q is not a duration of at least 1s (e.g. 30s, 5m)", q.Step)
			}
		}
	}
	return nil
}

// step returns the series step: the query's, else the panel interval, at least MinStep,
// grown so that [from, to) holds at most MaxPoints.
func (q *Query) step(interval, span time.Duration) time.Duration {
	d := interval
	if q.Step != "" {
		d, _ = time.ParseDuration(q.Step) // validated
	}
	if d < MinStep {
		d = MinStep
	}
	if span > 0 && span/d > MaxPoints {
		d = (span/MaxPoints + time.Second - 1).Truncate(time.Second)
		if d < MinStep {
			d = MinStep
		}
	}
	return d
}

func joinTypes(ts []QueryType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
