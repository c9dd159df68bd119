package main

import (
	"context"
	"io"
	"os"
	"runtime/debug"

	"github.com/flowwatch/flowwatch/collector/distribution"
)

func init() {
	register("collector", "run the flowwatch OpenTelemetry Collector: flowwatch collector --config FILE", func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		tuneGC()
		return distribution.Run(ctx, args, stdout, stderr)
	})
}

// defaultGCPercent is the garbage collector target of the processes that receive telemetry
// (collector, run) when GOGC is not set: a collector's heap is mostly short-lived batches, and
// collecting half as often saves about 0.5 µs of CPU per span (internal/ingestbench). Set GOGC,
// or GOMEMLIMIT with memory_limiter, to choose otherwise.
const defaultGCPercent = 200

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
