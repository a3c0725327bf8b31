package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/easel-io/easel/engine"
)

var testID = engine.TopicID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// sampleRecords holds one record of every type, with every field set.
func sampleRecords() []Record {
	return []Record{
		ClusterIDRecord{ClusterID: "c-1"},
		RegisterBrokerRecord{BrokerInfo: BrokerInfo{ID: 7, Incarnation: 1 << 40, Host: "h7", Port: 9092,
			RaftAddr: "h7:9093", Rack: "r1", ControllerEligible: true}, Epoch: 3, Fenced: true},
		FenceBrokerRecord{Broker: 7, Epoch: 4},
		UnfenceBrokerRecord{Broker: 7, Epoch: 4},
		TopicRecord{Name: "t", ID: testID, Configs: []Config{{"a", "1"}, {"b", ""}}},
		PartitionRecord{Topic: testID, Partition: 2, Replicas: []int32{7, 8}, ISR: []int32{8}, Leader: 8, LeaderEpoch: 5, PartitionEpoch: 6},
		PartitionChangeRecord{Topic: testID, Partition: 2, LeaderEpoch: 5, PartitionEpoch: 6, Leader: NoLeaderChange, ISR: []int32{8, 7}},
		PartitionChangeRecord{Topic: testID, Partition: 2, LeaderEpoch: 5, PartitionEpoch: 6, Leader: 7, ISR: []int32{}, Replicas: []int32{7}, Unclean: true},
		RemoveTopicRecord{Topic: testID},
		// Version 1: a moving partition, a change that sets a reassignment
		// (one list kept), one that clears it.
		PartitionRecord{Topic: testID, Partition: 3, Replicas: []int32{9, 7, 8}, ISR: []int32{8}, Leader: 8, LeaderEpoch: 1, PartitionEpoch: 2,
			Adding: []int32{9}, Removing: []int32{8}},
		PartitionChangeRecord{Topic: testID, Partition: 2, LeaderEpoch: 5, PartitionEpoch: 6, Leader: NoLeaderChange,
			Replicas: []int32{9, 7, 8}, Adding: []int32{9}},
		PartitionChangeRecord{Topic: testID, Partition: 2, LeaderEpoch: 5, PartitionEpoch: 6, Leader: 9, Replicas: []int32{9},
			Adding: []int32{}, Removing: []int32{}},
		// Version 2: a partition with an unclean election behind it, moving
		// or not.
		PartitionRecord{Topic: testID, Partition: 4, Replicas: []int32{7, 8}, ISR: []int32{8}, Leader: 8, LeaderEpoch: 6, PartitionEpoch: 9,
			UncleanEpoch: 6},
		PartitionRecord{Topic: testID, Partition: 5, Replicas: []int32{9, 7}, ISR: []int32{7}, Leader: 7, LeaderEpoch: 3, PartitionEpoch: 4,
			Adding: []int32{9}, UncleanEpoch: 2},
		ProducerIDsRecord{Broker: -1, BrokerEpoch: 0, Start: 1000, Size: 1 << 33},
		TopicConfigRecord{Topic: testID, Configs: []Config{{"retention.ms", "1"}, {"segment.bytes", "20000"}}},
		TopicConfigRecord{Topic: testID},
		BrokerConfigRecord{Broker: DefaultBrokerConfigs, Configs: []Config{{"log.retention.ms", "5"}}},
		BrokerConfigRecord{Broker: 3},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	recs := sampleRecords()
	b := AppendEntry(nil, recs)
	got, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("decoded\n%v\nwant\n%v", got, recs)
	}
	if !bytes.Equal(AppendEntry(nil, got), b) {
		t.Fatal("re-encoding differs")
	}
	// nil and empty ISRs differ in a change; decoding keeps the difference.
	c := got[7].(PartitionChangeRecord)
	if c.ISR == nil || len(c.ISR) != 0 || got[6].(PartitionChangeRecord).Replicas != nil {
		t.Fatalf("nullable arrays: %#v", c)
	}
	// Decoded records do not alias the input.
	for i := range b {
		b[i] = 0xff
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatal("decoded records alias the input")
	}
	if recs, err := DecodeEntry(AppendEntry(nil, nil)); err != nil || len(recs) != 0 {
		t.Fatalf("empty entry: %v %v", recs, err)
	}
}

// TestRecordLayout pins the bytes of one record: the format is frozen.
func TestRecordLayout(t *testing.T) {
	got := AppendRecord(nil, FenceBrokerRecord{Broker: 1, Epoch: 2})
	want := []byte{
		3, 0, // type fence-broker, version 0
		0, 0, 0, 12, // body length
		0, 0, 0, 1, // broker
		0, 0, 0, 0, 0, 0, 0, 2, // epoch
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	got = AppendEntry(nil, []Record{PartitionChangeRecord{Topic: testID, Leader: NoLeaderChange, ISR: []int32{1}}})
	want = append([]byte{0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 45}, testID[:]...)
	want = append(want,
		0, 0, 0, 0, // partition
		0, 0, 0, 0, 0, 0, 0, 0, // epochs replaced
		0xff, 0xff, 0xff, 0xfe, // leader -2: unchanged
		0, 0, 0, 1, 0, 0, 0, 1, // isr [1]
		0xff, 0xff, 0xff, 0xff, // replicas null
		0) // flags
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

// TestRecordLayoutV1 pins the version 1 bodies: version 0's fields, then
// the reassignment's lists; records without them stay version 0.
func TestRecordLayoutV1(t *testing.T) {
	v0 := AppendRecord(nil, PartitionRecord{Topic: testID, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1})
	if v0[1] != 0 {
		t.Fatalf("a partition without a reassignment is version %d", v0[1])
	}
	got := AppendRecord(nil, PartitionRecord{Topic: testID, Replicas: []int32{2, 1}, ISR: []int32{1}, Leader: 1, Adding: []int32{2}, Removing: []int32{1}})
	want := append([]byte{6, 1, 0, 0, 0, 68}, testID[:]...)
	want = append(want,
		0, 0, 0, 0, // partition
		0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, // replicas [2,1]
		0, 0, 0, 1, 0, 0, 0, 1, // isr [1]
		0, 0, 0, 1, // leader
		0, 0, 0, 0, 0, 0, 0, 0, // epochs
		0, 0, 0, 1, 0, 0, 0, 2, // adding [2]
		0, 0, 0, 1, 0, 0, 0, 1) // removing [1]
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	got = AppendRecord(nil, PartitionChangeRecord{Topic: testID, Leader: NoLeaderChange, Removing: []int32{}})
	want = append([]byte{7, 1, 0, 0, 0, 49}, testID[:]...)
	want = append(want,
		0, 0, 0, 0, // partition
		0, 0, 0, 0, 0, 0, 0, 0, // epochs replaced
		0xff, 0xff, 0xff, 0xfe, // leader unchanged
		0xff, 0xff, 0xff, 0xff, // isr null
		0xff, 0xff, 0xff, 0xff, // replicas null
		0,                      // flags
		0xff, 0xff, 0xff, 0xff, // adding null: kept
		0, 0, 0, 0) // removing []: cleared
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := AppendEntry(nil, []Record{FenceBrokerRecord{Broker: 1, Epoch: 2}})
	withBody := func(typ, vers byte, body ...byte) []byte {
		b := []byte{0, 0, 0, 0, 1, typ, vers}
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		return append(b, body...)
	}
	register := AppendRecord(nil, RegisterBrokerRecord{BrokerInfo: BrokerInfo{ID: 1, Host: "h", Port: 1}})
	badFlags := append([]byte{0, 0, 0, 0, 1}, register...)
	badFlags[len(badFlags)-1] = 0x80
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"entry version", append([]byte{1}, good[1:]...), ErrUnsupportedVersion},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"trailing", append(good[:len(good):len(good)], 0), ErrCorrupt},
		{"count beyond the bytes", []byte{0, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"unknown type", withBody(99, 0), ErrCorrupt},
		{"type 0", withBody(0, 0), ErrCorrupt},
		{"record version", withBody(3, 1, make([]byte, 12)...), ErrUnsupportedVersion},
		{"body too long", withBody(3, 0, make([]byte, 13)...), ErrCorrupt},
		{"body too short", withBody(3, 0, make([]byte, 11)...), ErrCorrupt},
		{"record length beyond the bytes", []byte{0, 0, 0, 0, 1, 3, 0, 0xff, 0, 0, 0}, ErrCorrupt},
		{"replica count beyond the limit", withBody(6, 0, append(make([]byte, 20), 0, 0, 0x10, 0)...), ErrCorrupt},
		{"nullable count -2", withBody(7, 0, append(make([]byte, 32), 0xff, 0xff, 0xff, 0xfe)...), ErrCorrupt},
		{"unknown flag", badFlags, ErrCorrupt},
		{"partition version 3", withBody(6, 3), ErrUnsupportedVersion},
		{"partition v2 without an unclean epoch", withBody(6, 2, append(partitionV1Empty(), 0, 0, 0, 0)...), ErrCorrupt},
		{"partition-change version 2", withBody(7, 2), ErrUnsupportedVersion},
		// Version 1 saying nothing version 0 could not: not canonical.
		{"partition v1 without lists", withBody(6, 1, partitionV1Empty()...), ErrCorrupt},
		{"partition-change v1 both null", withBody(7, 1, append(make([]byte, 32), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)...), ErrCorrupt},
	} {
		recs, err := DecodeEntry(tc.b)
		if !errors.Is(err, tc.want) || recs != nil {
			t.Errorf("%s: %v, %v; want %v", tc.name, recs, err, tc.want)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendEntry(nil, sampleRecords()))
	for _, r := range sampleRecords() {
		f.Add(AppendEntry(nil, []Record{r}))
	}
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeEntry(b)
		if err != nil {
			return
		}
		if got := AppendEntry(nil, recs); !bytes.Equal(got, b) {
			t.Fatalf("re-encodes differently:\n% x\n% x", got, b)
		}
		// Applying arbitrary records never panics and never breaks the
		// state's invariants.
		s := NewState()
		before := s.Snapshot()
		if err := s.Apply(recs); err != nil {
			if !bytes.Equal(s.Snapshot(), before) {
				t.Fatal("a rejected entry changed the state")
			}
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	h := newHarness(f)
	for _, c := range []string{"init", "register 1", "register 2 rack=a", "register 3", "caught-up 1", "caught-up 2",
		"caught-up 3", "create-topic t partitions=3 rf=2", "reassign t/0 replicas=3,1", "fail 2", "alloc-pids 1",
		"alter-topic-config t retention.ms=5", "alter-broker-config -1 log.retention.ms=7", "alter-broker-config 2 message.max.bytes=9"} {
		h.run(c)
	}
	// The fuzzer mutates what follows the header; the checksum is added
	// after, or it would reject nearly every input.
	body := func(snap []byte) []byte { return snap[len(snapshotMagic)+1 : len(snap)-8] }
	f.Add(body(h.s.Snapshot()))
	f.Add(body(NewState().Snapshot()))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := append([]byte(snapshotMagic+"\x00"), in...)
		b = binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
		s := NewState()
		if err := s.Restore(b); err != nil {
			if len(s.brokers) != 0 || s.clusterID != "" {
				t.Fatal("a failed restore changed the state")
			}
			return
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		// A restored state snapshots canonically, and that restores to
		// the same state.
		snap := s.Snapshot()
		r := NewState()
		if err := r.Restore(snap); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Snapshot(), snap) {
			t.Fatal("snapshot does not round-trip")
		}
	})
}

// partitionV1Empty is a partition body of version 0 followed by two empty
// lists.
func partitionV1Empty() []byte {
	r := PartitionRecord{Topic: testID, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}
	b := r.appendBody(nil)
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0)
}
