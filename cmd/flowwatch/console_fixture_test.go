package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// The shop of the console's test (flows in testdata/console).
const (
	consoleTenant = "shop-eu"
	// The two stuck orders of the fixture: one overdue at paid after a card issuer timeout,
	// one overdue at shipped with nothing to say why.
	stuckAtPaid    = "ord-7f3a9c21"
	stuckAtShipped = "ord-2b81e6d4"
)

// shopTelemetry sends the fixture's spans like the services of a shop would: one tracer
// provider per service, every hop in its own trace, key order.id on every item.
type shopTelemetry struct {
	providers map[string]*sdktrace.TracerProvider
}

func newShopTelemetry(t *testing.T, grpcAddr string) *shopTelemetry {
	t.Helper()
	s := &shopTelemetry{providers: map[string]*sdktrace.TracerProvider{}}
	for _, svc := range []string{"orders", "payments", "inventory", "ledger", "shipping"} {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(svc), attribute.String("tenant.id", consoleTenant))
		s.providers[svc] = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(256)), sdktrace.WithResource(res))
	}
	return s
}

// span records one root span of service from start to end, with order.id, and options.
func (s *shopTelemetry) span(svc, name string, kind trace.SpanKind, order string, start, end time.Time, opts ...func(trace.Span)) {
	s.spanWith(svc, name, kind, []attribute.KeyValue{attribute.String("order.id", order)}, start, end, opts...)
}

// spanWith records one root span of service from start to end, with attrs, and options.
func (s *shopTelemetry) spanWith(svc, name string, kind trace.SpanKind, attrs []attribute.KeyValue, start, end time.Time, opts ...func(trace.Span)) {
	_, sp := s.providers[svc].Tracer(svc).Start(context.Background(), name, trace.WithSpanKind(kind), trace.WithTimestamp(start),
		trace.WithAttributes(attrs...))
	for _, o := range opts {
		o(sp)
	}
	sp.End(trace.WithTimestamp(end))
}

func (s *shopTelemetry) flush(t *testing.T) {
	t.Helper()
	for svc, tp := range s.providers {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatalf("send the spans of %s: %v", svc, err)
		}
	}
}

func event(name string, at time.Time, order string) func(trace.Span) {
	return func(sp trace.Span) {
		sp.AddEvent(name, trace.WithTimestamp(at), trace.WithAttributes(attribute.String("order.id", order)))
	}
}

// sendShopFixture sends the last half hour of a shop as of now: completed orders, a few
// cancelled and running ones, the two stuck ones, and the bundle orders.
func sendShopFixture(t *testing.T, s *shopTelemetry, now time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(16, 2026))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }
	placed := func(key string, at time.Time) {
		s.span("orders", "POST /orders", trace.SpanKindServer, key, at, at.Add(ms(20, 60)), func(sp trace.Span) {
			sp.SetAttributes(attribute.Int("http.response.status_code", 201))
		})
	}
	pay := func(key string, at time.Time) time.Time {
		done := at.Add(ms(300, 900))
		s.span("payments", "authorize", trace.SpanKindClient, key, at, done.Add(5*time.Millisecond), event("payment.authorized", done, key))
		return done
	}
	reserve := func(key string, at time.Time) time.Time {
		end := at.Add(ms(120, 700))
		s.span("inventory", "reserve", trace.SpanKindConsumer, key, at, end, func(sp trace.Span) { sp.SetStatus(codes.Ok, "") })
		return end
	}
	settle := func(key string, at time.Time) time.Time {
		done := at.Add(ms(800, 2600))
		s.span("ledger", "settle", trace.SpanKindConsumer, key, at, done.Add(3*time.Millisecond), event("payment.settled", done, key))
		return done
	}
	ship := func(key string, at time.Time) time.Time {
		end := at.Add(ms(1500, 5000))
		s.span("shipping", "ship parcel", trace.SpanKindConsumer, key, at, end)
		return end
	}
	deliver := func(key string, at time.Time) {
		done := at.Add(ms(4000, 30000))
		s.span("shipping", "deliver", trace.SpanKindInternal, key, done.Add(-200*time.Millisecond), done, event("delivered", done, key))
	}
	for i := 0; i < 44; i++ {
		key := fmt.Sprintf("ord-%08x", rng.Uint32())
		at := now.Add(-28*time.Minute + time.Duration(i)*35*time.Second)
		if i == 43 {
			at = now.Add(-12 * time.Second)
		}
		placed(key, at)
		switch {
		case i%13 == 5: // cancelled by the customer
			s.span("orders", "cancel", trace.SpanKindInternal, key, at.Add(ms(1000, 4000)), at.Add(ms(4100, 4500)))
			continue
		case i == 43: // placed moments ago: paid and reserved, its settlement (due in 2m) on its way
			// Not its payment: that is due 30s after placing, within the test's run.
			pay(key, at.Add(ms(100, 400)))
			reserve(key, at.Add(ms(50, 200)))
			continue
		}
		paid := pay(key, at.Add(ms(100, 400)))
		reserved := reserve(key, at.Add(ms(50, 200)))
		settled := settle(key, paid)
		if i >= 41 { // shipped, not delivered yet
			ship(key, settled.Add(ms(200, 900)))
			continue
		}
		if reserved.After(settled) {
			settled = reserved // shipping waits for both
		}
		deliver(key, ship(key, settled.Add(ms(200, 900))))
	}
	// Stuck at paid: the card issuer timed out and no payment was authorized.
	at := now.Add(-3 * time.Minute)
	placed(stuckAtPaid, at)
	reserve(stuckAtPaid, at.Add(180*time.Millisecond))
	s.span("payments", "authorize", trace.SpanKindClient, stuckAtPaid, at.Add(250*time.Millisecond), at.Add(10250*time.Millisecond), func(sp trace.Span) {
		sp.SetStatus(codes.Error, "card issuer timeout")
		sp.AddEvent("exception", trace.WithTimestamp(at.Add(10250*time.Millisecond)), trace.WithAttributes(
			attribute.String("exception.type", "IssuerTimeoutError"), attribute.String("exception.message", "card issuer timeout")))
	})
	// Stuck at shipped: paid, settled and reserved 24 minutes ago, never shipped.
	at = now.Add(-24 * time.Minute)
	placed(stuckAtShipped, at)
	reserve(stuckAtShipped, at.Add(300*time.Millisecond))
	settle(stuckAtShipped, pay(stuckAtShipped, at.Add(200*time.Millisecond)))
	sendBundles(s, now)
	s.flush(t)
}

// The bundle orders of the fixture (flows in testdata/console/bundles.yaml): a family, and
// the statuses of a failure and its compensation.
const (
	// bundleFamily waits for its two items: one packed, one picked.
	bundleFamily = "bnd-5e0c17"
	// bundleFailed was charged, then its only item was out of stock: failed by its child, its
	// refund due.
	bundleFailed = "bnd-9a44d2"
	// bundleRefunded was charged, abandoned, and refunded.
	bundleRefunded = "bnd-c3f801"
	// bundleEarlyRefund was refunded while nothing had failed: a conformance violation.
	bundleEarlyRefund = "bnd-77b2e9"
)

// sendBundles sends the bundle orders of the last few minutes as of now, and one abandoned
// before it was charged (failed, nothing to refund).
func sendBundles(s *shopTelemetry, now time.Time) {
	bundle := func(key string) attribute.KeyValue { return attribute.String("bundle.id", key) }
	placed := func(key string, items int, at time.Time) {
		s.spanWith("orders", "POST /bundles", trace.SpanKindServer, []attribute.KeyValue{bundle(key), attribute.Int("bundle.item_count", items)}, at, at.Add(40*time.Millisecond))
	}
	onBundle := func(svc, span, event, key string, at time.Time) {
		s.spanWith(svc, span, trace.SpanKindInternal, []attribute.KeyValue{bundle(key)}, at, at.Add(20*time.Millisecond), func(sp trace.Span) {
			if event != "" {
				sp.AddEvent(event, trace.WithTimestamp(at.Add(10*time.Millisecond)))
			}
		})
	}
	item := func(parent, key, event string, picked, done time.Time) {
		s.spanWith("inventory", "pick", trace.SpanKindConsumer, []attribute.KeyValue{bundle(parent), attribute.String("item.id", key)}, picked, picked.Add(30*time.Millisecond))
		if event != "" {
			s.spanWith("inventory", "pack", trace.SpanKindInternal, []attribute.KeyValue{attribute.String("item.id", key)}, done, done.Add(20*time.Millisecond),
				func(sp trace.Span) { sp.AddEvent(event, trace.WithTimestamp(done.Add(10*time.Millisecond))) })
		}
	}
	at := now.Add(-6 * time.Minute)
	placed(bundleFamily, 2, at)
	onBundle("payments", "capture", "payment.captured", bundleFamily, at.Add(time.Second))
	item(bundleFamily, bundleFamily+"-1", "item.packed", at.Add(2*time.Second), at.Add(40*time.Second))
	item(bundleFamily, bundleFamily+"-2", "", at.Add(3*time.Second), time.Time{})

	at = now.Add(-5 * time.Minute)
	placed(bundleFailed, 1, at)
	onBundle("payments", "capture", "payment.captured", bundleFailed, at.Add(time.Second))
	item(bundleFailed, bundleFailed+"-1", "item.out_of_stock", at.Add(2*time.Second), at.Add(30*time.Second))

	at = now.Add(-4 * time.Minute)
	placed(bundleRefunded, 1, at)
	onBundle("payments", "capture", "payment.captured", bundleRefunded, at.Add(time.Second))
	onBundle("orders", "abandon", "", bundleRefunded, at.Add(20*time.Second))
	onBundle("payments", "refund", "refund.completed", bundleRefunded, at.Add(50*time.Second))

	at = now.Add(-3 * time.Minute)
	placed(bundleEarlyRefund, 1, at)
	onBundle("payments", "capture", "payment.captured", bundleEarlyRefund, at.Add(time.Second))
	onBundle("payments", "refund", "refund.completed", bundleEarlyRefund, at.Add(15*time.Second))

	at = now.Add(-2 * time.Minute)
	placed("bnd-e41a90", 1, at)
	onBundle("orders", "abandon", "", "bnd-e41a90", at.Add(10*time.Second))
}
