package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"
)

// maxKeys bounds the keys the keys resource returns.
const maxKeys = 1000

// CallResource serves the frontend's look-ups: GET flows (flow versions with checkpoint
// names, for the query editor) and GET keys?flow=&status=&tenant= (instance keys, for the
// dashboard variable).
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	return d.resources.CallResource(ctx, req, sender)
}

func (d *Datasource) resourceHandler() backend.CallResourceHandler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /flows", d.handleFlows)
	mux.HandleFunc("GET /keys", d.handleKeys)
	return httpadapter.New(mux)
}

// FlowInfo is one flow of the flows resource.
type FlowInfo struct {
	Name        string   `json:"name"`
	Versions    []int    `json:"versions"`
	Checkpoints []string `json:"checkpoints"`
}

func (d *Datasource) handleFlows(w http.ResponseWriter, r *http.Request) {
	if !d.ready(w) {
		return
	}
	flows, err := d.client.Flows(r.Context())
	if err != nil {
		writeResourceError(w, err)
		return
	}
	byName := map[string]*FlowInfo{}
	var out []*FlowInfo
	for _, f := range flows {
		fi := byName[f.Name]
		if fi == nil {
			fi = &FlowInfo{Name: f.Name}
			byName[f.Name] = fi
			out = append(out, fi)
		}
		fi.Versions = append(fi.Versions, f.Version)
		for _, c := range f.Checkpoints {
			if !slices.Contains(fi.Checkpoints, c.Name) {
				fi.Checkpoints = append(fi.Checkpoints, c.Name)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"flows": out})
}

func (d *Datasource) handleKeys(w http.ResponseWriter, r *http.Request) {
	if !d.ready(w) {
		return
	}
	v := r.URL.Query()
	q := Query{QueryType: QueryInstances, Flow: v.Get("flow"), Status: v.Get("status"),
		Tenant: v.Get("tenant"), Limit: maxKeys}
	if err := q.validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if q.Tenant == "" {
		q.Tenant = d.settings.Tenant
	}
	frames, err := d.queryInstances(r.Context(), q)
	if err != nil {
		writeResourceError(w, err)
		return
	}
	keyField := frames[0].Fields[0]
	keys := make([]string, 0, keyField.Len())
	for i := range keyField.Len() {
		keys = append(keys, keyField.At(i).(string))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (d *Datasource) ready(w http.ResponseWriter) bool {
	if d.configErr != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the flowwatch data source is misconfigured: " + d.configErr.Error()})
		return false
	}
	return true
}

func writeResourceError(w http.ResponseWriter, err error) {
	status := http.StatusBadGateway
	var ae *APIError
	if errors.As(err, &ae) {
		status = ae.Status
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
