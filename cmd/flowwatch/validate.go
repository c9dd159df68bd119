package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/model"
)

func init() {
	register("validate", "check flow files: flowwatch validate [--config FILE] [FILE|DIR...]", runValidate)
}

// exitInterrupted is the exit code of a command stopped by SIGINT or SIGTERM (128 + SIGINT).
const exitInterrupted = 130

// runValidate loads every path given and prints one line per flow loaded (exit 0), or one
// `path:line:col: message` line per problem (exit 1). With --config, a detector configuration
// file, the flows' actions must name its sinks, and its flows are checked when no path is
// given. A usage error exits 2; an interruption (SIGINT, SIGTERM) stops it with exit 130.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "detector configuration file: actions must name its sinks, and its flows are checked when no FILE|DIR is given")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: flowwatch validate [--config FILE] [FILE|DIR...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	paths := fs.Args()
	var sinks []string
	if *config != "" {
		cfg, err := detector.LoadConfig(*config)
		if err != nil {
			fmt.Fprintf(stderr, "flowwatch validate: %v\n", err)
			return 1
		}
		sinks = sinkNames(cfg.Sinks)
		if len(paths) == 0 {
			paths = cfg.Flows
		}
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	set, err := model.LoadContext(ctx, paths...)
	if err == nil && *config != "" {
		if probs := set.CheckSinks(sinks); len(probs) > 0 {
			err = probs
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "flowwatch validate: interrupted (%v)\n", context.Cause(ctx))
		return exitInterrupted
	}
	if err != nil {
		printLoadError(stderr, "flowwatch validate", err)
		return 1
	}
	for _, f := range set.Flows {
		active := ""
		if !f.ActiveFrom.IsZero() {
			active = ", active from " + f.ActiveFrom.UTC().Format("2006-01-02T15:04:05Z")
		}
		if f.Parent != nil {
			active += ", a sub-flow of " + f.Parent.Flow
		}
		if cs := f.ChildFlows(); len(cs) > 0 {
			active += ", children: " + strings.Join(cs, ", ")
		}
		if n := len(f.Compensations); n > 0 {
			active += fmt.Sprintf(", %d compensation(s)", n)
		}
		fmt.Fprintf(stdout, "ok %s version %d: %d checkpoints, key %s%s (%s)\n",
			f.Name, f.Version, len(f.Checkpoints), f.Key, active, f.Source.Path)
	}
	return 0
}

// printLoadError prints a model.Load error: one `path:line:col: message` line per problem.
func printLoadError(w io.Writer, prefix string, err error) {
	var probs model.Problems
	if !errors.As(err, &probs) {
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
		return
	}
	for _, p := range probs {
		fmt.Fprintln(w, p.Error())
	}
}
