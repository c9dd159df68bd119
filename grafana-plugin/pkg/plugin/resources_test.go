package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// callResource calls a resource of the data source over gRPC.
func callResource(t *testing.T, s *backend.DataSourceInstanceSettings, path string) (int, map[string]any) {
	t.Helper()
	var got *backend.CallResourceResponse
	p, _, _ := strings.Cut(path, "?") // Grafana sends the path apart, the query in URL
	err := startPlugin(t).CallResource(context.Background(), &backend.CallResourceRequest{
		PluginContext: pluginContext(s), Path: p, Method: http.MethodGet, URL: path,
	}, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error {
		got = r
		return nil
	}))
	if err != nil {
		t.Fatalf("CallResource %s over gRPC: %v", path, err)
	}
	var body map[string]any
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatalf("%s: %v in %q", path, err, got.Body)
	}
	return got.Status, body
}

func TestResources(t *testing.T) {
	s := fakeSettings(t, &recorder{})

	status, body := callResource(t, s, "flows")
	want := `{"flows":[{"checkpoints":["placed","paid","shipped","stock_reserved"],"name":"order-fulfilment","versions":[1,2]},{"checkpoints":["requested","refunded"],"name":"refund","versions":[1]}]}`
	if b, _ := json.Marshal(body); status != http.StatusOK || string(b) != want {
		t.Errorf("flows: %d %s\nwant %s", status, b, want)
	}

	status, body = callResource(t, s, "keys?flow=order-fulfilment&status=stuck")
	if b, _ := json.Marshal(body); status != http.StatusOK || string(b) != `{"keys":["o-1"]}` {
		t.Errorf("keys: %d %s", status, b)
	}

	status, body = callResource(t, s, "keys?flow=order-fulfilment&status=asleep")
	if status != http.StatusBadRequest || body["error"] == nil {
		t.Errorf("keys with a bad status: %d %v", status, body)
	}

	status, body = callResource(t, dsSettings(0, s.URL, "wrong", nil), "flows")
	if status != http.StatusUnauthorized || body["error"] == nil {
		t.Errorf("flows with a bad token: %d %v", status, body)
	}
}
