package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// The production suite against a modern server, when one is given.
func TestServerSuite(t *testing.T) {
	dsn := os.Getenv("FLOWWATCH_CLICKHOUSE_DSN")
	if dsn == "" {
		t.Skip("FLOWWATCH_CLICKHOUSE_DSN not set: the production suite runs on chDB only")
	}
	runSuite(t, func(t *testing.T, db string) Store {
		ctx := context.Background()
		s, err := OpenServer(ctx, dsn, Options{Database: db, RetentionDays: 30})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, old := s.(*store).d.(legacyTables); old {
			t.Fatal("FLOWWATCH_CLICKHOUSE_DSN must point at ClickHouse >= 24.8; the old server has its own tests (TestServerLegacy, TestServerKilledMidStream)")
		}
		if err := s.(*store).b.exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// genEvents makes n realistic events of many instances, batch b of a stream.
func genEvents(b, n int) []CheckpointEvent {
	cps := []string{"placed", "paid", "stock_reserved", "settled", "shipped", "delivered"}
	out := make([]CheckpointEvent, n)
	for i := range out {
		inst := (b*n + i) / len(cps)
		cp := cps[(b*n+i)%len(cps)]
		at := t0.Add(time.Duration(inst)*time.Second + time.Duration((b*n+i)%len(cps))*time.Minute)
		out[i] = CheckpointEvent{
			Tenant: "acme", Flow: "order", Checkpoint: cp, Key: fmt.Sprintf("order-%08d", inst), KeyAttr: "order.id",
			Time: at, TraceID: fmt.Sprintf("%032x", uint64(inst)*2654435761), SpanID: fmt.Sprintf("%016x", uint64(b*n+i)*11400714819323198485),
			Service: "svc-" + cp, Name: "handle " + cp, Status: "ok",
			Attributes: map[string]string{"http.method": "POST", "region": "eu-west-1"},
		}
	}
	return out
}

func openLegacy(t *testing.T, ch *testsvc.ClickHouse, o Options) Store {
	t.Helper()
	s, err := OpenServer(context.Background(), ch.DSN(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, old := s.(*store).d.(legacyTables); !old {
		t.Fatal("an 18.16 server was not detected as legacy")
	}
	return s
}

// countOnce checks that every event of want is stored exactly once, as the reader sees it and
// after the server folds duplicates.
func countOnce(t *testing.T, s Store, want int) {
	t.Helper()
	ctx := context.Background()
	st := s.(*store)
	var total, distinct, final uint64
	q := "SELECT count(), uniqExact(event_id) FROM " + st.table("checkpoint_events")
	if err := st.each(ctx, q, func(r rows) error { return r.Scan(&total, &distinct) }); err != nil {
		t.Fatal(err)
	}
	if err := st.each(ctx, "SELECT count() FROM "+st.table("checkpoint_events")+" FINAL", func(r rows) error { return r.Scan(&final) }); err != nil {
		t.Fatal(err)
	}
	if distinct != uint64(want) || final != uint64(want) {
		t.Fatalf("stored %d rows, %d distinct event ids, %d after FINAL; want %d distinct", total, distinct, final, want)
	}
	got, err := s.EventsSince(ctx, time.Time{}, want+100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != want {
		t.Fatalf("EventsSince returned %d events, want each of %d once", len(got), want)
	}
	t.Logf("%d events: %d rows stored (duplicates from retries: %d), each event once to readers", want, total, total-uint64(want))
}

func TestServerLegacy(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	ctx := context.Background()
	s := openLegacy(t, ch, Options{Database: "legacy"})
	for i := 0; i < 2; i++ {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate %d: %v", i+1, err)
		}
	}

	t.Run("BatchInsertAndRead", func(t *testing.T) {
		evs := fixtureEvents()
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteEvents(ctx, fixtureEvents()[2:]); err != nil { // a partial replay
			t.Fatal(err)
		}
		big := genEvents(1, 20000)
		if err := s.WriteEvents(ctx, big); err != nil {
			t.Fatal(err)
		}
		countOnce(t, s, len(evs)+len(big))
		k1, err := s.InstanceEvents(ctx, "acme", "order", "k1")
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != 3 || k1[0].Checkpoint != "placed" || k1[0].Attributes["quote"] != evs[0].Attributes["quote"] || !k1[0].Time.Equal(evs[0].Time) {
			t.Fatalf("InstanceEvents(k1) = %+v", k1)
		}
		if _, _, err := s.Instances(ctx, InstanceFilter{}); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Instances on legacy tables: %v, want ErrUnsupported", err)
		}
	})

	t.Run("Auth", func(t *testing.T) {
		good := openLegacy(t, ch, Options{Database: "legacy", Username: testsvc.ClickHouseUser, Password: testsvc.ClickHousePassword})
		if _, err := good.EventsSince(ctx, time.Time{}, 1); err != nil {
			t.Fatalf("with the right password: %v", err)
		}
		_, err := OpenServer(ctx, ch.DSN(), Options{Username: testsvc.ClickHouseUser, Password: "wrong"})
		if err == nil || !strings.Contains(err.Error(), "open server store") {
			t.Fatalf("with a wrong password: %v", err)
		}
		t.Logf("wrong password: %v", err)
	})

	t.Run("TLS", func(t *testing.T) {
		s, err := OpenServer(ctx, ch.TLSDSN(), Options{Database: "legacy", TLS: true, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("over TLS: %v", err)
		}
		defer s.Close()
		if _, err := s.EventsSince(ctx, time.Time{}, 1); err != nil {
			t.Fatalf("query over TLS: %v", err)
		}
		// Verification on, with the server's certificate as the authority.
		trusted, err := OpenServer(ctx, ch.TLSDSN(), Options{Database: "legacy", TLS: true, CAFile: ch.CertFile})
		if err != nil {
			t.Fatalf("over TLS with the CA file: %v", err)
		}
		trusted.Close()
		if _, err := OpenServer(ctx, ch.TLSDSN(), Options{TLS: true, CAFile: "/nonexistent.pem"}); err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("a missing CA file: %v", err)
		}
		// Verification on: the self-signed certificate is refused.
		if _, err := OpenServer(ctx, ch.TLSDSN(), Options{TLS: true, DialTimeout: time.Second}); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("an untrusted certificate was accepted: %v", err)
		}
		// TLS towards the plain port fails quickly.
		if _, err := OpenServer(ctx, ch.DSN(), Options{TLS: true, InsecureSkipVerify: true, DialTimeout: time.Second, ReadTimeout: time.Second}); err == nil {
			t.Fatal("TLS handshake with a plain port succeeded")
		}
	})

	t.Run("ReadTimeout", func(t *testing.T) {
		slow := openLegacy(t, ch, Options{Database: "legacy", ReadTimeout: 300 * time.Millisecond})
		start := time.Now()
		err := slow.(*store).each(ctx, "SELECT sleep(2)", func(rows) error { return nil })
		if err == nil {
			t.Fatal("a 2 s query finished within a 300 ms read timeout")
		}
		if d := time.Since(start); d > 1900*time.Millisecond { // the query itself takes 2 s
			t.Fatalf("read timeout took %v", d)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := s.(*store).each(cctx, "SELECT sleep(2)", func(rows) error { return nil }); err == nil {
			t.Fatal("a 2 s query finished within a 200 ms context deadline")
		}
		if d := time.Since(start); d > 1900*time.Millisecond { // the query itself takes 2 s
			t.Fatalf("context deadline took %v", d)
		}
	})
}

// A server killed mid-stream and restarted: the writer retries what failed; afterwards every
// event is present exactly once.
func TestServerKilledMidStream(t *testing.T) {
	ch := testsvc.ClickHouseT(t)
	ctx := context.Background()
	s := openLegacy(t, ch, Options{Database: "crash", ReadTimeout: 5 * time.Second, DialTimeout: time.Second})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const batches, size = 40, 2000
	killAt := make(chan struct{})
	var failures atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < batches; b++ {
			if b == 10 {
				close(killAt)
			}
			evs := genEvents(b, size)
			for attempt := 0; ; attempt++ {
				err := s.WriteEvents(ctx, evs)
				if err == nil {
					break
				}
				failures.Add(1)
				if attempt > 200 {
					t.Errorf("batch %d: gave up: %v", b, err)
					return
				}
				time.Sleep(50 * time.Millisecond) // retry backoff, as exporterhelper would
			}
		}
	}()
	<-killAt
	if err := ch.Kill(); err != nil {
		t.Fatal(err)
	}
	// Let the writer hit the dead server a few times, then bring it back.
	deadline := time.Now().Add(5 * time.Second)
	for failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := ch.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if failures.Load() == 0 {
		t.Fatal("the writer never saw the server down: the test proved nothing")
	}
	t.Logf("writer saw %d failed attempts", failures.Load())
	countOnce(t, s, batches*size)
}

func TestOpenServerErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenServer(ctx, "http://127.0.0.1:8123", Options{}); err == nil || !strings.Contains(err.Error(), "native") {
		t.Fatalf("http DSN: %v", err)
	}
	port, _ := testsvc.FreePort()
	start := time.Now()
	_, err := OpenServer(ctx, fmt.Sprintf("clickhouse://127.0.0.1:%d", port), Options{DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("connected to a port nobody listens on")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("failing to connect took %v", time.Since(start))
	}
}
