package detector

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/model"
)

// FileConfig is the YAML configuration of `flowwatch detector --config FILE`. Any value may
// be or hold ${env:NAME} references (${env:NAME:-default} gives a default; $$ is a literal $),
// so that secrets come from the environment rather than the file.
type FileConfig struct {
	Store StoreConfig `yaml:"store"`
	// Flows are flow files or folders.
	Flows []string `yaml:"flows"`
	// FlowsReload is how often flow files are re-read (a broken edit keeps the last good set).
	FlowsReload Duration `yaml:"flows_reload"`
	Tick        Duration `yaml:"tick"`
	Shard       struct {
		Index int `yaml:"index"`
		Count int `yaml:"count"`
	} `yaml:"shard"`
	// Listen is the address of the query API, /metrics, /healthz and /readyz.
	Listen string `yaml:"listen"`
	// Token is the API's bearer token (env FLOWWATCH_TOKEN overrides).
	Token    string `yaml:"token"`
	Alerting struct {
		// Alertmanagers are every replica, each a base URL or {url, http_config}.
		Alertmanagers     []AlertmanagerFile `yaml:"alertmanagers"`
		Webhooks          []Hook             `yaml:"webhooks"`
		GroupByCheckpoint bool               `yaml:"group_by_checkpoint"`
		Resend            Duration           `yaml:"resend"`
		// ExternalURL is the query API's base URL as users reach it: alerts link to their
		// instance there (generatorURL), and webhooks carry it as externalURL.
		ExternalURL string `yaml:"external_url"`
	} `yaml:"alerting"`
	Sinks         []SinkFile `yaml:"sinks"`
	Overlap       Duration   `yaml:"overlap"`
	MaxOpen       int        `yaml:"max_open"`
	RebuildWindow Duration   `yaml:"rebuild_window"`
	// TraceURL is the console's link template of one trace, with {trace_id} where the ID
	// goes (e.g. https://jaeger.example/trace/{trace_id}); empty shows IDs without links.
	TraceURL string `yaml:"trace_url"`
	// OperatorAPI turns on the operator actions (cancel, unblock) and their console buttons.
	OperatorAPI bool `yaml:"operator_api"`
}

// StoreConfig selects the store: a server DSN, or an embedded data folder.
type StoreConfig struct {
	DSN          string   `yaml:"dsn"`
	Embedded     string   `yaml:"embedded"`
	Database     string   `yaml:"database"`
	Cluster      string   `yaml:"cluster"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	TLS          bool     `yaml:"tls"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	CreateSchema bool     `yaml:"create_schema"`
	// RetentionDays is refused: the detector reads the store and never changes its
	// retention (the schema step owns it). Kept so that an old configuration says so.
	RetentionDays int `yaml:"retention_days"`
}

// HTTPClientConfig is how flowwatch calls an HTTP receiver: headers (http_headers, e.g.
// X-Scope-OrgID), basic_auth, authorization or bearer_token, oauth2, tls_config (CA, client
// certificate) and proxy_url — Prometheus's and Alertmanager's http_config. It is checked
// when the configuration is validated, so that problems name their key.
type HTTPClientConfig promconfig.HTTPClientConfig

// UnmarshalYAML implements yaml.Unmarshaler: Prometheus's defaults (follow redirects,
// HTTP/2), then the settings given.
func (c *HTTPClientConfig) UnmarshalYAML(n *yaml.Node) error {
	*c = HTTPClientConfig(promconfig.DefaultHTTPClientConfig)
	type plain HTTPClientConfig
	return n.Decode((*plain)(c))
}

// TLSConfig is a client's TLS settings: ca_file, cert_file, key_file, server_name,
// insecure_skip_verify, min_version (Prometheus's tls_config).
type TLSConfig = promconfig.TLSConfig

// AlertmanagerFile is one Alertmanager: a base URL alone, or {url, http_config}.
type AlertmanagerFile struct {
	URL        string            `yaml:"url"`
	HTTPConfig *HTTPClientConfig `yaml:"http_config"`
}

// UnmarshalYAML implements yaml.Unmarshaler: a string is the URL.
func (a *AlertmanagerFile) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		a.URL = n.Value
		return nil
	}
	type plain AlertmanagerFile
	return n.Decode((*plain)(a))
}

// Hook is a webhook receiver of alerts.
type Hook struct {
	URL string `yaml:"url"`
	// Secret signs deliveries (Standard Webhooks): base64, with or without a whsec_ prefix.
	Secret     string            `yaml:"secret"`
	HTTPConfig *HTTPClientConfig `yaml:"http_config"`
	// MaxAlerts bounds the alerts of one message (0: all); the rest are counted in
	// truncatedAlerts, as Alertmanager's webhook does.
	MaxAlerts int `yaml:"max_alerts"`
}

// SinkFile is one command sink.
type SinkFile struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"` // nats | webhook
	URL      string   `yaml:"url"`
	Stream   string   `yaml:"stream"`
	Subjects []string `yaml:"subjects"`
	DryRun   bool     `yaml:"dry_run"`
	Rate     float64  `yaml:"rate"`
	Burst    int      `yaml:"burst"`

	// webhook sinks

	// Secret signs deliveries (Standard Webhooks): base64, with or without a whsec_ prefix.
	Secret     string            `yaml:"secret"`
	HTTPConfig *HTTPClientConfig `yaml:"http_config"`

	// nats sinks: at most one of credentials_file, nkey_seed_file, user (with password)

	// CredentialsFile is a NATS user credentials file (a JWT and its NKey seed).
	CredentialsFile string `yaml:"credentials_file"`
	// NKeySeedFile holds a user's NKey seed (SU...).
	NKeySeedFile string     `yaml:"nkey_seed_file"`
	User         string     `yaml:"user"`
	Password     string     `yaml:"password"`
	TLSConfig    *TLSConfig `yaml:"tls_config"`
}

// Duration is a YAML duration that also takes days ("2d").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Defaults of the detector process.
const (
	DefaultTick        = time.Second
	DefaultListen      = "127.0.0.1:8080"
	DefaultFlowsReload = 30 * time.Second
)

// LoadConfig reads and validates a detector configuration file. Unknown keys are errors, and
// ${env:NAME} references are replaced from the environment (a variable that is not set is an
// error naming its key). In the environment, FLOWWATCH_SHARD_INDEX, FLOWWATCH_TOKEN and
// FLOWWATCH_CLICKHOUSE_DSN override shard.index, token and store.dsn (Kubernetes sets the
// first from the pod ordinal, the others from Secrets).
func LoadConfig(path string) (*FileConfig, error) {
	return LoadConfigEnv(path, os.LookupEnv)
}

// LoadConfigEnv is LoadConfig in the environment lookup gives (a container's, in tests).
func LoadConfigEnv(path string, lookup func(string) (string, bool)) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read detector config: %w", err)
	}
	var c FileConfig
	if err := decodeStrict(data, &c, lookup); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	getenv := func(k string) string { v, _ := lookup(k); return v }
	if v := getenv("FLOWWATCH_SHARD_INDEX"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("FLOWWATCH_SHARD_INDEX=%q is not an integer", v)
		}
		c.Shard.Index = i
	}
	if v := getenv("FLOWWATCH_TOKEN"); v != "" {
		c.Token = v
	}
	if v := getenv("FLOWWATCH_CLICKHOUSE_DSN"); v != "" {
		c.Store.DSN, c.Store.Embedded = v, ""
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *FileConfig) setDefaults() {
	if c.Tick == 0 {
		c.Tick = Duration(DefaultTick)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.FlowsReload == 0 {
		c.FlowsReload = Duration(DefaultFlowsReload)
	}
	if c.Shard.Count == 0 {
		c.Shard.Count = 1
	}
}

// Validate reports every problem at once, naming the YAML keys.
func (c *FileConfig) Validate() error {
	var errs []error
	if (c.Store.DSN == "") == (c.Store.Embedded == "") {
		errs = append(errs, errors.New("'store' needs exactly one of 'dsn' (a ClickHouse server) or 'embedded' (a data folder)"))
	}
	if c.Store.RetentionDays != 0 {
		errs = append(errs, errors.New("'store.retention_days': the detector never changes the store's retention; set it where the schema is applied (`flowwatch schema --apply --retention-days N`, or the collector's flow exporter 'retention')"))
	}
	if c.Store.Cluster != "" && c.Store.DSN == "" {
		errs = append(errs, errors.New("'store.cluster' needs 'store.dsn'"))
	}
	if len(c.Flows) == 0 {
		errs = append(errs, errors.New("'flows' must list at least one flow file or folder"))
	}
	if c.Tick <= 0 {
		errs = append(errs, errors.New("'tick' must be greater than zero"))
	}
	if c.Shard.Count < 1 || c.Shard.Index < 0 || c.Shard.Index >= c.Shard.Count {
		errs = append(errs, fmt.Errorf("'shard.index' %d must be in [0, shard.count=%d)", c.Shard.Index, c.Shard.Count))
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("'sinks[%d].name' is required", i))
		} else if names[s.Name] {
			errs = append(errs, fmt.Errorf("'sinks[%d].name' %q is used twice", i, s.Name))
		}
		names[s.Name] = true
		key := fmt.Sprintf("sinks[%d]", i)
		switch s.Type {
		case "nats":
			errs = append(errs, onlyFor(key, "webhook", map[string]bool{"secret": s.Secret != "", "http_config": s.HTTPConfig != nil})...)
			if _, err := s.NATSOptions(key); err != nil {
				errs = append(errs, err)
			}
		case "webhook":
			errs = append(errs, onlyFor(key, "nats", map[string]bool{"credentials_file": s.CredentialsFile != "",
				"nkey_seed_file": s.NKeySeedFile != "", "user": s.User != "", "password": s.Password != "", "tls_config": s.TLSConfig != nil})...)
			errs = append(errs, checkSecret(key+".secret", s.Secret), checkHTTPConfig(key, s.HTTPConfig))
		default:
			errs = append(errs, fmt.Errorf("'%s.type' must be nats or webhook, not %q", key, s.Type))
		}
		errs = append(errs, checkURL(key+".url", s.URL))
		if s.Rate < 0 {
			errs = append(errs, fmt.Errorf("'%s.rate' must not be negative", key))
		}
	}
	for i, a := range c.Alerting.Alertmanagers {
		key := fmt.Sprintf("alerting.alertmanagers[%d]", i)
		errs = append(errs, checkURL(key+".url", a.URL), checkHTTPConfig(key, a.HTTPConfig))
	}
	for i, h := range c.Alerting.Webhooks {
		key := fmt.Sprintf("alerting.webhooks[%d]", i)
		errs = append(errs, checkURL(key+".url", h.URL))
		if h.MaxAlerts < 0 {
			errs = append(errs, fmt.Errorf("'%s.max_alerts' must not be negative", key))
		}
		errs = append(errs, checkSecret(key+".secret", h.Secret), checkHTTPConfig(key, h.HTTPConfig))
	}
	return errors.Join(errs...)
}

// onlyFor reports the keys set on a sink that belong to the other type of sink.
func onlyFor(sink, otherType string, set map[string]bool) []error {
	var errs []error
	for _, k := range []string{"secret", "http_config", "credentials_file", "nkey_seed_file", "user", "password", "tls_config"} {
		if set[k] {
			errs = append(errs, fmt.Errorf("'%s.%s' applies to %s sinks only", sink, k, otherType))
		}
	}
	return errs
}

// checkURL reports a receiver URL that is missing or not absolute. The URL is not quoted:
// it may hold credentials.
func checkURL(key, raw string) error {
	if raw == "" {
		return fmt.Errorf("'%s' is required", key)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("'%s' must be an absolute URL (scheme://host...)", key)
	}
	return nil
}

// checkSecret reports a webhook secret that Standard Webhooks receivers could not use.
func checkSecret(key, secret string) error {
	if secret == "" {
		return nil
	}
	if _, err := WebhookKey(secret); err != nil {
		return fmt.Errorf("'%s': %w", key, err)
	}
	return nil
}

// checkHTTPConfig builds the HTTP client a receiver's http_config describes, which reads its
// files (CA, client certificate and key, password and token files): what would fail at the
// first delivery fails at start, naming the key.
func checkHTTPConfig(key string, hc *HTTPClientConfig) error {
	if hc == nil {
		return nil
	}
	if _, err := NewHTTPClient(hc); err != nil {
		return fmt.Errorf("'%s.http_config': %w", key, err)
	}
	return nil
}
