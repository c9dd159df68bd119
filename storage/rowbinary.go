package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// binRows reads RowBinaryWithNamesAndTypes output, as chDB returns it for the embedded
// store's queries: byte-exact strings (no text escaping on the way out) and no text parsing,
// an order of magnitude cheaper per row than JSON. Scan converts the column's value to the
// destination's type (as the JSON reader does), so the SQL stays the server's.
type binRows struct {
	data  []byte
	cols  []colDecoder
	names []string
	types []string
	vals  []any
	err   error
}

// colDecoder reads one value of a column type.
type colDecoder func(b *binReader) any

type binReader struct {
	data []byte
	err  error
}

var errShort = errors.New("row data ends early")

func (r *binReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.data) < n {
		r.err = errShort
		r.data = nil
		return nil
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.err = errShort
		r.data = nil
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *binReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.data)) {
		r.err = errShort
		return ""
	}
	return string(r.take(int(n)))
}

func newBinRows(data []byte) (*binRows, error) {
	r := &binRows{}
	if len(data) == 0 {
		return r, nil // no rows, no header
	}
	br := &binReader{data: data}
	n := br.uvarint()
	if n > 4096 {
		return nil, fmt.Errorf("decode result header: %d columns", n)
	}
	r.names = make([]string, n)
	for i := range r.names {
		r.names[i] = br.str()
	}
	r.cols = make([]colDecoder, n)
	r.types = make([]string, n)
	for i := range r.cols {
		typ := br.str()
		r.types[i] = typ
		dec, err := decoderOf(typ)
		if err != nil {
			return nil, fmt.Errorf("decode result column %s: %w", r.names[i], err)
		}
		r.cols[i] = dec
	}
	if br.err != nil {
		return nil, fmt.Errorf("decode result header: %w", br.err)
	}
	r.data = br.data
	r.vals = make([]any, n)
	return r, nil
}

func (r *binRows) Next() bool {
	if r.err != nil || len(r.data) == 0 {
		return false
	}
	if len(r.cols) == 0 {
		r.err = errors.New("decode result: rows without columns")
		return false
	}
	br := &binReader{data: r.data}
	for i, dec := range r.cols {
		r.vals[i] = dec(br)
	}
	if br.err != nil {
		r.err = fmt.Errorf("decode result row: %w", br.err)
		return false
	}
	r.data = br.data
	return true
}

func (r *binRows) Err() error   { return r.err }
func (r *binRows) Close() error { return nil }

func (r *binRows) Scan(dest ...any) error {
	if len(dest) != len(r.vals) {
		return fmt.Errorf("scan result row: %d columns, %d destinations", len(r.vals), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, r.vals[i]); err != nil {
			return fmt.Errorf("scan result column %s: %w", r.names[i], err)
		}
	}
	return nil
}

// assign converts a decoded value to the destination's type.
func assign(dest, v any) error {
	switch p := dest.(type) {
	case *string:
		s, ok := v.(string)
		if !ok && v != nil {
			return fmt.Errorf("%T into a string", v)
		}
		*p = s
	case *int64:
		switch x := v.(type) {
		case int64:
			*p = x
		case uint64:
			*p = int64(x)
		case nil:
			*p = 0
		default:
			return fmt.Errorf("%T into an int64", v)
		}
	case *uint64:
		switch x := v.(type) {
		case uint64:
			*p = x
		case int64:
			*p = uint64(x)
		case nil:
			*p = 0
		default:
			return fmt.Errorf("%T into a uint64", v)
		}
	case *uint32:
		switch x := v.(type) {
		case uint64:
			*p = uint32(x)
		case int64:
			*p = uint32(x)
		case nil:
			*p = 0
		default:
			return fmt.Errorf("%T into a uint32", v)
		}
	case *float64:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) {
				x = 0 // as the JSON reader reads nan
			}
			*p = x
		case int64:
			*p = float64(x)
		case uint64:
			*p = float64(x)
		case nil:
			*p = 0
		default:
			return fmt.Errorf("%T into a float64", v)
		}
	case *[]string:
		*p = nil
		if v == nil {
			return nil
		}
		xs, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%T into a []string", v)
		}
		for _, x := range xs {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("%T into a string", x)
			}
			*p = append(*p, s)
		}
	case *map[string]string:
		*p = nil
		if v == nil {
			return nil
		}
		m, ok := v.(map[string]string)
		if !ok {
			return fmt.Errorf("%T into a map[string]string", v)
		}
		if len(m) > 0 {
			*p = m
		}
	default:
		return fmt.Errorf("unsupported destination %T", dest)
	}
	return nil
}

// decoderOf returns the decoder of a ClickHouse type name, for the types flowwatch's queries
// return.
func decoderOf(typ string) (colDecoder, error) {
	typ = strings.TrimSpace(typ)
	if inner, ok := unwrap(typ, "LowCardinality"); ok {
		if inner == "String" {
			return internedString(), nil
		}
		return decoderOf(inner)
	}
	if inner, ok := unwrap(typ, "Nullable"); ok {
		if inner == "Nothing" {
			return func(b *binReader) any { b.take(1); return nil }, nil
		}
		dec, err := decoderOf(inner)
		if err != nil {
			return nil, err
		}
		return func(b *binReader) any {
			if f := b.take(1); f == nil || f[0] == 1 {
				return nil
			}
			return dec(b)
		}, nil
	}
	if inner, ok := unwrap(typ, "Array"); ok {
		dec, err := decoderOf(inner)
		if err != nil {
			return nil, err
		}
		return func(b *binReader) any {
			n := b.uvarint()
			if n > uint64(len(b.data)) {
				b.err = errShort
				return nil
			}
			out := make([]any, 0, n)
			for i := uint64(0); i < n && b.err == nil; i++ {
				out = append(out, dec(b))
			}
			return out
		}, nil
	}
	if inner, ok := unwrap(typ, "Map"); ok {
		k, v, ok := splitPair(inner)
		if !ok {
			return nil, fmt.Errorf("unsupported type %s", typ)
		}
		kd, err := decoderOf(k)
		if err != nil {
			return nil, err
		}
		vd, err := decoderOf(v)
		if err != nil {
			return nil, err
		}
		return func(b *binReader) any {
			n := b.uvarint()
			if n > uint64(len(b.data)) {
				b.err = errShort
				return nil
			}
			if n == 0 {
				return map[string]string(nil) // most rows keep no attributes: no allocation
			}
			out := make(map[string]string, n)
			for i := uint64(0); i < n && b.err == nil; i++ {
				key, _ := kd(b).(string)
				val, _ := vd(b).(string)
				out[key] = val
			}
			return out
		}, nil
	}
	fixed := func(n int, f func([]byte) any) colDecoder {
		return func(b *binReader) any {
			d := b.take(n)
			if d == nil {
				return nil
			}
			return f(d)
		}
	}
	switch {
	case typ == "String":
		return func(b *binReader) any { return b.str() }, nil
	case strings.HasPrefix(typ, "FixedString("):
		var n int
		if _, err := fmt.Sscanf(typ, "FixedString(%d)", &n); err != nil {
			return nil, fmt.Errorf("unsupported type %s", typ)
		}
		return fixed(n, func(d []byte) any { return string(d) }), nil
	case typ == "UInt8" || typ == "Bool":
		return fixed(1, func(d []byte) any { return uint64(d[0]) }), nil
	case typ == "UInt16" || typ == "Date":
		return fixed(2, func(d []byte) any { return uint64(binary.LittleEndian.Uint16(d)) }), nil
	case typ == "UInt32" || typ == "DateTime" || strings.HasPrefix(typ, "DateTime("):
		return fixed(4, func(d []byte) any { return uint64(binary.LittleEndian.Uint32(d)) }), nil
	case typ == "UInt64":
		return fixed(8, func(d []byte) any { return binary.LittleEndian.Uint64(d) }), nil
	case typ == "Int8":
		return fixed(1, func(d []byte) any { return int64(int8(d[0])) }), nil
	case typ == "Int16":
		return fixed(2, func(d []byte) any { return int64(int16(binary.LittleEndian.Uint16(d))) }), nil
	case typ == "Int32":
		return fixed(4, func(d []byte) any { return int64(int32(binary.LittleEndian.Uint32(d))) }), nil
	case typ == "Int64" || strings.HasPrefix(typ, "DateTime64("):
		return fixed(8, func(d []byte) any { return int64(binary.LittleEndian.Uint64(d)) }), nil
	case typ == "Float32":
		return fixed(4, func(d []byte) any { return float64(math.Float32frombits(binary.LittleEndian.Uint32(d))) }), nil
	case typ == "Float64":
		return fixed(8, func(d []byte) any { return math.Float64frombits(binary.LittleEndian.Uint64(d)) }), nil
	}
	return nil, fmt.Errorf("unsupported type %s", typ)
}

// internedString decodes a LowCardinality(String) column, one string per distinct value: a
// result of many rows holds a few tenants, flows, checkpoints and services, not one copy a row.
func internedString() colDecoder {
	seen := map[string]string{}
	return func(b *binReader) any {
		n := b.uvarint()
		if n > uint64(len(b.data)) {
			b.err = errShort
			return ""
		}
		raw := b.take(int(n))
		if v, ok := seen[string(raw)]; ok {
			return v
		}
		v := string(raw)
		if len(seen) < 4096 {
			seen[v] = v
		}
		return v
	}
}

// unwrap returns the inside of "Name(inside)".
func unwrap(typ, name string) (string, bool) {
	if strings.HasPrefix(typ, name+"(") && strings.HasSuffix(typ, ")") {
		return typ[len(name)+1 : len(typ)-1], true
	}
	return "", false
}

// splitPair splits "K, V" at the top-level comma.
func splitPair(s string) (string, string, bool) {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:]), true
			}
		}
	}
	return "", "", false
}
