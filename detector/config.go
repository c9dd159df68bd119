package detector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/model"
)

// FileConfig is the YAML configuration of `flowwatch detector --config FILE`.
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
		Alertmanagers     []string `yaml:"alertmanagers"`
		Webhooks          []Hook   `yaml:"webhooks"`
		GroupByCheckpoint bool     `yaml:"group_by_checkpoint"`
		Resend            Duration `yaml:"resend"`
		ExternalURL       string   `yaml:"external_url"`
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
	DSN           string   `yaml:"dsn"`
	Embedded      string   `yaml:"embedded"`
	Database      string   `yaml:"database"`
	Cluster       string   `yaml:"cluster"`
	Username      string   `yaml:"username"`
	Password      string   `yaml:"password"`
	TLS           bool     `yaml:"tls"`
	ReadTimeout   Duration `yaml:"read_timeout"`
	CreateSchema  bool     `yaml:"create_schema"`
	RetentionDays int      `yaml:"retention_days"`
}

// Hook is a webhook receiver of alerts.
type Hook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
}

// SinkFile is one command sink.
type SinkFile struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"` // nats | webhook
	URL      string   `yaml:"url"`
	Stream   string   `yaml:"stream"`
	Subjects []string `yaml:"subjects"`
	Secret   string   `yaml:"secret"`
	DryRun   bool     `yaml:"dry_run"`
	Rate     float64  `yaml:"rate"`
	Burst    int      `yaml:"burst"`
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

// LoadConfig reads and validates a detector configuration file. In the environment,
// FLOWWATCH_SHARD_INDEX, FLOWWATCH_TOKEN and FLOWWATCH_CLICKHOUSE_DSN override shard.index,
// token and store.dsn (Kubernetes sets the first from the pod ordinal, the others from Secrets).
func LoadConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read detector config: %w", err)
	}
	var c FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if v := os.Getenv("FLOWWATCH_SHARD_INDEX"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("FLOWWATCH_SHARD_INDEX=%q is not an integer", v)
		}
		c.Shard.Index = i
	}
	if v := os.Getenv("FLOWWATCH_TOKEN"); v != "" {
		c.Token = v
	}
	if v := os.Getenv("FLOWWATCH_CLICKHOUSE_DSN"); v != "" {
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
		switch s.Type {
		case "nats", "webhook":
		default:
			errs = append(errs, fmt.Errorf("'sinks[%d].type' must be nats or webhook, not %q", i, s.Type))
		}
		if s.URL == "" {
			errs = append(errs, fmt.Errorf("'sinks[%d].url' is required", i))
		}
		if s.Rate < 0 {
			errs = append(errs, fmt.Errorf("'sinks[%d].rate' must not be negative", i))
		}
	}
	for i, h := range c.Alerting.Webhooks {
		if h.URL == "" {
			errs = append(errs, fmt.Errorf("'alerting.webhooks[%d].url' is required", i))
		}
	}
	return errors.Join(errs...)
}
