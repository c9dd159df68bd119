package storage

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The reader's queries cannot run on a modern server here, so the contract suite also runs on
// chDB while checking every Scan destination against clickhouse-go's own column scanner for
// the result types the engine reports: what the server transport would do with each row
// (TestContract, target embedded-scan-types).

var lowCardinalityRe = regexp.MustCompile(`LowCardinality\((\w+)\)`)

type scanTypesBackend struct {
	*embedded
	t       *testing.T
	checked map[string]bool
}

func (b *scanTypesBackend) query(ctx context.Context, sql string) (rows, error) {
	r, err := b.embedded.query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return &scanTypesRows{binRows: r.(*binRows), b: b}, nil
}

type scanTypesRows struct {
	*binRows
	b *scanTypesBackend
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
	return r.binRows.Scan(dest...)
}

// checkScanTypes wraps the embedded store s so that every Scan checks its destinations.
func checkScanTypes(t *testing.T, s Store, checked map[string]bool) Store {
	st := s.(*store)
	st.b = &scanTypesBackend{embedded: st.b.(*embedded), t: t, checked: checked}
	return st
}
