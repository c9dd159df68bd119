// Package metadata holds the component type and stability of the flow exporter. It is
// written by hand in the shape mdatagen generates (mdatagen is not served on this release
// train); keep it in that shape so that it can be regenerated later.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the exporter's type name in collector configurations.
	Type = component.MustNewType("flow")
	// ScopeName is the instrumentation scope of the exporter's own telemetry.
	ScopeName = "github.com/flowwatch/flowwatch/collector/flowexporter"
)

// Stability of each signal.
const (
	TracesStability = component.StabilityLevelAlpha
	LogsStability   = component.StabilityLevelAlpha
)
