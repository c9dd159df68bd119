package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flowwatch/flowwatch/detector"
)

// consumeCommands consumes, as a service of the test would, the unblock commands `flowwatch
// run` publishes on subject to its NATS server (url), through a durable JetStream consumer:
// handle gets each command with its NATS message id, in order, on the consumer's goroutine,
// and the message is acknowledged after it. It stops when ctx ends. The channel is closed
// once the consumer exists (the stream appears with the first command).
func consumeCommands(ctx context.Context, t *testing.T, url, durable, subject string, handle func(msgID string, ce detector.CloudEvent)) <-chan struct{} {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		var cons jetstream.Consumer
		for ctx.Err() == nil {
			c, err := js.CreateOrUpdateConsumer(ctx, detector.DefaultCommandStream, jetstream.ConsumerConfig{Durable: durable, FilterSubject: subject})
			if err == nil {
				cons = c
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		close(ready)
		if cons == nil {
			return
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			var ce detector.CloudEvent
			if json.Unmarshal(m.Data(), &ce) == nil {
				handle(m.Headers().Get(nats.MsgIdHdr), ce)
			}
			_ = m.Ack()
		})
		if err == nil {
			<-ctx.Done()
			cc.Stop()
		}
	}()
	return ready
}
