package flowprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/flowwatch/flowwatch/collector/flowprocessor/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string
	}{
		{
			id:   component.NewID(metadata.Type),
			want: &Config{Flows: []string{"testdata/flows"}, TenantAttribute: "tenant.id"},
		},
		{
			id: component.NewIDWithName(metadata.Type, "custom"),
			want: &Config{
				Flows:           []string{"testdata/flows/orders.yaml", "testdata/flows/payment.yaml"},
				TenantAttribute: "customer.id",
				DropUnmatched:   true,
				ReloadInterval:  30 * time.Second,
			},
		},
		{
			id: component.NewIDWithName(metadata.Type, "invalid"),
			wantErr: []string{
				"'flows[0]' must not be empty",
				"'tenant_attribute' must not be empty",
				"'reload_interval' must not be negative (0 turns reloading off)",
			},
		},
		{
			id:      component.NewIDWithName(metadata.Type, "empty"),
			wantErr: []string{"'flows' must name at least one flow file or folder"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, want := range tt.wantErr {
					assert.Contains(t, err.Error(), want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, "tenant.id", cfg.TenantAttribute)
	assert.False(t, cfg.DropUnmatched)
	assert.Zero(t, cfg.ReloadInterval)
	// the default lacks flows: a configuration must name them.
	assert.ErrorContains(t, cfg.Validate(), "'flows' must name at least one")
}

func TestUnknownKeyIsRejected(t *testing.T) {
	cfg := createDefaultConfig()
	err := confmap.NewFromStringMap(map[string]any{"flows": []any{"x"}, "drop_unmached": true}).Unmarshal(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "drop_unmached")
}
