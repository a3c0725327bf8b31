package segment

import (
	"os"
	"path/filepath"
	"testing"
)

// MappedIndexBytes is what the index files take on disk (their
// preallocated room included) while the indexes are open, and 0 once the
// segment is closed.
func TestMappedIndexBytes(t *testing.T) {
	dir := t.TempDir()
	s, err := Create(dir, 0, Config{IndexInterval: 64, MaxIndexBytes: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 200, 100)
	got := s.MappedIndexBytes()
	var want int64
	for _, ext := range []string{"*.index", "*.timeindex"} {
		ms, _ := filepath.Glob(filepath.Join(dir, ext))
		for _, m := range ms {
			fi, err := os.Stat(m)
			if err != nil {
				t.Fatal(err)
			}
			want += fi.Size()
		}
	}
	if got == 0 || got != want {
		t.Fatalf("MappedIndexBytes %d, index files hold %d bytes", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := s.MappedIndexBytes(); n != 0 {
		t.Fatalf("MappedIndexBytes after Close: %d", n)
	}
}

// RecordsIn counts the records of the whole batches of a region ReadTo
// returned: 3 per batch here, and none of a batch the region cuts.
func TestRecordsIn(t *testing.T) {
	s, err := Create(t.TempDir(), 0, Config{IndexInterval: 64, MaxIndexBytes: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batches := fill(t, s, 10, 100)
	size := int64(len(batches[0]))
	r, err := s.Read(0, int(4*size+size/2)) // four whole batches and half of the fifth
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.RecordsIn(r.Pos, r.Len); err != nil || n != 12 {
		t.Fatalf("RecordsIn(%d, %d) = %d, %v; want 12", r.Pos, r.Len, n, err)
	}
	if n, err := s.RecordsIn(0, 10*size); err != nil || n != 30 {
		t.Fatalf("RecordsIn of the whole log = %d, %v; want 30", n, err)
	}
}
