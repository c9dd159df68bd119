package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/demo"
)

func init() {
	register("demo", "run a simulated choreography emitting OTLP, with faults and a command consumer", runDemo)
}

// runDemo parses the demo flags and runs the choreography until interrupted (or --duration,
// or --orders without a command consumer). Exit 0 on a clean stop, 1 when the demo fails,
// 2 on a usage error.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code := parseDemoFlags(args, stderr)
	if code >= 0 {
		return code
	}
	cfg.Log = stderr
	d, err := demo.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "flowwatch demo: %v\n", err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "flowwatch demo: %v\n", err)
		return 1
	}
	return 0
}

// parseDemoFlags returns the configuration, or an exit code >= 0 when the process must stop
// (0 after -h, 2 on a usage error).
func parseDemoFlags(args []string, stderr io.Writer) (demo.Config, int) {
	cfg := demo.DefaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: flowwatch demo [flags]")
		fmt.Fprintln(stderr, "\nSimulates orders, payments, inventory, ledger and shipping (and sign-ups) emitting OTLP")
		fmt.Fprintln(stderr, "that matches examples/flows, and retries stuck payments and refunds on unblock commands.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.OTLP, "otlp", "", "OTLP receiver host:port (default 127.0.0.1:4317 for grpc, 127.0.0.1:4318 for http)")
	fs.StringVar(&cfg.Protocol, "protocol", cfg.Protocol, "OTLP protocol: grpc or http")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "orders started per second")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to run; 0 runs until stopped")
	fs.IntVar(&cfg.Orders, "orders", cfg.Orders, "stop starting orders after this many; 0 means no limit")
	fs.Float64Var(&cfg.Drop, "drop", cfg.Drop, "probability that a hop is lost (its service never reacts)")
	fs.DurationVar(&cfg.Delay, "delay", cfg.Delay, "maximum random delay of a hop")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", cfg.ErrorRate, "probability that an order's card authorization fails (stuck at paid)")
	fs.Float64Var(&cfg.CancelRate, "cancel-rate", cfg.CancelRate, "probability that an order is cancelled")
	fs.Float64Var(&cfg.CancelAfterPaymentRate, "cancel-after-payment-rate", cfg.CancelAfterPaymentRate, "probability that an order is cancelled once paid (its refund is due)")
	fs.Float64Var(&cfg.LateRefundRate, "late-refund-rate", cfg.LateRefundRate, "probability that such a refund waits for a retry command")
	fs.Float64Var(&cfg.LostParcelRate, "lost-parcel-rate", cfg.LostParcelRate, "probability that a parcel is lost in transit (its shipment and order stuck)")
	fs.DurationVar(&cfg.LostFor, "lost-for", cfg.LostFor, "how long a lost parcel stays lost; 0: for good")
	fs.Float64Var(&cfg.PaymentShare, "payment-share", cfg.PaymentShare, "chance per order of a stand-alone card payment (payment flow)")
	fs.Float64Var(&cfg.OnboardingShare, "onboarding-share", cfg.OnboardingShare, "chance per order of a customer sign-up (customer-onboarding flow)")
	fs.StringVar(&cfg.Tenant, "tenant", cfg.Tenant, "resource attribute tenant.id of every service")
	fs.StringVar(&cfg.NATS, "nats", cfg.NATS, "NATS URL: consume unblock commands from JetStream ("+demo.CommandStream+", "+demo.CommandSubject+")")
	fs.StringVar(&cfg.Consumer, "consumer", cfg.Consumer, "durable JetStream consumer name")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "host:port of an HTTP endpoint accepting webhook commands (POST)")
	fs.StringVar(&cfg.WebhookSecret, "webhook-secret", cfg.WebhookSecret, "require this Standard Webhooks secret's signature on webhook commands (default $FLOWWATCH_WEBHOOK_SECRET)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; 0 picks one (printed)")
	fs.IntVar(&cfg.ReportEvery, "report-every", cfg.ReportEvery, "print a progress line every this many orders; 0 never")
	fs.DurationVar(&cfg.ExportInterval, "export-interval", cfg.ExportInterval, "how often the SDK exports batches")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return cfg, 0
		}
		return cfg, 2
	}
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = os.Getenv("FLOWWATCH_WEBHOOK_SECRET")
	}
	if cfg.WebhookSecret != "" {
		if _, err := detector.WebhookKey(cfg.WebhookSecret); err != nil {
			fmt.Fprintf(stderr, "flowwatch demo: --webhook-secret: %v\n", err)
			return cfg, 2
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flowwatch demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return cfg, 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "flowwatch demo: %v\n", err)
		return cfg, 2
	}
	return cfg, -1
}
