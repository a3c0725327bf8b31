package group

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// rawRecord is a record of __consumer_offsets as read back through the
// engine.
type rawRecord struct {
	partition  int32
	offset     int64
	key, value []byte
}

// rawRecords reads every record of every partition of __consumer_offsets.
func rawRecords(t testing.TB, eng *engine.Engine) []rawRecord {
	t.Helper()
	info, err := eng.Topic(engine.ConsumerOffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawRecord
	for p := range info.Config.Partitions {
		part, err := eng.Partition(engine.ConsumerOffsetsTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		it := part.Records(part.StartOffset())
		for it.Next() {
			r := it.Record()
			out = append(out, rawRecord{p, r.Offset, cloneNil(r.Key), cloneNil(r.Value)})
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// stored replays the log with kmsg's decoders alone and returns, by group,
// the keys that are live (not deleted by a later tombstone), as
// "offset topic/partition" and "metadata".
func (h *harness) stored() map[string][]string {
	live := map[string]map[string]bool{}
	for _, r := range rawRecords(h.t, h.eng) {
		var group, what string
		switch binary.BigEndian.Uint16(r.key) {
		case 1:
			var k kmsg.OffsetCommitKey
			if err := k.ReadFrom(r.key); err != nil {
				h.t.Fatal(err)
			}
			group, what = k.Group, fmt.Sprintf("offset %s/%d", k.Topic, k.Partition)
		case 2:
			var k kmsg.GroupMetadataKey
			if err := k.ReadFrom(r.key); err != nil {
				h.t.Fatal(err)
			}
			group, what = k.Group, "metadata"
		default:
			h.t.Fatalf("key version %d", binary.BigEndian.Uint16(r.key))
		}
		if live[group] == nil {
			live[group] = map[string]bool{}
		}
		live[group][what] = r.value != nil
	}
	out := map[string][]string{}
	for g, m := range live {
		for what, ok := range m {
			if ok {
				out[g] = append(out[g], what)
			}
		}
		slices.Sort(out[g])
	}
	return out
}

// TestRecordsAreKafkaFormat forms a group, commits, and reads the raw
// records of __consumer_offsets back through the engine: each decodes with
// kmsg's OffsetCommitKey/Value and GroupMetadataKey/Value at the versions
// Kafka writes, on the partition Kafka would put the group on, and deleting
// the group writes null-valued tombstones.
func TestRecordsAreKafkaFormat(t *testing.T) {
	h := newHarness(t, Config{OffsetsTopicNumPartitions: 50})
	a := newTM("orders", 7, "range").static("instance-a")
	b := newTM("orders", 7, "range")
	h.stableGroup(a, b)
	for k, c := range commitCodes(h.commit("orders", a, map[string]map[int32]int64{"t": {0: 10, 2: 12}, "u": {0: 7}})) {
		wantCode(t, "commit "+k, c, 0)
	}
	want := PartitionFor("orders", 50)
	recs := rawRecords(t, h.eng)
	if len(recs) == 0 || recs[0].partition != 0 || recs[0].offset != 0 || !isFormatMarker(recs[0].key, recs[0].value) {
		t.Fatalf("first record %+v is not the format marker", recs[0])
	}
	var meta *kmsg.GroupMetadataValue
	offsets := map[string]kmsg.OffsetCommitValue{}
	for _, r := range recs[1:] {
		if r.partition != want {
			t.Fatalf("record on partition %d, want %d (Kafka's)", r.partition, want)
		}
		switch v := int16(binary.BigEndian.Uint16(r.key)); v {
		case 1:
			var k kmsg.OffsetCommitKey
			var val kmsg.OffsetCommitValue
			if err := k.ReadFrom(r.key); err != nil {
				t.Fatal(err)
			}
			if err := val.ReadFrom(r.value); err != nil {
				t.Fatal(err)
			}
			if k.Group != "orders" || val.Version != 3 {
				t.Fatalf("offset commit %+v %+v", k, val)
			}
			offsets[fmt.Sprintf("%s/%d", k.Topic, k.Partition)] = val
		case 2:
			var k kmsg.GroupMetadataKey
			m := new(kmsg.GroupMetadataValue)
			if err := k.ReadFrom(r.key); err != nil {
				t.Fatal(err)
			}
			if err := m.ReadFrom(r.value); err != nil {
				t.Fatal(err)
			}
			if k.Group != "orders" || m.Version != 3 {
				t.Fatalf("group metadata %+v %+v", k, m)
			}
			meta = m
		default:
			t.Fatalf("key version %d", v)
		}
	}
	if len(offsets) != 3 || offsets["t/2"].Offset != 12 || offsets["t/2"].LeaderEpoch != 7 || offsets["t/2"].Metadata != "md-t-2" ||
		offsets["u/0"].Offset != 7 || offsets["t/0"].CommitTimestamp != h.clk.Now().UnixMilli() {
		t.Fatalf("offsets %+v", offsets)
	}
	g := h.grp("orders")
	if meta == nil || meta.ProtocolType != "consumer" || meta.Generation != g.generation || meta.Protocol == nil || *meta.Protocol != "range" ||
		meta.Leader == nil || *meta.Leader != g.leader || len(meta.Members) != 2 {
		t.Fatalf("group metadata %+v", meta)
	}
	for _, mm := range meta.Members {
		m := b
		if mm.MemberID == a.id {
			m = a
			if mm.InstanceID == nil || *mm.InstanceID != "instance-a" {
				t.Fatalf("static member %+v", mm)
			}
		} else if mm.MemberID != b.id || mm.InstanceID != nil {
			t.Fatalf("member %+v", mm)
		}
		if string(mm.Subscription) != "md-range" || string(mm.Assignment) != "a-"+m.id ||
			mm.SessionTimeoutMillis != 10000 || mm.RebalanceTimeoutMillis != 30000 {
			t.Fatalf("member %+v", mm)
		}
	}

	// Everyone leaves: an empty generation is stored; deleting the group
	// writes tombstones for its offsets and metadata.
	h.leave(a)
	h.leave(b)
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"orders"}
	wantCode(t, "delete", h.c.DeleteGroups(context.Background(), req).Groups[0].ErrorCode, 0)
	recs = rawRecords(t, h.eng)
	var tombstones []string
	for _, r := range recs[len(recs)-4:] {
		if r.value != nil {
			t.Fatalf("record %+v after DeleteGroups is not a tombstone", r)
		}
		tombstones = append(tombstones, fmt.Sprint(binary.BigEndian.Uint16(r.key)))
	}
	if fmt.Sprint(tombstones) != "[1 1 1 2]" {
		t.Fatalf("tombstone key versions %v", tombstones)
	}
	if live := h.stored()["orders"]; len(live) != 0 {
		t.Fatalf("live after delete: %v", live)
	}
}

// TestPartitionForMatchesKafka checks the group → partition hash against
// values of Java's String.hashCode (UTF-16 code units, wrapping int32) and
// Kafka's Utils.abs (Integer.MIN_VALUE → 0; otherwise Math.abs, which
// differs from masking the sign bit for negative hashes).
func TestPartitionForMatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		id   string
		hash int32
		p50  int32
	}{
		{"", 0, 0},
		{"a", 97, 47},
		{"hello", 99162322, 22}, // "hello".hashCode() in Java
		{"Aa", 2112, 12},        // Java's classic collision
		{"BB", 2112, 12},
		{"polygenelubricants", -1 << 31, 0}, // hashCode is Integer.MIN_VALUE
		{"GydZG_", -1 << 31, 0},
		{"DESIGNING WORKHOUSES", -1 << 31, 0},
		{"consumerGroup1", -983959256, 6}, // negative: masking would give 42
		{"my-group", -1906497762, 12},
		{"Ünïcödé-grüppe", -1838758580, 30},
		{"é", 233, 33},
		{"日本", 835047, 47},
		{"😀", 1772899, 49}, // a surrogate pair: two code units
		{"group-é-😀", 1241514837, 37},
		{"kcat-group", 410589629, 29},
		{"console-consumer-40479", 161167545, 45},
	} {
		if got := javaStringHash(tc.id); got != tc.hash {
			t.Errorf("hashCode(%q) = %d, want %d", tc.id, got, tc.hash)
		}
		if got := PartitionFor(tc.id, 50); got != tc.p50 {
			t.Errorf("PartitionFor(%q, 50) = %d, want %d", tc.id, got, tc.p50)
		}
		if got := PartitionFor(tc.id, 1); got != 0 {
			t.Errorf("PartitionFor(%q, 1) = %d", tc.id, got)
		}
	}
}

// TestLoadUnload serves groups only while their partition is loaded:
// NOT_COORDINATOR before a load and after an unload, LOAD_IN_PROGRESS while
// it loads, and the groups back as they were after a load.
func TestLoadUnload(t *testing.T) {
	h := newHarness(t, Config{})
	a := newTM("g", 7, "range")
	h.stableGroup(a)
	for k, c := range commitCodes(h.commit("g", a, map[string]map[int32]int64{"t": {1: 42}})) {
		wantCode(t, "commit "+k, c, 0)
	}
	p := PartitionFor("g", 5)
	other := "x"
	for PartitionFor(other, 5) == p {
		other += "x"
	}
	h.commit(other, nil, map[string]map[int32]int64{"t": {0: 1}})

	h.c.UnloadPartition(p)
	wantCode(t, "heartbeat while unloaded", h.heartbeat(a), kerr.NotCoordinator.Code)
	if _, top := h.fetch("g", nil); top != kerr.NotCoordinator.Code {
		t.Fatalf("fetch while unloaded: %s", code(top))
	}
	for k, c := range commitCodes(h.commit("g", nil, map[string]map[int32]int64{"t": {1: 1}})) {
		wantCode(t, "commit while unloaded "+k, c, kerr.NotCoordinator.Code)
	}
	wantCode(t, "join while unloaded", h.join(context.Background(), newTM("g", 7, "range")).ErrorCode, kerr.NotCoordinator.Code)
	if got, top := h.fetch(other, nil); top != 0 || got["t/0"] != 1 {
		t.Fatalf("group of another partition: %v %s", got, code(top))
	}

	// A load in progress answers LOAD_IN_PROGRESS.
	loading, release := make(chan struct{}), make(chan struct{})
	h.c.hooks.loading = func(int32) { close(loading); <-release }
	done := make(chan error, 1)
	go func() { done <- h.c.LoadPartition(p) }()
	<-loading
	wantCode(t, "heartbeat while loading", h.heartbeat(a), kerr.CoordinatorLoadInProgress.Code)
	lr := h.c.ListGroups(context.Background(), kmsg.NewPtrListGroupsRequest())
	wantCode(t, "list while loading", lr.ErrorCode, kerr.CoordinatorLoadInProgress.Code)
	close(release)
	if err := recv(t, done, "load"); err != nil {
		t.Fatal(err)
	}
	h.c.hooks.loading = nil
	wantCode(t, "heartbeat after reload", h.heartbeat(a), 0)
	if got, _ := h.fetch("g", nil); got["t/1"] != 42 {
		t.Fatalf("offsets after reload: %v", got)
	}
	if err := h.c.LoadPartition(p); err != nil {
		t.Fatalf("second load: %v", err)
	}
	if err := h.c.LoadPartition(5); err == nil {
		t.Fatal("load of partition 5 of 5 succeeded")
	}

	// With DeferLoad nothing is served until loaded.
	h.close()
	h.cfg.DeferLoad = true
	h.open()
	wantCode(t, "heartbeat before any load", h.heartbeat(a), kerr.NotCoordinator.Code)
	if err := h.c.LoadPartition(p); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "heartbeat after load", h.heartbeat(a), 0)
}

// TestUnloadAnswersWaiters checks that JoinGroup requests waiting in a
// rebalance get NOT_COORDINATOR when the partition unloads.
func TestUnloadAnswersWaiters(t *testing.T) {
	h := newHarness(t, Config{})
	ch := h.joinAsync(newTM("g", 7, "range"))
	h.eventually("g", "join", func(g *group) bool { return g.awaitingJoin == 1 })
	h.c.UnloadPartition(PartitionFor("g", 5))
	wantCode(t, "waiting join", recv(t, ch, "join").ErrorCode, kerr.NotCoordinator.Code)
}

// TestDeleteTopicOffsets deletes one topic's offsets from every group,
// durably, and leaves the others.
func TestDeleteTopicOffsets(t *testing.T) {
	h := newHarness(t, Config{})
	for _, id := range []string{"g1", "g2", "g3"} {
		h.commit(id, nil, map[string]map[int32]int64{"t": {0: 1, 1: 2}, "u": {0: 3}})
	}
	if err := h.eng.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.DeleteTopicOffsets("t"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g1", "g2", "g3"} {
		if got, _ := h.fetch(id, nil); fmt.Sprint(got) != "map[u/0:3]" {
			t.Fatalf("%s: %v", id, got)
		}
		if got := fmt.Sprint(h.stored()[id]); got != "[offset u/0]" {
			t.Fatalf("%s live in the log: %s", id, got)
		}
	}
	h.restart()
	if got, _ := h.fetch("g2", nil); fmt.Sprint(got) != "map[u/0:3]" {
		t.Fatalf("after restart: %v", got)
	}
}

// failingStore is a MemoryStore whose __consumer_offsets logs fail their
// fsyncs once fail is set.
type failingStore struct {
	*engine.MemoryStore
	fail chan struct{} // closed: fsyncs fail
}

type failingLog struct {
	engine.Log
	fail chan struct{}
}

func (s *failingStore) OpenLog(name string, cfg engine.LogConfig, clean bool) (engine.Log, error) {
	l, err := s.MemoryStore.OpenLog(name, cfg, clean)
	if err != nil || len(name) < len(engine.ConsumerOffsetsTopic) || name[:len(engine.ConsumerOffsetsTopic)] != engine.ConsumerOffsetsTopic {
		return l, err
	}
	return &failingLog{Log: l, fail: s.fail}, nil
}

func (l *failingLog) Sync() error {
	select {
	case <-l.fail:
		return fmt.Errorf("injected fsync failure")
	default:
		return l.Log.Sync()
	}
}

// TestLogFailedIsStorageError makes the fsync of __consumer_offsets fail:
// commits (and the SyncGroup that stores an assignment) get
// KAFKA_STORAGE_ERROR, and the group keeps its last stored state.
func TestLogFailedIsStorageError(t *testing.T) {
	fs := &failingStore{MemoryStore: engine.NewMemoryStore(), fail: make(chan struct{})}
	h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 1}}
	h.opts = engine.Options{Store: fs, Defaults: engine.TopicConfig{FlushMessages: 1}}
	h.open()
	defer func() {
		h.c.Close()
		h.eng.Close() // fails: the partition's log failed
	}()
	if err := h.eng.CreateTopic("t", engine.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	a := newTM("g", 7, "range")
	h.stableGroup(a)
	for k, c := range commitCodes(h.commit("g", a, map[string]map[int32]int64{"t": {0: 5}})) {
		wantCode(t, "commit "+k, c, 0)
	}
	close(fs.fail)
	for k, c := range commitCodes(h.commit("g", a, map[string]map[int32]int64{"t": {0: 6, 1: 6}})) {
		wantCode(t, "commit after the fsync failed "+k, c, kerr.KafkaStorageError.Code)
	}
	if got, _ := h.fetch("g", nil); fmt.Sprint(got) != "map[t/0:5]" {
		t.Fatalf("offsets after failed commit: %v", got)
	}
	for k, c := range commitCodes(h.commit("g", a, map[string]map[int32]int64{"t": {2: 1}})) {
		wantCode(t, "later commit "+k, c, kerr.KafkaStorageError.Code) // the log stays failed
	}
	// A rebalance cannot store its assignment either.
	ch := h.joinAsync(a)
	r := recv(t, ch, "rejoin")
	wantCode(t, "rejoin", r.ErrorCode, 0)
	wantCode(t, "leader sync", h.sync(a, map[string]string{a.id: "x"}).ErrorCode, kerr.KafkaStorageError.Code)
	if st := h.state("g"); st != statePreparingRebalance {
		t.Fatalf("state %v after the assignment could not be stored", st)
	}
	h.checkInvariants("g")
}

// slowSyncStore is a MemoryStore whose __consumer_offsets fsyncs take d.
type slowSyncStore struct {
	*engine.MemoryStore
	d time.Duration
}

type slowLog struct {
	engine.Log
	d time.Duration
}

func (s *slowSyncStore) OpenLog(name string, cfg engine.LogConfig, clean bool) (engine.Log, error) {
	l, err := s.MemoryStore.OpenLog(name, cfg, clean)
	if err != nil {
		return l, err
	}
	return &slowLog{Log: l, d: s.d}, nil
}

func (l *slowLog) Sync() error {
	time.Sleep(l.d)
	return l.Log.Sync()
}

// TestGroupCommit commits from many groups of one __consumer_offsets
// partition at once, with an fsync per batch that takes 20 ms: the commits
// share batches (far fewer batches than commits), and each is acknowledged
// only once its batch is appended.
func TestGroupCommit(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), clk: newFakeClock(), cfg: Config{OffsetsTopicNumPartitions: 1}}
	h.opts = engine.Options{Store: &slowSyncStore{MemoryStore: engine.NewMemoryStore(), d: 20 * time.Millisecond}, Defaults: engine.TopicConfig{FlushMessages: 1}}
	h.open()
	t.Cleanup(h.close)
	if err := h.eng.CreateTopic("t", engine.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	part, err := h.eng.Partition(engine.ConsumerOffsetsTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := part.EndOffset()
	const groups = 40
	done := make(chan error, groups)
	for i := range groups {
		go func() {
			id := fmt.Sprintf("g%d", i)
			resp := h.commit(id, nil, map[string]map[int32]int64{"t": {0: int64(i), 1: int64(i)}})
			for k, c := range commitCodes(resp) {
				if c != 0 {
					done <- fmt.Errorf("%s %s: %s", id, k, code(c))
					return
				}
			}
			// Acknowledged: both records are in the log already.
			if end := part.EndOffset(); end < before+2 {
				done <- fmt.Errorf("%s acknowledged at end offset %d", id, end)
				return
			}
			done <- nil
		}()
	}
	for range groups {
		if err := recv(t, done, "commit"); err != nil {
			t.Fatal(err)
		}
	}
	if end := part.EndOffset(); end != before+2*groups {
		t.Fatalf("end offset %d, want %d", end, before+2*groups)
	}
	batches := 0
	for off := before; off < part.EndOffset(); {
		ch, err := part.ReadBatches(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.ParseHeader(ch.Bytes)
		ch.Release()
		if err != nil {
			t.Fatal(err)
		}
		if h.RecordCount%2 != 0 {
			t.Fatalf("batch at %d has %d records: a commit was split", off, h.RecordCount)
		}
		batches++
		off = h.LastOffset() + 1
	}
	t.Logf("%d commits in %d batches", groups, batches)
	if batches > groups/4 {
		t.Fatalf("%d commits took %d batches: no group commit", groups, batches)
	}
}
