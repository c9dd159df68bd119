package detector

import "hash/maphash"

// instTable holds the open instances by id: an open-addressing hash table of pointers with
// linear probing and backward-shift deletion. A slot costs 8 bytes where a Go map entry of a
// string key and a pointer costs about 40 — the difference is a fifth of what an open
// instance costs (see BenchmarkOpenInstanceMemory).
type instTable struct {
	slots []*inst
	n     int
	seed  maphash.Seed
}

const minTableSize = 64

func (t *instTable) home(id string) int {
	return int(maphash.String(t.seed, id) & uint64(len(t.slots)-1))
}

// get returns the instance with this id, or nil.
func (t *instTable) get(id string) *inst {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		in := t.slots[i]
		if in == nil {
			return nil
		}
		if in.id == id {
			return in
		}
	}
}

// getBytes is get for an id held in a byte slice, without allocating.
func (t *instTable) getBytes(id []byte) *inst {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := int(maphash.Bytes(t.seed, id) & uint64(mask)); ; i = (i + 1) & mask {
		in := t.slots[i]
		if in == nil {
			return nil
		}
		if in.id == string(id) {
			return in
		}
	}
}

// put adds an instance whose id is not in the table.
func (t *instTable) put(in *inst) {
	if (t.n+1)*5 > len(t.slots)*4 { // keep the load under 80 %
		t.resize(max(minTableSize, 2*len(t.slots)))
	}
	t.place(in)
	t.n++
}

func (t *instTable) place(in *inst) {
	mask := len(t.slots) - 1
	i := t.home(in.id)
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = in
}

// del removes the instance with this id, if present.
func (t *instTable) del(id string) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := t.home(id)
	for {
		in := t.slots[i]
		if in == nil {
			return
		}
		if in.id == id {
			break
		}
		i = (i + 1) & mask
	}
	// Backward shift: move later entries of the probe run into the hole when their home
	// does not lie cyclically in (hole, position].
	for j := i; ; {
		t.slots[i] = nil
		for {
			j = (j + 1) & mask
			if t.slots[j] == nil {
				t.n--
				if t.n*8 < len(t.slots) && len(t.slots) > minTableSize {
					t.resize(len(t.slots) / 2) // give memory back after a burst
				}
				return
			}
			k := t.home(t.slots[j].id)
			if i <= j {
				if i < k && k <= j {
					continue
				}
			} else if i < k || k <= j {
				continue
			}
			break
		}
		t.slots[i] = t.slots[j]
		i = j
	}
}

func (t *instTable) resize(size int) {
	old := t.slots
	if t.slots == nil {
		t.seed = maphash.MakeSeed()
	}
	t.slots = make([]*inst, size)
	for _, in := range old {
		if in != nil {
			t.place(in)
		}
	}
}

func (t *instTable) len() int { return t.n }
