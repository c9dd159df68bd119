package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary form of an EventBatch (AppendBinary, UnmarshalBinary): what a collector keeps
// on disk between accepting rows and writing them. After a three-byte header (magic "fw",
// version), the row count, then each row: its id (8 bytes, little-endian), time (varint),
// its strings (each a length and its bytes), its attributes and its aliases (each a count,
// then key and value strings). Ingest times are not kept: a row gets one when it is written.
const (
	batchMagic0, batchMagic1 = 'f', 'w'
	batchVersion             = 1
	batchHeaderSize          = 3
	// smallestRow is the fewest bytes a row takes: id, a one-byte time, eleven empty strings,
	// two empty counts.
	smallestRow = 8 + 1 + 11 + 2
)

// ErrCorruptBatch is returned for data that is not a batch's binary form.
var ErrCorruptBatch = errors.New("decode event batch: corrupt or truncated data")

// rowStrings are a row's strings, in their order in the binary form.
func rowStrings(r *EventRow) [11]*string {
	return [11]*string{&r.Tenant, &r.Flow, &r.Checkpoint, &r.Key, &r.KeyAttr, &r.TraceID, &r.SpanID,
		&r.Service, &r.Name, &r.Status, &r.Message}
}

// AppendBinary appends the batch's binary form to dst.
func (b *EventBatch) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, batchMagic0, batchMagic1, batchVersion)
	dst = binary.AppendUvarint(dst, uint64(len(b.rows)))
	for i := range b.rows {
		r := &b.rows[i]
		dst = binary.LittleEndian.AppendUint64(dst, r.ID)
		dst = binary.AppendVarint(dst, r.Time)
		for _, s := range rowStrings(r) {
			dst = appendString(dst, *s)
		}
		for _, as := range [...][]Attr{b.Attributes(i), b.Aliases(i)} {
			dst = binary.AppendUvarint(dst, uint64(len(as)))
			for _, a := range as {
				dst = appendString(dst, a.Key)
				dst = appendString(dst, a.Value)
			}
		}
	}
	return dst, nil
}

// BinarySize is an upper bound of the length of the batch's binary form.
func (b *EventBatch) BinarySize() int {
	n := batchHeaderSize + binary.MaxVarintLen64
	for i := range b.rows {
		n += b.RowBinarySize(i)
	}
	return n
}

// RowBinarySize is an upper bound of the bytes row i takes in the binary form.
func (b *EventBatch) RowBinarySize(i int) int {
	r := &b.rows[i]
	n := 8 + binary.MaxVarintLen64
	for _, s := range rowStrings(r) {
		n += binary.MaxVarintLen32 + len(*s)
	}
	for _, as := range [...][]Attr{b.Attributes(i), b.Aliases(i)} {
		n += binary.MaxVarintLen32
		for _, a := range as {
			n += 2*binary.MaxVarintLen32 + len(a.Key) + len(a.Value)
		}
	}
	return n
}

// UnmarshalBinary replaces the batch with the one data holds (AppendBinary's output). Its
// strings share one copy of data; data that is not a batch is an error wrapping
// ErrCorruptBatch, and leaves the batch empty.
func (b *EventBatch) UnmarshalBinary(data []byte) error {
	b.Reset()
	if len(data) < batchHeaderSize || data[0] != batchMagic0 || data[1] != batchMagic1 {
		return ErrCorruptBatch
	}
	if data[2] != batchVersion {
		return fmt.Errorf("%w: unknown version %d", ErrCorruptBatch, data[2])
	}
	body := data[batchHeaderSize:]
	d := decoder{b: body, s: string(body)}
	n := d.count(smallestRow)
	for i := 0; i < n && d.err == nil; i++ {
		var r EventRow
		r.ID = d.fixed64()
		r.Time = d.varint()
		for _, p := range rowStrings(&r) {
			*p = d.string()
		}
		b.Add(r)
		for k, na := 0, d.count(2); k < na; k++ {
			key, value := d.string(), d.string()
			b.AddAttribute(key, value)
		}
		for k, na := 0, d.count(2); k < na; k++ {
			attr, value := d.string(), d.string()
			b.AddAlias(attr, value)
		}
	}
	if d.err == nil && d.pos != len(d.b) {
		d.err = ErrCorruptBatch
	}
	if d.err != nil {
		b.Reset()
		return d.err
	}
	return nil
}

// decoder reads the binary form from b; the strings it returns are parts of s, b's one copy
// as a string. The first error sticks, and then every read returns zero.
type decoder struct {
	b   []byte
	s   string
	pos int
	err error
}

func (d *decoder) fail() { d.err, d.pos = ErrCorruptBatch, len(d.b) }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.pos += n
	return v
}

// varint reads what binary.AppendVarint wrote: a zig-zag encoded uvarint.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) fixed64() uint64 {
	if len(d.b)-d.pos < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.pos:])
	d.pos += 8
	return v
}

// count reads a count of elements of at least minSize bytes each, refusing one that the
// data left cannot hold.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64((len(d.b)-d.pos)/minSize) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.pos) {
		d.fail()
		return ""
	}
	s := d.s[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return s
}

// appendString appends s as its length (a uvarint) and its bytes.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
