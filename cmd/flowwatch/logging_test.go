package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestLogFlags(t *testing.T) {
	parse := func(args ...string) (*logFlags, error) {
		var l logFlags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		l.register(fs, "info")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return &l, nil
	}
	var buf bytes.Buffer
	l, _ := parse("--log-format", "json", "--log-level", "warn")
	log, err := l.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not shown")
	log.Warn("shown", "n", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "shown" || line["level"] != "WARN" || line["n"] != 1.0 {
		t.Fatalf("json line %q: %v", buf.String(), err)
	}
	buf.Reset()
	l, _ = parse()
	log, _ = l.logger(&buf)
	log.Info("hello")
	if !strings.Contains(buf.String(), "level=INFO msg=hello") {
		t.Fatalf("text line %q", buf.String())
	}
	for _, bad := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}} {
		l, _ := parse(bad...)
		if _, err := l.logger(io.Discard); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// A zap logger (the in-process collector's) writes through the process's slog handler: its
// lines have the same format, its fields become attributes, and the handler's level rules.
func TestZapWritesThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	l := &logFlags{format: "json", level: "info"}
	log, err := l.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	z := zap.New(zapcore.NewNopCore(), zapToSlog(log.Handler())).Named("otelcol").With(zap.String("otelcol.component.id", "flow"))
	z.Debug("filtered")
	z.Info("ready", zap.Int("receivers", 2), zap.Duration("took", time.Second))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if line["msg"] != "ready" || line["level"] != "INFO" || line["logger"] != "otelcol" || line["otelcol.component.id"] != "flow" ||
		line["receivers"] != 2.0 || line["took"] == nil {
		t.Fatalf("line = %v", line)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("the debug line passed the info level: %q", buf.String())
	}
}

// `flowwatch run --log-format json` writes the collector's lines and the detector's as JSON,
// through one handler.
func TestRunLogsInOneFormat(t *testing.T) {
	out := &lockedBuffer{}
	o, err := parseRunFlags([]string{"--log-format", "json", "--log-level", "info", "--flows", "testdata/e2e", "--nats", testNATS(t).ClientURL(),
		"--data", filepath.Join(t.TempDir(), "data")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log, err := o.logs.logger(out)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := startAllInOneLogged(t, o, log)
	stop()
	var collector, detector int
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if _, ok := line["otelcol.component.kind"]; ok || strings.Contains(l, "Everything is ready") {
			collector++
		}
		if strings.HasPrefix(line["msg"].(string), "detector ") || strings.HasPrefix(line["msg"].(string), "query API") {
			detector++
		}
	}
	if collector == 0 || detector == 0 {
		t.Fatalf("want lines of both the collector and the detector, got %d and %d:\n%s", collector, detector, out.String())
	}
}

func TestRunWebhookSecretFlag(t *testing.T) {
	secret := "whsec_c2VjcmV0LWZvci10ZXN0cw=="
	o, err := parseRunFlags([]string{"--webhook", "http://127.0.0.1:1/hook", "--webhook-secret", secret}, io.Discard)
	if err != nil || o.webhookSecret != secret {
		t.Fatalf("%+v, %v", o, err)
	}
	t.Setenv("FLOWWATCH_WEBHOOK_SECRET", secret)
	if o, err = parseRunFlags([]string{"--demo"}, io.Discard); err != nil || o.webhookSecret != secret {
		t.Fatalf("from the environment: %+v, %v", o, err)
	}
	if _, err = parseRunFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "give --webhook") {
		t.Fatalf("a secret with nothing to sign: %v", err)
	}
	t.Setenv("FLOWWATCH_WEBHOOK_SECRET", "")
	_, err = parseRunFlags([]string{"--webhook", "http://x/", "--webhook-secret", "not base64!"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--webhook-secret: not a Standard Webhooks secret") || strings.Contains(err.Error(), "not base64!") {
		t.Fatalf("bad secret: %v", err)
	}
}
