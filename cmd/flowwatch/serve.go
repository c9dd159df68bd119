package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/flowwatch/flowwatch/api"
	"github.com/flowwatch/flowwatch/console"
	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// flowSource holds the current flow definitions, re-read periodically; a broken edit (an
// invalid file, or an action naming a sink that is not configured) keeps the last good set and
// is logged with its path:line:col problems.
type flowSource struct {
	paths  []string
	sinks  []string // the configured sinks' names
	digest string
	cur    atomic.Pointer[model.Set]
	log    *slog.Logger
}

// errUnknownSinks says that on_stuck actions name sinks that are not configured.
var errUnknownSinks = errors.New("on_stuck actions name sinks that are not configured")

// loadFlows loads the flows of paths and checks that their actions name only sinks (the names
// of the configured sinks).
func loadFlows(ctx context.Context, paths, sinks []string, log *slog.Logger) (*flowSource, error) {
	set, err := loadChecked(ctx, paths, sinks)
	if err != nil {
		return nil, err
	}
	fs := &flowSource{paths: paths, sinks: sinks, log: log}
	fs.digest, _ = filesDigest(paths)
	fs.cur.Store(set)
	return fs, nil
}

// loadChecked loads the flows of paths and checks their actions' sinks against sinks.
func loadChecked(ctx context.Context, paths, sinks []string) (*model.Set, error) {
	set, err := model.LoadContext(ctx, paths...)
	if err != nil {
		return nil, fmt.Errorf("load flows:\n%w", err)
	}
	if probs := set.CheckSinks(sinks); len(probs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", errUnknownSinks, probs)
	}
	return set, nil
}

// sinkNames are the names of configured sinks.
func sinkNames(files []detector.SinkFile) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names
}

// filesDigest hashes the names, sizes and contents of the flow files below paths, so a reload
// happens only when something changed (definitions are compared by identity elsewhere).
func filesDigest(paths []string) (string, error) {
	files, probs := model.FlowFiles(paths...)
	if len(probs) > 0 {
		return "", probs
	}
	h := sha256.New()
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (fs *flowSource) Get() *model.Set { return fs.cur.Load() }

func (fs *flowSource) watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fs.reload(ctx)
		}
	}
}

// reload reads the flow files again if they changed, and takes them if they are valid and
// their actions name only configured sinks; otherwise it logs why and keeps the last good set.
func (fs *flowSource) reload(ctx context.Context) {
	sum, err := filesDigest(fs.paths)
	if err != nil || sum == fs.digest {
		return // unchanged (or unreadable: loading would say why on a change)
	}
	set, err := loadChecked(ctx, fs.paths, fs.sinks)
	if err != nil {
		if ctx.Err() == nil {
			fs.log.Error("flow files are invalid; keeping the last good definitions", "err", err)
		}
		return
	}
	fs.digest = sum
	fs.cur.Store(set)
	fs.log.Info("flow definitions reloaded", "flows", len(set.Flows))
}

// service is a detector with the query API in front of it, over one store.
type service struct {
	store  storage.Store
	flows  *flowSource
	det    detector.Config // Flows, Store, Metrics and Logger are filled in
	listen string
	token  string
	tick   time.Duration
	reload time.Duration // how often flow files are re-read; default detector.DefaultFlowsReload
	log    *slog.Logger
	// started is called once the API listens and the detector is rebuilt.
	started func(d *detector.Detector, apiURL string)
	// console is served at / beside the API (TokenRequired is filled in from token).
	console console.Config
}

// run serves until ctx ends or a part fails. Its parts (the API listener, the detector, the
// flow watcher) run in one group: when one fails, the others are stopped, and run returns
// only once all of them have, the detector having made its last tick and stopped its workers,
// so the caller may close the store.
func (s *service) run(ctx context.Context) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.det.Flows = s.flows.Get
	s.det.Store = s.store
	s.det.Logger = s.log
	s.det.Metrics = detector.NewMetrics(reg)
	d, err := detector.New(s.det)
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", s.listen, err)
	}
	apiHandler := api.New(api.Config{
		Reader: s.store, Flows: s.flows.Get, Token: s.token, Registerer: reg,
		OperatorAPI: s.console.OperatorAPI, Writer: s.store,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Logger: s.log,
		Ready: func(context.Context) error {
			if !d.Ready() {
				return errors.New("detector is rebuilding its state from the store")
			}
			return nil
		},
	})
	s.console.TokenRequired = s.token != ""
	handler, err := console.Handler(apiHandler, s.console)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	s.log.Info("query API listening", "addr", ln.Addr().String())
	reload := s.reload
	if reload == 0 {
		reload = detector.DefaultFlowsReload
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("query API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		return nil
	})
	g.Go(func() error {
		s.flows.watch(gctx, reload)
		return nil
	})
	g.Go(func() error {
		for {
			err := d.Start(gctx)
			if err == nil {
				break
			}
			s.log.Warn("detector rebuild failed; retrying", "err", err)
			select {
			case <-gctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		if s.started != nil {
			s.started(d, "http://"+ln.Addr().String())
		}
		d.Run(gctx, s.tick)
		// What the interrupted tick still held, and the deliveries it makes, within 5s.
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.Flush(shutdown); err != nil {
			s.log.Warn("last detector tick", "err", err)
		}
		return nil
	})
	return g.Wait()
}

// buildNotifiers makes the alert notifiers: one for every Alertmanager (each with the client
// its http_config describes), one per webhook. externalURL is where users reach flowwatch.
func buildNotifiers(ams []detector.AlertmanagerFile, hooks []detector.Hook, externalURL string) ([]detector.Notifier, error) {
	var out []detector.Notifier
	if len(ams) > 0 {
		am := &detector.Alertmanager{}
		for i, a := range ams {
			client, err := detector.NewHTTPClient(a.HTTPConfig)
			if err != nil {
				return nil, fmt.Errorf("alerting.alertmanagers[%d].http_config: %w", i, err)
			}
			am.Targets = append(am.Targets, detector.AlertmanagerTarget{URL: a.URL, Client: client})
		}
		out = append(out, am)
	}
	for i, h := range hooks {
		client, err := detector.NewHTTPClient(h.HTTPConfig)
		if err != nil {
			return nil, fmt.Errorf("alerting.webhooks[%d].http_config: %w", i, err)
		}
		out = append(out, &detector.WebhookAlerts{URL: h.URL, Secret: h.Secret, Client: client,
			ExternalURL: externalURL, MaxAlerts: h.MaxAlerts})
	}
	return out, nil
}

// buildSinks turns configured sinks into detector sinks: NATS with their credentials and TLS,
// webhooks with their HTTP client.
func buildSinks(files []detector.SinkFile) ([]detector.SinkConfig, func(), error) {
	var out []detector.SinkConfig
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i, f := range files {
		key := fmt.Sprintf("sinks[%d]", i)
		var sink detector.Sink
		switch f.Type {
		case "nats":
			opts, err := f.NATSOptions(key)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			n, err := detector.NewNATSSink(f.Name, f.URL, f.Stream, f.Subjects, opts...)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, n.Close)
			sink = n
		case "webhook":
			client, err := detector.NewHTTPClient(f.HTTPConfig)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("%s.http_config: %w", key, err)
			}
			sink = &detector.HTTPSink{SinkName: f.Name, URL: f.URL, Secret: f.Secret, Client: client}
		default:
			closeAll()
			return nil, nil, fmt.Errorf("sink %q: unknown type %q", f.Name, f.Type)
		}
		out = append(out, detector.SinkConfig{Sink: sink, DryRun: f.DryRun, Rate: f.Rate, Burst: f.Burst})
	}
	return out, closeAll, nil
}

// subjectsOf lists the NATS subjects the flows' actions on a sink publish to, as stream
// subjects (a "payments.retry" action makes the stream take "payments.>").
func subjectsOf(set *model.Set, sink string) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range set.Flows {
		for _, c := range f.Checkpoints {
			for _, a := range c.OnStuck {
				if a.Sink != sink {
					continue
				}
				subj := a.Subject
				if subj == "" {
					subj = "flowwatch.commands"
				}
				if i := strings.IndexByte(subj, '.'); i > 0 {
					subj = subj[:i] + ".>"
				}
				if !seen[subj] {
					seen[subj] = true
					out = append(out, subj)
				}
			}
		}
	}
	if !seen["flowwatch.>"] {
		out = append(out, "flowwatch.>")
	}
	return out
}
