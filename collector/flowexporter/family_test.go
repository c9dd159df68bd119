package flowexporter

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/flowwatch/flowwatch/collector/flowattr"
	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
	"github.com/flowwatch/flowwatch/storage"
)

// What the processor asks a row to keep for its flow (a child's parent key, a parent's count
// of children) is kept on that match's row only, beside the attributes Config.Attributes
// keeps on every row of the item; a kept value that is no storable identity is left out.
func TestRowsKeepWhatTheirFlowNeeds(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Attributes = []string{"http.method"}
	cfg.MaxKeyBytes = 24
	e, err := newFlowExporter(exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()}, cfg)
	require.NoError(t, err)
	td := ptrace.NewTraces()
	annotatedSpan(td, "warehouse", "pack", base, 1, 1,
		flowattr.Match{Flow: "shipment", Checkpoint: "packed", Key: "s-1", KeyAttr: "shipment.id", Tenant: "acme",
			Keep: []flowattr.Alias{{Attr: storage.AttrParentKey, Value: "o-1"}, {Attr: "too.long", Value: strings.Repeat("x", 25)}}},
		flowattr.Match{Flow: "order", Checkpoint: "packed", Key: "o-1", KeyAttr: "order.id", Tenant: "acme",
			Keep: []flowattr.Alias{{Attr: "order.parcel_count", Value: "2"}}},
	)
	req := e.convertTraces(td)
	require.Equal(t, 2, req.rows.Len())
	attrs := func(i int) map[string]string {
		out := map[string]string{}
		for _, a := range req.rows.Attributes(i) {
			out[a.Key] = a.Value
		}
		return out
	}
	assert.Equal(t, map[string]string{"http.method": "POST", storage.AttrParentKey: "o-1"}, attrs(0))
	assert.Equal(t, map[string]string{"http.method": "POST", "order.parcel_count": "2"}, attrs(1))
}
