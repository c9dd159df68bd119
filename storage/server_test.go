package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testsvc"
	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

func openLegacy(t *testing.T, ch *testsvc.ClickHouse, o storage.Options) storage.Store {
	t.Helper()
	s, err := storage.OpenServer(context.Background(), ch.DSN(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !storage.IsLegacy(s) {
		t.Fatal("an 18.16 server was not detected as legacy")
	}
	return s
}

// countOnce checks that every event of want is stored exactly once, as the reader sees it and
// after the server folds duplicates.
func countOnce(t *testing.T, s storage.Store, db string, want int) {
	t.Helper()
	ctx := context.Background()
	n, err := storage.QueryUints(ctx, s, "SELECT count(), uniqExact(event_id) FROM "+db+".checkpoint_events", 2)
	if err != nil {
		t.Fatal(err)
	}
	total, distinct := n[0], n[1]
	n, err = storage.QueryUints(ctx, s, "SELECT count() FROM "+db+".checkpoint_events FINAL", 1)
	if err != nil {
		t.Fatal(err)
	}
	if final := n[0]; distinct != uint64(want) || final != uint64(want) {
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
	s := openLegacy(t, ch, storage.Options{Database: "legacy"})
	for i := 0; i < 2; i++ {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate %d: %v", i+1, err)
		}
	}

	t.Run("BatchInsertAndRead", func(t *testing.T) {
		evs := storagetest.FixtureEvents()
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteEvents(ctx, storagetest.FixtureEvents()[2:]); err != nil { // a partial replay
			t.Fatal(err)
		}
		big := storagetest.StreamEvents(1, 20000)
		if err := s.WriteEvents(ctx, big); err != nil {
			t.Fatal(err)
		}
		countOnce(t, s, "legacy", len(evs)+len(big))
		k1, err := s.InstanceEvents(ctx, "acme", "order", "k1")
		if err != nil {
			t.Fatal(err)
		}
		if len(k1) != 3 || k1[0].Checkpoint != "placed" || k1[0].Attributes["quote"] != evs[0].Attributes["quote"] || !k1[0].Time.Equal(evs[0].Time) {
			t.Fatalf("InstanceEvents(k1) = %+v", k1)
		}
		if _, _, err := s.Instances(ctx, storage.InstanceFilter{}); !errors.Is(err, storage.ErrUnsupported) {
			t.Fatalf("Instances on legacy tables: %v, want storage.ErrUnsupported", err)
		}
	})

	t.Run("Auth", func(t *testing.T) {
		good := openLegacy(t, ch, storage.Options{Database: "legacy", Username: testsvc.ClickHouseUser, Password: testsvc.ClickHousePassword})
		if _, err := good.EventsSince(ctx, time.Time{}, 1); err != nil {
			t.Fatalf("with the right password: %v", err)
		}
		_, err := storage.OpenServer(ctx, ch.DSN(), storage.Options{Username: testsvc.ClickHouseUser, Password: "wrong"})
		if err == nil || !strings.Contains(err.Error(), "open server store") {
			t.Fatalf("with a wrong password: %v", err)
		}
		t.Logf("wrong password: %v", err)
	})

	t.Run("TLS", func(t *testing.T) {
		s, err := storage.OpenServer(ctx, ch.TLSDSN(), storage.Options{Database: "legacy", TLS: true, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("over TLS: %v", err)
		}
		defer s.Close()
		if _, err := s.EventsSince(ctx, time.Time{}, 1); err != nil {
			t.Fatalf("query over TLS: %v", err)
		}
		// Verification on, with the server's certificate as the authority.
		trusted, err := storage.OpenServer(ctx, ch.TLSDSN(), storage.Options{Database: "legacy", TLS: true, CAFile: ch.CertFile})
		if err != nil {
			t.Fatalf("over TLS with the CA file: %v", err)
		}
		trusted.Close()
		if _, err := storage.OpenServer(ctx, ch.TLSDSN(), storage.Options{TLS: true, CAFile: "/nonexistent.pem"}); err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("a missing CA file: %v", err)
		}
		// Verification on: the self-signed certificate is refused.
		if _, err := storage.OpenServer(ctx, ch.TLSDSN(), storage.Options{TLS: true, DialTimeout: time.Second}); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("an untrusted certificate was accepted: %v", err)
		}
		// TLS towards the plain port fails quickly.
		if _, err := storage.OpenServer(ctx, ch.DSN(), storage.Options{TLS: true, InsecureSkipVerify: true, DialTimeout: time.Second, ReadTimeout: time.Second}); err == nil {
			t.Fatal("TLS handshake with a plain port succeeded")
		}
	})

	t.Run("ReadTimeout", func(t *testing.T) {
		slow := openLegacy(t, ch, storage.Options{Database: "legacy", ReadTimeout: 300 * time.Millisecond})
		start := time.Now()
		_, err := storage.QueryUints(ctx, slow, "SELECT sleep(2)", 1)
		if err == nil {
			t.Fatal("a 2 s query finished within a 300 ms read timeout")
		}
		if d := time.Since(start); d > 1900*time.Millisecond { // the query itself takes 2 s
			t.Fatalf("read timeout took %v", d)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := storage.QueryUints(cctx, s, "SELECT sleep(2)", 1); err == nil {
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
	s := openLegacy(t, ch, storage.Options{Database: "crash", ReadTimeout: 5 * time.Second, DialTimeout: time.Second})
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
			evs := storagetest.StreamEvents(b, size)
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
	countOnce(t, s, "crash", batches*size)
}

func TestOpenServerErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := storage.OpenServer(ctx, "http://127.0.0.1:8123", storage.Options{}); err == nil || !strings.Contains(err.Error(), "native") {
		t.Fatalf("http DSN: %v", err)
	}
	port, _ := testsvc.FreePort()
	start := time.Now()
	_, err := storage.OpenServer(ctx, fmt.Sprintf("clickhouse://127.0.0.1:%d", port), storage.Options{DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("connected to a port nobody listens on")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("failing to connect took %v", time.Since(start))
	}
}
