package storage

// rows is the result of a query on either transport: Scan takes pointers to string, int64,
// uint64, uint32, float64, []string or map[string]string, in select order. The server
// transport's rows are clickhouse-go's; the embedded store's are binRows.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}
