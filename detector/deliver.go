package detector

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultHTTPTimeout bounds one outbound HTTP request.
const DefaultHTTPTimeout = 10 * time.Second

// redact removes credentials from a URL for errors and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// permanentError is a delivery the receiver refused (4xx): sending it again will not help.
type permanentError struct{ error }

// IsPermanent reports whether a delivery error will not go away by retrying.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// post sends one JSON body and decides success by status: 2xx ok, 4xx permanent, else retry.
func post(ctx context.Context, client *http.Client, target string, body []byte, header http.Header) error {
	ctx, cancel := context.WithTimeoutCause(ctx, DefaultHTTPTimeout, fmt.Errorf("POST %s took longer than %s", redact(target), DefaultHTTPTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request to %s: %w", redact(target), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			err = c
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("POST %s: %w", redact(target), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s: %s", redact(target), resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
		return permanentError{err}
	}
	return err
}

// Alertmanager posts alerts to every configured Alertmanager (never load-balanced: each
// replica must hear every alert).
type Alertmanager struct {
	URLs   []string
	Client *http.Client
}

// Name implements Notifier.
func (a *Alertmanager) Name() string { return "alertmanager" }

// Notify implements Notifier: POST /api/v2/alerts to each Alertmanager.
func (a *Alertmanager) Notify(ctx context.Context, alerts []Alert) error {
	body, err := json.Marshal(alerts) // the body of POST /api/v2/alerts
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	var errs []error
	for _, u := range a.URLs {
		if err := post(ctx, client, strings.TrimRight(u, "/")+"/api/v2/alerts", body, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// signer adds Standard Webhooks headers: webhook-id, webhook-timestamp and, with a secret,
// webhook-signature = "v1," + base64(HMAC-SHA256(secret, id "." timestamp "." body)).
type signer struct {
	secret []byte
	now    func() time.Time
}

func newSigner(secret string, now func() time.Time) signer {
	s := signer{now: now}
	if secret != "" {
		if raw, ok := strings.CutPrefix(secret, "whsec_"); ok {
			if b, err := base64.StdEncoding.DecodeString(raw); err == nil {
				s.secret = b
			}
		}
		if s.secret == nil {
			s.secret = []byte(secret)
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func (s signer) headers(id string, body []byte) http.Header {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	if s.secret != nil {
		mac := hmac.New(sha256.New, s.secret)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return h
}

// VerifyWebhook checks a Standard Webhooks signature; receivers (and our tests) use it.
func VerifyWebhook(secret string, header http.Header, body []byte) error {
	id, ts, sig := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	want := newSigner(secret, nil)
	mac := hmac.New(sha256.New, want.secret)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	expected := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sig) {
		if hmac.Equal([]byte(s), []byte(expected)) {
			return nil
		}
	}
	return errors.New("webhook signature does not match")
}

// WebhookAlerts posts alerts in Alertmanager's webhook shape (version "4"), signed.
type WebhookAlerts struct {
	URL    string
	Secret string
	Client *http.Client
	Now    func() time.Time
}

// Name implements Notifier.
func (w *WebhookAlerts) Name() string { return "webhook" }

type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type webhookMessage struct {
	Version  string         `json:"version"`
	Status   string         `json:"status"`
	Receiver string         `json:"receiver"`
	GroupKey string         `json:"groupKey"`
	Alerts   []webhookAlert `json:"alerts"`
}

// Notify implements Notifier.
func (w *WebhookAlerts) Notify(ctx context.Context, alerts []Alert) error {
	msg := webhookMessage{Version: "4", Status: "resolved", Receiver: "flowwatch"}
	idh := sha256.New()
	for _, a := range alerts {
		wa := webhookAlert{Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt,
			GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint()}
		if a.EndsAt != nil {
			wa.Status, wa.EndsAt = "resolved", *a.EndsAt
		} else {
			msg.Status = "firing"
		}
		msg.Alerts = append(msg.Alerts, wa)
		fmt.Fprintf(idh, "%s/%s/%d;", wa.Fingerprint, wa.Status, a.StartsAt.UnixNano())
	}
	id := "msg_" + base64.RawURLEncoding.EncodeToString(idh.Sum(nil)[:16])
	msg.GroupKey = id
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode webhook alerts: %w", err)
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	return post(ctx, client, w.URL, body, newSigner(w.Secret, w.Now).headers(id, body))
}

// HTTPSink sends commands by HTTP POST with an Idempotency-Key (the command id) and Standard
// Webhooks headers. A non-empty action subject is appended to the URL path.
type HTTPSink struct {
	SinkName string
	URL      string
	Secret   string
	Client   *http.Client
	Now      func() time.Time
}

// Name implements Sink.
func (h *HTTPSink) Name() string { return h.SinkName }

// Send implements Sink.
func (h *HTTPSink) Send(ctx context.Context, cmd Command) error {
	target := h.URL
	if cmd.Subject != "" {
		target = strings.TrimRight(target, "/") + "/" + strings.TrimLeft(cmd.Subject, "/")
	}
	hdr := newSigner(h.Secret, h.Now).headers(cmd.ID, cmd.Body)
	hdr.Set("Idempotency-Key", cmd.ID)
	hdr.Set("Content-Type", "application/cloudevents+json")
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	return post(ctx, client, target, cmd.Body, hdr)
}

// NATSSink publishes commands to NATS JetStream with Nats-Msg-Id = the command id, so the
// stream drops a second publish of the same attempt inside its duplicate window.
type NATSSink struct {
	SinkName string
	Stream   string
	Subjects []string
	conn     *nats.Conn
	js       jetstream.JetStream
	ensured  bool
}

// DefaultCommandStream is the JetStream stream commands go to when none is configured.
const DefaultCommandStream = "FLOWWATCH_COMMANDS"

// NewNATSSink connects to NATS. The connection retries in the background, so a NATS that is
// down at start only delays commands (each send fails and is retried) instead of failing start.
func NewNATSSink(name, serverURL, stream string, subjects []string) (*NATSSink, error) {
	if stream == "" {
		stream = DefaultCommandStream
	}
	nc, err := nats.Connect(serverURL, nats.Name("flowwatch-detector"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", redact(serverURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream on %s: %w", redact(serverURL), err)
	}
	return &NATSSink{SinkName: name, Stream: stream, Subjects: subjects, conn: nc, js: js}, nil
}

// Name implements Sink.
func (n *NATSSink) Name() string { return n.SinkName }

// Close closes the connection.
func (n *NATSSink) Close() { n.conn.Close() }

// ensureStream creates the command stream, or adds our subjects to an existing one without
// removing anyone else's (a consumer may have created it first).
func (n *NATSSink) ensureStream(ctx context.Context) error {
	st, err := n.js.Stream(ctx, n.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = n.js.CreateStream(ctx, jetstream.StreamConfig{Name: n.Stream, Subjects: n.Subjects,
			Duplicates: 10 * time.Minute, Storage: jetstream.FileStorage})
		return err
	}
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	have := map[string]bool{}
	for _, s := range cfg.Subjects {
		have[s] = true
	}
	changed := false
	for _, s := range n.Subjects {
		if !have[s] && !coveredBy(cfg.Subjects, s) {
			cfg.Subjects = append(cfg.Subjects, s)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err = n.js.UpdateStream(ctx, cfg)
	return err
}

// coveredBy reports whether one of the stream subjects (which may hold * and > wildcards)
// already takes every message of subject s; adding s then would only overlap.
func coveredBy(streamSubjects []string, s string) bool {
	for _, p := range streamSubjects {
		if subjectCovers(p, s) {
			return true
		}
	}
	return false
}

func subjectCovers(pattern, s string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return i < len(st) // ">" takes one or more tokens, of any kind
		}
		if i >= len(st) {
			return false
		}
		if tok != "*" && tok != st[i] {
			return false
		}
		if tok == "*" && st[i] == ">" {
			return false
		}
	}
	return len(pt) == len(st)
}

// Send implements Sink.
func (n *NATSSink) Send(ctx context.Context, cmd Command) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !n.ensured && len(n.Subjects) > 0 {
		if err := n.ensureStream(ctx); err != nil {
			return fmt.Errorf("ensure stream %s: %w", n.Stream, err)
		}
		n.ensured = true
	}
	subject := cmd.Subject
	if subject == "" {
		subject = "flowwatch.commands"
	}
	msg := nats.NewMsg(subject)
	msg.Data = cmd.Body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(nats.MsgIdHdr, cmd.ID)
	if _, err := n.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s to %s: %w", cmd.ID, subject, err)
	}
	return nil
}
