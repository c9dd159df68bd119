package storage

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// realisticEvents makes n checkpoint events shaped like production: instances of a 6-step
// flow started over a day, a few minutes between steps, two traces per instance (the
// choreography's asynchronous hops start new traces), random span ids, a few attributes.
func realisticEvents(seed uint64, first, n int) []CheckpointEvent {
	r := rand.New(rand.NewPCG(seed, 42))
	cps := []struct{ cp, svc, name string }{
		{"placed", "orders", "POST /orders"}, {"paid", "payments", "payment.authorized"},
		{"stock_reserved", "inventory", "reserve"}, {"settled", "ledger", "payment.settled"},
		{"shipped", "shipping", "ship parcel"}, {"delivered", "shipping", "delivered"},
	}
	regions := []string{"eu-west-1", "eu-central-1", "us-east-1"}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	out := make([]CheckpointEvent, 0, n)
	var trace [2]string
	var at time.Time
	for i := first; len(out) < n; i++ {
		inst, step := i/len(cps), i%len(cps)
		if step == 0 {
			at = start.Add(time.Duration(inst) * 86 * time.Millisecond)
			for j := range trace {
				var b [16]byte
				for k := range b {
					b[k] = byte(r.Uint32())
				}
				trace[j] = hex.EncodeToString(b[:])
			}
		}
		at = at.Add(time.Duration(r.Int64N(int64(5 * time.Minute))))
		var sid [8]byte
		for k := range sid {
			sid[k] = byte(r.Uint32())
		}
		c := cps[step]
		out = append(out, CheckpointEvent{
			Tenant: "acme", Flow: "order-fulfilment", Checkpoint: c.cp, Key: fmt.Sprintf("ord-%09d", 100000000+inst*7),
			KeyAttr: "order.id", Time: at, IngestTime: at.Add(time.Duration(r.Int64N(int64(2 * time.Second)))),
			TraceID: trace[step/3], SpanID: hex.EncodeToString(sid[:]), Service: c.svc, Name: c.name, Status: "ok",
			Attributes: map[string]string{"cloud.region": regions[inst%len(regions)], "http.response.status_code": "200"},
		})
	}
	return out
}

const benchBatch = 10_000

// benchServer returns a server DSN: FLOWWATCH_CLICKHOUSE_DSN, or Debian's server started
// by the same helper as the tests.
func benchServer(b *testing.B) string {
	if dsn := os.Getenv("FLOWWATCH_CLICKHOUSE_DSN"); dsn != "" {
		return dsn
	}
	return testsvc.ClickHouseT(b).DSN()
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkInsert writes batches of realistic events through the Store of each transport.
// Besides rows/s (wall) it reports cpu-ns/row: the process's CPU time (every thread, the
// embedded engine's own included) per row, once the engine's background merges of the new
// rows are done. The embedded transport runs three times in the same run: its Native
// inserts; RowBinary, the row-wise binary format it was measured against; and the
// JSONCompactEachRow text it used before, as the baseline.
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, s Store) {
		batches := make([][]CheckpointEvent, 4)
		for i := range batches {
			batches[i] = realisticEvents(uint64(i), i*benchBatch, benchBatch)
		}
		cpu0 := processCPU(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			evs := batches[i%len(batches)]
			for j := range evs { // new rows each time: same shape, other ids
				evs[j].EventID = ""
				evs[j].Time = evs[j].Time.Add(time.Millisecond)
			}
			if err := s.WriteEvents(ctx, evs); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b, b.N*benchBatch)
		b.StopTimer()
		cpu := settleCPU(b) - cpu0
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*benchBatch), "cpu-ns/row")
	}
	b.Run("transport=embedded/format=Native", func(b *testing.B) {
		run(b, openEmbedded(b, "bench_insert"))
	})
	b.Run("transport=embedded/format=RowBinary", func(b *testing.B) {
		s := openEmbedded(b, "bench_insert_rowbinary").(*store)
		s.b = rowBinaryEmbedded{s.b.(*embedded)}
		run(b, s)
	})
	b.Run("transport=embedded/format=JSONCompactEachRow", func(b *testing.B) {
		s := openEmbedded(b, "bench_insert_json").(*store)
		s.b = jsonEmbedded{s.b.(*embedded)}
		run(b, s)
	})
	b.Run("transport=server", func(b *testing.B) {
		s, err := OpenServer(ctx, benchServer(b), Options{Database: "bench_insert"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
}

// processCPU is the CPU time (user and system) this process has used, every thread counted.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settleCPU waits until the process has been idle for half a second (the embedded engine's
// merges done; at most 30 s) and returns its CPU time.
func settleCPU(tb testing.TB) time.Duration {
	const poll, quiet = 100 * time.Millisecond, 500 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	last := processCPU(tb)
	for still := time.Duration(0); still < quiet && time.Now().Before(deadline); {
		time.Sleep(poll) // polling the process's CPU time, not waiting out a deadline
		now := processCPU(tb)
		if now-last <= 10*time.Millisecond {
			still += poll
		} else {
			still = 0
		}
		last = now
	}
	return last
}

// rowBinaryEmbedded is the embedded backend inserting events as RowBinary rows, whose
// LowCardinality columns the engine must dictionary-encode row by row.
type rowBinaryEmbedded struct{ *embedded }

func (e rowBinaryEmbedded) insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error {
	var buf []byte
	for i := range b.rows {
		r := &b.rows[i]
		ingest := r.IngestTime
		if ingest == 0 {
			ingest = now
		}
		buf = binary.LittleEndian.AppendUint64(buf, r.ID)
		for _, s := range [...]string{r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr} {
			buf = appendString(buf, s)
		}
		buf = binary.LittleEndian.AppendUint64(buf, uint64(r.Time))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(ingest))
		for _, s := range [...]string{r.TraceID, r.SpanID, r.Service, r.Name, r.Status, r.Message} {
			buf = appendString(buf, s)
		}
		attrs := b.Attributes(i)
		buf = binary.AppendUvarint(buf, uint64(len(attrs)))
		for _, a := range attrs {
			buf = appendString(buf, a.Key)
			buf = appendString(buf, a.Value)
		}
	}
	return e.sess.insert(ctx, "INSERT INTO "+table+" ("+eventColumnList+") SETTINGS insert_deduplication_token = '"+dedupToken(b)+"'", "RowBinary", buf)
}

// jsonEmbedded is the embedded backend with its former events insert: JSONCompactEachRow
// text inline with the statement, copied into a C string. It is the baseline of
// BenchmarkInsert/transport=embedded.
type jsonEmbedded struct{ *embedded }

func (e jsonEmbedded) insertEvents(ctx context.Context, table string, b *EventBatch, now int64) error {
	buf := []byte("INSERT INTO " + table + " (" + eventColumnList + ") SETTINGS insert_deduplication_token = '" +
		dedupToken(b) + "' FORMAT JSONCompactEachRow\n")
	for i := range b.rows {
		r := &b.rows[i]
		buf = append(buf, '[')
		buf = strconv.AppendUint(buf, r.ID, 10)
		for _, s := range [...]string{r.Tenant, r.Flow, r.Checkpoint, r.Key, r.KeyAttr} {
			buf = append(buf, ',')
			buf = AppendJSONString(buf, s)
		}
		ingest := r.IngestTime
		if ingest == 0 {
			ingest = now
		}
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, r.Time, 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, ingest, 10)
		for _, s := range [...]string{r.TraceID, r.SpanID, r.Service, r.Name, r.Status, r.Message} {
			buf = append(buf, ',')
			buf = AppendJSONString(buf, s)
		}
		buf = append(buf, ",{"...)
		for j, a := range b.Attributes(i) {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = AppendJSONString(buf, a.Key)
			buf = append(buf, ':')
			buf = AppendJSONString(buf, a.Value)
		}
		buf = append(buf, "}]\n"...)
	}
	return e.exec(ctx, string(buf))
}

// BenchmarkInsertRaw is the upper bound: the same rows through a plain clickhouse-go batch
// (row by row Append, as its documentation shows) into the same server and table shape.
func BenchmarkInsertRaw(b *testing.B) {
	ctx := context.Background()
	dsn := benchServer(b)
	s, err := OpenServer(ctx, dsn, Options{Database: "bench_raw"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	_, legacy := s.(*store).d.(legacyTables)
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	opts.Auth.Database = "default"
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cols := strings.Replace(eventColumnList, "attributes", s.(*store).d.attributeColumns(), 1)
	batches := make([][]CheckpointEvent, 4)
	for i := range batches {
		batches[i] = realisticEvents(uint64(i), i*benchBatch, benchBatch)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO bench_raw.checkpoint_events ("+cols+")")
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range batches[i%len(batches)] {
			e.Time = e.Time.Add(time.Duration(i) * time.Millisecond)
			id := EventID(e.Tenant, e.Flow, e.Checkpoint, e.Key, e.TraceID, e.SpanID, e.Time.UnixNano(), e.Name)
			v, _ := eventIDOf(&CheckpointEvent{EventID: id})
			if legacy {
				ks, vs := make([]string, 0, len(e.Attributes)), make([]string, 0, len(e.Attributes))
				for k, x := range e.Attributes {
					ks, vs = append(ks, k), append(vs, x)
				}
				err = batch.Append(v, e.Tenant, e.Flow, e.Checkpoint, e.Key, e.KeyAttr, e.Time.UnixNano(), e.IngestTime.UnixNano(),
					e.TraceID, e.SpanID, e.Service, e.Name, e.Status, e.Message, ks, vs)
			} else {
				err = batch.Append(v, e.Tenant, e.Flow, e.Checkpoint, e.Key, e.KeyAttr, e.Time, e.IngestTime,
					e.TraceID, e.SpanID, e.Service, e.Name, e.Status, e.Message, e.Attributes)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	reportRows(b, b.N*benchBatch)
}

// BenchmarkBytesPerEvent stores 1M realistic events in the production table (chDB), merges
// them, and reports the bytes on disk per event from system.parts. It runs once whatever
// b.N is (-benchtime 1x).
func BenchmarkBytesPerEvent(b *testing.B) {
	ctx := context.Background()
	s := openEmbedded(b, "bench_bytes")
	st := s.(*store)
	const total, batch = 1_000_000, 50_000
	b.ResetTimer()
	for n := 0; n < total; n += batch {
		if err := s.WriteEvents(ctx, realisticEvents(uint64(n), n, batch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.b.exec(ctx, "OPTIMIZE TABLE "+st.table("checkpoint_events")+" FINAL"); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var nrows, bytes uint64
	q := "SELECT toUInt64(sum(rows)), toUInt64(sum(bytes_on_disk)) FROM system.parts WHERE active AND database = " + quote(st.db) + " AND table = 'checkpoint_events'"
	if err := st.each(ctx, q, func(r rows) error { return r.Scan(&nrows, &bytes) }); err != nil {
		b.Fatal(err)
	}
	if nrows != total {
		b.Fatalf("%d rows stored, want %d", nrows, total)
	}
	b.ReportMetric(float64(bytes)/float64(nrows), "B/event")

	// What the readers cost on that table (one run each, after the merge).
	last := realisticEvents(uint64(total-batch), total-batch, batch)
	tail := last[len(last)-1]
	day0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	timed := func(unit string, f func() (int, error)) {
		start := time.Now()
		n, err := f()
		if err != nil {
			b.Fatalf("%s: %v", unit, err)
		}
		if n == 0 {
			b.Fatalf("%s: nothing found", unit)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, unit)
	}
	timed("ms/EventsSince", func() (int, error) {
		evs, err := s.EventsSince(ctx, tail.IngestTime.Add(-30*time.Second), 1000)
		return len(evs), err
	})
	timed("ms/InstanceEvents", func() (int, error) {
		evs, err := s.InstanceEvents(ctx, tail.Tenant, tail.Flow, tail.Key)
		return len(evs), err
	})
	timed("ms/CheckpointCounts", func() (int, error) {
		cs, err := s.CheckpointCounts(ctx, "acme", "order-fulfilment", day0, day0.Add(24*time.Hour))
		return len(cs), err
	})
	timed("ms/Transitions", func() (int, error) {
		tr, err := s.Transitions(ctx, "acme", "order-fulfilment", [][2]string{{"placed", "paid"}, {"paid", "settled"}, {"shipped", "delivered"}}, day0, day0.Add(24*time.Hour))
		return int(tr[0].Count), err
	})
	timed("ms/Series", func() (int, error) {
		ss, err := s.Series(ctx, "acme", "order-fulfilment", "checkpoint", day0, day0.Add(24*time.Hour), 5*time.Minute)
		return len(ss), err
	})
	q = "SELECT column, toUInt64(sum(column_data_compressed_bytes)) AS c FROM system.parts_columns WHERE active AND database = " + quote(st.db) +
		" AND table = 'checkpoint_events' GROUP BY column ORDER BY c DESC"
	_ = st.each(ctx, q, func(r rows) error {
		var col string
		var c uint64
		if err := r.Scan(&col, &c); err != nil {
			return err
		}
		b.Logf("%-12s %6.2f B/event", col, float64(c)/float64(nrows))
		return nil
	})
}
