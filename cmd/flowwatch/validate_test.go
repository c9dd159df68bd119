package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testctx"
)

func TestValidateExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), []string{"validate", "../../examples/flows"}, &out, &errb); code != 0 {
		t.Fatalf("examples: exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Fatalf("want one line per flow loaded (5), got %d:\n%s", n, out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	doc := "apiVersion: flowwatch/v1\nkind: Flow\nname: f\nversion: 1\nkey: k\ncheckpoints:\n" +
		"  - {name: a, match: {service: s}}\n  - {name: b, after: [nope], match: {service: s}}\n"
	if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := dispatch(context.Background(), []string{"validate", bad}, &out, &errb); code != 1 {
		t.Fatalf("invalid file: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], bad+":6:1: ") || !strings.HasPrefix(lines[1], bad+":8:23: ") {
		t.Fatalf("want one path:line:col line per problem, got:\n%s", errb.String())
	}

	if code := dispatch(context.Background(), []string{"validate"}, &out, &errb); code != 2 {
		t.Fatalf("no args: exit %d, want 2", code)
	}
	if code := dispatch(context.Background(), []string{"validate", "--bogus"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
}

// TestValidateSinksAgainstConfig: with --config, every action naming a sink the detector's
// configuration does not have is a problem at its `sink`; without it sinks are not checked.
func TestValidateSinksAgainstConfig(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.yaml")
	if err := os.WriteFile(flows, []byte(sinkFlow), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(sinks string) string {
		path := filepath.Join(t.TempDir(), "detector.yaml")
		body := fmt.Sprintf("store: { embedded: %q }\nflows: [%q]\nsinks: [%s]\n", filepath.Join(dir, "store"), flows, sinks)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), append([]string{"validate"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	if code, out, errs := run(flows); code != 0 || !strings.HasPrefix(out, "ok f version 1") {
		t.Fatalf("without --config sinks are not checked: exit %d\n%s%s", code, out, errs)
	}
	natsOnly := config(`{ name: nats, type: nats, url: "nats://127.0.0.1:1" }`)
	code, out, errs := run("--config", natsOnly, flows)
	want := flows + `:14:16: checkpoint "b": 'sink' "pager" names no sink of the detector's configuration (configured: nats)` + "\n"
	if code != 1 || out != "" || errs != want {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errs, want)
	}
	// Without paths, the configuration's flows are checked.
	if code, _, errs := run("--config", natsOnly); code != 1 || errs != want {
		t.Fatalf("the config's flows: exit %d:\n%s", code, errs)
	}
	both := config(`{ name: nats, type: nats, url: "nats://127.0.0.1:1" }, { name: pager, type: webhook, url: "http://127.0.0.1:1/" }`)
	if code, out, errs := run("--config", both); code != 0 || !strings.HasPrefix(out, "ok f version 1") {
		t.Fatalf("every sink configured: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run("--config", filepath.Join(dir, "nope.yaml")); code != 1 || !strings.Contains(errs, "read detector config") {
		t.Fatalf("a missing config: exit %d: %s", code, errs)
	}
}

// chainFiles writes n flow files of a 1,000-checkpoint chain each into a new folder.
func chainFiles(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: flowwatch/v1\nkind: Flow\nname: chain\nversion: VERSION\nkey: k\ncheckpoints:\n  - {name: c0, start: true, match: {service: s}}\n")
	for i := 1; i < 1000; i++ {
		fmt.Fprintf(&b, "  - {name: c%d, after: [c%d], within: 1m, match: {service: s, span: c%d}}\n", i, i-1, i)
	}
	dir := t.TempDir()
	for i := range n {
		doc := strings.Replace(b.String(), "VERSION", strconv.Itoa(i+1), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("chain-%04d.yaml", i)), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestValidateInterrupted: a validation whose context ends stops where it is, prints no flow
// and exits 130.
func TestValidateInterrupted(t *testing.T) {
	dir := chainFiles(t, 5)
	var out, errb bytes.Buffer
	ctx := &testctx.CancelAfter{Context: context.Background(), N: 3}
	if code := dispatch(ctx, []string{"validate", dir}, &out, &errb); code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, errb.String())
	}
	if out.Len() != 0 || !strings.HasPrefix(errb.String(), "flowwatch validate: interrupted") {
		t.Fatalf("stdout %q, stderr %q", out.String(), errb.String())
	}
	if ctx.N > 0 {
		t.Fatal("the validation did not get as far as the interruption")
	}
}

// TestValidateStopsOnSIGTERM: `flowwatch validate` on a folder that takes seconds to check
// stops at SIGTERM with exit 130, at once. The signal goes when the child has begun checking
// (it first asks its context), far from the end of its work.
func TestValidateStopsOnSIGTERM(t *testing.T) {
	dir := chainFiles(t, 400)
	ready := filepath.Join(t.TempDir(), "ready")
	t.Setenv("FLOWWATCH_TEST_READY", ready)
	c := startChild(t, "main", "validate", dir)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the child did not start validating within 30s:\n%s", c.out.String())
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	err := c.cmd.Wait()
	took := time.Since(sent)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("want exit %d, got %v:\n%s", exitInterrupted, err, c.out.String())
	}
	if !strings.Contains(c.out.String(), "flowwatch validate: interrupted (terminated signal received)") || strings.Contains(c.out.String(), "ok chain") {
		t.Fatalf("output:\n%s", c.out.String())
	}
	if took > 3*time.Second {
		t.Errorf("stopped %s after SIGTERM", took)
	}
}
