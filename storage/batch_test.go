package storage

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"unicode/utf8"
)

// sampleBatch has rows with and without attributes and aliases, and strings that hold every
// kind of byte.
func sampleBatch() *EventBatch {
	b := &EventBatch{}
	b.Add(EventRow{ID: 1, Tenant: "acme", Flow: "order", Checkpoint: "placed", Key: "o-1", KeyAttr: "order.id", Time: 1_700_000_000_123_456_789,
		TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Service: "orders", Name: "POST /orders", Status: "ok"})
	b.AddAttribute("http.method", "POST")
	b.AddAttribute("bytes", "\x00\xff\n\"'\\")
	b.Add(EventRow{ID: ^uint64(0), Tenant: "acme", Flow: "order", Checkpoint: "paid", Key: "o-1", KeyAttr: "order.id", Time: -5,
		Service: "payments", Name: "payment.authorized", Status: "unset", Message: "ünïcode"})
	b.AddAlias("payment.id", "p-1")
	b.AddAlias("card.id", "")
	b.Add(EventRow{ID: 3, Tenant: "t", Flow: "f", Key: "k", Time: 7, Status: "error"})
	return b
}

// rowsOf lists a batch as comparable values.
func rowsOf(b *EventBatch) []string {
	var out []string
	for i := 0; i < b.Len(); i++ {
		r := *b.Row(i)
		r.attrs, r.aliases = [2]int32{}, [2]int32{}
		out = append(out, fmt.Sprintf("%+v attrs=%q aliases=%q", r, b.Attributes(i), b.Aliases(i)))
	}
	return out
}

func TestEventBatchBinaryRoundTrip(t *testing.T) {
	b := sampleBatch()
	data, err := b.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > b.BinarySize() {
		t.Fatalf("binary form of %d bytes, more than BinarySize %d", len(data), b.BinarySize())
	}
	var got EventBatch
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rowsOf(&got), rowsOf(b)) {
		t.Fatalf("round trip:\n got %q\nwant %q", rowsOf(&got), rowsOf(b))
	}
	for cut := 0; cut < len(data); cut++ {
		var part EventBatch
		if err := part.UnmarshalBinary(data[:cut]); !errors.Is(err, ErrCorruptBatch) || part.Len() != 0 {
			t.Fatalf("%d of %d bytes: %v, %d rows; want ErrCorruptBatch and nothing", cut, len(data), err, part.Len())
		}
	}
	if err := got.UnmarshalBinary(append(data, 0)); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("trailing byte: %v", err)
	}
	other := append([]byte(nil), data...)
	other[2] = 9
	if err := got.UnmarshalBinary(other); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("another version: %v", err)
	}
}

func TestEventBatchAppendSplit(t *testing.T) {
	a, b := sampleBatch(), sampleBatch()
	want := append(rowsOf(a), rowsOf(b)...)
	a.Append(b)
	if got := rowsOf(a); !reflect.DeepEqual(got, want) {
		t.Fatalf("append:\n got %q\nwant %q", got, want)
	}
	head := a.Split(4)
	if got := append(rowsOf(head), rowsOf(a)...); !reflect.DeepEqual(got, want) || head.Len() != 4 || a.Len() != 2 {
		t.Fatalf("split 4+2:\n got %q\nwant %q", got, want)
	}
	var c EventBatch
	c.Add(EventRow{ID: 9, Tenant: "t", Flow: "f", Time: 1})
	c.AddAttribute("k", "v")
	c.Add(EventRow{ID: 10, Tenant: "t", Flow: "f", Time: 2})
	c.CopyAttributes(0)
	if got := c.Attributes(1); len(got) != 1 || got[0] != (Attr{"k", "v"}) {
		t.Fatalf("CopyAttributes: %q", got)
	}
}

func FuzzEventBatchUnmarshal(f *testing.F) {
	data, _ := sampleBatch().AppendBinary(nil)
	f.Add(data)
	f.Add([]byte("fw\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b EventBatch
		if err := b.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := b.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var c EventBatch
		if err := c.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(rowsOf(&c), rowsOf(&b)) {
			t.Fatalf("a batch read back does not survive a second round trip: %v", err)
		}
	})
}

func TestValidUTF8(t *testing.T) {
	for _, s := range []string{"", "a", "ascii only, longer than eight bytes", "é", "12345678é", "1234567\xff", "12345678\xff",
		"\xff", "u-\xff\xfe", "a\xc3", "abcdefgh\xe2\x82", "€uro and more text", "\U0001F600\U0001F600"} {
		if got, want := ValidUTF8(s), utf8.ValidString(s); got != want {
			t.Errorf("ValidUTF8(%q) = %v, want %v", s, got, want)
		}
	}
}
