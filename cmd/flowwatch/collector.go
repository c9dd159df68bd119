package main

import "github.com/flowwatch/flowwatch/collector/distribution"

func init() {
	register("collector", "run the flowwatch OpenTelemetry Collector: flowwatch collector --config FILE", distribution.Run)
}
