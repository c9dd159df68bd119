package flowexporter

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is the flow exporter's configuration. Exactly one of Endpoint (a ClickHouse
// server) and Path (the embedded engine's data folder) names the store.
type Config struct {
	exporterhelper.TimeoutConfig `mapstructure:",squash"`
	// QueueConfig is exporterhelper's sending_queue; `storage: file_storage/NAME` makes it
	// persistent, so queued rows survive a collector restart.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// BackOffConfig is exporterhelper's retry_on_failure.
	configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// Endpoint is a ClickHouse server DSN over the native protocol:
	// clickhouse://host:9000[,host2:9000][/database]. TLS is TLS's (below), not the DSN's.
	Endpoint string `mapstructure:"endpoint"`
	// Path is the data folder of the embedded store (chDB, in this process).
	Path string `mapstructure:"path"`
	// Database holds the tables; default "flowwatch" (or the DSN's database).
	Database string `mapstructure:"database"`
	// Cluster, with Endpoint, creates and writes the cluster tables (ON CLUSTER, Distributed).
	Cluster string `mapstructure:"cluster"`
	// Username and Password override the DSN's.
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
	// TLS is the server connection's TLS, as every collector client takes it (configtls):
	// TLS unless `insecure: true`; ca_file (or ca_pem) for the server's authorities, with
	// include_system_ca_certs_pool; cert_file and key_file for a client certificate (mTLS);
	// insecure_skip_verify, server_name_override, min_version, reload_interval, …
	TLS configtls.ClientConfig `mapstructure:"tls"`
	// DialTimeout and ReadTimeout bound connecting to and every read from the server.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// CreateSchema applies the schema migrations on start (and on first contact with a
	// server that was down at start).
	CreateSchema bool `mapstructure:"create_schema"`
	// Retention drops stored rows older than this (whole days; 0 keeps everything). With
	// CreateSchema the exporter is the schema's owner: it sets the tables' TTL to this on
	// start, existing tables included (storage.Store.SetRetention); without, it leaves it.
	Retention time.Duration `mapstructure:"retention"`
	// A row keeps of its item only what a checkpoint needs, as strings, bounded; every cut is
	// counted (otelcol_exporter_flow_cut_values, otelcol_exporter_flow_dropped_attributes).
	//
	// Attributes names more attributes of the item a row keeps (for queries of one's own);
	// each is looked up on the item, then its span (for a span event), its scope and its
	// resource. Default: none — the row's columns (key, aliases, service, name, status,
	// message) and what the processor asks it to keep for its flow (flow.keep: a sub-flow's
	// parent key, a count of children a parent expects) are what a checkpoint needs.
	Attributes []string `mapstructure:"attributes"`
	// MaxMessageBytes cuts an item's status message, exception message or log body.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MaxValueBytes cuts the item's name, its service and each kept attribute value.
	MaxValueBytes int `mapstructure:"max_value_bytes"`
	// MaxAttributesBytes bounds the attributes a row keeps, names and values together; the
	// attributes past it are left out.
	MaxAttributesBytes int `mapstructure:"max_attributes_bytes"`
	// MaxKeyBytes bounds the identities of a row (tenant, flow, checkpoint, key, key attribute,
	// alias attributes and values). An identity cannot be cut without merging two instances,
	// so a longer one rejects the row, alone (otelcol_exporter_flow_rejected_rows).
	MaxKeyBytes int `mapstructure:"max_key_bytes"`
}

var _ component.Config = (*Config)(nil)

const day = 24 * time.Hour

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Endpoint == "" && c.Path == "":
		errs = append(errs, errors.New("one of 'endpoint' (a ClickHouse server) or 'path' (the embedded store's folder) is required"))
	case c.Endpoint != "" && c.Path != "":
		errs = append(errs, errors.New("'endpoint' and 'path' are exclusive: give one store"))
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("'endpoint' %q: want clickhouse://host:port[/database]", redact(c.Endpoint)))
		} else if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
			errs = append(errs, fmt.Errorf("'endpoint' scheme %q: only the native protocol (clickhouse:// or tcp://) is supported", u.Scheme))
		}
		if err == nil && (u.Query().Has("secure") || u.Query().Has("skip_verify")) {
			errs = append(errs, errors.New("'endpoint': TLS is set by 'tls' (on unless 'tls.insecure: true'), not by the DSN's secure or skip_verify"))
		}
	}
	if c.Path != "" && tlsSet(c.TLS) {
		errs = append(errs, errors.New("'tls' applies to a server 'endpoint', not the embedded 'path'"))
	}
	if c.Cluster != "" && c.Path != "" {
		errs = append(errs, errors.New("'cluster' needs a server 'endpoint', not the embedded 'path'"))
	}
	if c.Retention < 0 || (c.Retention > 0 && c.Retention%day != 0) {
		errs = append(errs, fmt.Errorf("'retention' must be 0 or a whole number of days (24h multiples), got %s", c.Retention))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("'dial_timeout' must not be negative"))
	}
	if c.ReadTimeout < 0 {
		errs = append(errs, errors.New("'read_timeout' must not be negative"))
	}
	seen := map[string]bool{}
	for i, a := range c.Attributes {
		switch {
		case strings.TrimSpace(a) == "":
			errs = append(errs, fmt.Errorf("'attributes[%d]' must not be empty", i))
		case seen[a]:
			errs = append(errs, fmt.Errorf("'attributes[%d]' %q is listed twice", i, a))
		}
		seen[a] = true
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"max_message_bytes", c.MaxMessageBytes}, {"max_value_bytes", c.MaxValueBytes},
		{"max_attributes_bytes", c.MaxAttributesBytes}, {"max_key_bytes", c.MaxKeyBytes}} {
		if l.v <= 0 {
			errs = append(errs, fmt.Errorf("'%s' must be greater than zero", l.key))
		}
	}
	return errors.Join(errs...)
}

// tlsSet reports whether t says more than whether to use TLS: certificates, keys or checks.
func tlsSet(t configtls.ClientConfig) bool {
	return t.CAFile != "" || len(t.CAPem) > 0 || t.CertFile != "" || len(t.CertPem) > 0 || t.KeyFile != "" ||
		len(t.KeyPem) > 0 || t.InsecureSkipVerify || t.ServerName != ""
}

// redact hides a DSN's password in messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if i := strings.Index(dsn, "@"); i >= 0 {
			return "***" + dsn[i:]
		}
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
