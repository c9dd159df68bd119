package storage

import (
	"encoding/binary"
	"math"
	"testing"
)

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// A RowBinaryWithNamesAndTypes result, as chDB writes it, scans into the reader's
// destinations byte for byte.
func TestBinRowsScan(t *testing.T) {
	types := []string{"LowCardinality(String)", "UInt64", "Int64", "UInt32", "Float64", "Array(String)",
		"Map(LowCardinality(String), String)", "Nullable(Nothing)", "DateTime64(9, 'UTC')", "Array(Float64)"}
	b := binary.AppendUvarint(nil, uint64(len(types)))
	for i := range types {
		b = appendStr(b, string(rune('a'+i)))
	}
	for _, ty := range types {
		b = appendStr(b, ty)
	}
	for row := 0; row < 2; row++ {
		b = appendStr(b, "u-\xff\xfe")
		b = binary.LittleEndian.AppendUint64(b, 1<<63+5)
		b = binary.LittleEndian.AppendUint64(b, uint64(math.MaxUint64-2)) // -3
		b = binary.LittleEndian.AppendUint32(b, 7)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(math.NaN()))
		b = binary.AppendUvarint(b, 2)
		b = appendStr(appendStr(b, "x"), "")
		b = binary.AppendUvarint(b, 1)
		b = appendStr(appendStr(b, "k"), "v\x00")
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint64(b, 1767225600000000000)
		b = binary.AppendUvarint(b, 1)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(0.25))
	}
	r, err := newBinRows(b)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		n++
		var (
			s, null string
			u       uint64
			i, ts   int64
			u32     uint32
			f       float64
			list    []string
			m       map[string]string
			fs      float64
		)
		if err := r.Scan(&s, &u, &i, &u32, &f, &list, &m, &null, &ts, &fs); err == nil {
			t.Fatal("an Array(Float64) scanned into a float64")
		}
		var floats []string
		if err := r.Scan(&s, &u, &i, &u32, &f, &list, &m, &null, &ts, &floats); err == nil {
			t.Fatal("an Array(Float64) scanned into a []string")
		}
		var skip string
		r.vals[9] = nil
		if err := r.Scan(&s, &u, &i, &u32, &f, &list, &m, &null, &ts, &skip); err != nil {
			t.Fatal(err)
		}
		if s != "u-\xff\xfe" || u != 1<<63+5 || i != -3 || u32 != 7 || f != 0 || len(list) != 2 || list[0] != "x" ||
			m["k"] != "v\x00" || null != "" || ts != 1767225600000000000 {
			t.Fatalf("row %d: %q %d %d %d %v %q %q %q %d", n, s, u, i, u32, f, list, m, null, ts)
		}
	}
	if r.Err() != nil || n != 2 {
		t.Fatalf("rows %d, err %v", n, r.Err())
	}
	// A cut result is an error, never a panic or a short row.
	for cut := 1; cut < len(b); cut += 7 {
		r, err := newBinRows(b[:cut])
		if err != nil {
			continue
		}
		for r.Next() {
		}
	}
	if _, err := newBinRows(appendStr(appendStr(binary.AppendUvarint(nil, 1), "a"), "IPv6")); err == nil {
		t.Fatal("an unsupported type was accepted")
	}
}

func FuzzBinRows(f *testing.F) {
	f.Add([]byte("\x01\x01a\x06String\x02ab"))
	f.Add([]byte("\x01\x01a\x0eArray(Float64)\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newBinRows(data)
		if err != nil {
			return
		}
		for r.Next() {
			dest := make([]any, len(r.vals))
			for i := range dest {
				var s string
				dest[i] = &s
			}
			_ = r.Scan(dest...)
		}
	})
}
