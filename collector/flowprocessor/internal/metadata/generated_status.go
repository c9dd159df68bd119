// Package metadata holds the component type, stability and own telemetry of the flow
// processor. It is written by hand in the shape mdatagen generates (mdatagen is not served on
// this release train); keep it in that shape so that it can be regenerated later.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the processor's type name in collector configurations.
	Type = component.MustNewType("flow")
	// ScopeName is the instrumentation scope of the processor's own telemetry.
	ScopeName = "github.com/flowwatch/flowwatch/collector/flowprocessor"
)

// Stability of each signal.
const (
	TracesStability = component.StabilityLevelAlpha
	LogsStability   = component.StabilityLevelAlpha
)
