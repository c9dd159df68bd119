package storage

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// clickhouseGoBlock encodes columns (of the given names and types) as one block of ClickHouse's
// Native format, with clickhouse-go's column encoders: LowCardinality columns go in with
// their dictionary made here, so the engine builds none.
// t0 is storagetest.T0, which the package's own tests cannot import.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)

func clickhouseGoBlock(names, types []string, columns []any) ([]byte, error) {
	b := proto.NewBlock()
	for i, name := range names {
		if err := b.AddColumn(name, column.Type(types[i])); err != nil {
			return nil, fmt.Errorf("column %s %s: %w", name, types[i], err)
		}
		if _, err := b.Columns[i].Append(columns[i]); err != nil {
			return nil, fmt.Errorf("column %s %s: %w", name, types[i], err)
		}
	}
	var buf chproto.Buffer
	if err := b.Encode(&buf, 0); err != nil {
		return nil, fmt.Errorf("encode a Native block: %w", err)
	}
	return buf.Buf, nil
}

// The hand-written Native encoder writes, byte for byte, what clickhouse-go's own column
// encoders write for the same values: LowCardinality dictionaries (of every index width),
// the empty value, maps with and without entries, times.
func TestNativeEncodingMatchesClickHouseGo(t *testing.T) {
	for _, n := range []int{1, 7, 300, 70000} {
		t.Run(fmt.Sprintf("rows=%d", n), func(t *testing.T) {
			b := &EventBatch{}
			for i := range n {
				b.Add(EventRow{ID: uint64(i) * 7919, Tenant: []string{"acme", "globex", ""}[i%3], Flow: "order",
					Checkpoint: fmt.Sprintf("cp-%d", i%5), Key: fmt.Sprintf("k-\x00%d", i), KeyAttr: "order.id",
					Time: t0.UnixNano() + int64(i), IngestTime: int64(i % 2), TraceID: "t", SpanID: "",
					Service: fmt.Sprintf("svc-%d", i), Name: "POST /orders", Status: "ok", Message: "m"})
				if i%3 != 0 { // one attribute at most: clickhouse-go gets them from a Go map
					b.AddAttribute(fmt.Sprintf("attr-%d", i%4), fmt.Sprintf("v%d", i))
				}
			}
			now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano()
			var w nativeWriter
			appendNativeEvents(&w, b, now)
			want, err := clickhouseGoBlock(eventColumnNames, eventColumnTypes, eventColumnValues(b, now, productionTables{}))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w.buf, want) {
				t.Fatalf("events: %d bytes differ from clickhouse-go's %d bytes (first difference at %d)", len(w.buf), len(want), firstDiff(w.buf, want))
			}

			aliases := b.AliasRows()
			for i := range n {
				aliases = append(aliases, Alias{Tenant: "acme", Flow: "order", Attr: fmt.Sprintf("a%d", i%300), Value: fmt.Sprint(i), Key: "k", Time: t0.Add(time.Duration(i))})
			}
			aliases = append(aliases, Alias{Tenant: "acme", Flow: "order", Attr: "payment.id", Value: "p", Key: "k"}) // the zero time
			var aw nativeWriter
			appendNativeAliases(&aw, aliases)
			want, err = clickhouseGoBlock(aliasColumns, aliasColumnTypes, aliasColumnValues(aliases, productionTables{}))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(aw.buf, want) {
				t.Fatalf("aliases: %d bytes differ from clickhouse-go's %d bytes (first difference at %d)", len(aw.buf), len(want), firstDiff(aw.buf, want))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
