package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/flowwatch/flowwatch/console"
	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/storage"
)

func init() {
	register("detector", "run the detector and query API: flowwatch detector --config FILE", runDetector)
}

func runDetector(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "detector configuration file (YAML)")
	var logs logFlags
	logs.register(fs, "info")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: flowwatch detector --config FILE [--log-format text|json] [--log-level LEVEL]")
		return 2
	}
	log, err := logs.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch detector: %v\n", err)
		return 2
	}
	cfg, err := detector.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch detector: %v\n", err)
		return 1
	}
	if err := serveDetector(ctx, cfg, log); err != nil {
		fmt.Fprintf(stderr, "flowwatch detector: %v\n", err)
		return 1
	}
	return 0
}

func openStore(ctx context.Context, c detector.StoreConfig, log *slog.Logger) (storage.Store, error) {
	// The detector reads the store: it creates the tables when asked (and when they are
	// missing), but never changes their retention (storage.Store.SetRetention).
	opts := storage.Options{Database: c.Database, Cluster: c.Cluster,
		Username: c.Username, Password: c.Password, TLS: c.TLS, ReadTimeout: time.Duration(c.ReadTimeout), Logger: log}
	var st storage.Store
	var err error
	if c.DSN != "" {
		st, err = storage.OpenServer(ctx, c.DSN, opts)
	} else {
		st, err = storage.OpenEmbedded(ctx, c.Embedded, opts)
	}
	if err != nil {
		return nil, err
	}
	if c.CreateSchema || c.Embedded != "" {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("create schema: %w", err)
		}
	}
	return st, nil
}

func serveDetector(ctx context.Context, cfg *detector.FileConfig, log *slog.Logger) error {
	flows, err := loadFlows(ctx, cfg.Flows, sinkNames(cfg.Sinks), log)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return err
	}
	defer st.Close()
	sinks, closeSinks, err := buildSinks(cfg.Sinks)
	if err != nil {
		return err
	}
	defer closeSinks()
	notifiers, err := buildNotifiers(cfg.Alerting.Alertmanagers, cfg.Alerting.Webhooks, cfg.Alerting.ExternalURL)
	if err != nil {
		return err
	}
	s := &service{
		store: st, flows: flows, listen: cfg.Listen, token: cfg.Token, tick: time.Duration(cfg.Tick), log: log,
		reload:  time.Duration(cfg.FlowsReload),
		console: console.Config{TraceURL: cfg.TraceURL, OperatorAPI: cfg.OperatorAPI},
		det: detector.Config{
			Shard: cfg.Shard.Index, Shards: cfg.Shard.Count, Overlap: time.Duration(cfg.Overlap),
			MaxOpen: cfg.MaxOpen, RebuildWindow: time.Duration(cfg.RebuildWindow), Sinks: sinks,
			Alerting: detector.AlertConfig{Notifiers: notifiers, GroupByCheckpoint: cfg.Alerting.GroupByCheckpoint,
				Resend: time.Duration(cfg.Alerting.Resend), ExternalURL: cfg.Alerting.ExternalURL},
		},
	}
	return s.run(ctx)
}
