package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// legacyKey and legacyValue encode the records of the engine's offset store
// before this package owned __consumer_offsets (856c31d:engine/offsets.go):
//
//	key:   version int16 (=1) | group len int16 | group | topic len int16 | topic | partition int32
//	value: offset int64 | leaderEpoch int32 | commitTime int64 (ms) | metadata len int32 | metadata
func legacyKey(group, topic string, partition int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(group)))
	b = append(b, group...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	return binary.BigEndian.AppendUint32(b, uint32(partition))
}

func legacyValue(offset int64, epoch int32, commitMs int64, metadata string) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(epoch))
	b = binary.BigEndian.AppendUint64(b, uint64(commitMs))
	b = binary.BigEndian.AppendUint32(b, uint32(len(metadata)))
	return append(b, metadata...)
}

// legacyWant is what the legacy directory of writeLegacyDir holds, as
// "group topic/partition" → "offset epoch metadata commitMs".
var legacyWant = map[string]string{}

// writeLegacyDir writes a data directory as the previous version left it:
// a one-partition __consumer_offsets of legacy records (commits of 60
// groups, some overwritten, one group's offsets deleted by tombstones, an
// undecodable record), in several batches, through the engine.
func writeLegacyDir(t *testing.T, dir string) {
	t.Helper()
	eng, err := engine.Open(dir, engine.Options{Logger: quiet, RetentionCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateTopic(engine.ConsumerOffsetsTopic, engine.TopicConfig{Partitions: 1, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int32{"t": 3, "u": 1} {
		if err := eng.CreateTopic(name, engine.TopicConfig{Partitions: n}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := eng.Partition(engine.ConsumerOffsetsTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	clear(legacyWant)
	for round := range 3 {
		var recs []record.Record
		for g := range 60 {
			group := fmt.Sprintf("legacy-%d", g)
			for part := range int32(3) {
				off := int64(100*round + g + int(part))
				md := fmt.Sprintf("md %d/%d", g, round)
				ms := int64(1_700_000_000_000 + round)
				recs = append(recs, record.Record{Key: legacyKey(group, "t", part), Value: legacyValue(off, int32(round), ms, md)})
				legacyWant[fmt.Sprintf("%s t/%d", group, part)] = fmt.Sprintf("%d %d %s %d", off, round, md, ms)
			}
		}
		if _, err := p.AppendRecords(codec.None, recs...); err != nil {
			t.Fatal(err)
		}
	}
	var tomb []record.Record
	for part := range int32(3) {
		tomb = append(tomb, record.Record{Key: legacyKey("legacy-7", "t", part)})
		delete(legacyWant, fmt.Sprintf("legacy-7 t/%d", part))
	}
	tomb = append(tomb,
		record.Record{Key: []byte{0, 9, 'x'}, Value: []byte("junk")},
		record.Record{Key: legacyKey("solo", "u", 0), Value: legacyValue(5, -1, 1_700_000_000_123, "")})
	legacyWant["solo u/0"] = "5 -1  1700000000123"
	if _, err := p.AppendRecords(codec.None, tomb...); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated checks that h's coordinator serves exactly legacyWant,
// that __consumer_offsets has n partitions of Kafka-format records, each
// group's on its partition, and that the staging topic is gone.
func checkMigrated(t *testing.T, h *harness, n int32) {
	t.Helper()
	info, err := h.eng.Topic(engine.ConsumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Partitions != n || info.Config.RetentionMs != -1 || info.Config.RetentionBytes != -1 {
		t.Fatalf("topic config %+v", info.Config)
	}
	if _, err := h.eng.Topic(stagingTopic); !errors.Is(err, engine.ErrUnknownTopic) {
		t.Fatalf("staging topic left: %v", err)
	}
	got := map[string]string{}
	recs := rawRecords(t, h.eng)
	if !isFormatMarker(recs[0].key, recs[0].value) {
		t.Fatalf("first record %+v", recs[0])
	}
	for _, r := range recs[1:] {
		var k kmsg.OffsetCommitKey
		var v kmsg.OffsetCommitValue
		if err := k.ReadFrom(r.key); err != nil || k.Version != 1 {
			t.Fatalf("key %x: %v", r.key, err)
		}
		if err := v.ReadFrom(r.value); err != nil || v.Version != 3 {
			t.Fatalf("value %x: %v", r.value, err)
		}
		if p := PartitionFor(k.Group, n); p != r.partition {
			t.Fatalf("group %q on partition %d, want %d", k.Group, r.partition, p)
		}
		id := fmt.Sprintf("%s %s/%d", k.Group, k.Topic, k.Partition)
		if _, dup := got[id]; dup {
			t.Fatalf("%s twice", id)
		}
		got[id] = fmt.Sprintf("%d %d %s %d", v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp)
	}
	if fmt.Sprint(got) != fmt.Sprint(legacyWant) {
		t.Fatalf("migrated records:\n%v\nwant\n%v", got, legacyWant)
	}
	// And the coordinator serves them.
	for id, want := range legacyWant {
		group, tp, _ := strings.Cut(id, " ")
		offs, top := h.fetch(group, nil)
		wantCode(t, "fetch "+group, top, 0)
		if o := offs[tp]; fmt.Sprint(o) != strings.Fields(want)[0] {
			t.Fatalf("%s: fetched %d, want %s", id, o, want)
		}
	}
}

// TestMigrateLegacyOffsets starts on a directory of the previous version:
// its offsets move to a 7-partition __consumer_offsets in Kafka's format.
func TestMigrateLegacyOffsets(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 7}}
	writeLegacyDir(t, h.dir)
	var steps []string
	h.hooks.migrate = func(s string) error { steps = append(steps, s); return nil }
	h.open()
	t.Cleanup(h.close)
	if err := h.c.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("steps: %v", steps)
	checkMigrated(t, h, 7)
	// A restart does not migrate again.
	steps = nil
	h.restart()
	if len(steps) != 0 {
		t.Fatalf("second start ran migration steps %v", steps)
	}
	checkMigrated(t, h, 7)
}

var errCrash = errors.New("simulated crash")

// TestMigrationCrashSafe stops the migration at every step in turn (as a
// crash would: the hook fails, the broker goes away with what is on disk),
// restarts, and checks that the next start completes it with every legacy
// offset.
func TestMigrationCrashSafe(t *testing.T) {
	// The steps of an uninterrupted migration.
	var steps []string
	{
		h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 7}}
		writeLegacyDir(t, h.dir)
		h.hooks.migrate = func(s string) error { steps = append(steps, s); return nil }
		h.open()
		h.close()
	}
	if len(steps) < 6 {
		t.Fatalf("only %d steps: %v", len(steps), steps)
	}
	for crashAt := range steps {
		t.Run(fmt.Sprintf("%d-%s", crashAt, strings.ReplaceAll(steps[crashAt], " ", "-")), func(t *testing.T) {
			h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 7}}
			writeLegacyDir(t, h.dir)
			n := 0
			h.hooks.migrate = func(string) error {
				if n++; n > crashAt {
					return errCrash
				}
				return nil
			}
			h.open()
			if err := h.c.Err(); !errors.Is(err, errCrash) {
				t.Fatalf("start with a crash at step %d: %v", crashAt, err)
			}
			h.close()
			// A crash in the second start too, one step later.
			n, crashAt = 0, crashAt+1
			h.open()
			h.close()
			h.hooks.migrate = nil
			h.open()
			t.Cleanup(h.close)
			if err := h.c.Err(); err != nil {
				t.Fatal(err)
			}
			checkMigrated(t, h, 7)
		})
	}
}

// TestUnknownFormatRefused starts on a __consumer_offsets with several
// partitions and records but no format marker: the coordinator refuses it
// and says what to do.
func TestUnknownFormatRefused(t *testing.T) {
	dir := t.TempDir()
	eng, err := engine.Open(dir, engine.Options{Logger: quiet, RetentionCheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateTopic(engine.ConsumerOffsetsTopic, engine.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	p, _ := eng.Partition(engine.ConsumerOffsetsTopic, 1)
	if _, err := p.AppendRecords(codec.None, record.Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	c := New(eng, Config{Logger: quiet})
	defer c.Close()
	err = c.Err()
	if !errors.Is(err, errUnknownFormat) || !strings.Contains(err.Error(), "move the directories __consumer_offsets-*") {
		t.Fatalf("err = %v", err)
	}
	r := c.Heartbeat(t.Context(), &kmsg.HeartbeatRequest{Version: 4, Group: "g", MemberID: "m"})
	wantCode(t, "heartbeat", r.ErrorCode, 15) // COORDINATOR_NOT_AVAILABLE
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMarkerMissingAfterCreate covers a crash between creating the topic
// and writing its marker: the empty topic is taken, and marked.
func TestMarkerMissingAfterCreate(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 4}}
	h.hooks.migrate = func(s string) error {
		if s == "write marker" {
			return errCrash
		}
		return nil
	}
	h.open()
	if !errors.Is(h.c.Err(), errCrash) {
		t.Fatalf("err = %v", h.c.Err())
	}
	h.close()
	h.hooks.migrate = nil
	h.open()
	t.Cleanup(h.close)
	if err := h.c.Err(); err != nil {
		t.Fatal(err)
	}
	recs := rawRecords(t, h.eng)
	if len(recs) != 1 || !isFormatMarker(recs[0].key, recs[0].value) {
		t.Fatalf("records %+v", recs)
	}
}
