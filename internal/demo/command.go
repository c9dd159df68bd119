package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowwatch/flowwatch/detector"
)

// Command is an unblock command: a CloudEvents 1.0 event in structured JSON mode.
type Command struct {
	SpecVersion     string      `json:"specversion"`
	ID              string      `json:"id"`
	Source          string      `json:"source"`
	Type            string      `json:"type"`
	Subject         string      `json:"subject,omitempty"`
	Time            string      `json:"time,omitempty"`
	CorrelationID   string      `json:"correlationid,omitempty"`
	DataContentType string      `json:"datacontenttype,omitempty"`
	Data            CommandData `json:"data"`
}

// CommandData is the data of an unblock command.
type CommandData struct {
	// Tenant, when the detector sends it, must be the demo's own tenant.
	Tenant     string `json:"tenant,omitempty"`
	Flow       string `json:"flow"`
	Version    int    `json:"version,omitempty"`
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint"`
	Attempt    int    `json:"attempt,omitempty"`
	// Reason is the detector's stuck reason (a sentence or an object); kept as it came.
	Reason  json.RawMessage `json:"reason,omitempty"`
	Payload map[string]any  `json:"payload,omitempty"`
}

// key returns the business key the command is about: data.key, else the correlationid
// extension, else the part of the subject after "flow/".
func (c *Command) key() string {
	if c.Data.Key != "" {
		return c.Data.Key
	}
	if c.CorrelationID != "" {
		return c.CorrelationID
	}
	if _, k, ok := strings.Cut(c.Subject, "/"); ok {
		return k
	}
	return ""
}

// DecodeCommand parses and checks a structured-mode CloudEvent carrying an unblock command.
func DecodeCommand(body []byte) (*Command, error) {
	var c Command
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("decode CloudEvent: %w", err)
	}
	var errs []error // every problem, on one line
	if c.SpecVersion != "1.0" {
		errs = append(errs, fmt.Errorf("specversion must be \"1.0\", not %q", c.SpecVersion))
	}
	if c.ID == "" {
		errs = append(errs, errors.New("id is missing"))
	}
	if c.Source == "" {
		errs = append(errs, errors.New("source is missing"))
	}
	if c.Type == "" {
		errs = append(errs, errors.New("type is missing"))
	}
	if c.DataContentType != "" && !strings.HasPrefix(c.DataContentType, "application/json") {
		errs = append(errs, fmt.Errorf("datacontenttype must be application/json, not %q", c.DataContentType))
	}
	if c.Data.Flow == "" {
		errs = append(errs, errors.New("data.flow is missing"))
	}
	if c.Data.Checkpoint == "" {
		errs = append(errs, errors.New("data.checkpoint is missing"))
	}
	if c.key() == "" {
		errs = append(errs, errors.New("data.key is missing"))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("invalid unblock command: %s", strings.Join(msgs, "; "))
	}
	return &c, nil
}

// Outcome statuses of a command.
const (
	OutcomeRetried   = "retried"   // the payment was retried
	OutcomeDuplicate = "duplicate" // the command id was seen before: acknowledged, ignored
	OutcomeIgnored   = "ignored"   // nothing to do (not waiting, or no action for it)
)

// Outcome is what the demo did with a command.
type Outcome struct {
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// errStopped is returned to command deliveries after the simulation stopped.
var errStopped = errors.New("demo stopped")

type commandRequest struct {
	cmd      *Command
	dedupKey string
	reply    chan Outcome
}

// submit hands a command to the loop and waits for its outcome.
func (d *Demo) submit(ctx context.Context, cmd *Command, dedupKey string) (Outcome, error) {
	req := commandRequest{cmd: cmd, dedupKey: dedupKey, reply: make(chan Outcome, 1)}
	select {
	case d.reqs <- req:
	case <-d.loopDone:
		return Outcome{}, errStopped
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
	select {
	case out := <-req.reply:
		return out, nil
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

// maxCommandBytes bounds a webhook body.
const maxCommandBytes = 1 << 20

// Handler returns the webhook sink for commands, on any path: POST a structured CloudEvent;
// the Idempotency-Key header (else the event id) makes a repeated delivery a no-op. With a
// WebhookSecret, the Standard Webhooks signature must verify. Answers 202 when the command
// was acted on, 200 when it was a duplicate or needed nothing, 400 for a malformed command,
// 401 for a bad signature, 503 when the demo is stopping.
func (d *Demo) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "commands are POSTed"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCommandBytes))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "read body: " + err.Error()})
			return
		}
		if d.cfg.WebhookSecret != "" {
			if err := detector.VerifyWebhook(d.cfg.WebhookSecret, r.Header, body, d.now()); err != nil {
				d.stats.invalid.Add(1)
				d.logf("demo: rejected webhook command: %v", err)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
				return
			}
		}
		cmd, err := DecodeCommand(body)
		if err != nil {
			d.stats.invalid.Add(1)
			d.logf("demo: rejected webhook command: %v", err)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		out, err := d.submit(r.Context(), cmd, r.Header.Get("Idempotency-Key"))
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		d.logf("demo: webhook command %s for %s/%s %s: %s", cmd.ID, cmd.Data.Flow, cmd.key(), out.Status, out.Detail)
		status := http.StatusOK
		if out.Status == OutcomeRetried {
			status = http.StatusAccepted
		}
		writeJSON(w, status, out)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// natsConsumer is the JetStream consumer of payment retry commands.
type natsConsumer struct {
	nc *nats.Conn
	cc jetstream.ConsumeContext
}

// consumeNATS connects to NATS, makes sure the command stream exists (creating it with
// CommandStreamSubjects when missing), and consumes CommandSubject through a durable
// consumer. Each message is acknowledged once handled (also a duplicate or a command
// needing nothing), terminated when malformed, and left for redelivery when the demo stops
// before handling it.
func (d *Demo) consumeNATS(ctx context.Context) (*natsConsumer, error) {
	nc, err := nats.Connect(d.cfg.NATS, nats.Name("flowwatch-demo"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", d.cfg.NATS, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	stream, err := ensureStream(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       d.cfg.Consumer,
		FilterSubject: CommandSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Description:   "flowwatch demo: retries payments on unblock commands",
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("create durable consumer %s on stream %s: %w", d.cfg.Consumer, CommandStream, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { d.onNATS(ctx, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			d.logf("demo: NATS consumer: %v", err)
		}))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume %s: %w", CommandSubject, err)
	}
	return &natsConsumer{nc: nc, cc: cc}, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	stream, err := js.Stream(ctx, CommandStream)
	if err == nil {
		return stream, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("look up stream %s: %w", CommandStream, err)
	}
	stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     CommandStream,
		Subjects: CommandStreamSubjects,
		Storage:  jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		stream, err = js.Stream(ctx, CommandStream) // created by someone else meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", CommandStream, err)
	}
	return stream, nil
}

func (d *Demo) onNATS(ctx context.Context, msg jetstream.Msg) {
	cmd, err := DecodeCommand(msg.Data())
	if err != nil {
		d.stats.invalid.Add(1)
		d.logf("demo: rejected NATS command on %s: %v", msg.Subject(), err)
		if err := msg.TermWithReason(err.Error()); err != nil {
			d.logf("demo: terminate NATS message: %v", err)
		}
		return
	}
	out, err := d.submit(ctx, cmd, msg.Headers().Get(jetstream.MsgIDHeader))
	if err != nil {
		if err := msg.Nak(); err != nil {
			d.logf("demo: nak NATS message: %v", err)
		}
		return
	}
	d.logf("demo: NATS command %s for %s/%s %s: %s", cmd.ID, cmd.Data.Flow, cmd.key(), out.Status, out.Detail)
	if err := msg.Ack(); err != nil {
		d.logf("demo: ack NATS message %s: %v", cmd.ID, err)
	}
}

func (c *natsConsumer) stop() {
	c.cc.Stop()
	c.nc.Close()
}
