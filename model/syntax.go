package model

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// syntaxProblem turns a YAML syntax error in data into a Problem at the line and column where
// the text is wrong. read is how many bytes of data the parser had read when it failed.
//
// The YAML library names only the line where the construct that holds the error starts (a
// list, a mapping, a quoted string), counted from 0 for most errors, and no column. The place
// is found again from the library's own verdict: the shortest prefix of data that fails with
// the same message, and still fails once the brackets and quotes it leaves open are closed,
// ends at the first wrong character (a prefix cut inside `{...}` fails only for being cut).
// It lies between the line the library named and what it had read, and no further back from
// the latter than the library reads ahead: bisecting that span takes a dozen parses, on the
// error path only.
func syntaxProblem(path string, data []byte, read int, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	from := 1 // the first line the wrong text may be on
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		from, _ = strconv.Atoi(m[1])
		from = max(from, 1)
		msg = msg[len(m[0]):]
	}
	prob := func(at int) Problem { return Problem{posOf(path, data, at), "invalid YAML: " + msg} }
	fails := func(end int) bool {
		if yamlMessage(data[:end]) != msg {
			return false
		}
		closer, _ := closeOpen(data[:end])
		return yamlMessage(append(data[:end:end], closer...)) == msg
	}
	hi := min(max(read, 1), len(data)) // data[:hi] fails
	if !fails(hi) {
		if hi = len(data); !fails(hi) {
			// Only the end is wrong: a quote or a bracket is left open; point at it.
			if _, at := closeOpen(data); at >= 0 {
				return prob(at)
			}
			return prob(len(data))
		}
	}
	lo := 0 // data[:lo] does not fail: the start of the line named, or of the file
	for line := 1; line < from; line++ {
		i := bytes.IndexByte(data[lo:], '\n')
		if i < 0 || lo+i+1 >= hi {
			break
		}
		lo += i + 1
	}
	// The parser reads ahead of where it is by its buffers (2 KB) and a possible key (1 KB):
	// what lies further back than that was read without fault.
	if near := hi - readAhead; near > lo && !fails(near) {
		lo = near
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	at := hi - 1
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil && at >= len(m[1]) {
		at -= len(m[1]) // the alias fails once its whole name is read: point at its '*'
	}
	return prob(at)
}

// readAhead bounds how far yaml.v3 reads past the place where it fails, with a margin.
const readAhead = 8 << 10

var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// closeOpen returns what closes the quoted string and the flow brackets left open at the end
// of data, as far as a rough reading of YAML tells (enough to tell a document cut inside
// `{...}`, `[...]` or quotes from one that is wrong before the cut), and the offset of the
// innermost of them (-1 when none is open).
func closeOpen(data []byte) ([]byte, int) {
	var open []byte // flow brackets: '}' or ']' each
	var openAt []int
	var quote byte // '"' or '\'' while inside a quoted scalar
	quoteAt := -1
	nodeStart := true
	for i := 0; i < len(data); i++ {
		ch := data[i]
		if quote != 0 {
			switch {
			case quote == '"' && ch == '\\':
				i++
			case quote == '\'' && ch == '\'' && i+1 < len(data) && data[i+1] == '\'':
				i++
			case ch == quote:
				quote, nodeStart = 0, false
			}
			continue
		}
		switch {
		case ch == '#' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n'):
			for i < len(data) && data[i] != '\n' {
				i++
			}
			nodeStart = true
		case ch == '\n':
			nodeStart = true
		case ch == ' ' || ch == '\t':
		case (ch == '{' || ch == '[') && (nodeStart || len(open) > 0):
			open, openAt = append(open, ch+2), append(openAt, i) // '{'+2 is '}', '['+2 is ']'
			nodeStart = true
		case (ch == '}' || ch == ']') && len(open) > 0:
			open, openAt = open[:len(open)-1], openAt[:len(openAt)-1]
			nodeStart = false
		case (ch == '"' || ch == '\'') && nodeStart:
			quote, quoteAt = ch, i
		case ch == ',' && len(open) > 0, ch == ':' || ch == '-' || ch == '?':
			nodeStart = ch == ',' || i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\n' || len(open) > 0
		default:
			nodeStart = false
		}
	}
	var out []byte
	at := -1
	if len(open) > 0 {
		at = openAt[len(openAt)-1]
	}
	if quote != 0 {
		out, at = append(out, quote), quoteAt
	}
	for i := len(open) - 1; i >= 0; i-- {
		out = append(out, open[i])
	}
	return out, at
}

// yamlMessage parses every document of data and returns the first error's message without its
// "yaml: line N: " prefix, or "" when data parses.
func yamlMessage(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				msg = msg[len(m[0]):]
			}
			return msg
		}
	}
}
