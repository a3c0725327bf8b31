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
