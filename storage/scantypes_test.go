package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The reader's queries cannot run on a modern server here, so this runs the whole suite on
// chDB while checking every Scan destination against clickhouse-go's own column scanner for
// the result types the engine reports: what the server transport would do with each row.

var lowCardinalityRe = regexp.MustCompile(`LowCardinality\((\w+)\)`)

type scanTypesBackend struct {
	*embedded
	t       *testing.T
	checked map[string]bool
}

func (b *scanTypesBackend) query(ctx context.Context, sql string) (rows, error) {
	out, err := b.sess.run(ctx, sql, "JSONCompactEachRowWithNamesAndTypes")
	if err != nil {
		return nil, err
	}
	var names, types []string
	lines := bytes.SplitN(out, []byte("\n"), 3)
	if len(lines) < 2 {
		return nil, fmt.Errorf("no header in %q", out)
	}
	if err := json.Unmarshal(lines[0], &names); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(lines[1], &types); err != nil {
		return nil, err
	}
	rest := []byte{}
	if len(lines) == 3 {
		rest = lines[2]
	}
	return &scanTypesRows{jsonRows: newJSONRows(rest), b: b, names: names, types: types}, nil
}

type scanTypesRows struct {
	*jsonRows
	b            *scanTypesBackend
	names, types []string
}

func (r *scanTypesRows) Scan(dest ...any) error {
	if len(dest) != len(r.types) {
		return fmt.Errorf("%d destinations for %d columns", len(dest), len(r.types))
	}
	for i, d := range dest {
		key := fmt.Sprintf("%s %T", r.types[i], d)
		if r.b.checked[key] {
			continue
		}
		// A LowCardinality column scans through its inner column (and builds its index only
		// when encoding): check against the inner type.
		typ := lowCardinalityRe.ReplaceAllString(r.types[i], "$1")
		c, err := column.Type(typ).Column(r.names[i], &column.ServerContext{})
		if err != nil {
			return fmt.Errorf("column %s %s: %w", r.names[i], r.types[i], err)
		}
		if err := c.AppendRow(nil); err != nil {
			return fmt.Errorf("column %s %s: zero row: %w", r.names[i], r.types[i], err)
		}
		if err := c.ScanRow(d, 0); err != nil {
			r.b.t.Errorf("server transport would fail: scan %s (%s) into %T: %v", r.names[i], r.types[i], d, err)
			return err
		}
		r.b.checked[key] = true
	}
	return r.jsonRows.Scan(dest...)
}

func TestReaderScanTypesMatchServerTransport(t *testing.T) {
	checked := map[string]bool{}
	runSuite(t, func(t *testing.T, db string) Store {
		s := openEmbedded(t, db).(*store)
		s.b = &scanTypesBackend{embedded: s.b.(*embedded), t: t, checked: checked}
		return s
	})
	if len(checked) < 7 {
		t.Fatalf("only %d column/destination pairs checked: %v", len(checked), checked)
	}
	t.Logf("%d column type / destination pairs checked", len(checked))
}
