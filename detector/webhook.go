package detector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
)

// Webhooks: alerts in Alertmanager's webhook payload (version 4) and commands as CloudEvents,
// both signed per the Standard Webhooks specification, so that receivers verify them with its
// libraries.

// WebhookTolerance is how far a signed webhook's timestamp may be from the receiver's clock
// before VerifyWebhook rejects it as a replay (the Standard Webhooks libraries' figure).
const WebhookTolerance = 5 * time.Minute

const webhookSecretPrefix = "whsec_"

// WebhookKey is the signing key of a Standard Webhooks secret: its base64 text, after an
// optional whsec_ prefix, decoded — as the specification's libraries read every secret. A
// secret that is not base64 is an error (that does not quote it).
func WebhookKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, webhookSecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("not a Standard Webhooks secret (base64, optionally after %q): %w", webhookSecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New("not a Standard Webhooks secret: it is empty")
	}
	return key, nil
}

// webhookSignature is "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)).
func webhookSignature(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// webhookHeaders are the Standard Webhooks headers of one delivery: webhook-id (the same on
// every retry of the message), webhook-timestamp and, with a secret, webhook-signature.
func webhookHeaders(secret string, now func() time.Time, id string, body []byte) (http.Header, error) {
	if now == nil {
		now = time.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	if secret != "" {
		key, err := WebhookKey(secret)
		if err != nil {
			return nil, permanentError{fmt.Errorf("sign webhook: %w", err)}
		}
		h.Set("webhook-signature", webhookSignature(key, id, ts, body))
	}
	return h, nil
}

// VerifyWebhook checks a Standard Webhooks delivery as a receiver does: one of the
// space-separated v1 signatures must match, and the timestamp must be within
// WebhookTolerance of now (an older delivery is a replay).
func VerifyWebhook(secret string, header http.Header, body []byte, now time.Time) error {
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("webhook signature required: webhook-id, webhook-timestamp or webhook-signature missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not a Unix time", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return fmt.Errorf("webhook-timestamp %s is more than %s away from now", ts, WebhookTolerance)
	}
	key, err := WebhookKey(secret)
	if err != nil {
		return err
	}
	want := webhookSignature(key, id, ts, body)
	for _, sig := range strings.Fields(sigs) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook signature does not verify")
}

// WebhookMessage is the body of an alert webhook: Alertmanager's webhook payload, version 4,
// with all of its fields, so receivers written for Alertmanager take it unchanged.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// WebhookGroupBy are the labels that group alerts into webhook messages, as an Alertmanager
// route's group_by does: one message per flow checkpoint of a tenant, however many
// instances are stuck there.
var WebhookGroupBy = []string{"alertname", "tenant", "flow", "checkpoint"}

// DefaultWebhookReceiver is the receiver name alert webhooks carry.
const DefaultWebhookReceiver = "flowwatch"

// WebhookAlerts posts alerts in Alertmanager's webhook shape, one message per group, signed.
type WebhookAlerts struct {
	URL    string
	Secret string
	Client *http.Client
	Now    func() time.Time
	// Receiver names the receiver in the payload (default DefaultWebhookReceiver).
	Receiver string
	// ExternalURL is the payload's externalURL: where users reach flowwatch.
	ExternalURL string
	// MaxAlerts bounds the alerts of one message (0: all); the rest are counted in
	// truncatedAlerts and not sent.
	MaxAlerts int
}

// Name implements Notifier.
func (w *WebhookAlerts) Name() string { return "webhook" }

// Messages groups alerts into the webhook messages Notify sends, with their webhook-ids:
// an id changes when the alerts of the message, their status or their times do, and is the
// same on every retry of it.
func (w *WebhookAlerts) Messages(alerts []Alert) ([]WebhookMessage, []string) {
	receiver := w.Receiver
	if receiver == "" {
		receiver = DefaultWebhookReceiver
	}
	groups := map[string]*WebhookMessage{}
	var keys []string
	for _, a := range alerts {
		gl := map[string]string{}
		for _, l := range WebhookGroupBy {
			if v, ok := a.Labels[l]; ok {
				gl[l] = v
			}
		}
		key := "{}:" + labelSet(gl).String()
		m := groups[key]
		if m == nil {
			m = &WebhookMessage{Version: "4", GroupKey: key, Status: "resolved", Receiver: receiver,
				GroupLabels: gl, ExternalURL: w.ExternalURL, Alerts: []WebhookAlert{}}
			groups[key] = m
			keys = append(keys, key)
		}
		if w.MaxAlerts > 0 && len(m.Alerts) >= w.MaxAlerts {
			m.TruncatedAlerts++
			continue
		}
		wa := WebhookAlert{Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt,
			GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint()}
		if a.EndsAt != nil {
			wa.Status, wa.EndsAt = "resolved", *a.EndsAt
		}
		if wa.Status == "firing" {
			m.Status = "firing"
		}
		m.Alerts = append(m.Alerts, wa)
	}
	slices.Sort(keys)
	msgs := make([]WebhookMessage, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		m := groups[k]
		m.CommonLabels = common(m.Alerts, func(a WebhookAlert) map[string]string { return a.Labels })
		m.CommonAnnotations = common(m.Alerts, func(a WebhookAlert) map[string]string { return a.Annotations })
		h := sha256.New()
		h.Write([]byte(m.GroupKey))
		for _, a := range m.Alerts {
			fmt.Fprintf(h, ";%s/%s/%d/%d", a.Fingerprint, a.Status, a.StartsAt.UnixNano(), a.EndsAt.UnixNano())
		}
		msgs[i], ids[i] = *m, "msg_"+base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
	}
	return msgs, ids
}

// common is the name-value pairs every alert has in the same map.
func common(alerts []WebhookAlert, of func(WebhookAlert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range of(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := of(a)
		for k, v := range out {
			if w, ok := m[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}

// Notify implements Notifier: one signed POST per message; an error from any fails the
// notification, and all are sent again.
func (w *WebhookAlerts) Notify(ctx context.Context, alerts []Alert) error {
	msgs, ids := w.Messages(alerts)
	var errs []error
	for i, m := range msgs {
		body, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode webhook message: %w", err)
		}
		hdr, err := webhookHeaders(w.Secret, w.Now, ids[i], body)
		if err != nil {
			return err
		}
		if err := post(ctx, w.Client, w.URL, body, hdr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// labelSet is a label map as Alertmanager's own type, for its fingerprint and its text.
func labelSet(labels map[string]string) prommodel.LabelSet {
	ls := make(prommodel.LabelSet, len(labels))
	for k, v := range labels {
		ls[prommodel.LabelName(k)] = prommodel.LabelValue(v)
	}
	return ls
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
	hdr, err := webhookHeaders(h.Secret, h.Now, cmd.ID, cmd.Body)
	if err != nil {
		return err
	}
	hdr.Set("Idempotency-Key", cmd.ID)
	hdr.Set("Content-Type", "application/cloudevents+json")
	return post(ctx, h.Client, target, cmd.Body, hdr)
}
