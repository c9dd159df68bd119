package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/flowwatch/flowwatch/model"
)

func init() {
	register("validate", "check flow files: flowwatch validate FILE|DIR...", runValidate)
}

// runValidate loads every path given and prints one line per flow loaded (exit 0), or one
// `path:line:col: message` line per problem (exit 1). A usage error exits 2.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: flowwatch validate FILE|DIR...") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	set, err := model.Load(fs.Args()...)
	if err != nil {
		printLoadError(stderr, "flowwatch validate", err)
		return 1
	}
	for _, f := range set.Flows {
		active := ""
		if !f.ActiveFrom.IsZero() {
			active = ", active from " + f.ActiveFrom.UTC().Format("2006-01-02T15:04:05Z")
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
