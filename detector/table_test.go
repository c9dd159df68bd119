package detector

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestInstTableAgainstMap drives the table and a map with the same random operations.
func TestInstTableAgainstMap(t *testing.T) {
	var tab instTable
	ref := map[string]*inst{}
	rng := rand.New(rand.NewPCG(1, 2))
	for op := 0; op < 200_000; op++ {
		id := fmt.Sprintf("k%d", rng.IntN(5000))
		switch rng.IntN(3) {
		case 0, 1:
			if ref[id] == nil {
				in := &inst{id: id}
				tab.put(in)
				ref[id] = in
			}
		case 2:
			tab.del(id)
			delete(ref, id)
		}
		if op%997 == 0 {
			if tab.len() != len(ref) {
				t.Fatalf("op %d: len %d, want %d", op, tab.len(), len(ref))
			}
			for k, v := range ref {
				if tab.get(k) != v {
					t.Fatalf("op %d: get(%s) wrong", op, k)
				}
			}
		}
		if got := tab.getBytes([]byte(id)); got != ref[id] {
			t.Fatalf("op %d: getBytes(%s) = %v, want %v", op, id, got, ref[id])
		}
		if got := tab.get(id); got != ref[id] {
			t.Fatalf("op %d: get(%s) = %v, want %v", op, id, got, ref[id])
		}
	}
	for k := range ref {
		tab.del(k)
	}
	if tab.len() != 0 || tab.get("k1") != nil || len(tab.slots) != minTableSize {
		t.Fatalf("after deleting all: len %d, slots %d", tab.len(), len(tab.slots))
	}
}
