// Package plugin is the backend of the flowwatch Grafana data source: it answers Grafana's
// queries, health checks and resource calls by reading the flowwatch query API v1 over
// HTTP, and turns the answers into data frames (tables, Node Graph frames, time series).
//
// It holds no state beyond its settings and never reads the store directly: everything
// goes through the API, with the configured bearer token.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/httpclient"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// PluginID is the plugin's id in plugin.json.
const PluginID = "flowwatch-flowwatch-datasource"

// The interfaces the data source serves.
var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Bounds of one request: the API pages read for one instances query, and the queries of
// one request run at once.
const (
	maxPages             = 50
	maxConcurrentQueries = 4
)

// Datasource is one configured flowwatch data source.
type Datasource struct {
	settings Settings
	// configErr is what is wrong with the settings; queries and health checks report it.
	configErr error
	client    *Client
	links     links
	now       func() time.Time
	resources backend.CallResourceHandler
}

// NewDatasource is the instance factory of datasource.Manage. Settings problems do not fail
// it: they are reported, in words, by every query and health check.
func NewDatasource(ctx context.Context, in backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	return newDatasource(ctx, in, time.Now)
}

func newDatasource(ctx context.Context, in backend.DataSourceInstanceSettings, now func() time.Time) (*Datasource, error) {
	s, base, cfgErr := LoadSettings(in)
	ds := &Datasource{settings: s, configErr: cfgErr, links: newLinks(s), now: now}
	opts, err := in.HTTPClientOptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("http client options: %w", err)
	}
	opts.Timeouts = &httpclient.TimeoutOptions{Timeout: s.Timeout(), DialTimeout: 10 * time.Second,
		KeepAlive: 30 * time.Second, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 90 * time.Second,
		MaxIdleConns: 10, MaxIdleConnsPerHost: 10}
	hc, err := httpclient.New(opts)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	if base != nil {
		ds.client = NewClient(base, s.Token, hc)
	}
	ds.resources = ds.resourceHandler()
	return ds, nil
}

// Dispose is called when the settings change; nothing to release but idle connections.
func (d *Datasource) Dispose() {
	if d.client != nil {
		d.client.http.CloseIdleConnections()
	}
}

// QueryData answers each query on its own, a few at once: one DataResponse per RefID, with
// its own error.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxConcurrentQueries)
	)
	for _, q := range req.Queries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := d.query(ctx, q)
			mu.Lock()
			resp.Responses[q.RefID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, dq backend.DataQuery) backend.DataResponse {
	q, err := ParseQuery(dq.QueryType, dq.JSON)
	if err != nil {
		return errorResponse(err)
	}
	if d.configErr != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			"the flowwatch data source is misconfigured: "+d.configErr.Error())
	}
	if q.Tenant == "" {
		q.Tenant = d.settings.Tenant
	}
	var frames data.Frames
	switch q.QueryType {
	case QueryInstances:
		frames, err = d.queryInstances(ctx, q)
	case QueryTimeline:
		frames, err = d.queryTimeline(ctx, q)
	case QueryGraph:
		var g *Graph
		g, err = d.client.Graph(ctx, q.Tenant, q.Flow, dq.TimeRange.From, dq.TimeRange.To)
		if err == nil {
			frames = graphFrames(g)
		}
	case QuerySeries:
		step := q.step(dq.Interval, dq.TimeRange.Duration())
		var ss []Series
		ss, err = d.client.Series(ctx, q.Tenant, q.Flow, q.By, dq.TimeRange.From, dq.TimeRange.To, step)
		if err == nil {
			frames = seriesFrames(q.Flow, q.By, ss)
		}
	case QueryFlows:
		var fs []Flow
		fs, err = d.client.Flows(ctx)
		if err == nil {
			frames = data.Frames{flowsFrame(fs)}
		}
	}
	if err != nil {
		return errorResponse(err)
	}
	for _, f := range frames {
		f.RefID = dq.RefID
	}
	return backend.DataResponse{Frames: frames}
}

func (d *Datasource) queryInstances(ctx context.Context, q Query) (data.Frames, error) {
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	f := InstanceFilter{Flow: q.Flow, Status: q.Status, Checkpoint: q.Checkpoint, Tenant: q.Tenant, Key: q.Key}
	var all []Instance
	for page := 0; page < maxPages && len(all) < limit; page++ {
		f.Limit = min(limit-len(all), 1000)
		insts, next, err := d.client.Instances(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, in := range insts {
			// the API may not filter on key: keep only what was asked for
			if q.Key == "" || in.Key == q.Key {
				all = append(all, in)
			}
		}
		if next == "" || len(insts) == 0 {
			break
		}
		f.Cursor = next
	}
	if len(all) > limit {
		all = all[:limit]
	}
	return data.Frames{instancesFrame("instances", all, d.links)}, nil
}

func (d *Datasource) queryTimeline(ctx context.Context, q Query) (data.Frames, error) {
	in, err := d.client.Instance(ctx, q.Tenant, q.Flow, q.Key)
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return nil, userErrorf("no instance %q in flow %q (is the key right, and has flowwatch seen its first checkpoint?)", q.Key, q.Flow)
		}
		return nil, err
	}
	return timelineFrames(in, d.now(), d.links), nil
}

// errorResponse maps an error to a DataResponse: what the user asked or configured, and
// what the API said, are downstream errors; anything else is the plugin's.
func errorResponse(err error) backend.DataResponse {
	var (
		ue  *userError
		ae  *APIError
		nf  *NotFlowwatchError
		unr *UnreachableError
	)
	switch {
	case errors.As(err, &ue):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, ue.Error())
	case errors.As(err, &ae):
		msg := ae.Error()
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += " (check the API token in the data source settings)"
		}
		return backend.ErrDataResponseWithSource(backend.Status(ae.Status), backend.ErrorSourceDownstream, msg)
	case errors.As(err, &nf):
		return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream,
			nf.Error()+" (does the data source URL point at flowwatch?)")
	case errors.As(err, &unr):
		st := backend.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			st = backend.StatusTimeout
		}
		return backend.ErrDataResponseWithSource(st, backend.ErrorSourceDownstream, "cannot reach the flowwatch API: "+unr.Error())
	}
	return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, err.Error())
}

// redactURL drops credentials from a URL shown to the user.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}
