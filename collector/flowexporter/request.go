package flowexporter

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	pdatareq "go.opentelemetry.io/collector/pdata/xpdata/request"

	"github.com/flowwatch/flowwatch/storage"
)

// rowsRequest is what the flow exporter queues: the checkpoint rows of one push, made from
// the telemetry before the queue, so that the sending queue (in memory or on disk) holds
// small, flat, bounded rows and never the telemetry itself. Its items are rows.
type rowsRequest struct {
	rows storage.EventBatch
}

var _ xexporterhelper.Request = (*rowsRequest)(nil)

func (r *rowsRequest) ItemsCount() int { return r.rows.Len() }

// BytesSize is (a bound of) the size of the request on disk (rowsEncoding).
func (r *rowsRequest) BytesSize() int { return r.rows.BinarySize() }

// MergeSplit appends other's rows to r's, then cuts the result into requests of at most
// maxSize rows (or encoded bytes); r, with the rows left, comes last.
func (r *rowsRequest) MergeSplit(_ context.Context, maxSize int, szt exporterhelper.RequestSizerType, other xexporterhelper.Request) ([]xexporterhelper.Request, error) {
	if other != nil {
		o, ok := other.(*rowsRequest)
		if !ok {
			return nil, fmt.Errorf("merge flow exporter rows with a %T", other)
		}
		r.rows.Append(&o.rows)
	}
	if maxSize <= 0 {
		return []xexporterhelper.Request{r}, nil
	}
	var out []xexporterhelper.Request
	switch szt {
	case exporterhelper.RequestSizerTypeItems:
		for r.rows.Len() > maxSize {
			out = append(out, &rowsRequest{rows: *r.rows.Split(maxSize)})
		}
	case exporterhelper.RequestSizerTypeBytes:
		for r.BytesSize() > maxSize {
			// The most rows that fit; a row larger than maxSize by itself (a max_size below what
			// the row limits allow) still goes, alone, rather than being dropped.
			n, size := 0, (&storage.EventBatch{}).BinarySize()
			for n < r.rows.Len() && size+r.rows.RowBinarySize(n) <= maxSize {
				size += r.rows.RowBinarySize(n)
				n++
			}
			out = append(out, &rowsRequest{rows: *r.rows.Split(max(n, 1))})
		}
	default:
		return nil, fmt.Errorf("flow exporter rows cannot be sized by %s", szt.String())
	}
	return append(out, r), nil
}

// rowsEncoding is how requests are written to the persistent queue: the rows' binary form
// (storage.EventBatch.AppendBinary), which reads back with one allocation for the whole
// request and none per row. An earlier flow exporter queued the telemetry itself, in
// exporterhelper's encoding; legacy reads such a request into rows, so that what a collector
// acknowledged before an upgrade is still written after it.
type rowsEncoding struct {
	legacy func(data []byte) (*rowsRequest, error)
}

func (rowsEncoding) Marshal(_ context.Context, r xexporterhelper.Request) ([]byte, error) {
	req, ok := r.(*rowsRequest)
	if !ok {
		return nil, fmt.Errorf("encode flow exporter rows: got a %T", r)
	}
	return req.rows.AppendBinary(make([]byte, 0, req.rows.BinarySize()))
}

func (e rowsEncoding) Unmarshal(data []byte) (context.Context, xexporterhelper.Request, error) {
	req := &rowsRequest{}
	err := req.rows.UnmarshalBinary(data)
	if err == nil {
		return context.Background(), req, nil
	}
	if e.legacy != nil && errors.Is(err, storage.ErrCorruptBatch) {
		old, lerr := e.legacy(data)
		if lerr == nil {
			return context.Background(), old, nil
		}
		err = errors.Join(err, lerr)
	}
	return context.Background(), nil, fmt.Errorf("decode flow exporter rows: %w", err)
}

// legacyTraces reads a traces request an earlier flow exporter queued.
func legacyTraces(convert func(ptrace.Traces) *rowsRequest) func([]byte) (*rowsRequest, error) {
	return func(data []byte) (*rowsRequest, error) {
		_, td, err := pdatareq.UnmarshalTraces(data)
		if errors.Is(err, pdatareq.ErrInvalidFormat) {
			td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
		}
		if err != nil {
			return nil, fmt.Errorf("read a traces request queued by an earlier version: %w", err)
		}
		return convert(td), nil
	}
}

// legacyLogs reads a logs request an earlier flow exporter queued.
func legacyLogs(convert func(plog.Logs) *rowsRequest) func([]byte) (*rowsRequest, error) {
	return func(data []byte) (*rowsRequest, error) {
		_, ld, err := pdatareq.UnmarshalLogs(data)
		if errors.Is(err, pdatareq.ErrInvalidFormat) {
			ld, err = (&plog.ProtoUnmarshaler{}).UnmarshalLogs(data)
		}
		if err != nil {
			return nil, fmt.Errorf("read a logs request queued by an earlier version: %w", err)
		}
		return convert(ld), nil
	}
}
