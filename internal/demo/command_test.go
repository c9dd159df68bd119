package demo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flowwatch/flowwatch/detector"
	"github.com/flowwatch/flowwatch/internal/demo"
	"github.com/flowwatch/flowwatch/model"
)

// waitFor is how long a test waits for the demo's asynchronous export to arrive.
const waitFor = 15 * time.Second

// running starts a demo in the background and stops it at cleanup, checking it ended well.
func running(t *testing.T, cfg demo.Config) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := demo.New(ctx, cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop")
		}
	})
	return d
}

// stuckOrders waits until the sink holds n failed authorizations and returns their orders.
func stuckOrders(t *testing.T, c *collector, n int) []string {
	t.Helper()
	var orders []string
	require.Eventually(t, func() bool {
		orders = orders[:0]
		for _, it := range c.collect() {
			if it.signal == "span" && it.name == "authorize" && it.status == "error" {
				orders = append(orders, it.attrs["payment.order_id"])
			}
		}
		return len(orders) == n
	}, waitFor, 20*time.Millisecond)
	return orders
}

func count(items []item, pred func(item) bool) int {
	n := 0
	for _, it := range items {
		if pred(it) {
			n++
		}
	}
	return n
}

func authorizedFor(order string) func(item) bool {
	return func(it item) bool {
		return it.signal == "event" && it.name == "payment.authorized" && it.attrs["payment.order_id"] == order
	}
}

func deliveredFor(order string) func(item) bool {
	return func(it item) bool {
		return it.signal == "event" && it.name == "delivered" && it.attrs["order.id"] == order
	}
}

func command(id, flow, checkpoint, key string) []byte {
	b, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": id, "source": "flowwatch/detector/test",
		"type": "dev.flowwatch.unblock", "subject": flow + "/" + key, "correlationid": key,
		"datacontenttype": "application/json",
		"data": map[string]any{"flow": flow, "version": 1, "key": key, "checkpoint": checkpoint,
			"attempt": 1, "reason": "paid overdue by 10s", "payload": map[string]any{"action": "retry-payment"}},
	})
	return b
}

// assertHealed waits until the order has completed (every hop's telemetry exported), then
// checks it took the one authorization the retry produced, kept the failure as its last
// error, and that its payment completed too.
func assertHealed(t *testing.T, c *collector, order string) {
	t.Helper()
	set := loadFlows(t)
	var w *world
	var st model.State
	require.Eventually(t, func() bool {
		w = judge(set, c.collect())
		in := w.instances["order-fulfilment"][order]
		if in == nil {
			return false
		}
		st = in.Evaluate(time.Now())
		// Each service exports on its own schedule: wait for every hop, not just the last.
		return st.Status == model.StatusCompleted && len(st.Violations) == 0 && len(w.problems) == 0
	}, waitFor, 20*time.Millisecond, "the retried order goes on to delivery")
	require.Empty(t, w.problems)
	assert.Empty(t, st.Violations, "%s: %v", order, w.checkpoints("order-fulfilment", order))
	assert.Equal(t, 1, count(w.items, authorizedFor(order)), "one retry, one authorization")
	assert.Equal(t, 1, count(w.items, deliveredFor(order)))
	require.NotNil(t, st.LastError, "the failed authorization stays as the order's last error")
	assert.Equal(t, "card issuer timeout", st.LastError.Message)
	assert.Equal(t, "payments", st.LastError.Service)
	var paymentID string
	for _, it := range w.items {
		if authorizedFor(order)(it) {
			paymentID = it.attrs["payment.id"]
		}
	}
	require.NotEmpty(t, paymentID)
	require.Eventually(t, func() bool {
		w = judge(set, c.collect())
		in := w.instances["payment"][paymentID]
		if in == nil {
			return false
		}
		pst := in.Evaluate(time.Now())
		return pst.Status == model.StatusCompleted && len(pst.Violations) == 0
	}, waitFor, 20*time.Millisecond, "the payment is captured after the retry")
}

func TestWebhookRetriesStuckPaymentOnce(t *testing.T) {
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 2
	cfg.ErrorRate = 1
	cfg.Listen = "127.0.0.1:0"
	var log syncBuffer
	cfg.Log = &log
	d := running(t, cfg)
	require.NotEmpty(t, d.Addr())
	url := "http://" + d.Addr() + "/commands/payments/retry"

	orders := stuckOrders(t, c, 2)
	require.Zero(t, count(c.collect(), func(it item) bool { return it.name == "payment.authorized" }),
		"a failed authorization emits no payment.authorized")

	post := func(body []byte, key string) (int, map[string]string) {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}

	cmd := command("cmd-1", "order-fulfilment", "paid", orders[0])
	code, out := post(cmd, "cmd-1")
	assert.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, demo.OutcomeRetried, out["status"])
	code, out = post(cmd, "cmd-1")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, demo.OutcomeDuplicate, out["status"])
	// The same command again under a new Idempotency-Key is still the same CloudEvent id.
	code, out = post(cmd, "another-key")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, demo.OutcomeDuplicate, out["status"])

	code, out = post([]byte(`{"specversion":"0.3","id":""}`), "bad")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"], "specversion must be")
	assert.Contains(t, out["error"], "id is missing")

	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	assertHealed(t, c, orders[0])

	// The payment flow's own command for the payment just retried needs nothing now.
	var paymentID string
	for _, it := range c.collect() {
		if authorizedFor(orders[0])(it) {
			paymentID = it.attrs["payment.id"]
		}
	}
	code, out = post(command("cmd-2", "payment", "authorized", paymentID), "cmd-2")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, demo.OutcomeIgnored, out["status"], out["detail"])
	// A flow the demo has no action for is acknowledged and ignored.
	code, out = post(command("cmd-3", "customer-onboarding", "identity_verified", "cus-1"), "cmd-3")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, demo.OutcomeIgnored, out["status"])
	// So is a command for another tenant's order, even a stuck one's key.
	other := bytes.Replace(command("cmd-4", "order-fulfilment", "paid", orders[1]),
		[]byte(`"flow":`), []byte(`"tenant":"globex","flow":`), 1)
	code, out = post(other, "cmd-4")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, demo.OutcomeIgnored, out["status"])
	assert.Contains(t, out["detail"], `tenant "globex"`)

	assert.Zero(t, count(c.collect(), authorizedFor(orders[1])), "the other order stays stuck")
	st := d.Stats()
	assert.EqualValues(t, 1, st.Retries)
	assert.EqualValues(t, 2, st.Duplicates)
	assert.EqualValues(t, 3, st.Ignored)
	assert.EqualValues(t, 1, st.Invalid)
	assert.EqualValues(t, 6, st.Commands)
	assert.Contains(t, log.String(), "webhook command cmd-1 for order-fulfilment/"+orders[0]+" retried")
}

func TestCommandForUnknownOrderPaysIt(t *testing.T) {
	// An order this demo did not start (another process placed it) is paid and shipped.
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 1
	cfg.Listen = "127.0.0.1:0"
	d := running(t, cfg)
	resp, err := http.Post("http://"+d.Addr()+"/", "application/json",
		bytes.NewReader(command("cmd-x", "order-fulfilment", "paid", "ord-elsewhere")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	// Each service exports on its own schedule: wait for all three.
	require.Eventually(t, func() bool {
		items := c.collect()
		return count(items, deliveredFor("ord-elsewhere")) == 1 &&
			count(items, authorizedFor("ord-elsewhere")) == 1 &&
			count(items, func(it item) bool {
				return it.name == "POST /payments" && it.attrs["payment.order_id"] == "ord-elsewhere" &&
					it.attrs["cloudevents.event_id"] == "cmd-x" // the request carries the command it answers
			}) == 1
	}, waitFor, 20*time.Millisecond)

	// Likewise a payment of the payment flow this demo never saw is authorized and captured.
	resp, err = http.Post("http://"+d.Addr()+"/", "application/json",
		bytes.NewReader(command("cmd-y", "payment", "authorized", "pay-elsewhere")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool {
		items := c.collect()
		return count(items, func(it item) bool {
			return it.name == "capture" && it.status == "ok" && it.attrs["payment.id"] == "pay-elsewhere"
		}) == 1 && count(items, func(it item) bool {
			return it.name == "payment.authorized" && it.attrs["payment.id"] == "pay-elsewhere"
		}) == 1
	}, waitFor, 20*time.Millisecond)
}

func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(10*time.Second), "nats-server not ready")
	return ns
}

func TestNATSCommandActedOnOnce(t *testing.T) {
	ns := startNATS(t)
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 1
	cfg.ErrorRate = 1
	cfg.NATS = ns.ClientURL()
	d := running(t, cfg)

	orders := stuckOrders(t, c, 1)

	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// The consumer created the stream it reads.
	var stream jetstream.Stream
	require.Eventually(t, func() bool {
		stream, err = js.Stream(ctx, demo.CommandStream)
		return err == nil
	}, waitFor, 20*time.Millisecond)
	assert.Equal(t, demo.CommandStreamSubjects, stream.CachedInfo().Config.Subjects)

	body := command("cmd-nats-1", "order-fulfilment", "paid", orders[0])
	ack, err := js.Publish(ctx, demo.CommandSubject, body, jetstream.WithMsgID("cmd-nats-1"))
	require.NoError(t, err)
	assert.False(t, ack.Duplicate)
	ack, err = js.Publish(ctx, demo.CommandSubject, body, jetstream.WithMsgID("cmd-nats-1"))
	require.NoError(t, err)
	assert.True(t, ack.Duplicate, "JetStream drops a repeated Nats-Msg-Id inside its window")
	// Re-sent after the window (no Nats-Msg-Id here): the consumer itself must drop it.
	_, err = js.Publish(ctx, demo.CommandSubject, body)
	require.NoError(t, err)
	// Garbage is terminated, not redelivered forever.
	_, err = js.Publish(ctx, demo.CommandSubject, []byte("not json"))
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		st := d.Stats()
		return st.Retries == 1 && st.Duplicates == 1 && st.Invalid == 1
	}, waitFor, 20*time.Millisecond, "%+v", d.Stats())
	assertHealed(t, c, orders[0])

	// Everything was acknowledged: nothing is pending redelivery.
	cons, err := js.Consumer(ctx, demo.CommandStream, demo.DefaultConsumer)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, waitFor, 20*time.Millisecond)
}

func TestNATSUnreachableFailsRun(t *testing.T) {
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 1
	cfg.NATS = "nats://" + freeAddr(t)
	d, err := demo.New(context.Background(), cfg)
	require.NoError(t, err)
	err = d.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to NATS")
	assert.True(t, errors.Is(err, nats.ErrNoServers), "%v", err)
}

// TestDetectorSinksReachTheDemo delivers commands the way the detector does — its own
// CloudEvent JSON, its HTTP sink (signed) and its NATS JetStream sink — and checks the demo
// heals the orders they name.
func TestDetectorSinksReachTheDemo(t *testing.T) {
	ns := startNATS(t)
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 2
	cfg.ErrorRate = 1
	cfg.NATS = ns.ClientURL()
	cfg.Listen = "127.0.0.1:0"
	cfg.WebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("a shared secret of 32 bytes....."))
	d := running(t, cfg)
	orders := stuckOrders(t, c, 2)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	commandFor := func(key string) detector.Command {
		id := detector.CommandID(cfg.Tenant, "order-fulfilment", key, "paid", 0, 1)
		body, err := json.Marshal(detector.CloudEvent{SpecVersion: "1.0", ID: id, Source: "flowwatch/detector/0",
			Type: "dev.flowwatch.unblock", Subject: "order-fulfilment/" + key, Time: time.Now(),
			DataContentType: "application/json", CorrelationID: key,
			Data: detector.CommandData{Tenant: cfg.Tenant, Flow: "order-fulfilment", Version: 1, Key: key,
				Checkpoint: "paid", Attempt: 1, MaxAttempts: 3, Payload: map[string]any{"action": "retry-payment"}}})
		require.NoError(t, err)
		return detector.Command{ID: id, Subject: demo.CommandSubject, Type: "dev.flowwatch.unblock", Body: body}
	}

	// Over HTTP: a wrong secret is refused; the right one is acted on once.
	web := &detector.HTTPSink{SinkName: "webhook", URL: "http://" + d.Addr(), Secret: "whsec_" +
		base64.StdEncoding.EncodeToString([]byte("not the secret"))}
	hc := commandFor(orders[0])
	hc.Subject = "payments/retry"
	err := web.Send(ctx, hc)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	web.Secret = cfg.WebhookSecret
	require.NoError(t, web.Send(ctx, hc))
	require.NoError(t, web.Send(ctx, hc), "a repeated delivery is acknowledged")

	// Over NATS JetStream, twice.
	sink, err := detector.NewNATSSink("nats", ns.ClientURL(), "", demo.CommandStreamSubjects)
	require.NoError(t, err)
	defer sink.Close()
	nc := commandFor(orders[1])
	require.NoError(t, sink.Send(ctx, nc))
	require.NoError(t, sink.Send(ctx, nc))

	require.Eventually(t, func() bool { return d.Stats().Retries == 2 }, waitFor, 20*time.Millisecond, "%+v", d.Stats())
	assertHealed(t, c, orders[0])
	assertHealed(t, c, orders[1])
	st := d.Stats()
	assert.EqualValues(t, 1, st.Invalid, "the badly signed delivery")
	assert.EqualValues(t, 1, st.Duplicates, "the HTTP repeat (JetStream drops the NATS one)")
}

func TestNATSStreamMadeByOthersIsUsed(t *testing.T) {
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: demo.CommandStream, Subjects: []string{"payments.>", "flowwatch.>"}})
	require.NoError(t, err)

	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 1
	cfg.ErrorRate = 1
	cfg.NATS = ns.ClientURL()
	d := running(t, cfg)
	orders := stuckOrders(t, c, 1)
	_, err = js.Publish(ctx, demo.CommandSubject, command("cmd-o", "order-fulfilment", "paid", orders[0]))
	require.NoError(t, err)
	assertHealed(t, c, orders[0])

	st, err := js.Stream(ctx, demo.CommandStream)
	require.NoError(t, err)
	assert.Equal(t, []string{"payments.>", "flowwatch.>"}, st.CachedInfo().Config.Subjects, "the demo leaves others' streams alone")
	assert.EqualValues(t, 1, d.Stats().Retries)
}

// An order cancelled once paid whose refund was missed is refunded by a retry command of its
// checkpoint refunded: it ends compensated.
func TestRetryCommandRefundsACancelledOrder(t *testing.T) {
	c := startCollector(t)
	cfg := baseConfig(c)
	cfg.Orders = 1
	cfg.CancelAfterPaymentRate = 1
	cfg.LateRefundRate = 1
	cfg.Listen = "127.0.0.1:0"
	d := running(t, cfg)
	var order string
	require.Eventually(t, func() bool {
		for _, it := range c.collect() {
			if it.signal == "span" && it.name == "cancel" {
				order = it.attrs["order.id"]
			}
		}
		return order != "" && d.Stats().LateRefunds == 1
	}, waitFor, 20*time.Millisecond)
	refunded := func(it item) bool {
		return it.signal == "event" && it.name == "refund.completed" && it.attrs["order.id"] == order
	}
	require.Zero(t, count(c.collect(), refunded), "a missed refund is not made")

	resp, err := http.Post("http://"+d.Addr()+"/commands", "application/cloudevents+json",
		bytes.NewReader(command("cmd-r", "order-fulfilment", "refunded", order)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)

	set := loadFlows(t)
	require.Eventually(t, func() bool {
		in := judge(set, c.collect()).instances["order-fulfilment"][order]
		return in != nil && in.Evaluate(time.Now()).Status == model.StatusCompensated
	}, waitFor, 20*time.Millisecond, "the refunded order is compensated")
	assert.Equal(t, 1, count(c.collect(), refunded))
	assert.EqualValues(t, 1, d.Stats().Retries)
}
