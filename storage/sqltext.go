package storage

import (
	"strings"
)

// Values are bound on the client side, by these helpers, for both transports: chDB has no
// parameter binding, and ClickHouse 18.16 takes no server-side parameters. Identifiers are
// never user input: they come from SchemaOptions (validated) and constants.

// quote renders s as a ClickHouse string literal.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteList renders a non-empty list of string literals, comma-separated.
func quoteList(vs []string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = quote(v)
	}
	return strings.Join(parts, ", ")
}
