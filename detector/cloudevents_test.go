package detector

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// sdkEvent decodes a command with the CloudEvents Go SDK and validates it as a CloudEvent.
func sdkEvent(t *testing.T, body []byte) event.Event {
	t.Helper()
	ev := event.New()
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("the CloudEvents SDK cannot read the command: %v\n%s", err, body)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("the CloudEvents SDK finds the command invalid: %v\n%s", err, body)
	}
	return ev
}

// Commands are valid CloudEvents 1.0 for the CloudEvents SDK, over HTTP (structured mode) as
// in their JSON, and their (source, id) is the same however many shards the detector runs in:
// consumers that dedupe on it never see a resharded detector's command as new.
func TestCommandsAreCloudEventsStableAcrossShards(t *testing.T) {
	var mu sync.Mutex
	var overHTTP []*event.Event
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err == nil {
			err = ev.Validate()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		overHTTP = append(overHTTP, ev)
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
	}))
	defer srv.Close()

	type sent struct{ source, id string }
	var seen []sent
	for _, shards := range []int{1, 2, 3} {
		f := newFixture(t)
		shard := ShardOf("acme", "order-fulfilment", "o-ce", shards)
		d := f.detector(func(c *Config) {
			c.Shard, c.Shards = shard, shards
			c.Sinks = []SinkConfig{{Sink: f.nats}}
		})
		f.emit("order-fulfilment", "placed", "o-ce", "order.id", 0)
		f.tick(d, 2*time.Minute+10*time.Second)
		if f.nats.count() != 1 {
			t.Fatalf("%d shards: %d commands, want 1", shards, f.nats.count())
		}
		cmd := f.nats.cmds[0]
		ev := sdkEvent(t, cmd.Body)
		if ev.SpecVersion() != "1.0" || ev.ID() != cmd.ID || ev.Source() != DefaultSource || ev.Type() != "dev.flowwatch.unblock" ||
			ev.Subject() != "order-fulfilment/o-ce" || ev.DataContentType() != "application/json" || ev.Time().IsZero() {
			t.Fatalf("%d shards: event = %s", shards, ev)
		}
		if ext := ev.Extensions()["correlationid"]; ext != "o-ce" {
			t.Fatalf("correlationid = %v", ext)
		}
		var data CommandData
		if err := ev.DataAs(&data); err != nil {
			t.Fatal(err)
		}
		if data.Key != "o-ce" || data.Flow != "order-fulfilment" || data.Checkpoint != "paid" || data.Attempt != 1 || data.Reason == nil {
			t.Fatalf("data = %+v", data)
		}
		seen = append(seen, sent{ev.Source(), ev.ID()})

		// The same command through the HTTP sink, read by the SDK's HTTP binding.
		h := &HTTPSink{SinkName: "http", URL: srv.URL + "/commands"}
		if err := h.Send(t.Context(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seen[1:] {
		if s != seen[0] {
			t.Fatalf("(source, id) changed with the shard count: %+v", seen)
		}
	}
	if seen[0].id != CommandID("acme", "order-fulfilment", "o-ce", "paid", 0, 1) {
		t.Fatalf("id %s is not the attempt's CommandID", seen[0].id)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overHTTP) != 3 {
		t.Fatalf("%d events over HTTP, want 3", len(overHTTP))
	}
	for i, ev := range overHTTP {
		if ev.ID() != seen[0].id || keys[i] != ev.ID() || ev.Source() != DefaultSource {
			t.Fatalf("over HTTP: id %s, Idempotency-Key %s, source %s", ev.ID(), keys[i], ev.Source())
		}
	}
}
