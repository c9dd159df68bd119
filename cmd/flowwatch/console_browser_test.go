package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumBinary is Debian's Chromium (scripts/deps.sh installs it).
const chromiumBinary = "chromium"

// browser starts Debian's Chromium headless, as root, with nothing that reaches the network
// on its own.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath(chromiumBinary)
	if err != nil {
		t.Fatalf("%s is not installed (run `make deps`): %v", chromiumBinary, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	return ctx
}

// consoleErrors collects what a tab writes to its console as an error, and its uncaught
// exceptions, until the tab closes.
type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

func watchConsole(ctx context.Context) *consoleErrors {
	c := &consoleErrors{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.mu.Lock()
				c.msgs = append(c.msgs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// consoleProbe is an error the test writes itself, to see that errors are collected.
const consoleProbe = "console-test-probe"

// list returns the errors collected so far, but the probe.
func (c *consoleErrors) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if !strings.Contains(m, consoleProbe) {
			out = append(out, m)
		}
	}
	return out
}

func (c *consoleErrors) probed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if strings.Contains(m, consoleProbe) {
			return true
		}
	}
	return false
}

// step runs browser actions with a deadline of their own.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
}

// pageState tells where the page is and what it shows, for a failure's message.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return "(page state unknown: " + err.Error() + ")"
	}
	return "page: " + s
}

func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
	return v
}

// waitFor polls a JavaScript condition in the page until it is true.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	run(t, ctx, "wait for "+what, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return run(t, ctx, "evaluate "+js, chromedp.Evaluate[T](js))
}

func screenshot(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	checkPNG(t, name, png)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkPNG(t *testing.T, name string, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s is no PNG: %v", name, err)
	}
	if r := img.Bounds(); r.Dx() < 600 || r.Dy() < 200 {
		t.Fatalf("screenshot %s is only %dx%d", name, r.Dx(), r.Dy())
	}
}
