package storage

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The detector's writes (instance states, alert and command records, flow versions) reach the
// embedded engine as Native blocks too: no text for it to parse. The column types come from
// the schema's own DDL (tableColumns), so the encoder cannot drift from the tables.

// tableColumns returns, per table of the schema, the type of each column a writer sets (not
// the materialized ones), as the DDL declares them.
func tableColumns(o SchemaOptions) (map[string]map[string]string, error) {
	ms, err := Migrations(o)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	all := [][]string{bootstrapStatements(o)}
	for _, m := range ms {
		all = append(all, m.Statements)
	}
	for _, sts := range all {
		for _, st := range sts {
			st = stripComments(st)
			mm := createTableRe.FindStringSubmatch(st)
			open, close := strings.Index(st, "(\n"), strings.Index(st, "\n)\nENGINE")
			if mm == nil || open < 0 || close < open {
				continue
			}
			cols := map[string]string{}
			for _, line := range strings.Split(st[open+2:close], "\n") {
				line = strings.TrimSpace(line)
				name, rest, ok := strings.Cut(line, " ")
				if !ok || name == "INDEX" || strings.Contains(rest, "MATERIALIZED") {
					continue
				}
				rest = strings.TrimSpace(rest)
				depth, end := 0, len(rest)
				for i, c := range rest {
					if c == '(' {
						depth++
					} else if c == ')' {
						depth--
					} else if depth == 0 && (c == ' ' || c == ',') {
						end = i
						break
					}
				}
				cols[name] = rest[:end]
			}
			out[mm[2]] = cols
		}
	}
	return out, nil
}

// plainTypes are the production tables' column types, parsed once.
var plainTypes = sync.OnceValues(func() (map[string]map[string]string, error) {
	return tableColumns(SchemaOptions{Database: DefaultDatabase})
})

// appendNativePlain appends rows of plain values (string, uint32, uint64, int64, time.Time) of
// the given columns of table as a Native block. It reports false when a column's type or a
// value is one it does not encode (the caller then sends text).
func appendNativePlain(w *nativeWriter, table string, cols []string, rows [][]any) (bool, error) {
	types, err := plainTypes()
	if err != nil {
		return false, err
	}
	tt := types[table[strings.LastIndexByte(table, '.')+1:]]
	if tt == nil {
		return false, nil
	}
	n := len(rows)
	w.header(len(cols), n)
	for c, name := range cols {
		typ := tt[name]
		ok := true
		val := func(i int) any { return rows[i][c] }
		str := func(i int) string {
			s, isStr := val(i).(string)
			ok = ok && isStr
			return s
		}
		switch typ {
		case lcString:
			w.column(name, typ, true)
			w.lowCardinality(n, str)
		case "String":
			w.column(name, typ, false)
			w.strings(n, str)
		case "UInt32":
			w.column(name, typ, false)
			for i := range n {
				var v uint32
				switch x := val(i).(type) {
				case uint32:
					v = x
				case int:
					v = uint32(x)
				default:
					ok = false
				}
				w.buf = binary.LittleEndian.AppendUint32(w.buf, v)
			}
		case "UInt64":
			w.column(name, typ, false)
			w.fixed64(n, func(i int) uint64 {
				x, isU := val(i).(uint64)
				ok = ok && isU
				return x
			})
		case dateTime64:
			w.column(name, typ, false)
			w.fixed64(n, func(i int) uint64 {
				switch x := val(i).(type) {
				case time.Time:
					return uint64(nanosOf(x))
				case int64:
					return uint64(x)
				}
				ok = false
				return 0
			})
		default:
			return false, nil
		}
		if !ok {
			return false, fmt.Errorf("insert into %s: a value of column %s is not a %s", table, name, typ)
		}
	}
	return true, nil
}
