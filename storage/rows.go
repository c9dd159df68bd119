package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// rows is the result of a query on either transport: Scan takes pointers to string, int64,
// uint64, float64, []string or map[string]string, in select order.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// jsonRows reads JSONCompactEachRow output (one JSON array per line), as chDB returns it.
type jsonRows struct {
	data []byte
	cur  []json.RawMessage
	err  error
}

func newJSONRows(data []byte) *jsonRows { return &jsonRows{data: data} }

func (r *jsonRows) Next() bool {
	for r.err == nil && len(r.data) > 0 {
		line := r.data
		if i := bytes.IndexByte(r.data, '\n'); i >= 0 {
			line, r.data = r.data[:i], r.data[i+1:]
		} else {
			r.data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.cur = r.cur[:0]
		if err := json.Unmarshal(line, &r.cur); err != nil {
			r.err = fmt.Errorf("decode result row: %w", err)
			return false
		}
		return true
	}
	return false
}

func (r *jsonRows) Err() error   { return r.err }
func (r *jsonRows) Close() error { return nil }

func (r *jsonRows) Scan(dest ...any) error {
	if len(dest) != len(r.cur) {
		return fmt.Errorf("scan result row: %d columns, %d destinations", len(r.cur), len(dest))
	}
	for i, d := range dest {
		raw := r.cur[i]
		var err error
		switch p := d.(type) {
		case *string:
			err = json.Unmarshal(raw, p)
		case *int64:
			*p, err = strconv.ParseInt(string(bytes.Trim(raw, `"`)), 10, 64)
		case *uint64:
			*p, err = strconv.ParseUint(string(bytes.Trim(raw, `"`)), 10, 64)
		case *uint32:
			var v uint64
			v, err = strconv.ParseUint(string(bytes.Trim(raw, `"`)), 10, 32)
			*p = uint32(v)
		case *float64:
			s := string(bytes.Trim(raw, `"`))
			switch s {
			case "nan", "NaN", "null":
				*p = 0
			default:
				*p, err = strconv.ParseFloat(s, 64)
			}
		case *[]string:
			*p = nil
			err = json.Unmarshal(raw, p)
		case *map[string]string:
			*p = nil
			err = json.Unmarshal(raw, p)
		default:
			err = fmt.Errorf("unsupported destination %T", d)
		}
		if err != nil {
			return fmt.Errorf("scan result column %d: %w", i, err)
		}
	}
	return nil
}
