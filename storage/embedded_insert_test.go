package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/storage"
	"github.com/flowwatch/flowwatch/storage/storagetest"
)

// RowBinary rows go in as bytes through the engine's insert stream: ids whose first byte is
// whitespace (which inline data after FORMAT would lose), batches far above the half
// megabyte that inline binary data is cut at, and reads running beside the inserts.
func TestEmbeddedBinaryInserts(t *testing.T) {
	ctx := context.Background()
	s := storage.OpenEmbeddedForTest(t, "binary_inserts")
	var edge []storage.CheckpointEvent
	for i, first := range []byte{'\n', ' ', '\t', '\r', ';', 0} {
		edge = append(edge, storage.CheckpointEvent{EventID: fmt.Sprintf("%014x%02x", i+1, first), Tenant: "t", Flow: "f", Checkpoint: "placed",
			Key: fmt.Sprintf("k%d", i), KeyAttr: "id", Time: storagetest.T0.Add(time.Duration(i)), Name: "n"})
	}
	if err := s.WriteEvents(ctx, edge); err != nil {
		t.Fatal(err)
	}
	got, err := s.EventsSince(ctx, time.Time{}, 100)
	if err != nil || len(got) != len(edge) {
		t.Fatalf("ids starting with whitespace: %d events read back, %v", len(got), err)
	}
	for _, e := range got {
		found := false
		for _, w := range edge {
			found = found || (w.EventID == e.EventID && w.Key == e.Key)
		}
		if !found {
			t.Errorf("read back %s %q, which was not written", e.EventID, e.Key)
		}
	}

	// 30,000 rows (about 6 MB of RowBinary) in one insert, with reads beside it.
	big := storagetest.StreamEvents(7, 30000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.EventsSince(ctx, time.Time{}, 10); err != nil {
				readErr = err
				return
			}
		}
	})
	err = s.WriteEvents(ctx, big)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("one insert of %d rows: %v", len(big), err)
	}
	if readErr != nil {
		t.Fatalf("a read beside the insert: %v", readErr)
	}
	all, err := s.EventsSince(ctx, time.Time{}, 100000)
	if err != nil || len(all) != len(edge)+len(big) {
		t.Fatalf("%d events stored, want %d (%v)", len(all), len(edge)+len(big), err)
	}
}
