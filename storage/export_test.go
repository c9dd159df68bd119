package storage

import (
	"context"
	"testing"
)

// Hooks for this package's external tests (package storage_test), which run the storage
// contract suite of package storagetest: storagetest imports storage, so the package's own
// tests cannot use it from inside.

// OpenEmbeddedForTest opens the embedded store of this test process on a fresh, migrated
// database db (see openEmbedded).
func OpenEmbeddedForTest(t testing.TB, db string) Store { return openEmbedded(t, db) }

// Exec runs one statement on the store's transport.
func Exec(ctx context.Context, s Store, sql string) error { return s.(*store).b.exec(ctx, sql) }

// QueryUints runs a query whose one row holds n unsigned integer columns.
func QueryUints(ctx context.Context, s Store, sql string, n int) ([]uint64, error) {
	out := make([]uint64, n)
	dest := make([]any, n)
	for i := range out {
		dest[i] = &out[i]
	}
	err := s.(*store).each(ctx, sql, func(r rows) error { return r.Scan(dest...) })
	return out, err
}

// IsLegacy reports whether s holds the legacy tables of ClickHouse 18.16.
func IsLegacy(s Store) bool {
	_, ok := s.(*store).d.(legacyTables)
	return ok
}

// CheckScanTypes makes every Scan of s check its destinations against clickhouse-go's own
// scanner (see scantypes_test.go), recording the pairs checked in checked.
func CheckScanTypes(t *testing.T, s Store, checked map[string]bool) Store {
	return checkScanTypes(t, s, checked)
}
