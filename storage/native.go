package storage

import (
	"encoding/binary"
	"math"
)

// The embedded transport inserts checkpoint events and aliases as one block of ClickHouse's
// Native format each: columns as the engine stores them, so it parses no text, and the
// LowCardinality columns arrive with their dictionary (an engine that must build it row by
// row, as from RowBinary, spends more on that than on the rest of the insert). The encoder
// writes the production column types (eventColumnTypes, aliasColumnTypes) straight from an
// EventBatch, with no allocation per row; it follows the serialization clickhouse-go uses
// on the native protocol, which the tests hold it to.

// nativeWriter appends a Native block to buf.
type nativeWriter struct {
	buf []byte
	// dict and pos are reused by every LowCardinality column of a block.
	dict map[string]int
	pos  []int
}

// The LowCardinality serialization: a key version in the column's state prefix, then per
// block flags (index width | has additional keys | update dictionary), the dictionary (the
// default value first) and each row's position in it.
const (
	lcSharedDictionariesWithAdditionalKeys = 1
	lcHasAdditionalKeys                    = 1 << 9
	lcNeedUpdateDictionary                 = 1 << 10
)

func (w *nativeWriter) header(columns, rows int) {
	w.buf = binary.AppendUvarint(w.buf, uint64(columns))
	w.buf = binary.AppendUvarint(w.buf, uint64(rows))
}

// column starts a column: its name and type, and the state prefix of a LowCardinality one
// (or of a Map whose keys are).
func (w *nativeWriter) column(name, typ string, lowCardinality bool) {
	w.buf = appendString(w.buf, name)
	w.buf = appendString(w.buf, typ)
	if lowCardinality {
		w.buf = binary.LittleEndian.AppendUint64(w.buf, lcSharedDictionariesWithAdditionalKeys)
	}
}

func (w *nativeWriter) fixed64(n int, v func(i int) uint64) {
	for i := range n {
		w.buf = binary.LittleEndian.AppendUint64(w.buf, v(i))
	}
}

func (w *nativeWriter) strings(n int, v func(i int) string) {
	for i := range n {
		w.buf = appendString(w.buf, v(i))
	}
}

// lowCardinality writes the data of a LowCardinality(String) column of n values.
func (w *nativeWriter) lowCardinality(n int, v func(i int) string) {
	if n == 0 {
		return
	}
	if w.dict == nil {
		w.dict = map[string]int{}
	}
	clear(w.dict)
	w.pos = w.pos[:0]
	// The dictionary: the default value, then each value in the order it first appears.
	keys := 1
	for i := range n {
		s := v(i)
		p, ok := w.dict[s]
		if !ok {
			p = keys
			w.dict[s] = p
			keys++
		}
		w.pos = append(w.pos, p)
	}
	width, kind := 1, uint64(0)
	switch distinct := keys - 1; {
	case distinct < math.MaxUint8:
	case distinct < math.MaxUint16:
		width, kind = 2, 1
	case distinct < math.MaxUint32:
		width, kind = 4, 2
	default:
		width, kind = 8, 3
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, lcHasAdditionalKeys|lcNeedUpdateDictionary|kind)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(keys))
	w.buf = appendString(w.buf, "")
	byPos := make([]string, keys)
	for s, p := range w.dict {
		byPos[p] = s
	}
	for _, s := range byPos[1:] {
		w.buf = appendString(w.buf, s)
	}
	w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(n))
	for _, p := range w.pos {
		switch width {
		case 1:
			w.buf = append(w.buf, byte(p))
		case 2:
			w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(p))
		case 4:
			w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(p))
		default:
			w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(p))
		}
	}
}

// appendNativeEvents appends the batch as a Native block of checkpoint_events (eventColumnList
// and eventColumnTypes); rows without an ingest time get now.
func appendNativeEvents(w *nativeWriter, b *EventBatch, now int64) {
	rows := b.rows
	n := len(rows)
	str := func(f func(r *EventRow) string) func(int) string {
		return func(i int) string { return f(&rows[i]) }
	}
	w.header(len(eventColumnNames), n)
	for c, name := range eventColumnNames {
		typ := eventColumnTypes[c]
		w.column(name, typ, typ == lcString || typ == attributesType)
		switch name {
		case "event_id":
			w.fixed64(n, func(i int) uint64 { return rows[i].ID })
		case "tenant":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Tenant }))
		case "flow":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Flow }))
		case "checkpoint":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Checkpoint }))
		case "key":
			w.strings(n, str(func(r *EventRow) string { return r.Key }))
		case "key_attr":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.KeyAttr }))
		case "time":
			w.fixed64(n, func(i int) uint64 { return uint64(rows[i].Time) })
		case "ingest_time":
			w.fixed64(n, func(i int) uint64 {
				if t := rows[i].IngestTime; t != 0 {
					return uint64(t)
				}
				return uint64(now)
			})
		case "trace_id":
			w.strings(n, str(func(r *EventRow) string { return r.TraceID }))
		case "span_id":
			w.strings(n, str(func(r *EventRow) string { return r.SpanID }))
		case "service":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Service }))
		case "name":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Name }))
		case "status":
			w.lowCardinality(n, str(func(r *EventRow) string { return r.Status }))
		case "message":
			w.strings(n, str(func(r *EventRow) string { return r.Message }))
		case "attributes":
			// Map(K, V) is Array(Tuple(K, V)): each row's end offset, then every key, then
			// every value. The batch keeps the rows' attributes in order, each row's a range.
			if n == 0 {
				break
			}
			for i := range rows {
				w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(rows[i].attrs[1]-rows[0].attrs[0]))
			}
			attrs := b.attrs[rows[0].attrs[0]:rows[n-1].attrs[1]]
			w.lowCardinality(len(attrs), func(i int) string { return attrs[i].Key })
			w.strings(len(attrs), func(i int) string { return attrs[i].Value })
		}
	}
}

// appendNativeAliases appends aliases as a Native block of the aliases table.
func appendNativeAliases(w *nativeWriter, aliases []Alias) {
	n := len(aliases)
	w.header(len(aliasColumns), n)
	for c, name := range aliasColumns {
		typ := aliasColumnTypes[c]
		w.column(name, typ, typ == lcString)
		switch name {
		case "tenant":
			w.lowCardinality(n, func(i int) string { return aliases[i].Tenant })
		case "flow":
			w.lowCardinality(n, func(i int) string { return aliases[i].Flow })
		case "attr":
			w.lowCardinality(n, func(i int) string { return aliases[i].Attr })
		case "value":
			w.strings(n, func(i int) string { return aliases[i].Value })
		case "key":
			w.strings(n, func(i int) string { return aliases[i].Key })
		case "time":
			w.fixed64(n, func(i int) uint64 { return uint64(nanosOf(aliases[i].Time)) })
		}
	}
}
