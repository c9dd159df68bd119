package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/flowwatch/flowwatch/collector/distribution"
	"github.com/flowwatch/flowwatch/console"
	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/demo"
	"github.com/flowwatch/flowwatch/storage"
)

func init() {
	register("run", "all in one: collector, embedded store, detector and query API (--demo adds traffic)", runAll)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// defaultRunRetention is the flow exporter's default: 30 days.
const defaultRunRetention = 30 * 24 * time.Hour

// runOptions are the flags of `flowwatch run` (the names are a contract).
type runOptions struct {
	flows, data, otlpGRPC, otlpHTTP, http string
	tick                                  time.Duration
	alertmanagers, webhooks               stringList
	nats, token                           string
	demo                                  bool
	traceURL                              string
	operatorAPI                           bool
	summaryEvery                          time.Duration
	// retention is how long the store keeps rows (whole days; 0 keeps them): the in-process
	// collector's exporter applies it, as the schema's owner.
	retention time.Duration
	// webhookSecret signs webhooks (alerts and the webhook sink's commands); default from
	// FLOWWATCH_WEBHOOK_SECRET, so that it stays out of the process list.
	webhookSecret string
	logs          logFlags
}

func parseRunFlags(args []string, stderr io.Writer) (*runOptions, error) {
	o := &runOptions{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.flows, "flows", "examples/flows", "flow file or folder")
	fs.StringVar(&o.data, "data", "./data", "data folder (embedded store, collector queue)")
	fs.StringVar(&o.otlpGRPC, "otlp-grpc", "127.0.0.1:4317", "OTLP gRPC listen address")
	fs.StringVar(&o.otlpHTTP, "otlp-http", "127.0.0.1:4318", "OTLP HTTP listen address")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "query API listen address")
	fs.DurationVar(&o.tick, "tick", time.Second, "detector tick")
	fs.Var(&o.alertmanagers, "alertmanager", "Alertmanager base URL (repeatable)")
	fs.Var(&o.webhooks, "webhook", "webhook URL for alerts (repeatable); the first also receives commands of sink \"webhook\"")
	fs.StringVar(&o.nats, "nats", "", "NATS URL for commands of sink \"nats\" (with --demo and none given, an embedded NATS server runs)")
	fs.StringVar(&o.token, "token", "", "bearer token required by the query API (default $FLOWWATCH_TOKEN, which keeps it out of ps)")
	fs.BoolVar(&o.demo, "demo", false, "also run the demo choreography")
	fs.StringVar(&o.traceURL, "trace-url", "", "link template of one trace in the console, e.g. 'https://jaeger.example/trace/{trace_id}'")
	fs.BoolVar(&o.operatorAPI, "operator-api", false, "serve the operator actions (cancel, unblock) and show their buttons in the console")
	fs.DurationVar(&o.summaryEvery, "summary", 5*time.Second, "live summary interval (0 = off)")
	fs.DurationVar(&o.retention, "retention", defaultRunRetention, "how long the store keeps rows: whole days, e.g. 720h or 0 to keep them all")
	fs.StringVar(&o.webhookSecret, "webhook-secret", "", "Standard Webhooks secret (whsec_<base64>) that signs --webhook deliveries and that the demo's webhook requires (default $FLOWWATCH_WEBHOOK_SECRET)")
	o.logs.register(fs, "warn")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.webhookSecret == "" {
		o.webhookSecret = os.Getenv("FLOWWATCH_WEBHOOK_SECRET")
	}
	if o.token == "" {
		o.token = os.Getenv("FLOWWATCH_TOKEN")
	}
	if o.webhookSecret != "" {
		if _, err := detector.WebhookKey(o.webhookSecret); err != nil {
			return nil, fmt.Errorf("--webhook-secret: %w", err)
		}
		if len(o.webhooks) == 0 && !o.demo {
			return nil, errors.New("--webhook-secret signs --webhook deliveries: give --webhook (or --demo)")
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.tick <= 0 {
		return nil, errors.New("--tick must be greater than zero")
	}
	if o.retention < 0 || o.retention%(24*time.Hour) != 0 {
		return nil, fmt.Errorf("--retention must be 0 or a whole number of days (24h multiples), got %s", o.retention)
	}
	if err := o.consoleConfig().Validate(); err != nil {
		return nil, fmt.Errorf("--trace-url: %w", err)
	}
	return o, nil
}

// sinkNames are the command sinks the flags give: "nats" with --nats (or --demo, which starts
// an embedded NATS server), "webhook" with --webhook (its first URL) or --demo (the demo's own
// endpoint). allInOne builds these and no others.
func (o *runOptions) sinkNames() []string {
	var names []string
	if o.nats != "" || o.demo {
		names = append(names, "nats")
	}
	if len(o.webhooks) > 0 || o.demo {
		names = append(names, "webhook")
	}
	return names
}

// consoleConfig is what the console shows of the flags (the token is added by the service).
func (o *runOptions) consoleConfig() console.Config {
	return console.Config{TraceURL: o.traceURL, OperatorAPI: o.operatorAPI}
}

func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	tuneGC()
	o, err := parseRunFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "flowwatch run: %v\n", err)
		}
		return 2
	}
	log, err := o.logs.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch run: %v\n", err)
		return 2
	}
	if err := allInOne(ctx, o, stdout, log, nil); err != nil {
		fmt.Fprintf(stderr, "flowwatch run: %v\n", err)
		return 1
	}
	return 0
}

// runtimeInfo tells tests where the all-in-one listens once it is up.
type runtimeInfo struct {
	API      string
	NATS     string
	Detector *detector.Detector
}

// allInOne runs the collector pipeline, the embedded store, the detector with the query API
// and, with --demo, the demo choreography, until ctx ends. On the way down the demo stops
// first, then the collector (its queue drains into the store or stays on disk), then the
// detector flushes a last tick.
func allInOne(ctx context.Context, o *runOptions, stdout io.Writer, log *slog.Logger, ready func(runtimeInfo)) error {
	data, err := filepath.Abs(o.data)
	if err != nil {
		return err
	}
	flowsPath, err := filepath.Abs(o.flows)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	flows, err := loadFlows(ctx, []string{flowsPath}, o.sinkNames(), log)
	if errors.Is(err, errUnknownSinks) {
		return fmt.Errorf("%w\n(flowwatch run has sink \"nats\" with --nats URL or --demo, and sink \"webhook\" with --webhook URL or --demo)", err)
	}
	if err != nil {
		return err
	}

	natsURL := o.nats
	if natsURL == "" && o.demo {
		ns, err := startEmbeddedNATS(filepath.Join(data, "nats"))
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
	}

	// The collector pipeline: OTLP in, flow processor, flow exporter into the embedded store.
	colCfg := filepath.Join(data, "collector.yaml")
	if err := os.WriteFile(colCfg, []byte(collectorConfig(o, flowsPath, data)), 0o644); err != nil {
		return fmt.Errorf("write collector config: %w", err)
	}
	// The collector logs through the same handler as the rest of the process: one format.
	colSettings := distribution.Settings(distribution.Version, nil, colCfg)
	colSettings.LoggingOptions = append(colSettings.LoggingOptions, zapToSlog(log.Handler()))
	col, err := otelcol.NewCollector(colSettings)
	if err != nil {
		return fmt.Errorf("build collector: %w", err)
	}
	colCtx, stopCol := context.WithCancel(context.Background())
	defer stopCol()
	colDone := make(chan error, 1)
	go func() { colDone <- col.Run(colCtx) }()
	if err := waitRunning(ctx, col, colDone); err != nil {
		return err
	}
	stopCollector := sync.OnceFunc(func() {
		col.Shutdown()
		<-colDone
	})
	defer stopCollector()

	st, err := storage.OpenEmbedded(ctx, filepath.Join(data, "store"), storage.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	// The tables exist already (the collector's exporter applied the schema and owns the
	// retention); this reader's Migrate is a no-op that never changes their retention.
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}

	var sinkFiles []detector.SinkFile
	if natsURL != "" {
		sinkFiles = append(sinkFiles, detector.SinkFile{Name: "nats", Type: "nats", URL: natsURL,
			Subjects: subjectsOf(flows.Get(), "nats")})
	}
	var dm *demo.Demo
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	if o.demo {
		dc := demo.DefaultConfig()
		dc.OTLP, dc.NATS, dc.Listen, dc.ReportEvery = o.otlpGRPC, natsURL, "127.0.0.1:0", 0
		dc.WebhookSecret = o.webhookSecret
		dm, err = demo.New(demoCtx, dc)
		if err != nil {
			return fmt.Errorf("start demo: %w", err)
		}
	}
	switch {
	case len(o.webhooks) > 0:
		sinkFiles = append(sinkFiles, detector.SinkFile{Name: "webhook", Type: "webhook", URL: o.webhooks[0], Secret: o.webhookSecret})
	case dm != nil:
		sinkFiles = append(sinkFiles, detector.SinkFile{Name: "webhook", Type: "webhook", URL: "http://" + dm.Addr(), Secret: o.webhookSecret})
	}
	if built := sinkNames(sinkFiles); !slices.Equal(built, o.sinkNames()) {
		return fmt.Errorf("internal error: sinks %v built, %v checked against the flows", built, o.sinkNames())
	}
	sinks, closeSinks, err := buildSinks(sinkFiles)
	if err != nil {
		return err
	}
	defer closeSinks()
	var ams []detector.AlertmanagerFile
	for _, u := range o.alertmanagers {
		ams = append(ams, detector.AlertmanagerFile{URL: u})
	}
	var hooks []detector.Hook
	for _, w := range o.webhooks {
		hooks = append(hooks, detector.Hook{URL: w, Secret: o.webhookSecret})
	}
	notifiers, err := buildNotifiers(ams, hooks, "http://"+o.http)
	if err != nil {
		return err
	}

	svcCtx, stopSvc := context.WithCancel(context.Background())
	defer stopSvc()
	var started sync.WaitGroup
	started.Add(1)
	var det *detector.Detector
	var apiURL string
	svc := &service{store: st, flows: flows, listen: o.http, token: o.token, tick: o.tick, log: log,
		console: o.consoleConfig(),
		det: detector.Config{Sinks: sinks, Alerting: detector.AlertConfig{Notifiers: notifiers,
			ExternalURL: "http://" + o.http}},
		started: func(d *detector.Detector, u string) { det, apiURL = d, u; started.Done() },
	}
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.run(svcCtx) }()
	waitStarted := make(chan struct{})
	go func() { started.Wait(); close(waitStarted) }()
	select {
	case err := <-svcDone:
		return err
	case <-ctx.Done():
		stopSvc()
		return <-svcDone
	case <-waitStarted:
	}

	demoDone := make(chan error, 1)
	if dm != nil {
		go func() { demoDone <- dm.Run(demoCtx) }()
	}
	fmt.Fprintf(stdout, "flowwatch is running: OTLP gRPC %s, OTLP HTTP %s, query API %s, data in %s\n",
		o.otlpGRPC, o.otlpHTTP, apiURL, data)
	fmt.Fprintf(stdout, "console: open %s/ in a browser\n", apiURL)
	if o.demo {
		fmt.Fprintf(stdout, "demo traffic on; try: curl -s '%s/api/v1/instances?status=stuck' | head -c 2000\n", apiURL)
	}
	if ready != nil {
		ready(runtimeInfo{API: apiURL, NATS: natsURL, Detector: det})
	}
	var summary <-chan time.Time
	if o.summaryEvery > 0 {
		t := time.NewTicker(o.summaryEvery)
		defer t.Stop()
		summary = t.C
	}
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case err := <-svcDone:
			return err
		case err := <-colDone:
			colDone <- err // for the deferred stopCollector
			stopDemo()
			if dm != nil {
				<-demoDone
			}
			stopSvc() // the detector flushes before the store closes
			<-svcDone
			return fmt.Errorf("collector stopped: %v", err)
		case <-summary:
			printSummary(stdout, det, dm)
		}
	}
	fmt.Fprintln(stdout, "stopping: demo, collector (draining its queue), detector")
	stopDemo()
	if dm != nil {
		<-demoDone
	}
	stopCollector()
	// Give the detector one more look at what the collector flushed, then stop it.
	time.Sleep(o.tick)
	stopSvc()
	if err := <-svcDone; err != nil {
		return err
	}
	printSummary(stdout, det, dm)
	return nil
}

func printSummary(w io.Writer, d *detector.Detector, dm *demo.Demo) {
	s := d.Stats()
	line := fmt.Sprintf("%s  instances: %d running, %d stuck, %d compensating, %d completed, %d failed, %d compensated, %d cancelled"+
		" | alerts sent %d (failed %d) | commands sent %d (failed %d)",
		time.Now().Format("15:04:05"), s.Running, s.Stuck, s.Compensating, s.Completed, s.Failed, s.Compensated, s.Cancelled,
		s.AlertsSent, s.AlertsFailed, s.CommandsSent, s.CommandsErr)
	if dm != nil {
		ds := dm.Stats()
		line += fmt.Sprintf(" | demo: %d orders, %d payment errors, %d lost parcels, %d late refunds, %d retried on command",
			ds.Orders, ds.PaymentErrors, ds.LostParcels, ds.LateRefunds, ds.Retries)
	}
	fmt.Fprintln(w, line)
}

// waitRunning waits until the collector runs (its receivers listen) or fails to start.
func waitRunning(ctx context.Context, col *otelcol.Collector, done <-chan error) error {
	for {
		if col.GetState() == otelcol.StateRunning {
			return nil
		}
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("collector did not start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// collectorConfig is the in-process collector's configuration. The flow exporter batches its
// rows in its persistent sending queue, after they are on disk: there is no batch processor
// before it, so a span the receiver acknowledged survives the process being killed.
func collectorConfig(o *runOptions, flows, data string) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return `# Written by flowwatch run; regenerated on every start.
extensions:
  file_storage:
    directory: ` + q(filepath.Join(data, "queue")) + `
    create_directory: true
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ` + q(o.otlpGRPC) + `
      http:
        endpoint: ` + q(o.otlpHTTP) + `
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  flow:
    flows: [` + q(flows) + `]
    drop_unmatched: true
    reload_interval: 30s
exporters:
  flow:
    path: ` + q(filepath.Join(data, "store")) + `
    create_schema: true
    retention: ` + o.retention.String() + `
    timeout: 10s
    sending_queue:
      storage: file_storage
      batch:
        flush_timeout: 1s
        min_size: 20000
        max_size: 100000
    retry_on_failure:
      initial_interval: 500ms
      max_interval: 10s
      max_elapsed_time: 0s
service:
  extensions: [file_storage]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, flow]
      exporters: [flow]
    logs:
      receivers: [otlp]
      processors: [memory_limiter, flow]
      exporters: [flow]
`
}

// logLevelOr is a --log-level value, or def when none was given (options built in code).
func logLevelOr(level, def string) string {
	if level == "" {
		return def
	}
	return level
}

// startEmbeddedNATS runs a NATS server with JetStream on a free loopback port, so the demo
// can heal stuck orders through real commands without anything installed.
func startEmbeddedNATS(dir string) (*natsserver.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a port for NATS: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start within 10s")
	}
	return ns, nil
}
