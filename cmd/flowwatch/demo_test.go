package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

func TestDemoFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, code := parseDemoFlags([]string{"--otlp", "10.0.0.1:4317", "--protocol", "http", "--rate", "2.5",
		"--duration", "1m", "--drop", "0.1", "--delay", "3s", "--error-rate", "0.2", "--cancel-rate", "0.3",
		"--tenant", "globex", "--nats", "nats://127.0.0.1:4222", "--listen", "127.0.0.1:9090", "--seed", "7",
		"--orders", "12"}, &stderr)
	require.Equal(t, -1, code, stderr.String())
	assert.Equal(t, "10.0.0.1:4317", cfg.OTLP)
	assert.Equal(t, "http", cfg.Protocol)
	assert.Equal(t, 2.5, cfg.Rate)
	assert.Equal(t, time.Minute, cfg.Duration)
	assert.Equal(t, 0.1, cfg.Drop)
	assert.Equal(t, 3*time.Second, cfg.Delay)
	assert.Equal(t, 0.2, cfg.ErrorRate)
	assert.Equal(t, 0.3, cfg.CancelRate)
	assert.Equal(t, "globex", cfg.Tenant)
	assert.Equal(t, "nats://127.0.0.1:4222", cfg.NATS)
	assert.Equal(t, "127.0.0.1:9090", cfg.Listen)
	assert.Equal(t, uint64(7), cfg.Seed)
	assert.Equal(t, 12, cfg.Orders)
}

func TestDemoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--protocol", "udp"}, "'protocol' must be grpc or http"},
		{[]string{"--rate", "0"}, "'rate' must be greater than zero"},
		{[]string{"--drop", "2"}, "'drop' must be a probability"},
		{[]string{"--listen", "nowhere"}, "'listen' must be host:port"},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"demo"}, tc.args...), &stdout, &stderr)
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.want, "%v", tc.args)
	}
	var stderr bytes.Buffer
	assert.Equal(t, 0, dispatch(context.Background(), []string{"demo", "-h"}, &bytes.Buffer{}, &stderr))
	assert.Contains(t, stderr.String(), "-error-rate")
}

func TestDemoCommandRuns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	f := otlpreceiver.NewFactory()
	rcfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	rcfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = addr
	spans := new(consumertest.TracesSink)
	logs := new(consumertest.LogsSink)
	set := receivertest.NewNopSettings(f.Type())
	tr, err := f.CreateTraces(context.Background(), set, rcfg, spans)
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, rcfg, logs)
	require.NoError(t, err)
	require.NoError(t, tr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { assert.NoError(t, tr.Shutdown(context.Background())) }()
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { assert.NoError(t, lr.Shutdown(context.Background())) }()

	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"demo", "--otlp", addr, "--orders", "3", "--rate", "100",
		"--delay", "0", "--seed", "9", "--cancel-rate", "0", "--error-rate", "0", "--tenant", "initech"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	out := stderr.String()
	assert.Contains(t, out, "demo: emitting OTLP/grpc to "+addr+" as tenant initech")
	assert.Contains(t, out, "seed 9")
	assert.True(t, strings.HasPrefix(lastLine(out), "demo: 3 orders (3 delivered, 0 cancelled)"), out)

	var names []string
	for _, td := range spans.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			ten, _ := rs.Resource().Attributes().Get("tenant.id")
			assert.Equal(t, "initech", ten.Str())
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					names = append(names, sp.Name())
				}
			}
		}
	}
	for _, want := range []string{"POST /orders", "POST /payments", "authorize", "reserve", "capture", "ship order", "dispatch parcel", "POST /tracking/events", "POST /carrier/events"} {
		assert.Contains(t, names, want)
	}
	assert.Equal(t, 3, logs.LogRecordCount(), "one payment.settled per order")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// The demo's webhook secret comes from FLOWWATCH_WEBHOOK_SECRET unless --webhook-secret is
// given (compose passes it in the environment); one that is not base64 is a usage error.
func TestDemoWebhookSecretFromEnvironment(t *testing.T) {
	t.Setenv("FLOWWATCH_WEBHOOK_SECRET", "whsec_c2VjcmV0LWZvci10ZXN0cw==")
	cfg, code := parseDemoFlags(nil, io.Discard)
	if code != -1 || cfg.WebhookSecret != "whsec_c2VjcmV0LWZvci10ZXN0cw==" {
		t.Fatalf("exit %d, secret %q", code, cfg.WebhookSecret)
	}
	if _, code := parseDemoFlags([]string{"--webhook-secret", "not base64!"}, io.Discard); code != 2 {
		t.Fatalf("a secret that is not base64: exit %d", code)
	}
}
