package demo

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"
)

// Names of the example flows and checkpoints a retry command may name.
const (
	flowOrder        = "order-fulfilment"
	checkpointPaid   = "paid"
	flowPayment      = "payment"
	checkpointAuthed = "authorized"
)

// Shares of the rarer outcomes of the payment and onboarding journeys.
const (
	declineShare  = 0.3  // a stand-alone payment's first authorization is declined
	abandonShare  = 0.25 // a declined stand-alone payment is abandoned instead of retried
	rejectShare   = 0.1  // compliance rejects a customer
	maxRemembered = 50000
)

// journey is the time cursor and last hop of one business process: each item it records
// ends after the previous one, so checkpoints never tie.
type journey struct {
	at   time.Time
	last trace.SpanContext
}

type order struct {
	journey
	id, customer string
	amount       float64
	currency     string
	items        int
	payment      *payment
	reserved     bool
	settled      bool
	shipping     bool
	// the spans shipping reacts to (both, an AND-join)
	settledBy, reservedBy trace.SpanContext
	// awaiting: the payment failed or the payments hop was lost; a retry command heals it.
	awaiting bool
	// parcels is how many parcels it ships in, shipments their shipments once dispatched.
	parcels   int
	shipments []*parcel
	// cancelled: cancelled after its payment (it ships nothing); awaitingRefund: its
	// refund was missed, a retry command makes it.
	cancelled, awaitingRefund bool
}

type payment struct {
	journey
	id       string
	order    *order // nil for a stand-alone payment
	amount   float64
	currency string
	brand    string
	last4    string
	attempt  int
	awaiting bool
}

// j returns the journey the payment's items belong to: its order's when it has one.
func (p *payment) j() *journey {
	if p.order != nil {
		return &p.order.journey
	}
	return &p.journey
}

type customer struct {
	journey
	id                string
	verified, checked bool
	decided           bool
	country, plan     string
}

// task is one scheduled reaction of the simulation.
type task struct {
	at  time.Time
	seq uint64
	fn  func()
}

type taskHeap []task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = task{} // drop the closure
	*h = old[:len(old)-1]
	return t
}

// sim is the state of the choreography. It is owned by the loop goroutine: nothing here is
// touched from elsewhere.
type sim struct {
	cfg   *Config
	tel   *telemetry
	rng   *rand.Rand
	now   func() time.Time
	stats *counters

	tasks taskHeap
	seq   uint64
	// cur is the simulated time of the reaction being run: tasks are scheduled from it, not
	// from the wall clock, so a seeded run plays the same whatever the machine's speed.
	cur time.Time
	// from is the span the running reaction reacts to (see hop).
	from trace.SpanContext

	orders   *fifo[*order]
	payments *fifo[*payment]
	seen     *idSet

	started   int
	generated bool // no more orders will start
	nextStart time.Time
	progress  func()
}

func newSim(cfg *Config, tel *telemetry, seed uint64, now func() time.Time, stats *counters) *sim {
	return &sim{
		cfg:      cfg,
		tel:      tel,
		rng:      rand.New(rand.NewPCG(seed, 0xde30)),
		now:      now,
		stats:    stats,
		orders:   newFIFO[*order](maxRemembered),
		payments: newFIFO[*payment](maxRemembered),
		seen:     newIDSet(maxRemembered),
	}
}

// after schedules fn d from now.
func (s *sim) after(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.tasks, task{at: s.cur.Add(d), seq: s.seq, fn: fn})
}

// hop schedules a reaction of journey j: when it runs, s.from is the span it reacts to
// (j's last hop when it was scheduled), for the span link.
func (s *sim) hop(j *journey, d time.Duration, fn func()) {
	from := j.last
	s.after(d, func() {
		s.from = from
		fn()
	})
}

// hopDelay is the random delay of a hop: uniform in [0, Delay].
func (s *sim) hopDelay() time.Duration {
	if s.cfg.Delay <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(s.cfg.Delay) + 1))
}

// lost decides whether a hop is lost (the --drop fault).
func (s *sim) lost() bool {
	if s.cfg.Drop > 0 && s.rng.Float64() < s.cfg.Drop {
		s.stats.dropped.Add(1)
		return true
	}
	return false
}

// begin returns when a hop of j starts: now, but never before j's last item plus a broker
// latency.
func (s *sim) begin(j *journey) time.Time {
	t := s.now()
	if min := j.at.Add(s.between(200*time.Microsecond, 2*time.Millisecond)); t.Before(min) {
		t = min
	}
	return t
}

// advance moves j's cursor to end.
func (j *journey) advance(end time.Time, last trace.SpanContext) {
	if end.After(j.at) {
		j.at = end
	}
	if last.IsValid() {
		j.last = last
	}
}

func (s *sim) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

func (s *sim) ident(prefix string) string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	b := make([]byte, 0, len(prefix)+11)
	b = append(b, prefix...)
	b = append(b, '-')
	for range 10 {
		b = append(b, alphabet[s.rng.IntN(len(alphabet))])
	}
	return string(b)
}

func (s *sim) pick(xs ...string) string { return xs[s.rng.IntN(len(xs))] }

func (s *sim) svc(name string) *service { return s.tel.services[name] }

// start schedules the first order; orders then follow at the configured rate.
func (s *sim) start() {
	s.nextStart = s.now()
	s.cur = s.nextStart
	s.seq++
	heap.Push(&s.tasks, task{at: s.nextStart, seq: s.seq, fn: s.tick})
}

// tick starts one order (and sometimes a stand-alone payment or a sign-up) and schedules
// the next tick.
func (s *sim) tick() {
	if s.generated {
		return
	}
	s.started++
	s.placeOrder()
	if s.cfg.PaymentShare > 0 && s.rng.Float64() < s.cfg.PaymentShare {
		s.startPayment()
	}
	if s.cfg.OnboardingShare > 0 && s.rng.Float64() < s.cfg.OnboardingShare {
		s.signUp()
	}
	if s.cfg.ReportEvery > 0 && s.started%s.cfg.ReportEvery == 0 && s.progress != nil {
		s.progress()
	}
	if s.cfg.Orders > 0 && s.started >= s.cfg.Orders {
		s.generated = true
		return
	}
	s.nextStart = s.nextStart.Add(time.Duration(float64(time.Second) / s.cfg.Rate))
	s.seq++
	heap.Push(&s.tasks, task{at: s.nextStart, seq: s.seq, fn: s.tick})
}

// stopGenerating stops starting orders; journeys under way go on.
func (s *sim) stopGenerating() { s.generated = true }

// ---- order-fulfilment -------------------------------------------------------------------

func (s *sim) newOrder(id string) *order {
	o := &order{
		id:       id,
		customer: s.ident("cus"),
		currency: s.pick("EUR", "EUR", "USD", "GBP"),
		items:    1 + s.rng.IntN(5),
	}
	o.parcels = 1 + s.rng.IntN(min(o.items, 3))
	o.amount = float64(500+s.rng.IntN(30000)) / 100
	s.orders.put(id, o)
	return o
}

func (s *sim) placeOrder() {
	s.stats.orders.Add(1)
	o := s.newOrder(s.ident("ord"))
	orders := s.svc(svcOrders)
	start := s.begin(&o.journey)
	end := start.Add(s.between(15*time.Millisecond, 90*time.Millisecond))
	ctx, _ := orders.record(nil, spanSpec{
		name: "POST /orders", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("http.route", "/orders"),
			attribute.String("url.path", "/orders"),
			attribute.String("url.scheme", "https"),
			attribute.String("server.address", "shop.example.com"),
			attribute.Int("http.response.status_code", http.StatusCreated),
			attribute.String("network.protocol.version", "1.1"),
			attribute.String("client.address", fmt.Sprintf("203.0.113.%d", 1+s.rng.IntN(254))),
			attribute.String("user_agent.original", s.pick("Mozilla/5.0 (X11; Linux x86_64)", "ShopApp/4.2 (iOS 18.1)", "ShopApp/4.2 (Android 15)")),
			attribute.String("order.id", o.id),
			attribute.String("customer.id", o.customer),
			attribute.Float64("order.total", o.amount),
			attribute.String("order.currency", o.currency),
			attribute.Int("order.item_count", o.items),
			attribute.Int("order.parcel_count", o.parcels),
		},
	})
	dbStart := start.Add(3 * time.Millisecond)
	orders.record(ctx, spanSpec{
		name: "INSERT shop.orders", kind: trace.SpanKindClient, start: dbStart, end: dbStart.Add(s.between(time.Millisecond, 8*time.Millisecond)),
		attrs: []attribute.KeyValue{
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.namespace", "shop"),
			attribute.String("db.operation.name", "INSERT"),
			attribute.String("db.collection.name", "orders"),
			attribute.String("server.address", "orders-db.internal"),
			attribute.Int("server.port", 5432),
		},
	})
	_, pub := orders.record(ctx, spanSpec{
		name: "publish orders.placed", kind: trace.SpanKindProducer, start: end.Add(-2 * time.Millisecond), end: end.Add(-time.Millisecond),
		attrs: s.messaging("orders.placed", "publish", "", o.id),
	})
	o.advance(end, pub)

	if s.cfg.CancelRate > 0 && s.rng.Float64() < s.cfg.CancelRate {
		s.hop(&o.journey, s.hopDelay(), func() { s.cancelOrder(o) })
		return
	}
	s.hop(&o.journey, s.hopDelay(), func() { s.payOrder(o) })
	s.hop(&o.journey, s.hopDelay(), func() { s.reserveStock(o) })
}

// messaging returns the attributes of a broker operation.
func (s *sim) messaging(destination, operation, group, orderID string) []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.destination.name", destination),
		attribute.String("messaging.operation.type", operation),
		attribute.String("messaging.message.id", s.ident("msg")),
		attribute.Int("messaging.destination.partition.id", s.rng.IntN(12)),
		attribute.String("server.address", "kafka.internal"),
	}
	if group != "" {
		kv = append(kv, attribute.String("messaging.consumer.group.name", group))
	}
	if orderID != "" {
		kv = append(kv, attribute.String("messaging.kafka.message.key", orderID))
	}
	return kv
}

func (s *sim) cancelOrder(o *order) {
	s.stats.cancelled.Add(1)
	s.recordCancel(o, "placed")
}

// recordCancel records the orders service cancelling o, placed or already paid (before).
func (s *sim) recordCancel(o *order, before string) {
	orders := s.svc(svcOrders)
	start := s.begin(&o.journey)
	end := start.Add(s.between(10*time.Millisecond, 40*time.Millisecond))
	ctx, root := orders.record(nil, spanSpec{
		name: "POST /orders/{order_id}/cancel", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("http.route", "/orders/{order_id}/cancel"),
			attribute.String("url.path", "/orders/"+o.id+"/cancel"),
			attribute.String("url.scheme", "https"),
			attribute.String("server.address", "shop.example.com"),
			attribute.Int("http.response.status_code", http.StatusOK),
			attribute.String("order.id", o.id),
			attribute.String("customer.id", o.customer),
		},
	})
	cStart := start.Add(2 * time.Millisecond)
	orders.record(ctx, spanSpec{
		name: "cancel", kind: trace.SpanKindInternal, start: cStart, end: end.Add(-time.Millisecond), ok: true,
		attrs: []attribute.KeyValue{
			attribute.String("order.id", o.id),
			attribute.String("customer.id", o.customer),
			attribute.String("order.cancel_reason", s.pick("customer_request", "customer_request", "address_unverifiable", "duplicate_order")),
			attribute.String("order.status_before", before),
			attribute.Float64("order.total", o.amount),
			attribute.String("order.currency", o.currency),
			attribute.Int("order.item_count", o.items),
			attribute.String("enduser.channel", s.pick("web", "app", "support")),
		},
	})
	o.advance(end, root)
}

// payOrder is the payments service reacting to orders.placed.
func (s *sim) payOrder(o *order) {
	if s.lost() {
		o.awaiting = true
		return
	}
	s.requestPayment(o, nil)
}

func (s *sim) newPayment(o *order, id string) *payment {
	p := &payment{
		id:    id,
		order: o,
		brand: s.pick("visa", "mastercard", "amex"),
		last4: fmt.Sprintf("%04d", s.rng.IntN(10000)),
	}
	if o != nil {
		p.amount, p.currency = o.amount, o.currency
		o.payment = p
	} else {
		p.amount = float64(499+s.rng.IntN(5000)) / 100
		p.currency = s.pick("EUR", "USD")
	}
	s.payments.put(p.id, p)
	return p
}

// paymentAttrs are the attributes every payments span carries.
func (p *payment) attrs() []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attribute.String("payment.id", p.id),
		attribute.Float64("payment.amount", p.amount),
		attribute.String("payment.currency", p.currency),
		attribute.String("payment.method", "card"),
		attribute.String("card.brand", p.brand),
		attribute.String("card.last4", p.last4),
	}
	if p.order != nil {
		// payments names the order payment.order_id, and tags its spans with order.id too.
		kv = append(kv, attribute.String("payment.order_id", p.order.id), attribute.String("order.id", p.order.id))
	}
	return kv
}

// requestPayment records the payment request (POST /payments, the payment flow's start)
// and its first authorization. cmd is the retry command that caused it, if any: a
// retried authorization always succeeds.
func (s *sim) requestPayment(o *order, cmd *Command) *payment {
	p := s.newPayment(o, s.ident("pay"))
	if o == nil {
		s.stats.payments.Add(1)
	}
	payments := s.svc(svcPayments)
	j := p.j()
	start := s.begin(j)
	end := start.Add(s.between(10*time.Millisecond, 40*time.Millisecond))
	attrs := append(p.attrs(),
		attribute.String("http.request.method", "POST"),
		attribute.String("http.route", "/payments"),
		attribute.String("url.path", "/payments"),
		attribute.String("server.address", "payments.internal"),
		attribute.Int("http.response.status_code", http.StatusAccepted),
		attribute.String("payment.purpose", purpose(o)),
	)
	attrs = append(attrs, commandAttrs(cmd)...)
	ctx, root := payments.record(nil, spanSpec{
		name: "POST /payments", kind: trace.SpanKindServer, start: start, end: end,
		attrs: attrs, links: []trace.SpanContext{s.from},
	})
	j.advance(end, root)
	// The request is answered 202 at once; the authorization goes on asynchronously in the
	// same trace, so the payment is requested before it is authorized.
	aStart := end.Add(time.Millisecond)
	s.authorize(ctx, p, aStart, aStart.Add(s.between(100*time.Millisecond, 500*time.Millisecond)), cmd != nil)
	return p
}

func purpose(o *order) string {
	if o != nil {
		return "order"
	}
	return "subscription_renewal"
}

// authorize records the card authorization of p between start and end, as a child of ctx.
// Its outcome: an issuer error (orders, --error-rate), a decline (stand-alone payments), or
// the payment.authorized event. force makes it succeed (a retry).
func (s *sim) authorize(ctx context.Context, p *payment, start, end time.Time, force bool) {
	payments := s.svc(svcPayments)
	p.attempt++
	attrs := append(p.attrs(),
		attribute.String("peer.service", "card-issuer"),
		attribute.String("server.address", "api.issuer.example"),
		attribute.Int("server.port", 443),
		attribute.Int("payment.attempt", p.attempt),
	)
	sp := spanSpec{name: "authorize", kind: trace.SpanKindClient, start: start, end: end, attrs: attrs}
	switch {
	case !force && p.order != nil && s.cfg.ErrorRate > 0 && s.rng.Float64() < s.cfg.ErrorRate:
		s.stats.paymentErrors.Add(1)
		sp.errMsg = "card issuer timeout"
		sp.attrs = append(sp.attrs, attribute.String("error.type", "issuer_timeout"))
		_, sc := payments.record(ctx, sp)
		p.awaiting, p.order.awaiting = true, true
		p.j().advance(end, sc)
		return
	case !force && p.order == nil && p.attempt == 1 && s.rng.Float64() < declineShare:
		code := s.pick("insufficient_funds", "do_not_honor", "expired_card")
		sp.attrs = append(sp.attrs, attribute.String("payment.decline_code", code))
		actx, sc := payments.record(ctx, sp)
		payments.emitEvent(actx, "payment.declined", end, otellog.SeverityWarn,
			"card authorization declined: "+code,
			attribute.String("payment.id", p.id),
			attribute.String("payment.decline_code", code),
			attribute.Float64("payment.amount", p.amount),
			attribute.String("payment.currency", p.currency),
			attribute.Int("payment.attempt", p.attempt))
		p.j().advance(end, sc)
		if s.rng.Float64() < abandonShare {
			s.hop(p.j(), s.hopDelay(), func() { s.abandonPayment(p) })
		} else {
			s.hop(p.j(), s.hopDelay(), func() { s.retryPayment(p) })
		}
		return
	}
	sp.ok = true
	evAttrs := []attribute.KeyValue{
		attribute.String("payment.id", p.id),
		attribute.String("payment.authorization_code", fmt.Sprintf("%06d", s.rng.IntN(1000000))),
		attribute.Float64("payment.amount", p.amount),
		attribute.String("payment.currency", p.currency),
	}
	if p.order != nil {
		evAttrs = append(evAttrs, attribute.String("payment.order_id", p.order.id))
	}
	sp.events = []eventSpec{{name: "payment.authorized", at: end.Add(-time.Millisecond), attrs: evAttrs}}
	_, sc := payments.record(ctx, sp)
	p.awaiting = false
	if p.order != nil {
		p.order.awaiting = false
	}
	p.j().advance(end, sc)
	s.hop(p.j(), s.hopDelay(), func() { s.capture(p) })
}

// retryPayment is the payments service retrying a declined stand-alone payment by itself.
func (s *sim) retryPayment(p *payment) {
	if s.lost() {
		return
	}
	payments := s.svc(svcPayments)
	j := p.j()
	start := s.begin(j)
	end := start.Add(s.between(5*time.Millisecond, 20*time.Millisecond))
	ctx, root := payments.record(nil, spanSpec{
		name: "retry payment", kind: trace.SpanKindInternal, start: start, end: end, ok: true,
		attrs: append(p.attrs(), attribute.Int("payment.attempt", p.attempt+1),
			attribute.String("payment.retry.policy", "exponential"),
			attribute.String("job.name", "payment-retrier")),
		links: []trace.SpanContext{s.from},
	})
	j.advance(end, root)
	aStart := end.Add(time.Millisecond)
	s.authorize(ctx, p, aStart, aStart.Add(s.between(100*time.Millisecond, 400*time.Millisecond)), true)
}

func (s *sim) abandonPayment(p *payment) {
	if s.lost() {
		return
	}
	j := p.j()
	at := s.begin(j)
	s.svc(svcPayments).emitEvent(nil, "payment.abandoned", at, otellog.SeverityWarn,
		"payment abandoned after a declined authorization",
		attribute.String("payment.id", p.id),
		attribute.Int("payment.attempt", p.attempt),
		attribute.Float64("payment.amount", p.amount),
		attribute.String("payment.currency", p.currency),
		attribute.String("payment.abandon_reason", "customer_did_not_update_card"))
	j.advance(at, trace.SpanContext{})
}

// capture is the payments service capturing an authorized payment.
func (s *sim) capture(p *payment) {
	if s.lost() {
		return
	}
	payments := s.svc(svcPayments)
	j := p.j()
	start := s.begin(j)
	end := start.Add(s.between(80*time.Millisecond, 400*time.Millisecond))
	_, sc := payments.record(nil, spanSpec{
		name: "capture", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(p.attrs(), s.messaging("payments.authorized", "process", "payments-capture", "")...),
		links: []trace.SpanContext{s.from},
	})
	j.advance(end, sc)
	if p.order != nil {
		o := p.order
		s.hop(&o.journey, s.hopDelay(), func() { s.settle(o) })
	}
}

// settle is the ledger reacting to payments.captured: it knows the payment id only.
func (s *sim) settle(o *order) {
	if s.lost() {
		return
	}
	ledger := s.svc(svcLedger)
	p := o.payment
	start := s.begin(&o.journey)
	end := start.Add(s.between(20*time.Millisecond, 120*time.Millisecond))
	entry := s.ident("je")
	ctx, sc := ledger.record(nil, spanSpec{
		name: "payments.captured process", kind: trace.SpanKindConsumer, start: start, end: end,
		attrs: append(s.messaging("payments.captured", "process", "ledger", ""),
			attribute.String("payment.id", p.id),
			attribute.String("ledger.entry_id", entry)),
		links: []trace.SpanContext{s.from},
	})
	ledger.emitEvent(ctx, "payment.settled", end.Add(-time.Millisecond), otellog.SeverityInfo,
		"payment settled",
		attribute.String("payment.id", p.id),
		attribute.String("ledger.entry_id", entry),
		attribute.String("ledger.account", "receivables:"+p.brand),
		attribute.Float64("payment.amount", p.amount),
		attribute.String("payment.currency", p.currency),
		attribute.String("ledger.book", "sales"))
	o.advance(end, sc)
	o.settled, o.settledBy = true, sc
	if s.cfg.CancelAfterPaymentRate > 0 && s.rng.Float64() < s.cfg.CancelAfterPaymentRate {
		o.cancelled = true
		s.hop(&o.journey, s.hopDelay(), func() { s.cancelAfterPayment(o) })
		return
	}
	s.maybeShip(o)
}

// reserveStock is inventory reacting to orders.placed.
func (s *sim) reserveStock(o *order) {
	if s.lost() {
		return
	}
	inventory := s.svc(svcInventory)
	start := s.begin(&o.journey)
	end := start.Add(s.between(20*time.Millisecond, 150*time.Millisecond))
	ctx, sc := inventory.record(nil, spanSpec{
		name: "reserve", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(s.messaging("orders.placed", "process", "inventory", o.id),
			attribute.String("order.id", o.id),
			attribute.Int("order.item_count", o.items),
			attribute.String("inventory.warehouse", s.pick("ams-1", "fra-2", "dub-1")),
			attribute.String("inventory.reservation_id", s.ident("res"))),
		links: []trace.SpanContext{s.from},
	})
	dbStart := start.Add(2 * time.Millisecond)
	inventory.record(ctx, spanSpec{
		name: "UPDATE inventory.stock", kind: trace.SpanKindClient, start: dbStart, end: dbStart.Add(s.between(time.Millisecond, 10*time.Millisecond)),
		attrs: []attribute.KeyValue{
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.namespace", "inventory"),
			attribute.String("db.operation.name", "UPDATE"),
			attribute.String("db.collection.name", "stock"),
			attribute.String("server.address", "inventory-db.internal"),
			attribute.Int("server.port", 5432),
		},
	})
	o.advance(end, sc)
	o.reserved, o.reservedBy = true, sc
	s.maybeShip(o)
}

// maybeShip ships once both the settlement and the reservation are in (an AND-join).
func (s *sim) maybeShip(o *order) {
	if o.settled && o.reserved && !o.shipping && !o.cancelled {
		o.shipping = true
		s.hop(&o.journey, s.hopDelay(), func() { s.ship(o) })
	}
}

func (s *sim) ship(o *order) {
	if s.lost() {
		return
	}
	shipping := s.svc(svcShipping)
	start := s.begin(&o.journey)
	end := start.Add(s.between(100*time.Millisecond, 700*time.Millisecond))
	carrier := s.pick("dhl", "ups", "postnl", "dpd")
	ctx, sc := shipping.record(nil, spanSpec{
		name: "ship order", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(s.messaging("payments.settled", "process", "shipping", o.id),
			attribute.String("order.id", o.id),
			attribute.String("shipping.carrier", carrier),
			attribute.String("shipping.method", s.pick("standard", "standard", "express")),
			attribute.Int("order.parcel_count", o.parcels)),
		links: []trace.SpanContext{o.settledBy, o.reservedBy},
	})
	cStart := start.Add(20 * time.Millisecond)
	shipping.record(ctx, spanSpec{
		name: "POST", kind: trace.SpanKindClient, start: cStart, end: cStart.Add(s.between(30*time.Millisecond, 80*time.Millisecond)),
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("url.full", "https://api."+carrier+".example/v2/shipments"),
			attribute.String("server.address", "api."+carrier+".example"),
			attribute.Int("http.response.status_code", http.StatusCreated),
		},
	})
	o.advance(end, sc)
	s.shipParcels(o, sc, carrier, end)
}

// deliver is the carrier's webhook telling shipping the order's last parcel was delivered.
func (s *sim) deliver(o *order, carrier string) {
	if s.lost() {
		return
	}
	shipping := s.svc(svcShipping)
	start := s.begin(&o.journey)
	end := start.Add(s.between(5*time.Millisecond, 30*time.Millisecond))
	_, sc := shipping.record(nil, spanSpec{
		name: "POST /carrier/events", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("http.route", "/carrier/events"),
			attribute.String("url.path", "/carrier/events"),
			attribute.Int("http.response.status_code", http.StatusNoContent),
			attribute.String("server.address", "shipping.example.com"),
			attribute.String("shipping.carrier", carrier),
			attribute.String("order.id", o.id),
		},
		events: []eventSpec{{name: "delivered", at: end.Add(-time.Millisecond), attrs: []attribute.KeyValue{
			attribute.String("order.id", o.id),
			attribute.Int("order.parcel_count", o.parcels),
			attribute.String("shipping.carrier", carrier),
			attribute.String("delivery.signed_by", s.pick("recipient", "neighbour", "safe place")),
		}}},
		links: []trace.SpanContext{s.from},
	})
	o.advance(end, sc)
	s.stats.delivered.Add(1)
}

// ---- payment (stand-alone) --------------------------------------------------------------

func (s *sim) startPayment() { s.requestPayment(nil, nil) }

// ---- customer-onboarding ----------------------------------------------------------------

func (s *sim) signUp() {
	s.stats.signups.Add(1)
	c := &customer{id: s.ident("cus"), country: s.pick("NL", "DE", "FR", "IE"), plan: s.pick("basic", "plus")}
	web := s.svc(svcWeb)
	start := s.begin(&c.journey)
	end := start.Add(s.between(40*time.Millisecond, 200*time.Millisecond))
	ctx, _ := web.record(nil, spanSpec{
		name: "POST /signup", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("http.route", "/signup"),
			attribute.String("url.path", "/signup"),
			attribute.String("url.scheme", "https"),
			attribute.String("server.address", "bank.example.com"),
			attribute.Int("http.response.status_code", http.StatusCreated),
			attribute.String("client.address", fmt.Sprintf("198.51.100.%d", 1+s.rng.IntN(254))),
			attribute.String("customer.id", c.id),
			attribute.String("customer.country", c.country),
			attribute.String("customer.plan", c.plan),
		},
	})
	_, pub := web.record(ctx, spanSpec{
		name: "publish customers.signed_up", kind: trace.SpanKindProducer, start: end.Add(-2 * time.Millisecond), end: end.Add(-time.Millisecond),
		attrs: s.messaging("customers.signed_up", "publish", "", ""),
	})
	c.advance(end, pub)
	s.hop(&c.journey, s.hopDelay(), func() { s.confirmEmail(c) })
}

func (s *sim) confirmEmail(c *customer) {
	if s.lost() {
		return
	}
	accounts := s.svc(svcAccounts)
	start := s.begin(&c.journey)
	end := start.Add(s.between(10*time.Millisecond, 50*time.Millisecond))
	ctx, sc := accounts.record(nil, spanSpec{
		name: "GET /confirm-email", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "GET"),
			attribute.String("http.route", "/confirm-email"),
			attribute.Int("http.response.status_code", http.StatusOK),
			attribute.String("customer.id", c.id),
		},
	})
	accounts.emitEvent(ctx, "email.confirmed", end.Add(-time.Millisecond), otellog.SeverityInfo,
		"e-mail address confirmed",
		attribute.String("customer.id", c.id),
		attribute.String("email.domain", "mail.example"),
		attribute.String("customer.country", c.country))
	c.advance(end, sc)
	s.hop(&c.journey, s.hopDelay(), func() { s.verifyIdentity(c) })
	s.hop(&c.journey, s.hopDelay(), func() { s.checkCredit(c) })
}

func (s *sim) verifyIdentity(c *customer) {
	if s.lost() {
		return
	}
	kyc := s.svc(svcKYC)
	start := s.begin(&c.journey)
	end := start.Add(s.between(300*time.Millisecond, 2*time.Second))
	_, sc := kyc.record(nil, spanSpec{
		name: "verify identity", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(s.messaging("customers.email_confirmed", "process", "kyc", ""),
			attribute.String("customer.id", c.id),
			attribute.String("kyc.provider", s.pick("onfido", "veriff")),
			attribute.String("kyc.method", "document")),
		events: []eventSpec{{name: "identity.verified", at: end.Add(-time.Millisecond), attrs: []attribute.KeyValue{
			attribute.String("customer.id", c.id),
			attribute.String("kyc.document_type", s.pick("passport", "id_card", "driving_licence")),
			attribute.String("customer.country", c.country),
		}}},
		links: []trace.SpanContext{s.from},
	})
	c.advance(end, sc)
	c.verified = true
	s.decide(c)
}

func (s *sim) checkCredit(c *customer) {
	if s.lost() {
		return
	}
	risk := s.svc(svcRisk)
	start := s.begin(&c.journey)
	end := start.Add(s.between(100*time.Millisecond, 900*time.Millisecond))
	_, sc := risk.record(nil, spanSpec{
		name: "credit check", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(s.messaging("customers.email_confirmed", "process", "risk", ""),
			attribute.String("customer.id", c.id),
			attribute.Int("risk.score", 300+s.rng.IntN(550)),
			attribute.String("risk.bureau", s.pick("experian", "equifax"))),
		links: []trace.SpanContext{s.from},
	})
	c.advance(end, sc)
	c.checked = true
	s.decide(c)
}

// decide opens the account or, rarely, has compliance reject the customer, once both the
// identity and the credit check are in.
func (s *sim) decide(c *customer) {
	if !c.verified || !c.checked || c.decided {
		return
	}
	c.decided = true
	if s.rng.Float64() < rejectShare {
		s.hop(&c.journey, s.hopDelay(), func() { s.reject(c) })
		return
	}
	s.hop(&c.journey, s.hopDelay(), func() { s.openAccount(c) })
}

func (s *sim) reject(c *customer) {
	if s.lost() {
		return
	}
	at := s.begin(&c.journey)
	s.svc(svcCompliance).emitEvent(nil, "customer.rejected", at, otellog.SeverityWarn,
		"customer rejected by compliance review",
		attribute.String("customer.id", c.id),
		attribute.String("compliance.reason", s.pick("sanctions_list_match", "pep_unresolved")),
		attribute.String("customer.country", c.country))
	c.advance(at, trace.SpanContext{})
}

func (s *sim) openAccount(c *customer) {
	if s.lost() {
		return
	}
	accounts := s.svc(svcAccounts)
	start := s.begin(&c.journey)
	end := start.Add(s.between(30*time.Millisecond, 150*time.Millisecond))
	_, sc := accounts.record(nil, spanSpec{
		name: "open account", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: append(s.messaging("customers.checked", "process", "accounts", ""),
			attribute.String("customer.id", c.id),
			attribute.String("account.id", s.ident("acc")),
			attribute.String("customer.plan", c.plan)),
		links: []trace.SpanContext{s.from},
	})
	c.advance(end, sc)
	s.hop(&c.journey, s.hopDelay(), func() { s.shipWelcomeKit(c) })
}

func (s *sim) shipWelcomeKit(c *customer) {
	if s.lost() {
		return
	}
	fulfilment := s.svc(svcFulfilment)
	start := s.begin(&c.journey)
	end := start.Add(s.between(50*time.Millisecond, 250*time.Millisecond))
	ctx, sc := fulfilment.record(nil, spanSpec{
		name: "accounts.opened process", kind: trace.SpanKindConsumer, start: start, end: end,
		attrs: append(s.messaging("accounts.opened", "process", "fulfilment", ""),
			attribute.String("customer.id", c.id)),
		links: []trace.SpanContext{s.from},
	})
	fulfilment.emitEvent(ctx, "welcome_kit.shipped", end.Add(-time.Millisecond), otellog.SeverityInfo,
		"welcome kit shipped",
		attribute.String("customer.id", c.id),
		attribute.String("shipping.carrier", s.pick("postnl", "dhl")),
		attribute.String("customer.plan", c.plan))
	c.advance(end, sc)
	s.stats.onboarded.Add(1)
}

// ---- unblock commands -------------------------------------------------------------------

// handle acts on one command. It runs on the loop goroutine.
func (s *sim) handle(cmd *Command, dedupKey string) Outcome {
	s.stats.commands.Add(1)
	s.cur = s.now()
	if s.seen.has(cmd.ID) || (dedupKey != "" && s.seen.has(dedupKey)) {
		s.stats.duplicates.Add(1)
		return Outcome{Status: OutcomeDuplicate, Detail: "command " + cmd.ID + " was already handled"}
	}
	s.seen.add(cmd.ID)
	if dedupKey != "" && dedupKey != cmd.ID {
		s.seen.add(dedupKey)
	}
	key := cmd.key()
	if cmd.Data.Tenant != "" && cmd.Data.Tenant != s.cfg.Tenant {
		s.stats.ignored.Add(1)
		return Outcome{Status: OutcomeIgnored, Detail: fmt.Sprintf("tenant %q is not this demo's (%q)", cmd.Data.Tenant, s.cfg.Tenant)}
	}
	switch {
	case cmd.Data.Flow == flowOrder && cmd.Data.Checkpoint == checkpointRefunded:
		return s.handleRefund(key, cmd)
	case cmd.Data.Flow == flowOrder && cmd.Data.Checkpoint == checkpointPaid:
		o, ok := s.orders.get(key)
		if !ok {
			// An order this process did not start (another run, a test): take it as placed
			// with its stock reserved, and pay it.
			o = s.newOrder(key)
			o.reserved, o.awaiting = true, true
			o.at = s.now()
		}
		if !o.awaiting {
			s.stats.ignored.Add(1)
			return Outcome{Status: OutcomeIgnored, Detail: "order " + key + " is not waiting for a payment"}
		}
		if o.payment == nil {
			s.from = o.last
			s.requestPayment(o, cmd)
		} else {
			s.reauthorize(o.payment, cmd)
		}
	case cmd.Data.Flow == flowPayment && cmd.Data.Checkpoint == checkpointAuthed:
		p, ok := s.payments.get(key)
		if !ok {
			p = s.newPayment(nil, key)
			p.awaiting = true
			p.at = s.now()
		}
		if !p.awaiting {
			s.stats.ignored.Add(1)
			return Outcome{Status: OutcomeIgnored, Detail: "payment " + key + " is not waiting for an authorization"}
		}
		s.reauthorize(p, cmd)
	default:
		s.stats.ignored.Add(1)
		return Outcome{Status: OutcomeIgnored, Detail: fmt.Sprintf("no action for %s/%s", cmd.Data.Flow, cmd.Data.Checkpoint)}
	}
	s.stats.retries.Add(1)
	return Outcome{Status: OutcomeRetried, Detail: "payment authorization retried for " + cmd.Data.Flow + "/" + key}
}

// reauthorize is the payments service consuming a retry command: a new trace, linked to
// the failed attempt, whose authorization succeeds.
func (s *sim) reauthorize(p *payment, cmd *Command) {
	payments := s.svc(svcPayments)
	j := p.j()
	start := s.begin(j)
	end := start.Add(s.between(150*time.Millisecond, 500*time.Millisecond))
	ctx, root := payments.record(nil, spanSpec{
		name: CommandSubject + " process", kind: trace.SpanKindConsumer, start: start, end: end,
		attrs: append(append(p.attrs(),
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", CommandSubject),
			attribute.String("messaging.operation.type", "process")),
			commandAttrs(cmd)...),
		links: []trace.SpanContext{j.last},
	})
	j.advance(end, root)
	s.authorize(ctx, p, start.Add(3*time.Millisecond), end.Add(-2*time.Millisecond), true)
}

// commandAttrs are the CloudEvents attributes of the command a span reacts to.
func commandAttrs(cmd *Command) []attribute.KeyValue {
	if cmd == nil {
		return nil
	}
	return []attribute.KeyValue{
		attribute.String("cloudevents.event_id", cmd.ID),
		attribute.String("cloudevents.event_source", cmd.Source),
		attribute.String("cloudevents.event_type", cmd.Type),
		attribute.String("cloudevents.event_subject", cmd.Subject),
		attribute.Int("flowwatch.command.attempt", cmd.Data.Attempt),
	}
}

// runDue runs every task due at now and reports when the next one is (zero: none).
func (s *sim) runDue() time.Time {
	for len(s.tasks) > 0 {
		if s.tasks[0].at.After(s.now()) {
			return s.tasks[0].at
		}
		t := heap.Pop(&s.tasks).(task)
		s.cur, s.from = t.at, trace.SpanContext{}
		t.fn()
	}
	return time.Time{}
}
