package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), []string{"validate", "../../examples/flows"}, &out, &errb); code != 0 {
		t.Fatalf("examples: exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Fatalf("want one line per flow loaded (4), got %d:\n%s", n, out.String())
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
