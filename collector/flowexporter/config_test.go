package flowexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/flowwatch/flowwatch/collector/flowexporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	load := func(t *testing.T, id component.ID) (*Config, error) {
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		sub, err := cm.Sub(id.String())
		require.NoError(t, err)
		require.NoError(t, sub.Unmarshal(cfg))
		return cfg, confmap.Validate(cfg)
	}

	t.Run("embedded", func(t *testing.T) {
		cfg, err := load(t, component.NewID(metadata.Type))
		require.NoError(t, err)
		assert.Equal(t, "./data/flowwatch", cfg.Path)
		assert.True(t, cfg.CreateSchema)
		assert.Equal(t, 30*24*time.Hour, cfg.Retention)
		assert.Equal(t, 30*time.Second, cfg.ReadTimeout)
		q := cfg.QueueConfig.Get()
		require.NotNil(t, q)
		require.True(t, q.Batch.HasValue(), "the sending queue batches by default, after the queue")
		assert.Equal(t, int64(defaultBatchMinRows), q.Batch.Get().MinSize)
		assert.Equal(t, "items", q.Batch.Get().Sizer.String())
		assert.Equal(t, defaultMaxKeyBytes, cfg.MaxKeyBytes)
		assert.Empty(t, cfg.Attributes, "rows keep no item attribute unless asked")
	})

	t.Run("server", func(t *testing.T) {
		cfg, err := load(t, component.NewIDWithName(metadata.Type, "server"))
		require.NoError(t, err)
		assert.Equal(t, "main", cfg.Cluster)
		assert.False(t, cfg.TLS.Insecure, "TLS unless tls.insecure")
		assert.Equal(t, "/etc/flowwatch/clickhouse-ca.crt", cfg.TLS.CAFile)
		assert.Equal(t, "/etc/flowwatch/collector.crt", cfg.TLS.CertFile)
		assert.Equal(t, "/etc/flowwatch/collector.key", cfg.TLS.KeyFile)
		assert.Equal(t, "1.3", cfg.TLS.MinVersion)
		assert.Equal(t, "writer", cfg.Username)
		assert.Equal(t, "s3cret", string(cfg.Password))
		assert.False(t, cfg.CreateSchema)
		assert.Equal(t, 5*time.Second, cfg.ReadTimeout)
		assert.Equal(t, 10*time.Second, cfg.Timeout)
		q := cfg.QueueConfig.Get()
		require.NotNil(t, q)
		require.NotNil(t, q.StorageID)
		assert.Equal(t, "file_storage/flow", q.StorageID.String())
		assert.Equal(t, int64(5000), q.QueueSize)
		require.True(t, q.Batch.HasValue())
		assert.Equal(t, 2*time.Second, q.Batch.Get().FlushTimeout)
		assert.Equal(t, int64(defaultBatchMaxRows), q.Batch.Get().MaxSize, "unset keys keep their default")
		assert.Equal(t, 64, cfg.MaxValueBytes)
		assert.Equal(t, []string{"order.parcel_count"}, cfg.Attributes)
		assert.Equal(t, time.Second, cfg.InitialInterval)
		assert.Equal(t, time.Duration(0), cfg.MaxElapsedTime)
	})

	t.Run("bad", func(t *testing.T) {
		_, err := load(t, component.NewIDWithName(metadata.Type, "bad"))
		require.Error(t, err)
		for _, want := range []string{
			"'endpoint' and 'path' are exclusive: give one store",
			`'endpoint' scheme "http": only the native protocol (clickhouse:// or tcp://) is supported`,
			"'endpoint': TLS is set by 'tls' (on unless 'tls.insecure: true'), not by the DSN's secure or skip_verify",
			"'tls' applies to a server 'endpoint', not the embedded 'path'",
			"'retention' must be 0 or a whole number of days (24h multiples), got 36h0m0s",
			"'read_timeout' must not be negative",
			"'max_key_bytes' must be greater than zero",
			"'max_attributes_bytes' must be greater than zero",
			"'attributes[1]' must not be empty",
			`'attributes[2]' "order.parcel_count" is listed twice`,
		} {
			assert.ErrorContains(t, err, want)
		}
	})

	t.Run("no store", func(t *testing.T) {
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		assert.EqualError(t, cfg.Validate(), "one of 'endpoint' (a ClickHouse server) or 'path' (the embedded store's folder) is required")
	})
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "clickhouse://u:xxxxx@h:9000/db", redact("clickhouse://u:pw@h:9000/db"))
	assert.Equal(t, "clickhouse://h:9000", redact("clickhouse://h:9000"))
}
