// Package demo is the simulated choreography behind `flowwatch demo` and `flowwatch run
// --demo`: orders, payments, inventory, ledger and shipping (and, more rarely, stand-alone
// card payments and customer sign-ups) react to each other as over a message broker and emit
// real OTLP through the OpenTelemetry Go SDK — one TracerProvider and LoggerProvider per
// service, each hop the root of its own trace, linked to the hop it reacts to. Every item is
// shaped to match the example flows in examples/flows.
//
// Faults are injected on request (lost hops, random delays, card issuer errors that leave an
// order stuck at paid, cancellations), and a consumer of unblock commands (NATS JetStream
// and an HTTP webhook, CloudEvents 1.0 structured JSON, idempotent by command id) retries
// stuck payments so the orders complete.
//
// It owns the simulation only: it reads no flow files, stores nothing and never talks to
// flowwatch except through OTLP and the commands it receives.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Demo is one simulated choreography. Build it with New, then call Run once.
type Demo struct {
	cfg   Config
	seed  uint64
	tel   *telemetry
	sim   *sim
	stats *counters
	now   func() time.Time

	ln       net.Listener // the webhook listener, nil without Listen
	reqs     chan commandRequest
	loopDone chan struct{}
	logMu    sync.Mutex
}

// Stats counts what a demo did so far.
type Stats struct {
	Orders        int64 // orders placed
	Cancelled     int64 // orders cancelled (--cancel-rate)
	Delivered     int64 // orders delivered
	Payments      int64 // stand-alone payments requested
	Signups       int64 // customers signed up
	Onboarded     int64 // welcome kits shipped
	Dropped       int64 // hops lost (--drop)
	PaymentErrors int64 // card issuer errors (--error-rate)
	Commands      int64 // well-formed commands received
	Retries       int64 // commands acted on: payment or refund retried
	Duplicates    int64 // commands whose id was seen before
	Ignored       int64 // commands that needed nothing
	Invalid       int64 // malformed commands rejected
	Shipments     int64 // parcels dispatched, a shipment each
	LostParcels   int64 // parcels lost in transit (--lost-parcel-rate)
	Refunds       int64 // refunds of orders cancelled after payment
	LateRefunds   int64 // refunds missed until a retry command (--late-refund-rate)
}

type counters struct {
	orders, cancelled, delivered, payments, signups, onboarded atomic.Int64
	dropped, paymentErrors                                     atomic.Int64
	commands, retries, duplicates, ignored, invalid            atomic.Int64
	shipments, lostParcels, refunds, lateRefunds               atomic.Int64
}

// New validates cfg and builds the services' OTLP providers and, when cfg.Listen is set,
// binds the webhook listener (see Addr). Nothing is emitted before Run.
func New(ctx context.Context, cfg Config) (*Demo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid demo configuration: %w", err)
	}
	d := &Demo{
		cfg:      cfg,
		seed:     cfg.Seed,
		stats:    &counters{},
		now:      time.Now,
		reqs:     make(chan commandRequest),
		loopDone: make(chan struct{}),
	}
	if d.seed == 0 {
		d.seed = uint64(time.Now().UnixNano())
	}
	tel, err := newTelemetry(ctx, &d.cfg, newIDGenerator(d.seed), d.seed)
	if err != nil {
		return nil, err
	}
	d.tel = tel
	if cfg.Listen != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
		if err != nil {
			_ = tel.shutdown(ctx)
			return nil, fmt.Errorf("listen for webhook commands on %s: %w", cfg.Listen, err)
		}
		d.ln = ln
	}
	d.sim = newSim(&d.cfg, tel, d.seed, d.now, d.stats)
	d.sim.progress = func() { d.logf("%s", d.Stats().line()) }
	return d, nil
}

// Seed returns the seed in use (the configured one, or the one picked from the clock).
func (d *Demo) Seed() uint64 { return d.seed }

// Addr returns the address the webhook listens on ("" without Listen); with port 0 in
// Listen it tells the port picked.
func (d *Demo) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// Stats returns the counters so far. Safe to call at any time.
func (d *Demo) Stats() Stats {
	c := d.stats
	return Stats{
		Orders: c.orders.Load(), Cancelled: c.cancelled.Load(), Delivered: c.delivered.Load(),
		Payments: c.payments.Load(), Signups: c.signups.Load(), Onboarded: c.onboarded.Load(),
		Dropped: c.dropped.Load(), PaymentErrors: c.paymentErrors.Load(),
		Commands: c.commands.Load(), Retries: c.retries.Load(), Duplicates: c.duplicates.Load(),
		Ignored: c.ignored.Load(), Invalid: c.invalid.Load(),
		Shipments: c.shipments.Load(), LostParcels: c.lostParcels.Load(), Refunds: c.refunds.Load(), LateRefunds: c.lateRefunds.Load(),
	}
}

// line is the progress line printed every ReportEvery orders.
func (s Stats) line() string {
	return fmt.Sprintf("demo: %d orders (%d delivered, %d cancelled), %d shipments, %d refunds, %d payments, %d sign-ups; "+
		"faults: %d hops lost, %d card issuer errors, %d parcels lost in transit, %d refunds late; "+
		"commands: %d received, %d retried, %d duplicate, %d ignored, %d invalid",
		s.Orders, s.Delivered, s.Cancelled, s.Shipments, s.Refunds, s.Payments, s.Signups,
		s.Dropped, s.PaymentErrors, s.LostParcels, s.LateRefunds, s.Commands, s.Retries, s.Duplicates, s.Ignored, s.Invalid)
}

func (d *Demo) logf(format string, args ...any) {
	if d.cfg.Log == nil {
		return
	}
	d.logMu.Lock()
	defer d.logMu.Unlock()
	fmt.Fprintf(d.cfg.Log, format+"\n", args...)
}

// flushTimeout bounds the final export after the run is over.
const flushTimeout = 10 * time.Second

// Run plays the choreography until ctx is done or cfg.Duration has passed — or, with
// cfg.Orders set and no command consumer configured, until every journey has played out.
// It serves commands meanwhile, then flushes every provider. Call it once.
func (d *Demo) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.cfg.Duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, d.cfg.Duration)
		defer stop()
	}
	var errs []error
	consumers := false

	var srv *http.Server
	srvDone := make(chan error, 1)
	if d.ln != nil {
		consumers = true
		srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { srvDone <- srv.Serve(d.ln) }()
	}
	var nc *natsConsumer
	if d.cfg.NATS != "" {
		consumers = true
		var err error
		if nc, err = d.consumeNATS(ctx); err != nil {
			errs = append(errs, err)
			cancel()
		}
	}

	if ctx.Err() == nil {
		d.logf("demo: emitting OTLP/%s to %s as tenant %s, %g orders/s, seed %d",
			d.cfg.Protocol, d.cfg.Endpoint(), d.cfg.Tenant, d.cfg.Rate, d.seed)
		if nc != nil {
			d.logf("demo: consuming commands from NATS %s, stream %s, subject %s", d.cfg.NATS, CommandStream, CommandSubject)
		}
		if srv != nil {
			d.logf("demo: accepting webhook commands on http://%s/", d.Addr())
		}
		d.loop(ctx, consumers)
	}
	close(d.loopDone)

	if srv != nil {
		sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop webhook server: %w", err))
		}
		stop()
		if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("serve webhook commands: %w", err))
		}
	}
	if nc != nil {
		nc.stop()
	}
	fctx, stop := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer stop()
	if err := d.tel.shutdown(fctx); err != nil {
		errs = append(errs, err)
	}
	d.logf("%s", d.Stats().line())
	return errors.Join(errs...)
}

// loop is the one goroutine that owns the simulation: it runs scheduled hops when due and
// handles commands in between.
func (d *Demo) loop(ctx context.Context, consumers bool) {
	s := d.sim
	s.start()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := s.runDue()
		if next.IsZero() && !consumers {
			return // every journey has played out and no command can come
		}
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(next.Sub(d.now()))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			s.stopGenerating()
			return
		case <-due:
		case req := <-d.reqs:
			req.reply <- s.handle(req.cmd, req.dedupKey)
		}
	}
}

// fifo remembers the n values put last, by key: the oldest is forgotten first.
type fifo[V any] struct {
	max  int
	m    map[string]V
	ring []string
	next int
}

func newFIFO[V any](max int) *fifo[V] { return &fifo[V]{max: max, m: map[string]V{}} }

func (l *fifo[V]) get(k string) (V, bool) {
	v, ok := l.m[k]
	return v, ok
}

func (l *fifo[V]) put(k string, v V) {
	if _, ok := l.m[k]; ok {
		l.m[k] = v
		return
	}
	if len(l.ring) < l.max {
		l.ring = append(l.ring, k)
	} else {
		delete(l.m, l.ring[l.next])
		l.ring[l.next] = k
		l.next = (l.next + 1) % l.max
	}
	l.m[k] = v
}

func (l *fifo[V]) len() int { return len(l.m) }

// idSet is a bounded set of command ids: the oldest is forgotten first.
type idSet struct{ l *fifo[struct{}] }

func newIDSet(max int) *idSet       { return &idSet{l: newFIFO[struct{}](max)} }
func (s *idSet) has(id string) bool { _, ok := s.l.get(id); return ok }
func (s *idSet) add(id string)      { s.l.put(id, struct{}{}) }
func (s *idSet) len() int           { return s.l.len() }
