package flowexporter

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"

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
// request and none per row.
type rowsEncoding struct{}

func (rowsEncoding) Marshal(_ context.Context, r xexporterhelper.Request) ([]byte, error) {
	req, ok := r.(*rowsRequest)
	if !ok {
		return nil, fmt.Errorf("encode flow exporter rows: got a %T", r)
	}
	return req.rows.AppendBinary(make([]byte, 0, req.rows.BinarySize()))
}

func (rowsEncoding) Unmarshal(data []byte) (context.Context, xexporterhelper.Request, error) {
	req := &rowsRequest{}
	if err := req.rows.UnmarshalBinary(data); err != nil {
		return context.Background(), nil, fmt.Errorf("decode flow exporter rows: %w", err)
	}
	return context.Background(), req, nil
}
