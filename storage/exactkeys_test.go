package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowwatch/flowwatch/internal/testsvc"
)

// trickyKeys are business keys that differ from each other by bytes a text format could
// lose: quotes, escapes, control characters, NUL, characters JSON writers escape, and
// characters that look alike.
var trickyKeys = []string{
	"u-\u00ff\u00fe", "u-\u00fe\u00ff", "u-\uFFFD\uFFFD", // the valid neighbours of u-\xff\xfe and u-\xfe\xff
	`q-'single'`, `q-"double"`, `b-back\slash`, `b-\\n literal`, "nl-\nline", "tab-\tx", "cr-\rx",
	"nul-\x00-byte", "del-\x7f", "ls-\u2028ps-\u2029", "slash-/", "emoji-\U0001F600",
	"e\u0301", "\u00e9", // é decomposed and composed: two keys
	" lead", "trail ", "",
}

// testExactKeys writes one event per tricky key and reads each back by its key, byte for
// byte, then checks that keys that are not valid UTF-8 are refused, naming the row, with
// nothing of the batch written.
func testExactKeys(t *testing.T, s Store) {
	ctx := context.Background()
	var evs []CheckpointEvent
	for i, k := range trickyKeys {
		evs = append(evs, CheckpointEvent{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: k, KeyAttr: "order.id",
			Time: t0.Add(time.Duration(i) * time.Second), Service: "svc", Name: "n", Status: "ok"})
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, k := range trickyKeys {
		got, err := s.InstanceEvents(ctx, "t", "f", k)
		if err != nil {
			t.Fatalf("InstanceEvents(%q): %v", k, err)
		}
		if len(got) != 1 || got[0].Key != k {
			t.Errorf("InstanceEvents(%q) = %d events %q, want the one event of that key", k, len(got), keysOf(got))
		}
	}
	all, err := s.EventsSince(ctx, time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string(nil), trickyKeys...)
	sort.Strings(want)
	if got := keysOf(all); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("EventsSince keys = %q, want %q", got, want)
	}

	// Alias values are identities too: each resolves to its own key.
	var aliases []Alias
	for i, k := range trickyKeys {
		aliases = append(aliases, Alias{Tenant: "t", Flow: "f", Attr: "payment.id", Value: k, Key: fmt.Sprintf("o-%d", i), Time: t0})
	}
	if err := s.WriteAliases(ctx, aliases); err != nil {
		t.Fatal(err)
	}
	resolved, err := s.ResolveAliases(ctx, "t", "f", "payment.id", trickyKeys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range trickyKeys {
		if got := resolved[k]; got != fmt.Sprintf("o-%d", i) {
			t.Errorf("alias %q resolves to %q, want o-%d", k, got, i)
		}
	}

	bad := []CheckpointEvent{
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "ok-key", KeyAttr: "order.id", Time: t0.Add(time.Hour), Name: "n"},
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "u-\xff\xfe", KeyAttr: "order.id", Time: t0.Add(time.Hour), Name: "n"},
		{Tenant: "t", Flow: "f", Checkpoint: "placed", Key: "u-\xfe\xff", KeyAttr: "order.id", Time: t0.Add(time.Hour), Name: "n"},
	}
	err = s.WriteEvents(ctx, bad)
	if !errors.Is(err, ErrNotUTF8) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "event 1") || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("keys that are not UTF-8: %v, want ErrNotUTF8 naming events 1 and 2", err)
	}
	if got, _ := s.InstanceEvents(ctx, "t", "f", "ok-key"); len(got) != 0 {
		t.Fatalf("a refused batch wrote %d rows", len(got))
	}
	if err := s.WriteAliases(ctx, []Alias{{Tenant: "t", Flow: "f", Attr: "payment.id", Value: "p-\xff", Key: "k", Time: t0}}); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("an alias value that is not UTF-8: %v, want ErrNotUTF8", err)
	}
}

func keysOf(evs []CheckpointEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Key
	}
	sort.Strings(out)
	return out
}

func TestExactKeysEmbedded(t *testing.T) {
	testExactKeys(t, openEmbedded(t, "exact_keys"))
}

func TestExactKeysServer(t *testing.T) {
	s := openLegacy(t, testsvc.ClickHouseT(t), Options{Database: "exact_keys"})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	testExactKeys(t, s)
}

// RowBinary rows go in as bytes through the engine's insert stream: ids whose first byte is
// whitespace (which inline data after FORMAT would lose), batches far above the half
// megabyte that inline binary data is cut at, and reads running beside the inserts.
func TestEmbeddedBinaryInserts(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "binary_inserts")
	var edge []CheckpointEvent
	for i, first := range []byte{'\n', ' ', '\t', '\r', ';', 0} {
		edge = append(edge, CheckpointEvent{EventID: fmt.Sprintf("%014x%02x", i+1, first), Tenant: "t", Flow: "f", Checkpoint: "placed",
			Key: fmt.Sprintf("k%d", i), KeyAttr: "id", Time: t0.Add(time.Duration(i)), Name: "n"})
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
	big := genEvents(7, 30000)
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
