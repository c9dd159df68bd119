package storage

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Attr is a pair of strings: an attribute of a checkpoint event, or an alias attribute and
// its value.
type Attr struct {
	Key, Value string
}

// EventRow is one checkpoint event of an EventBatch: the columns of CheckpointEvent, with
// the event id as the number it is stored as, the time as Unix nanoseconds, and the
// attributes and alias values kept by the batch.
type EventRow struct {
	// ID is the event's identity (EventIDValue); rows with the same ID are one event.
	ID         uint64
	Tenant     string
	Flow       string
	Checkpoint string
	Key        string
	KeyAttr    string
	// Time is the event time in Unix nanoseconds; never 0.
	Time int64
	// IngestTime is when the row was written, in Unix nanoseconds; 0: the time of the write.
	IngestTime int64
	TraceID    string
	SpanID     string
	Service    string
	Name       string
	Status     string
	Message    string

	// attrs and aliases are the row's ranges [start, end) in the batch's attrs and aliases.
	attrs, aliases [2]int32
}

// EventBatch is checkpoint events laid out for writing: each row's strings may point into
// the telemetry it came from, and the rows' attributes and alias values live in two slices
// the batch shares, so appending a row allocates nothing once the batch has grown. Each row
// carries the aliases recorded with it (its tenant, flow and key, attribute Key, value Value),
// so a batch split between rows keeps every alias with its event. The zero value is empty
// and ready to use; a batch is not safe for concurrent use.
type EventBatch struct {
	rows    []EventRow
	attrs   []Attr
	aliases []Attr
}

// Len returns the number of rows.
func (b *EventBatch) Len() int { return len(b.rows) }

// Row returns row i; the pointer is valid until the next change of the batch.
func (b *EventBatch) Row(i int) *EventRow { return &b.rows[i] }

// Attributes returns the attributes of row i (shared with the batch: do not modify).
func (b *EventBatch) Attributes(i int) []Attr {
	r := &b.rows[i]
	return b.attrs[r.attrs[0]:r.attrs[1]]
}

// Aliases returns the alias attributes and values of row i (shared with the batch).
func (b *EventBatch) Aliases(i int) []Attr {
	r := &b.rows[i]
	return b.aliases[r.aliases[0]:r.aliases[1]]
}

// AliasCount returns the number of aliases of all rows.
func (b *EventBatch) AliasCount() int { return len(b.aliases) }

// Add appends a row without attributes or aliases; AddAttribute and AddAlias then add to it.
func (b *EventBatch) Add(r EventRow) {
	p := b.AddRow()
	r.attrs, r.aliases = p.attrs, p.aliases
	*p = r
}

// AddRow appends an empty row (no attributes, no aliases) and returns it, to be filled in
// place; the pointer is valid until the next change of the batch.
func (b *EventBatch) AddRow() *EventRow {
	na, nl := int32(len(b.attrs)), int32(len(b.aliases))
	if len(b.rows) < cap(b.rows) {
		b.rows = b.rows[:len(b.rows)+1]
	} else {
		b.rows = append(b.rows, EventRow{})
	}
	r := &b.rows[len(b.rows)-1]
	*r = EventRow{attrs: [2]int32{na, na}, aliases: [2]int32{nl, nl}}
	return r
}

// DropLast removes the last row, with its attributes and aliases.
func (b *EventBatch) DropLast() {
	r := &b.rows[len(b.rows)-1]
	b.attrs, b.aliases = b.attrs[:r.attrs[0]], b.aliases[:r.aliases[0]]
	b.rows = b.rows[:len(b.rows)-1]
}

// AddAttribute adds an attribute to the last row.
func (b *EventBatch) AddAttribute(key, value string) {
	b.attrs = append(b.attrs, Attr{key, value})
	b.rows[len(b.rows)-1].attrs[1]++
}

// CopyAttributes gives the last row the attributes of row i (a row already in the batch),
// as when one item is the checkpoint of several flows.
func (b *EventBatch) CopyAttributes(i int) {
	r := b.rows[i].attrs
	for j := r[0]; j < r[1]; j++ {
		b.AddAttribute(b.attrs[j].Key, b.attrs[j].Value)
	}
}

// AddAlias records on the last row that, in its tenant and flow, the value of attribute attr
// identifies the instance of the row's key.
func (b *EventBatch) AddAlias(attr, value string) {
	b.aliases = append(b.aliases, Attr{attr, value})
	b.rows[len(b.rows)-1].aliases[1]++
}

// Reset empties the batch, keeping its memory.
func (b *EventBatch) Reset() {
	b.rows, b.attrs, b.aliases = b.rows[:0], b.attrs[:0], b.aliases[:0]
}

// Append adds every row of o (with its attributes and aliases) after b's rows.
func (b *EventBatch) Append(o *EventBatch) { b.appendRows(o, 0, len(o.rows)) }

// appendRows adds rows [from, to) of o.
func (b *EventBatch) appendRows(o *EventBatch, from, to int) {
	if from >= to {
		return
	}
	first, last := &o.rows[from], &o.rows[to-1]
	da := int32(len(b.attrs)) - first.attrs[0]
	dl := int32(len(b.aliases)) - first.aliases[0]
	b.attrs = append(grow(b.attrs, int(last.attrs[1]-first.attrs[0])), o.attrs[first.attrs[0]:last.attrs[1]]...)
	b.aliases = append(grow(b.aliases, int(last.aliases[1]-first.aliases[0])), o.aliases[first.aliases[0]:last.aliases[1]]...)
	n := len(b.rows)
	b.rows = append(grow(b.rows, to-from), o.rows[from:to]...)
	for i := n; i < len(b.rows); i++ {
		r := &b.rows[i]
		r.attrs[0] += da
		r.attrs[1] += da
		r.aliases[0] += dl
		r.aliases[1] += dl
	}
}

// Split returns rows [0, n) as a new batch and keeps the rest in b (n < b.Len()).
func (b *EventBatch) Split(n int) *EventBatch {
	head := &EventBatch{}
	head.appendRows(b, 0, n)
	rest := &EventBatch{}
	rest.appendRows(b, n, len(b.rows))
	*b = *rest
	return head
}

// Errors that name why a row is refused; both wrap ErrInvalid.
var (
	// ErrIncomplete: a row lacks its tenant, flow or time.
	ErrIncomplete = fmt.Errorf("%w: tenant, flow and time are required", ErrInvalid)
	// ErrNotUTF8: an identity of the row (tenant, flow, checkpoint, key, key attribute, an
	// alias attribute or value) is not valid UTF-8. Identities are compared byte for byte
	// and returned as JSON by the API, which cannot carry invalid UTF-8: two keys that
	// differ only in invalid bytes would be shown as one.
	ErrNotUTF8 = fmt.Errorf("%w: identity is not valid UTF-8", ErrInvalid)
)

// CheckRow reports why a row with these identities cannot be stored (an error wrapping
// ErrIncomplete or ErrNotUTF8), or nil. WriteBatch and WriteEvents refuse a batch with such
// a row; a writer that must keep the other rows checks each row first.
func CheckRow(r *EventRow, aliases []Attr) error {
	if r.Tenant == "" || r.Flow == "" || r.Time == 0 {
		return ErrIncomplete
	}
	// Identities are mostly ASCII: one pass over all their bytes settles it, and only a row
	// with a byte past ASCII is validated string by string.
	ids := [...]string{r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr}
	var high byte
	for _, s := range ids {
		for i := 0; i < len(s); i++ {
			high |= s[i]
		}
	}
	for _, a := range aliases {
		for i := 0; i < len(a.Key); i++ {
			high |= a.Key[i]
		}
		for i := 0; i < len(a.Value); i++ {
			high |= a.Value[i]
		}
	}
	if high < utf8.RuneSelf {
		return nil
	}
	for _, s := range ids {
		if !utf8.ValidString(s) {
			return ErrNotUTF8
		}
	}
	for _, a := range aliases {
		if !utf8.ValidString(a.Key) || !utf8.ValidString(a.Value) {
			return ErrNotUTF8
		}
	}
	return nil
}

// ValidUTF8 is utf8.ValidString, quicker on the short ASCII strings rows are mostly made of:
// eight bytes at a time while they are ASCII.
func ValidUTF8(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&0x8080808080808080 != 0 {
			return utf8.ValidString(s[i:])
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// Check reports every row of the batch that cannot be stored (see CheckRow), naming each:
// an error wrapping ErrInvalid, or nil. WriteBatch and WriteEvents refuse such a batch whole.
func (b *EventBatch) Check() error {
	var errs []error
	for i := range b.rows {
		if err := CheckRow(&b.rows[i], b.Aliases(i)); err != nil {
			errs = append(errs, fmt.Errorf("event %d (%s): %w", i, formatEventID(b.rows[i].ID), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("write events: %w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// BatchOf lays out events as a batch, as WriteEvents does: it fills in place the EventID of
// the events that lack one (see EventID), and refuses events whose EventID is malformed with
// an error wrapping ErrInvalid that names each. It does not Check the rows.
func BatchOf(events []CheckpointEvent) (*EventBatch, error) {
	b := &EventBatch{rows: make([]EventRow, 0, len(events))}
	var errs []error
	for i := range events {
		e := &events[i]
		id, err := eventIDOf(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("event %d: %w", i, err))
			continue
		}
		b.Add(EventRow{ID: id, Tenant: e.Tenant, Flow: e.Flow, Checkpoint: e.Checkpoint, Key: e.Key, KeyAttr: e.KeyAttr,
			Time: nanosOf(e.Time), IngestTime: nanosOf(e.IngestTime), TraceID: e.TraceID, SpanID: e.SpanID, Service: e.Service, Name: e.Name, Status: e.Status, Message: e.Message})
		for k, v := range e.Attributes {
			b.AddAttribute(k, v)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("write events: %w: %w", ErrInvalid, errors.Join(errs...))
	}
	return b, nil
}

// PrepareEvents is what WriteEvents does before it writes: it lays out events as a batch
// (BatchOf), refuses it when a row cannot be stored (Check), and fills in place the
// IngestTime (now) of the events that lack one.
func PrepareEvents(events []CheckpointEvent, now time.Time) (*EventBatch, error) {
	b, err := BatchOf(events)
	if err != nil {
		return nil, err
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	for i := range events {
		if events[i].IngestTime.IsZero() {
			events[i].IngestTime = now
		}
	}
	return b, nil
}

// AliasRows are the alias rows of the batch (its rows' tenant, flow and key, each alias
// attribute and value), at the time of their event.
func (b *EventBatch) AliasRows() []Alias {
	if len(b.aliases) == 0 {
		return nil
	}
	out := make([]Alias, 0, len(b.aliases))
	for i := range b.rows {
		r := &b.rows[i]
		for _, a := range b.Aliases(i) {
			out = append(out, Alias{Tenant: r.Tenant, Flow: r.Flow, Attr: a.Key, Value: a.Value, Key: r.Key, Time: time.Unix(0, r.Time).UTC()})
		}
	}
	return out
}

// Event returns row i as a CheckpointEvent (as a reader returns it: no attributes is nil;
// a zero ingest time stays zero).
func (b *EventBatch) Event(i int) CheckpointEvent {
	r := &b.rows[i]
	e := CheckpointEvent{EventID: formatEventID(r.ID), Tenant: r.Tenant, Flow: r.Flow, Checkpoint: r.Checkpoint, Key: r.Key,
		KeyAttr: r.KeyAttr, Time: unixNano(r.Time), IngestTime: unixNano(r.IngestTime), TraceID: r.TraceID, SpanID: r.SpanID,
		Service: r.Service, Name: r.Name, Status: r.Status, Message: r.Message}
	if attrs := b.Attributes(i); len(attrs) > 0 {
		e.Attributes = make(map[string]string, len(attrs))
		for _, a := range attrs {
			e.Attributes[a.Key] = a.Value
		}
	}
	return e
}

// nanosOf is t in Unix nanoseconds, 0 for the zero time.
func nanosOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// grow makes room for n more elements in s, doubling its capacity (append grows large
// slices by a quarter: a batch that gathers many small ones would be copied over and over).
func grow[T any](s []T, n int) []T {
	if len(s)+n <= cap(s) {
		return s
	}
	return slices.Grow(s, max(len(s)+n, 2*cap(s), 64)-len(s))
}
