//go:build mage

// Magefile builds the plugin's backend the way Grafana plugins are built: `mage -v` builds
// gpx_flowwatch for every platform into dist/ (read from src/plugin.json); `mage -v
// build:linux` only for Linux. The Go code lives in the flowwatch module (../go.mod), so
// `go build ./pkg` works from here as well.
package main

import (
	// mage:import
	build "github.com/grafana/grafana-plugin-sdk-go/build"
)

// Default configures the default target.
var Default = build.BuildAll
