package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if code := dispatch(context.Background(), []string{"version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	line := strings.TrimSpace(out.String())
	if !strings.HasPrefix(line, "flowwatch ") || !strings.Contains(line, runtime.Version()) || !strings.HasSuffix(line, "licensed under Apache-2.0") {
		t.Fatalf("flowwatch version printed %q", line)
	}
	if code := dispatch(context.Background(), []string{"version", "extra"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("flowwatch version extra: exit %d, want 2", code)
	}
}

// The licence the binary names is the one at the repository's root, and the Grafana
// plugin's build copies it into its archive.
func TestLicense(t *testing.T) {
	text, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(text, []byte("Apache License\n                           Version 2.0, January 2004")) ||
		!bytes.Contains(text, []byte("END OF TERMS AND CONDITIONS")) {
		t.Fatal("LICENSE is not the Apache License 2.0")
	}
	webpack, err := os.ReadFile("../../grafana-plugin/webpack.config.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(webpack, []byte("{ from: '../../LICENSE', to: '.' }")) {
		t.Fatal("the Grafana plugin's build does not copy LICENSE into dist/")
	}
}
