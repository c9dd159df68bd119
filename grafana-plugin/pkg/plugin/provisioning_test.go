package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// pluginDir is grafana-plugin/, from this package's folder.
var pluginDir = filepath.Join("..", "..")

// variableQuery is the syntax of the frontend's parseVariableQuery (src/datasource.ts).
var variableQuery = regexp.MustCompile(`^(flows|(checkpoints|keys) flow=\S+( (status|tenant)=\S+)*)$`)

type provisionedDatasource struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	Access         string            `yaml:"access"`
	URL            string            `yaml:"url"`
	IsDefault      bool              `yaml:"isDefault"`
	Editable       bool              `yaml:"editable"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

func readProvisionedDatasources(t *testing.T) []provisionedDatasource {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pluginDir, "provisioning", "datasources", "flowwatch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion  int                     `yaml:"apiVersion"`
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("datasources/flowwatch.yaml: %v", err)
	}
	if doc.APIVersion != 1 || len(doc.Datasources) != 1 {
		t.Fatalf("datasources/flowwatch.yaml: apiVersion %d, %d data sources; want 1 and 1", doc.APIVersion, len(doc.Datasources))
	}
	return doc.Datasources
}

// The provisioned data source is this plugin, with the token as a secure setting.
func TestProvisionedDatasource(t *testing.T) {
	ds := readProvisionedDatasources(t)[0]
	if ds.Type != PluginID {
		t.Errorf("type %q, want %q", ds.Type, PluginID)
	}
	if ds.UID == "" || ds.Access != "proxy" {
		t.Errorf("uid %q access %q: want a uid and proxy access (a backend plugin)", ds.UID, ds.Access)
	}
	if ds.URL != "$FLOWWATCH_API_URL" || ds.SecureJSONData[SecureTokenKey] != "$FLOWWATCH_TOKEN" {
		t.Errorf("url %q token %q: want them from FLOWWATCH_API_URL and FLOWWATCH_TOKEN (deploy/compose sets both)", ds.URL, ds.SecureJSONData[SecureTokenKey])
	}
	if _, ok := ds.JSONData[SecureTokenKey]; ok {
		t.Error("the token must be in secureJsonData, not jsonData")
	}
	// jsonData must be what the backend reads
	b, _ := json.Marshal(ds.JSONData)
	var s Settings
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Errorf("jsonData %s is not the backend's settings: %v", b, err)
	}
}

// plugin.json names the plugin and executable the backend and the build use.
func TestPluginJSON(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(pluginDir, "src", "plugin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type, ID, Executable string
		Backend, Alerting    bool
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("plugin.json: %v", err)
	}
	if p.Type != "datasource" || p.ID != PluginID || p.Executable != "gpx_flowwatch" || !p.Backend || !p.Alerting {
		t.Errorf("plugin.json = %+v", p)
	}
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Datasource *dsRef `json:"datasource"`
			Query      any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource *dsRef            `json:"datasource"`
	RawTargets []json.RawMessage `json:"targets"`
	Panels     []panel           `json:"panels"` // rows
}

func readDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(pluginDir, "provisioning", "dashboards", "flowwatch", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || out[d.UID].UID != "" {
			t.Fatalf("%s: empty or duplicate uid %q", f, d.UID)
		}
		out[d.UID] = d
	}
	return out
}

// Every query of every dashboard is a valid query of this plugin, on the provisioned data
// source; every variable query is one the frontend understands.
func TestDashboardsQueryProvisionedDatasource(t *testing.T) {
	ds := readProvisionedDatasources(t)[0]
	dashboards := readDashboards(t)
	checkRef := func(where string, r *dsRef) {
		if r == nil || r.UID != ds.UID || r.Type != ds.Type {
			t.Errorf("%s: datasource %+v, want {type %s, uid %s}", where, r, ds.Type, ds.UID)
		}
	}
	for uid, d := range dashboards {
		vars := map[string]bool{"__url_time_range": true}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type != "query" {
				continue
			}
			where := uid + " variable " + v.Name
			checkRef(where, v.Datasource)
			q, _ := v.Query.(string)
			if !variableQuery.MatchString(q) {
				t.Errorf("%s: query %q is not a variable query of the plugin (flows | checkpoints flow=F | keys flow=F [status=S] [tenant=T])", where, q)
			}
		}
		var walk func([]panel)
		n := 0
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				where := uid + " panel " + p.Title
				checkRef(where, p.Datasource)
				if len(p.RawTargets) == 0 {
					t.Errorf("%s: no queries", where)
				}
				for _, raw := range p.RawTargets {
					n++
					var tg struct {
						Datasource *dsRef `json:"datasource"`
						QueryType  string `json:"queryType"`
						RefID      string `json:"refId"`
					}
					if err := json.Unmarshal(raw, &tg); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					checkRef(where+" query "+tg.RefID, tg.Datasource)
					// the backend must accept it, with the variables given some value
					expanded := regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(string(raw), func(m string) string {
						name := strings.Trim(m, "${}")
						if !vars[name] {
							t.Errorf("%s: %s is not a variable of the dashboard", where, m)
						}
						return "value"
					})
					q, err := ParseQuery("", json.RawMessage(expanded))
					if err != nil {
						t.Errorf("%s: the backend rejects the query: %v", where, err)
					}
					if !slices.Contains(QueryTypes, QueryType(tg.QueryType)) {
						t.Errorf("%s: query type %q is not one of %v", where, tg.QueryType, QueryTypes)
					}
					if q.QueryType == QueryGraph && p.Type != "nodeGraph" {
						t.Errorf("%s: a flow graph query belongs in a nodeGraph panel, not %s", where, p.Type)
					}
				}
			}
		}
		walk(d.Panels)
		if n == 0 {
			t.Errorf("%s: no queries", uid)
		}
	}
}

// The overview has a node graph, counts by status and stuck instances; the drill-down is
// the dashboard instance keys link to, with variables flow and key.
func TestDashboardsContent(t *testing.T) {
	dashboards := readDashboards(t)
	overview, ok := dashboards["flowwatch-overview"]
	if !ok {
		t.Fatal("no flowwatch-overview dashboard")
	}
	var haveGraph, haveSeries, haveStuck bool
	for _, p := range overview.Panels {
		for _, raw := range p.RawTargets {
			q, _ := ParseQuery("", raw)
			switch {
			case q.QueryType == QueryGraph && p.Type == "nodeGraph":
				haveGraph = true
			case q.QueryType == QuerySeries && q.By == ByStatus && p.Type == "timeseries":
				haveSeries = true
			case q.QueryType == QueryInstances && q.Status == "stuck" && p.Type == "table":
				haveStuck = true
			}
		}
	}
	if !haveGraph || !haveSeries || !haveStuck {
		t.Errorf("overview: node graph %v, counts by status %v, stuck instances %v; want all", haveGraph, haveSeries, haveStuck)
	}
	drill, ok := dashboards[DrillDownDashboardUID]
	if !ok {
		t.Fatalf("no %s dashboard (instance keys link to it)", DrillDownDashboardUID)
	}
	var names []string
	for _, v := range drill.Templating.List {
		names = append(names, v.Name)
	}
	for _, want := range []string{"flow", "key"} {
		if !slices.Contains(names, want) {
			t.Errorf("drill-down variables %v lack %q", names, want)
		}
	}
	var haveTimeline bool
	for _, p := range drill.Panels {
		for _, raw := range p.RawTargets {
			if q, _ := ParseQuery("", raw); q.QueryType == QueryTimeline && q.Flow == "$flow" && q.Key == "$key" {
				haveTimeline = true
			}
		}
	}
	if !haveTimeline {
		t.Error("drill-down: no instance timeline of $flow and $key")
	}
}
