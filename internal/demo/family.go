package demo

import (
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The hard cases of a choreography: an order ships in parcels, each a shipment of its own (a
// sub-flow, examples/flows/shipment.yaml) that a courier sometimes loses in transit for a
// while; an order cancelled after its payment needs a refund (a compensation), which the
// payments service sometimes leaves undone until a retry command comes.

// Names of the family flows' checkpoints a command may name.
const checkpointRefunded = "refunded"

// parcel is one shipment of an order.
type parcel struct {
	journey
	id        string
	order     *order
	carrier   string
	delivered bool
}

// shipParcels dispatches each of the order's parcels: a shipment each, whose start carries
// the order's key.
func (s *sim) shipParcels(o *order, ctx trace.SpanContext, carrier string, at time.Time) {
	for i := range o.parcels {
		p := &parcel{id: s.ident("shp"), order: o, carrier: carrier}
		p.at = at
		o.shipments = append(o.shipments, p)
		s.stats.shipments.Add(1)
		start := s.begin(&p.journey)
		end := start.Add(s.between(5*time.Millisecond, 30*time.Millisecond))
		_, sc := s.svc(svcShipping).record(nil, spanSpec{
			name: "dispatch parcel", kind: trace.SpanKindInternal, start: start, end: end, ok: true,
			attrs: []attribute.KeyValue{
				attribute.String("shipment.id", p.id),
				attribute.String("order.id", o.id),
				attribute.Int("shipment.parcel_index", i+1),
				attribute.Int("order.parcel_count", o.parcels),
				attribute.String("shipping.carrier", carrier),
				attribute.String("shipping.tracking_number", fmt.Sprintf("%s%010d", carrier[:2], s.rng.Int64N(1e10))),
			},
			links: []trace.SpanContext{ctx},
		})
		p.advance(end, sc)
		delay := s.hopDelay() + s.hopDelay()
		if s.cfg.LostParcelRate > 0 && s.rng.Float64() < s.cfg.LostParcelRate {
			// Lost in transit: nothing is heard of it until it turns up (or never, with
			// LostFor 0): its shipment is stuck, and its order with it.
			s.stats.lostParcels.Add(1)
			if s.cfg.LostFor <= 0 {
				continue
			}
			delay += s.cfg.LostFor
		}
		s.hop(&p.journey, delay, func() { s.deliverParcel(p) })
	}
}

// deliverParcel is the courier's tracking event: it names the shipment, not the order (the
// detector finds the order through the shipment). The last parcel delivered delivers the order.
func (s *sim) deliverParcel(p *parcel) {
	courier := s.svc(svcCourier)
	start := s.begin(&p.journey)
	end := start.Add(s.between(5*time.Millisecond, 30*time.Millisecond))
	_, sc := courier.record(nil, spanSpec{
		name: "POST /tracking/events", kind: trace.SpanKindServer, start: start, end: end,
		attrs: []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("http.route", "/tracking/events"),
			attribute.Int("http.response.status_code", http.StatusNoContent),
			attribute.String("shipping.carrier", p.carrier),
			attribute.String("shipment.id", p.id),
		},
		events: []eventSpec{{name: "parcel.delivered", at: end.Add(-time.Millisecond), attrs: []attribute.KeyValue{
			attribute.String("shipment.id", p.id),
			attribute.String("delivery.signed_by", s.pick("recipient", "neighbour", "safe place")),
		}}},
		links: []trace.SpanContext{s.from},
	})
	p.advance(end, sc)
	p.delivered = true
	o := p.order
	o.advance(end, sc) // the order's delivery comes after every parcel's
	for _, q := range o.shipments {
		if !q.delivered {
			return
		}
	}
	s.hop(&o.journey, s.hopDelay(), func() { s.deliver(o, p.carrier) })
}

// cancelAfterPayment is the customer cancelling an order once it is paid and settled: the
// orders service cancels it, and the payments service is to refund it.
func (s *sim) cancelAfterPayment(o *order) {
	s.stats.cancelled.Add(1)
	s.recordCancel(o, "paid")
	s.hop(&o.journey, s.hopDelay(), func() {
		if s.cfg.LateRefundRate > 0 && s.rng.Float64() < s.cfg.LateRefundRate {
			// The refund job misses it: the order waits for its refund until a retry command.
			s.stats.lateRefunds.Add(1)
			o.awaitingRefund = true
			return
		}
		s.refund(o, nil)
	})
}

// refund is the payments service refunding an order's payment; cmd is the retry command
// that caused it, if any.
func (s *sim) refund(o *order, cmd *Command) {
	s.stats.refunds.Add(1)
	o.awaitingRefund = false
	payments := s.svc(svcPayments)
	p := o.payment
	start := s.begin(&o.journey)
	end := start.Add(s.between(40*time.Millisecond, 200*time.Millisecond))
	attrs := append(p.attrs(),
		attribute.String("refund.id", s.ident("rfd")),
		attribute.String("refund.reason", "order_cancelled"))
	attrs = append(attrs, commandAttrs(cmd)...)
	_, sc := payments.record(nil, spanSpec{
		name: "refund", kind: trace.SpanKindConsumer, start: start, end: end, ok: true,
		attrs: attrs,
		events: []eventSpec{{name: "refund.completed", at: end.Add(-time.Millisecond), attrs: []attribute.KeyValue{
			attribute.String("order.id", o.id),
			attribute.String("payment.id", p.id),
			attribute.Float64("refund.amount", p.amount),
			attribute.String("refund.currency", p.currency),
		}}},
		links: []trace.SpanContext{s.from},
	})
	o.advance(end, sc)
}

// handleRefund acts on a retry command of an order's refund.
func (s *sim) handleRefund(key string, cmd *Command) Outcome {
	o, ok := s.orders.get(key)
	if !ok || !o.awaitingRefund {
		s.stats.ignored.Add(1)
		return Outcome{Status: OutcomeIgnored, Detail: "order " + key + " is not waiting for a refund"}
	}
	s.from = o.last
	s.refund(o, cmd)
	s.stats.retries.Add(1)
	return Outcome{Status: OutcomeRetried, Detail: "refund retried for " + cmd.Data.Flow + "/" + key}
}
