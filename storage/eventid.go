package storage

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// EventID returns the deterministic identity of a checkpoint event: 16 hex digits of a 64-bit
// xxHash over the fields that make an item unique (the tenant, flow, checkpoint, key, the
// item's trace and span ids, its time in nanoseconds and its name). The same telemetry item
// yields the same id in every collector and every replay, so duplicates fold into one row.
func EventID(tenant, flow, checkpoint, key, traceID, spanID string, timeNanos int64, name string) string {
	return formatEventID(EventIDValue(tenant, flow, checkpoint, key, traceID, spanID, timeNanos, name))
}

// EventIDValue is EventID as the number the event_id column stores (EventRow.ID).
func EventIDValue(tenant, flow, checkpoint, key, traceID, spanID string, timeNanos int64, name string) uint64 {
	// One hash over a stack buffer in the common case (the fields are short).
	var buf [256]byte
	b := buf[:0]
	for _, s := range [...]string{tenant, flow, checkpoint, key, traceID, spanID} {
		b = append(b, s...)
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNanos))
	b = append(b, name...)
	return xxhash.Sum64(b)
}

// eventIDOf returns e's id as the UInt64 stored in the event_id column, computing it when e
// has none.
func eventIDOf(e *CheckpointEvent) (uint64, error) {
	id := e.EventID
	if id == "" {
		id = EventID(e.Tenant, e.Flow, e.Checkpoint, e.Key, e.TraceID, e.SpanID, e.Time.UnixNano(), e.Name)
		e.EventID = id
	}
	if len(id) != 16 {
		return 0, fmt.Errorf("event id %q: want 16 hex digits (see storage.EventID)", id)
	}
	v, err := strconv.ParseUint(id, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("event id %q: want 16 hex digits (see storage.EventID)", id)
	}
	return v, nil
}

// formatEventID is the inverse of eventIDOf's parsing.
func formatEventID(v uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return hex.EncodeToString(b[:])
}
