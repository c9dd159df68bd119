package flowprocessor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config is the flow processor's configuration.
type Config struct {
	// Flows are the flow definition files or folders to load (every *.yaml and *.yml below a
	// folder). At least one is required; an invalid file fails the collector's start with its
	// `path:line:col` errors.
	Flows []string `mapstructure:"flows"`

	// TenantAttribute is the resource attribute holding the tenant; items whose resource lacks
	// it belong to the tenant "default".
	TenantAttribute string `mapstructure:"tenant_attribute"`

	// DropUnmatched passes on only the items that were annotated (checkpoints and error
	// notes), keeping their resource and scope; resources and scopes left empty are dropped.
	DropUnmatched bool `mapstructure:"drop_unmatched"`

	// ReloadInterval is how often the flow files are read again; 0 turns reloading off. A
	// reload that fails keeps the last good definitions, logs the errors and counts them.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration, reporting every problem at once.
func (cfg *Config) Validate() error {
	var errs error
	if len(cfg.Flows) == 0 {
		errs = errors.Join(errs, errors.New("'flows' must name at least one flow file or folder"))
	}
	for i, p := range cfg.Flows {
		if strings.TrimSpace(p) == "" {
			errs = errors.Join(errs, fmt.Errorf("'flows[%d]' must not be empty", i))
		}
	}
	if strings.TrimSpace(cfg.TenantAttribute) == "" {
		errs = errors.Join(errs, errors.New("'tenant_attribute' must not be empty"))
	}
	if cfg.ReloadInterval < 0 {
		errs = errors.Join(errs, errors.New("'reload_interval' must not be negative (0 turns reloading off)"))
	}
	return errs
}
