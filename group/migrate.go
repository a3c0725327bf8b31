package group

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/record"
)

// Setting up __consumer_offsets at start: creating it, recognising what an
// earlier version left, and migrating that. The package doc describes the
// marker, the legacy layout and why each crash point is safe.

// stagingTopic holds a copy of the committed offsets while a legacy
// __consumer_offsets is replaced; stagingDoneKey is the key of its last
// record, whose value is the decimal count of the records before it. Both
// names are frozen: a broker restarted after a crash finds them.
const (
	stagingTopic   = "__easel_offsets_migration"
	stagingDoneKey = "easel: migration copy complete"
)

// errUnknownFormat is returned for a __consumer_offsets that neither this
// version nor the previous one wrote.
var errUnknownFormat = errors.New("group: __consumer_offsets is not in a format this version knows")

// step runs the test hook before a migration step.
func (c *Coordinator) step(name string) error {
	if c.hooks.migrate != nil {
		return c.hooks.migrate(name)
	}
	return nil
}

// openTopic makes __consumer_offsets ready: it finishes a migration a crash
// interrupted, creates the topic, or migrates a legacy one. It returns the
// topic's partition count.
func (c *Coordinator) openTopic() (int32, error) {
	staged, complete, err := c.readTopic(stagingTopic, true)
	if err != nil {
		return 0, err
	}
	if complete {
		c.log.Warn("group: finishing an interrupted migration of " + engine.ConsumerOffsetsTopic)
		return c.rebuild(staged)
	}
	if staged != nil {
		// The copy did not finish: the legacy topic is still whole.
		if err := c.step("delete incomplete copy"); err != nil {
			return 0, err
		}
		if err := c.eng.DeleteTopic(stagingTopic); err != nil {
			return 0, err
		}
	}
	info, err := c.eng.Topic(engine.ConsumerOffsetsTopic)
	if errors.Is(err, engine.ErrUnknownTopic) {
		return c.create()
	}
	if err != nil {
		return 0, err
	}
	n := info.Config.Partitions
	first, empty, err := c.firstRecords(n)
	if err != nil {
		return 0, err
	}
	switch {
	case compacted(info.Config) && empty:
		// Created here, and a crash came before the marker.
		return n, c.writeMarker()
	case first != nil && isFormatMarker(first.Key, first.Value), compacted(info.Config):
		// A compacted topic is this package's (the legacy layout was never
		// compacted), whose marker compaction may have removed.
		if n != c.cfg.OffsetsTopicNumPartitions {
			c.log.Info("group: "+engine.ConsumerOffsetsTopic+" keeps its partition count", "partitions", n, "configured", c.cfg.OffsetsTopicNumPartitions)
		}
		return n, nil
	case n == 1:
		// Written by Easel before it stored offsets in Kafka's format (no
		// marker; the previous version always created one partition).
		return c.migrateLegacy()
	case empty:
		// Created here, and a crash came before the marker.
		return n, c.writeMarker()
	}
	return 0, fmt.Errorf("%w: it has %d partitions and records but partition 0 does not start with Easel's format marker. "+
		"To start anyway, stop the broker, move the directories %s-* and the file .meta/%s.json out of the data directory "+
		"(the committed offsets and group metadata in them are then lost) and start it again",
		errUnknownFormat, n, engine.ConsumerOffsetsTopic, engine.ConsumerOffsetsTopic)
}

// compacted reports whether a topic's cleanup.policy includes compact.
func compacted(cfg engine.TopicConfig) bool {
	return slices.Contains(strings.Split(cfg.CleanupPolicy, ","), engine.CleanupCompact)
}

// firstRecords returns the first record of partition 0 of
// __consumer_offsets (nil if it has none), and whether all n partitions are
// empty.
func (c *Coordinator) firstRecords(n int32) (*record.Record, bool, error) {
	var first *record.Record
	empty := true
	for p := range n {
		part, err := c.eng.Partition(engine.ConsumerOffsetsTopic, p)
		if err != nil {
			return nil, false, err
		}
		if part.EndOffset() == part.StartOffset() {
			continue
		}
		empty = false
		if p != 0 {
			continue
		}
		it := part.Records(part.StartOffset())
		if it.Next() {
			r := *it.Record()
			r.Key, r.Value = cloneNil(r.Key), cloneNil(r.Value)
			first = &r
		}
		if err := it.Close(); err != nil {
			return nil, false, err
		}
	}
	return first, empty, nil
}

// cloneNil copies b, keeping nil nil.
func cloneNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// create creates __consumer_offsets and writes the format marker.
func (c *Coordinator) create() (int32, error) {
	n := c.cfg.OffsetsTopicNumPartitions
	// Compacted, as in Kafka: a load replays the latest record of each key
	// (and tombstones for a while), not every commit ever made.
	err := c.eng.CreateTopic(engine.ConsumerOffsetsTopic, engine.TopicConfig{
		Partitions: n, RetentionMs: -1, RetentionBytes: -1,
		CleanupPolicy: engine.CleanupCompact, SegmentBytes: c.cfg.OffsetsTopicSegmentBytes,
	})
	if err != nil {
		return 0, err
	}
	if err := c.step("write marker"); err != nil {
		return 0, err
	}
	return n, c.writeMarker()
}

// writeMarker appends the format marker to partition 0 and flushes it.
func (c *Coordinator) writeMarker() error {
	p, err := c.eng.Partition(engine.ConsumerOffsetsTopic, 0)
	if err != nil {
		return err
	}
	marker := record.Record{Key: appendGroupKey(nil, "")}
	if err := appendSync(p, []record.Record{marker}, c.cfg.Now().UnixMilli()); err != nil {
		return err
	}
	return p.Flush()
}

// migrateLegacy copies the legacy topic's offsets to the staging topic,
// then rebuilds __consumer_offsets from it.
func (c *Coordinator) migrateLegacy() (int32, error) {
	recs, err := c.readLegacy()
	if err != nil {
		return 0, err
	}
	c.log.Warn("group: migrating "+engine.ConsumerOffsetsTopic+" to Kafka's format", "offsets", len(recs), "partitions", c.cfg.OffsetsTopicNumPartitions)
	if err := c.step("create copy"); err != nil {
		return 0, err
	}
	err = c.eng.CreateTopic(stagingTopic, engine.TopicConfig{Partitions: 1, RetentionMs: -1, RetentionBytes: -1})
	if err != nil {
		return 0, err
	}
	p, err := c.eng.Partition(stagingTopic, 0)
	if err != nil {
		return 0, err
	}
	done := record.Record{Key: []byte(stagingDoneKey), Value: strconv.AppendInt(nil, int64(len(recs)), 10)}
	if err := c.appendChunked(p, append(recs, done), "copy"); err != nil {
		return 0, err
	}
	// The copy is durable before the legacy topic goes.
	if err := p.Flush(); err != nil {
		return 0, err
	}
	return c.rebuild(recs)
}

// rebuild replaces __consumer_offsets by a new topic holding recs (offset
// commits in Kafka's format, from the staging topic) on the partitions of
// their groups, then deletes the staging topic. It is safe to run again
// after a crash at any point: the staging topic stays until the new topic is
// whole and durable.
func (c *Coordinator) rebuild(recs []record.Record) (int32, error) {
	if err := c.step("delete legacy topic"); err != nil {
		return 0, err
	}
	if err := c.eng.DeleteTopic(engine.ConsumerOffsetsTopic); err != nil && !errors.Is(err, engine.ErrUnknownTopic) {
		return 0, err
	}
	if err := c.step("create topic"); err != nil {
		return 0, err
	}
	n, err := c.create()
	if err != nil {
		return 0, err
	}
	parts := make([][]record.Record, n)
	for _, r := range recs {
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(r.Key); err != nil {
			return 0, fmt.Errorf("group: migration copy: %w", err)
		}
		p := PartitionFor(k.Group, n)
		parts[p] = append(parts[p], r)
	}
	for p, rs := range parts {
		part, err := c.eng.Partition(engine.ConsumerOffsetsTopic, int32(p))
		if err != nil {
			return 0, err
		}
		if err := c.appendChunked(part, rs, "write"); err != nil {
			return 0, err
		}
		if err := part.Flush(); err != nil {
			return 0, err
		}
	}
	if err := c.step("delete copy"); err != nil {
		return 0, err
	}
	if err := c.eng.DeleteTopic(stagingTopic); err != nil {
		return 0, err
	}
	c.log.Info("group: migrated "+engine.ConsumerOffsetsTopic+" to Kafka's format", "offsets", len(recs), "partitions", n)
	return n, nil
}

// appendChunked appends recs to p in batches within the topic's
// max.message.bytes, calling the step hook (named step) before each.
func (c *Coordinator) appendChunked(p *engine.Partition, recs []record.Record, step string) error {
	info, err := c.eng.Topic(p.Topic())
	if err != nil {
		return err
	}
	ts := c.cfg.Now().UnixMilli()
	for len(recs) > 0 {
		size, i := record.HeaderSize, 0
		for ; i < len(recs) && (i == 0 || size+len(recs[i].Key)+len(recs[i].Value)+recordOverhead <= int(info.Config.MaxMessageBytes)); i++ {
			size += len(recs[i].Key) + len(recs[i].Value) + recordOverhead
		}
		if err := c.step(step); err != nil {
			return err
		}
		if err := appendSync(p, recs[:i], ts); err != nil {
			return err
		}
		recs = recs[i:]
	}
	return nil
}

// readTopic reads every record of partition 0 of topic, or nil if the topic
// does not exist. With staged, topic is the staging topic: complete reports
// whether its last record is the completion record counting the others,
// which is dropped.
func (c *Coordinator) readTopic(topic string, staged bool) (recs []record.Record, complete bool, err error) {
	p, err := c.eng.Partition(topic, 0)
	if errors.Is(err, engine.ErrUnknownTopic) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	recs = []record.Record{}
	it := p.Records(p.StartOffset())
	for it.Next() {
		r := it.Record()
		recs = append(recs, record.Record{Key: cloneNil(r.Key), Value: cloneNil(r.Value)})
	}
	if err := it.Close(); err != nil {
		return nil, false, err
	}
	if staged && len(recs) > 0 {
		last := recs[len(recs)-1]
		n, err := strconv.Atoi(string(last.Value))
		if string(last.Key) == stagingDoneKey && err == nil && n == len(recs)-1 {
			return recs[:n], true, nil
		}
	}
	return recs, false, nil
}

// readLegacy reads the committed offsets of a legacy __consumer_offsets
// (one partition, the layout in the package doc) and returns them as
// Kafka-format records, sorted by group, topic and partition.
func (c *Coordinator) readLegacy() ([]record.Record, error) {
	raw, _, err := c.readTopic(engine.ConsumerOffsetsTopic, false)
	if err != nil {
		return nil, err
	}
	type key struct {
		group string
		tp    engine.TopicPartition
	}
	state := make(map[key]committed)
	bad := 0
	for _, r := range raw {
		var k kmsg.OffsetCommitKey
		if len(r.Key) < 2 || binary.BigEndian.Uint16(r.Key) != 1 || k.ReadFrom(r.Key) != nil {
			bad++
			continue
		}
		kk := key{k.Group, engine.TopicPartition{Topic: k.Topic, Partition: k.Partition}}
		if r.Value == nil {
			delete(state, kk)
			continue
		}
		v, ok := decodeLegacyValue(r.Value)
		if !ok {
			bad++
			continue
		}
		state[kk] = v
	}
	if bad > 0 {
		c.log.Warn("group: skipped undecodable legacy offset records", "records", bad)
	}
	keys := make([]key, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition))
	})
	recs := make([]record.Record, len(keys))
	for i, k := range keys {
		recs[i] = record.Record{
			Key:   appendOffsetKey(nil, k.group, k.tp.Topic, k.tp.Partition),
			Value: appendOffsetValue(nil, state[k]),
		}
	}
	return recs, nil
}

// decodeLegacyValue decodes the legacy value layout: offset int64 |
// leaderEpoch int32 | commitTime int64 (ms) | metadata length int32 |
// metadata, big-endian, with no version.
func decodeLegacyValue(b []byte) (committed, bool) {
	if len(b) < 24 || uint64(len(b)-24) != uint64(binary.BigEndian.Uint32(b[20:])) {
		return committed{}, false
	}
	return committed{
		offset:   int64(binary.BigEndian.Uint64(b)),
		epoch:    int32(binary.BigEndian.Uint32(b[8:])),
		commitMs: int64(binary.BigEndian.Uint64(b[12:])),
		metadata: string(b[24:]),
	}, true
}
