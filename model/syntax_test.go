package model

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSyntaxErrorPosition: a YAML syntax error is reported at the line and column where the
// text is wrong, not where the list or mapping holding it starts.
func TestSyntaxErrorPosition(t *testing.T) {
	cp := "checkpoints:\n  - {name: a, start: true, match: {service: s}}\n"
	cases := []struct {
		name, doc, want string
	}{
		{"bad indentation", header + "checkpoints:\n  - name: a\n   start: true\n", "8:4: invalid YAML: did not find expected '-' indicator"},
		{"a second colon", header + cp + "  - name: b: c\n", "8:12: invalid YAML: mapping values are not allowed in this context"},
		{"a tab", header + cp + "  - name: b\n\tafter: [a]\n", "9:1: invalid YAML: found a tab character that violates indentation"},
		{"unclosed quote", header + cp + "  - name: \"b\n    after: [a]\n", "8:11: invalid YAML: found unexpected end of stream"},
		{"unclosed flow mapping", header + cp + "  - {name: b, after: [a]\n  - {name: c, after: [a], match: {service: s}}\n", "9:3: invalid YAML: did not find expected ',' or '}'"},
		{"after a multi-line flow mapping", header + "checkpoints:\n  - {name: a,\n     start: true, match: {service: s}}\n  - name: b\n     after: [a]\n", "10:11: invalid YAML: mapping values are not allowed in this context"},
		{"unknown anchor", header + cp + "  - *nope\n", "8:5: invalid YAML: unknown anchor 'nope' referenced"},
		{"in a second document", header + cp + "---\n" + header + "checkpoints:\n  - name: a\n   start: true\n", "16:4: invalid YAML: did not find expected '-' indicator"},
		{"bracket never closed", "apiVersion: [flowwatch/v1\n", "1:13: invalid YAML: did not find expected ',' or ']'"},
		{"brackets and quotes inside plain text", header + "checkpoints:\n  - name: a\n    start: true\n    match:\n      span: GET /items[0] {it's}\n  - name: b: c\n", "11:12: invalid YAML: mapping values are not allowed in this context"},
		{"wide characters before", header + "checkpoints:\n  - {name: ä, start: true, match: {service: s}}\n  - name: ü: c\n", "8:12: invalid YAML: mapping values are not allowed in this context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, probs := Parse("bad.yaml", []byte(tc.doc))
			if len(probs) != 1 {
				t.Fatalf("want one problem, got %d:\n%s", len(probs), probs.Error())
			}
			if got := probs.Error(); !strings.HasPrefix(got, "bad.yaml:"+tc.want) {
				t.Errorf("got  %s\nwant bad.yaml:%s", got, tc.want)
			}
		})
	}
}

// TestSyntaxErrorInALargeFile: finding the place of an error at the end of a file at the size
// limit, in a list that starts at its top, takes a few parses, not one per line.
func TestSyntaxErrorInALargeFile(t *testing.T) {
	data := chainYAML(10_000)
	data = append(data, "   bad: indentation\n"...)
	if len(data) > MaxFileSize {
		t.Fatalf("%d bytes: past the limit", len(data))
	}
	line := strings.Count(string(data), "\n")
	start := time.Now()
	_, probs := Parse("large.yaml", data)
	took := time.Since(start)
	want := fmt.Sprintf("large.yaml:%d:4: invalid YAML: did not find expected '-' indicator", line)
	if len(probs) != 1 || probs[0].Error() != want {
		t.Fatalf("want %s, got:\n%s", want, probs)
	}
	t.Logf("%d KB: %s", len(data)>>10, took)
	if took > 10*time.Second {
		t.Errorf("took %s", took)
	}
}
