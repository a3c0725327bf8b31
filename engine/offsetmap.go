package engine

import (
	"github.com/cespare/xxhash/v2"
)

// offsetMap is the cleaner's dedupe buffer (Kafka's SkimpyOffsetMap): for
// each key seen in the dirty part of a log, the offset of its latest
// record. Keys are stored as a 128-bit hash (two seeded xxhash64), so an
// entry takes offsetMapEntry bytes whatever the key's size, and the map
// never holds more than its slots allow (see newOffsetMap). Two keys with
// the same 128-bit hash would be taken for one; at 2^-128 per pair that is
// the same bet Kafka makes with MD5.
//
// Open addressing with linear probing; an entry whose off is 0 is free
// (offsets are stored plus one).
type offsetMap struct {
	slots []offsetSlot
	used  int // entries in use
	limit int // entries allowed: the load factor times len(slots)
	d     *xxhash.Digest
}

type offsetSlot struct {
	h1, h2 uint64
	off    int64 // offset + 1; 0: free
}

// offsetMapEntry is the memory one slot takes, for sizing the map by
// log.cleaner.dedupe.buffer.size.
const offsetMapEntry = 24

// offsetMapLoad is the share of slots used at most
// (log.cleaner.io.buffer.load.factor, 0.9 in Kafka).
const offsetMapLoad = 0.9

// Seeds of the two halves of a key's hash.
const (
	offsetSeed1 = 0x9e3779b97f4a7c15
	offsetSeed2 = 0xc2b2ae3d27d4eb4f
)

// reset empties the map and sizes it for up to want entries, within
// maxBytes of slots (at least 64 slots). It keeps the slot array when it is
// big enough, so the cleaner allocates once.
func (m *offsetMap) reset(want int64, maxBytes int64) {
	n := int64(float64(want)/offsetMapLoad) + 1
	n = min(n, maxBytes/offsetMapEntry)
	n = max(n, 64)
	if int64(cap(m.slots)) >= n {
		m.slots = m.slots[:n]
		clear(m.slots)
	} else {
		m.slots = make([]offsetSlot, n)
	}
	m.used = 0
	m.limit = int(float64(n) * offsetMapLoad)
}

// room reports whether n more entries surely fit.
func (m *offsetMap) room(n int) bool { return m.used+n <= m.limit }

// hash is a key's 128-bit hash.
func (m *offsetMap) hash(key []byte) (uint64, uint64) {
	if m.d == nil {
		m.d = xxhash.NewWithSeed(offsetSeed1)
	}
	m.d.ResetWithSeed(offsetSeed1)
	_, _ = m.d.Write(key)
	h1 := m.d.Sum64()
	m.d.ResetWithSeed(offsetSeed2)
	_, _ = m.d.Write(key)
	return h1, m.d.Sum64()
}

// slot returns the slot holding key's hash, or the free slot where it
// would go, and the hash.
func (m *offsetMap) slot(key []byte) (*offsetSlot, uint64, uint64) {
	h1, h2 := m.hash(key)
	n := uint64(len(m.slots))
	for i := h1 % n; ; i = (i + 1) % n {
		if s := &m.slots[i]; s.off == 0 || (s.h1 == h1 && s.h2 == h2) {
			return s, h1, h2
		}
	}
}

// put records off as the latest offset of key. The caller checks room
// first; put on a full map does nothing and returns false.
func (m *offsetMap) put(key []byte, off int64) bool {
	s, h1, h2 := m.slot(key)
	if s.off != 0 {
		s.off = max(s.off, off+1)
		return true
	}
	if m.used >= m.limit {
		return false
	}
	*s = offsetSlot{h1: h1, h2: h2, off: off + 1}
	m.used++
	return true
}

// get returns the latest offset recorded for key, or -1.
func (m *offsetMap) get(key []byte) int64 {
	if len(m.slots) == 0 {
		return -1
	}
	s, _, _ := m.slot(key)
	return s.off - 1 // a free slot: -1
}
