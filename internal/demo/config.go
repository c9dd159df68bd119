package demo

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/flowwatch/flowwatch/model"
)

// Protocols of the OTLP exporters.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Defaults of Config, the flag defaults of `flowwatch demo`.
const (
	DefaultOTLPGRPC   = "127.0.0.1:4317"
	DefaultOTLPHTTP   = "127.0.0.1:4318"
	DefaultRate       = 5.0
	DefaultDelay      = 2 * time.Second
	DefaultErrorRate  = 0.05
	DefaultCancelRate = 0.05
	// DefaultCancelAfterPaymentRate, DefaultLateRefundRate, DefaultLostParcelRate and
	// DefaultLostFor shape the families and sagas of the example flows: orders cancelled
	// once paid (a refund is due), refunds missed until a retry command, parcels lost in
	// transit until they turn up.
	DefaultCancelAfterPaymentRate = 0.03
	DefaultLateRefundRate         = 0.3
	DefaultLostParcelRate         = 0.02
	DefaultLostFor                = 3 * time.Minute
	// DefaultTenant is model.DefaultTenant, the tenant the query API assumes when none is
	// asked for, so a first look at the demo needs no ?tenant=.
	DefaultTenant          = model.DefaultTenant
	DefaultPaymentShare    = 0.2
	DefaultOnboardingShare = 0.05
	DefaultReportEvery     = 100
	DefaultExportInterval  = time.Second
	// DefaultConsumer is the durable JetStream consumer name of the command consumer.
	DefaultConsumer = "flowwatch-demo"
	// CommandStream is the JetStream stream the consumer reads, created when missing.
	CommandStream = "FLOWWATCH_COMMANDS"
	// CommandSubject is the subject of payment and refund retries (the example flows'
	// on_stuck actions).
	CommandSubject = "payments.retry"
)

// CommandStreamSubjects are the subjects of CommandStream when the demo creates it: the
// same as the detector's NATS sink is given by `flowwatch run` and the deploy configurations,
// so that neither has to change the stream the other made.
var CommandStreamSubjects = []string{"payments.>", "flowwatch.>"}

// Config configures a simulated choreography. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// OTLP is the host:port of the OTLP receiver; empty means 127.0.0.1:4317 for grpc and
	// 127.0.0.1:4318 for http.
	OTLP string
	// Protocol is grpc or http.
	Protocol string
	// Rate is how many orders start per second.
	Rate float64
	// Duration bounds the whole run; zero runs until the context is cancelled.
	Duration time.Duration
	// Orders stops starting orders after this many; zero means no limit. When no command
	// consumer is configured (no NATS, no Listen), Run returns once every journey has
	// played out.
	Orders int
	// Drop is the probability that a hop is lost, as when the broker loses the message a
	// service reacts to: that service never reacts, so neither its telemetry nor anything
	// that depends on it happens. A lost payment hop is healed by a retry command; other
	// lost hops leave the instance stuck for good.
	Drop float64
	// Delay is the maximum random delay of a hop (uniform in [0, Delay]).
	Delay time.Duration
	// ErrorRate is the probability that an order's card authorization fails: an error span
	// "authorize" ("card issuer timeout") and no payment.authorized, so the order is stuck
	// at paid until a retry command arrives.
	ErrorRate float64
	// CancelRate is the probability that an order is cancelled right after it is placed.
	CancelRate float64
	// CancelAfterPaymentRate is the probability that an order is cancelled once paid and
	// settled instead of shipped: the payments service refunds it (refund.completed, the
	// order flow's compensation of paid).
	CancelAfterPaymentRate float64
	// LateRefundRate is the probability that such a refund is missed until a retry command
	// of checkpoint refunded comes.
	LateRefundRate float64
	// LostParcelRate is the probability that a parcel (a shipment, the order flow's sub-flow)
	// is lost in transit: nothing is heard of it for LostFor (0: never again), then it is
	// delivered.
	LostParcelRate float64
	LostFor        time.Duration
	// PaymentShare is the chance, per order started, that a stand-alone card payment
	// (the payment flow, with declines, retries and abandons) also starts.
	PaymentShare float64
	// OnboardingShare is the chance, per order started, that a customer also signs up
	// (the customer-onboarding flow).
	OnboardingShare float64
	// Tenant is the resource attribute tenant.id of every service.
	Tenant string
	// NATS is the URL of a NATS server with JetStream; empty disables the NATS consumer.
	NATS string
	// Consumer is the durable JetStream consumer name.
	Consumer string
	// Listen is the address of the HTTP webhook endpoint for commands; empty disables it.
	Listen string
	// WebhookSecret, when set, makes the webhook endpoint require a valid Standard Webhooks
	// signature (a secret is base64, optionally after "whsec_", as the detector's HTTP sink is
	// given; detector.VerifyWebhook checks it, replays included).
	WebhookSecret string
	// Seed seeds every random choice and the trace and span IDs; zero picks one from the
	// clock (it is printed, so a run can be repeated).
	Seed uint64
	// ReportEvery prints a progress line to Log every this many orders; zero never.
	ReportEvery int
	// ExportInterval is how often the SDK batch processors export.
	ExportInterval time.Duration
	// Log receives the progress lines; nil discards them.
	Log io.Writer
}

// DefaultConfig returns the defaults of `flowwatch demo`.
func DefaultConfig() Config {
	return Config{
		Protocol:               ProtocolGRPC,
		Rate:                   DefaultRate,
		Delay:                  DefaultDelay,
		ErrorRate:              DefaultErrorRate,
		CancelRate:             DefaultCancelRate,
		CancelAfterPaymentRate: DefaultCancelAfterPaymentRate,
		LateRefundRate:         DefaultLateRefundRate,
		LostParcelRate:         DefaultLostParcelRate,
		LostFor:                DefaultLostFor,
		PaymentShare:           DefaultPaymentShare,
		OnboardingShare:        DefaultOnboardingShare,
		Tenant:                 DefaultTenant,
		Consumer:               DefaultConsumer,
		ReportEvery:            DefaultReportEvery,
		ExportInterval:         DefaultExportInterval,
	}
}

// Endpoint returns the OTLP host:port the exporters send to.
func (c *Config) Endpoint() string {
	if c.OTLP != "" {
		return c.OTLP
	}
	if c.Protocol == ProtocolHTTP {
		return DefaultOTLPHTTP
	}
	return DefaultOTLPGRPC
}

// Validate reports every problem of the configuration at once, each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	if c.OTLP != "" {
		if _, _, err := net.SplitHostPort(c.OTLP); err != nil {
			errs = append(errs, fmt.Errorf("'otlp' must be host:port: %w", err))
		}
	}
	if c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP {
		errs = append(errs, fmt.Errorf("'protocol' must be grpc or http, not %q", c.Protocol))
	}
	if !(c.Rate > 0) {
		errs = append(errs, fmt.Errorf("'rate' must be greater than zero, not %v", c.Rate))
	}
	if c.Duration < 0 {
		errs = append(errs, errors.New("'duration' must not be negative"))
	}
	if c.Orders < 0 {
		errs = append(errs, errors.New("'orders' must not be negative"))
	}
	if c.Delay < 0 {
		errs = append(errs, errors.New("'delay' must not be negative"))
	}
	if c.LostFor < 0 {
		errs = append(errs, errors.New("'lost-for' must not be negative"))
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"drop", c.Drop}, {"error-rate", c.ErrorRate}, {"cancel-rate", c.CancelRate},
		{"cancel-after-payment-rate", c.CancelAfterPaymentRate}, {"late-refund-rate", c.LateRefundRate},
		{"lost-parcel-rate", c.LostParcelRate}, {"payment-share", c.PaymentShare}, {"onboarding-share", c.OnboardingShare}} {
		if !(p.v >= 0 && p.v <= 1) {
			errs = append(errs, fmt.Errorf("'%s' must be a probability in [0, 1], not %v", p.name, p.v))
		}
	}
	if c.Tenant == "" {
		errs = append(errs, errors.New("'tenant' must not be empty"))
	}
	if c.NATS != "" {
		if u, err := url.Parse(c.NATS); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("'nats' must be a URL like nats://127.0.0.1:4222, not %q", c.NATS))
		}
		if c.Consumer == "" {
			errs = append(errs, errors.New("'consumer' must not be empty when 'nats' is set"))
		}
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("'listen' must be host:port: %w", err))
		}
	}
	if c.ReportEvery < 0 {
		errs = append(errs, errors.New("'report-every' must not be negative"))
	}
	if c.ExportInterval <= 0 {
		errs = append(errs, errors.New("'export-interval' must be greater than zero"))
	}
	return errors.Join(errs...)
}
