package flowstate

import (
	"sort"
	"strconv"
	"time"

	"github.com/flowwatch/flowwatch/model"
	"github.com/flowwatch/flowwatch/storage"
)

// The detector writes the expected and reason documents of every state it writes, thousands
// a second in a storm: they are appended by hand, byte for byte what encoding/json writes for
// the same documents (TestEncodersMatchEncodingJSON), without reflection.

// appendExpected appends the JSON of ExpectedOf(xs).
func appendExpected(b []byte, xs []model.Expected) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"checkpoint":`...)
		b = storage.AppendJSONString(b, x.Checkpoint)
		b = append(b, `,"deadline":`...)
		b = appendTime(b, x.Deadline)
		b = append(b, `,"since":`...)
		b = appendTime(b, x.Since)
		b = append(b, `,"service":`...)
		b = storage.AppendJSONString(b, x.Service)
		b = append(b, `,"overdue":`...)
		b = strconv.AppendBool(b, x.Overdue)
		if x.Compensates != "" {
			b = append(b, `,"compensates":`...)
			b = storage.AppendJSONString(b, x.Compensates)
		}
		if x.Children != "" {
			b = append(b, `,"children":`...)
			b = storage.AppendJSONString(b, x.Children)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendReason appends the JSON of ReasonOf(r), r not nil.
func appendReason(b []byte, r *model.Reason) []byte {
	b = append(b, `{"checkpoint":`...)
	b = storage.AppendJSONString(b, r.Checkpoint)
	b = append(b, `,"since":`...)
	b = appendTime(b, r.Since)
	b = append(b, `,"deadline":`...)
	b = appendTime(b, r.Deadline)
	b = append(b, `,"overdue":`...)
	b = storage.AppendJSONString(b, r.Overdue.String())
	b = append(b, `,"overdue_seconds":`...)
	b = appendFloat(b, r.Overdue.Seconds())
	b = append(b, `,"service":`...)
	b = storage.AppendJSONString(b, r.Service)
	b = append(b, `,"last_checkpoint":`...)
	b = storage.AppendJSONString(b, r.LastCheckpoint)
	if !r.LastCheckpointAt.IsZero() {
		b = append(b, `,"last_checkpoint_at":`...)
		b = appendTime(b, r.LastCheckpointAt)
	}
	if e := r.LastError; e != nil {
		b = append(b, `,"last_error":{"service":`...)
		b = storage.AppendJSONString(b, e.Service)
		b = append(b, `,"name":`...)
		b = storage.AppendJSONString(b, e.Name)
		b = append(b, `,"message":`...)
		b = storage.AppendJSONString(b, e.Message)
		b = append(b, `,"trace_id":`...)
		b = storage.AppendJSONString(b, e.TraceID)
		b = append(b, `,"span_id":`...)
		b = storage.AppendJSONString(b, e.SpanID)
		b = append(b, `,"time":`...)
		b = appendTime(b, e.Time)
		b = append(b, '}')
	}
	b = append(b, `,"trace_ids":[`...)
	for i, t := range r.TraceIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = storage.AppendJSONString(b, t)
	}
	b = append(b, ']')
	if r.Compensates != "" {
		b = append(b, `,"compensates":`...)
		b = storage.AppendJSONString(b, r.Compensates)
	}
	if f := r.Failure; f != nil {
		b = append(b, `,"failure":{"checkpoint":`...)
		b = storage.AppendJSONString(b, f.Checkpoint)
		b = append(b, `,"time":`...)
		b = appendTime(b, f.Time)
		if c := f.Child; c != nil {
			b = append(b, `,"child":{"flow":`...)
			b = storage.AppendJSONString(b, c.Flow)
			b = append(b, `,"key":`...)
			b = storage.AppendJSONString(b, c.Key)
			b = append(b, `,"checkpoint":`...)
			b = storage.AppendJSONString(b, c.Checkpoint)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if ch := r.Children; ch != nil {
		b = appendChildren(b, ch)
	}
	b = append(b, `,"summary":`...)
	b = storage.AppendJSONString(b, r.Summary)
	return append(b, '}')
}

// appendChildren appends the "children" member of a reason: its counts by status (sorted, as
// encoding/json writes a map) and its stuck children.
func appendChildren(b []byte, ch *model.ChildrenReport) []byte {
	b = append(b, `,"children":{"flow":`...)
	b = storage.AppendJSONString(b, ch.Flow)
	b = append(b, `,"counts":{`...)
	statuses := make([]string, 0, len(ch.Counts))
	for s := range ch.Counts {
		statuses = append(statuses, string(s))
	}
	sort.Strings(statuses)
	for i, s := range statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = storage.AppendJSONString(b, s)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(ch.Counts[model.Status(s)]), 10)
	}
	b = append(b, `},"stuck":[`...)
	for i, k := range ch.Stuck {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = storage.AppendJSONString(b, k.Key)
		b = append(b, `,"checkpoint":`...)
		b = storage.AppendJSONString(b, k.Checkpoint)
		b = append(b, `,"deadline":`...)
		b = appendTime(b, k.Deadline)
		b = append(b, `,"summary":`...)
		b = storage.AppendJSONString(b, k.Summary)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendViolations appends the JSON of ViolationsOf(vs).
func appendViolations(b []byte, vs []model.Violation) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"kind":`...)
		b = storage.AppendJSONString(b, string(v.Kind))
		b = append(b, `,"checkpoint":`...)
		b = storage.AppendJSONString(b, v.Checkpoint)
		b = append(b, `,"time":`...)
		b = appendTime(b, v.Time)
		b = append(b, `,"event_id":`...)
		b = storage.AppendJSONString(b, v.EventID)
		b = append(b, `,"detail":`...)
		b = storage.AppendJSONString(b, v.Detail())
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendTime appends t in UTC as encoding/json writes a time.Time (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	t = UTC(t)
	y, mo, d := t.Date()
	if y < 0 || y > 9999 { // the generic layout writes these years as it does
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	// What AppendFormat(RFC3339Nano) writes for a UTC time, without reading a layout: the
	// detector writes a few times in every state it writes.
	h, mi, sec := t.Clock()
	b = append(b, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [9]byte
		for i := 8; i >= 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 9
		for frac[n-1] == '0' { // RFC3339Nano trims trailing zeros
			n--
		}
		b = append(b, '.')
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z', '"')
}

// appendFloat appends f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
	abs := f
	if abs < 0 {
		abs = -abs
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
