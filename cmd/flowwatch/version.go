package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/flowwatch/flowwatch/collector/distribution"
)

func init() {
	register("version", "print the version, the source revision and the Go toolchain", runVersion)
}

// License is the licence flowwatch is distributed under (LICENSE at the repository's root).
const License = "Apache-2.0"

// versionLine is what `flowwatch version` prints: the version (distribution.Version, set
// at build time with -ldflags, else the module version `go install` recorded), the source
// revision and time when the build knows them, the Go toolchain and the platform.
func versionLine() string {
	version := distribution.Version
	var revision, when string
	modified := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "flowwatch " + version
	if revision != "" {
		line += " (" + revision
		if modified {
			line += ", modified"
		}
		if when != "" {
			line += ", " + when
		}
		line += ")"
	}
	return fmt.Sprintf("%s %s %s/%s, licensed under %s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH, License)
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: flowwatch version")
		return 2
	}
	fmt.Fprintln(stdout, versionLine())
	return 0
}
