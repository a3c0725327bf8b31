package engine

// Tests of package segment's index handling that the engine depends on: a
// stale offset or time index whose last entry points past the log must not
// be trusted on a clean open, and the largest timestamp must survive a time
// index shorter than the log. (Reads of the published end offset are
// covered by TestEndOffsetIsReadable.)

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/easel-io/easel/record"
	"github.com/easel-io/easel/segment"
)

// TestSegmentOpenIndexPastEnd: Segment.Open of a log whose offset index
// ends with an entry past the end of the log (left over from a longer log,
// or damaged) must not report NextOffset() == BaseOffset() while holding
// bytes. (The engine also detects that symptom and rescans, diskLog.load.)
func TestSegmentOpenIndexPastEnd(t *testing.T) {
	dir := t.TempDir()
	s, err := segment.Create(dir, 0, segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	batch := simpleBatch(t, 3, 20, 1)
	h, _ := record.ParseHeader(batch)
	if err := s.Append(batch, h); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var idx []byte
	idx = binary.BigEndian.AppendUint32(idx, 0)
	idx = binary.BigEndian.AppendUint32(idx, 0)
	idx = binary.BigEndian.AppendUint32(idx, 10)
	idx = binary.BigEndian.AppendUint32(idx, uint32(len(batch))+100)
	if err := os.WriteFile(filepath.Join(dir, segment.FileName(0)+segment.IndexSuffix), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = segment.Open(dir, 0, segment.Config{}, true)
	if err != nil {
		return // rejected: fine, the caller recovers
	}
	defer s.Close()
	if s.NextOffset() != 3 {
		t.Fatalf("opened with %d bytes but next offset %d, want 3", s.Size(), s.NextOffset())
	}
}

// TestSegmentTimeIndexPastEnd: a well-formed time index whose entry points
// past the segment's last offset (left over from a longer log, or damaged)
// must be rebuilt, not trusted: trusted, it made OffsetForTimestamp skip
// the whole segment and return a later offset than it should.
func TestSegmentTimeIndexPastEnd(t *testing.T) {
	f := newCorruptFixture(t)
	dst := filepath.Join(t.TempDir(), "d")
	for _, seg := range []int{0, len(f.logs) - 1} {
		f.copyTo(t, dst)
		logPath := f.relPath(dst, f.logs[seg])
		var b []byte
		b = binary.BigEndian.AppendUint64(b, 10)
		b = binary.BigEndian.AppendUint32(b, 1000)
		if err := os.WriteFile(logPath[:len(logPath)-len(segment.LogSuffix)]+segment.TimeIndexSuffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
		checkPartition(t, dst, f.batches, fmt.Sprintf("time index past the end of segment %d", seg))
	}
}

// TestSegmentLargestTimestampShortTimeIndex demonstrates a bug in package
// segment: a time index that is a valid but short prefix of what the log
// holds is trusted, and LargestTimestamp (which retention.ms uses) reports
// the largest of the prefix and of the log's tail after the last offset
// index entry, missing the batches in between. The segment then looks older
// than it is and retention can delete it early. Since commit 2aafb6f
// (indexes msynced when sealing) a crash should no longer leave such an
// index below the recovery point; damage still can. Open could compare the
// time index's last entry with the tail scan (a batch in the tail whose
// maxTimestamp exceeds every entry, yet has no entry, means entries are
// missing) and rebuild. (OffsetForTimestamp still answers right: it scans
// forward from the entry it finds.)
func TestSegmentLargestTimestampShortTimeIndex(t *testing.T) {
	f := newCorruptFixture(t)
	dst := filepath.Join(t.TempDir(), "d")
	f.copyTo(t, dst)
	logPath := f.relPath(dst, f.logs[0])
	ti := logPath[:len(logPath)-len(segment.LogSuffix)] + segment.TimeIndexSuffix
	b, err := os.ReadFile(ti)
	if err != nil || len(b) < 2*12 {
		t.Fatalf("time index: %d bytes, %v", len(b), err)
	}
	if err := os.WriteFile(ti, b[:12], 0o644); err != nil { // keep the first entry
		t.Fatal(err)
	}
	want := int64(-1)
	for _, batch := range f.batches[:f.firstBatchOf(t, 1)] {
		h, _ := record.ParseHeader(batch)
		want = max(want, h.MaxTimestamp)
	}
	e := mustOpen(t, dst, corruptOpts())
	defer e.Close()
	p, _ := e.Partition(corruptTopic, 0)
	if got := p.log.Segments()[0].LargestTimestamp; got != want {
		t.Fatalf("largest timestamp of segment 0: %d, want %d", got, want)
	}
}
