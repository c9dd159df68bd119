package storage

import (
	"strconv"
	"strings"
	"time"
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

// dialect holds the differences between the production tables and the legacy ones, and
// between a single node and a cluster.
type dialect struct{ legacy, cluster bool }

// global prefixes IN and JOIN over a subquery of another Distributed table, so each shard
// does not run the subquery on every shard again (ClickHouse refuses that by default).
func (d dialect) global() string {
	if d.cluster {
		return "GLOBAL "
	}
	return ""
}

// ns is an expression giving column col as Int64 nanoseconds since the epoch.
func (d dialect) ns(col string) string {
	if d.legacy {
		return col
	}
	return "toUnixTimestamp64Nano(" + col + ")"
}

// ts is a literal of t comparable with a time column; times before the epoch (the zero
// time: "from the beginning") are the epoch.
func (d dialect) ts(t time.Time) string {
	ns := int64(0)
	if t.After(time.Unix(0, 0)) {
		ns = t.UnixNano()
	}
	n := strconv.FormatInt(ns, 10)
	if d.legacy {
		return n
	}
	return "fromUnixTimestamp64Nano(toInt64(" + n + "), 'UTC')"
}
