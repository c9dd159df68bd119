package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sinkFlow is a flow whose actions name the sinks "nats" (line 9) and "pager" (line 10).
const sinkFlow = "apiVersion: flowwatch/v1\nkind: Flow\nname: f\nversion: 1\nkey: k\ncheckpoints:\n" +
	"  - {name: a, start: true, match: {service: s}}\n  - name: b\n    after: [a]\n    within: 5m\n    match: {service: s}\n" +
	"    on_stuck:\n      - {sink: nats}\n      - {sink: pager}\n"

// TestFlowReloadChecksSinks: a reloaded set whose actions name a sink that is not configured is
// rejected like an invalid file: the last good set stays, and the problem is logged at its
// place; once fixed, the new set is taken.
func TestFlowReloadChecksSinks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "flows.yaml")
	write := func(doc string) {
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	natsOnly := strings.Replace(sinkFlow, "      - {sink: pager}\n", "", 1)
	write(natsOnly)
	logs := &lockedBuffer{}
	fs, err := loadFlows(context.Background(), []string{dir}, []string{"nats"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	good := fs.Get()

	write(sinkFlow) // names "pager" too
	fs.reload(context.Background())
	if fs.Get() != good {
		t.Fatal("a set naming an unknown sink replaced the last good one")
	}
	if want := `flows.yaml:14:16: checkpoint \"b\": 'sink' \"pager\" names no sink`; !strings.Contains(logs.String(), want) {
		t.Fatalf("want the problem %s logged, got:\n%s", want, logs.String())
	}
	write(strings.Replace(natsOnly, "within: 5m", "within: 7m", 1))
	fs.reload(context.Background())
	if s := fs.Get(); s == good || s.Latest("f").Checkpoint("b").Within != 7*time.Minute {
		t.Fatal("the fixed set was not taken")
	}
}

// TestStartChecksSinks: `flowwatch detector` and `flowwatch run` refuse, before starting
// anything, flows whose actions name sinks they do not have, with every problem at its place.
func TestStartChecksSinks(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.yaml")
	if err := os.WriteFile(flows, []byte(sinkFlow), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "detector.yaml")
	body := "store: { embedded: " + filepath.Join(dir, "store") + " }\nflows: [" + flows + "]\n" +
		"sinks: [{ name: pager, type: webhook, url: \"http://127.0.0.1:1/\" }]\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	if code := dispatch(context.Background(), []string{"detector", "--config", cfg}, &strings.Builder{}, &errb); code != 1 {
		t.Fatalf("detector: exit %d: %s", code, errb.String())
	}
	want := flows + `:13:16: checkpoint "b": 'sink' "nats" names no sink of the detector's configuration (configured: pager)`
	if !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), `"pager" names`) {
		t.Fatalf("detector: want %s, got:\n%s", want, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Fatalf("the detector opened its store before checking its flows: %v", err)
	}

	errb.Reset()
	code := dispatch(context.Background(), []string{"run", "--flows", flows, "--data", filepath.Join(dir, "data"),
		"--webhook", "http://127.0.0.1:1/hook"}, &strings.Builder{}, &errb)
	if code != 1 {
		t.Fatalf("run: exit %d: %s", code, errb.String())
	}
	for _, w := range []string{
		flows + `:13:16: checkpoint "b": 'sink' "nats" names no sink of the detector's configuration (configured: webhook)`,
		flows + `:14:16: checkpoint "b": 'sink' "pager" names no sink`,
		`sink "nats" with --nats URL or --demo`,
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("run: want %s, got:\n%s", w, errb.String())
		}
	}
}

// TestRunSinkNames: the sinks run checks the flows against are those its flags give.
func TestRunSinkNames(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--nats", "nats://x:4222"}, "nats"},
		{[]string{"--webhook", "http://x/"}, "webhook"},
		{[]string{"--demo"}, "nats,webhook"},
		{[]string{"--nats", "nats://x:4222", "--webhook", "http://x/"}, "nats,webhook"},
	} {
		o, err := parseRunFlags(tc.args, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(o.sinkNames(), ","); got != tc.want {
			t.Errorf("%v: sinks %q, want %q", tc.args, got, tc.want)
		}
	}
}
