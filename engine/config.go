package engine

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/codec"
)

// CleanupDelete is the cleanup.policy that deletes whole old segments by
// retention.ms and retention.bytes.
const CleanupDelete = "delete"

// CleanupCompact is the cleanup.policy that keeps the latest record of each
// key (log compaction; see the package doc). "compact,delete" (or
// "delete,compact") applies both.
const CleanupCompact = "compact"

// TopicConfig holds a topic's settings. Each field carries its Kafka name.
// When a topic is created, a zero field takes the engine's default
// (Options.Defaults, then DefaultTopicConfig) unless it was given by Kafka
// name with Set: Set("retention.bytes", "0") or Set("flush.ms", "0") keeps
// the zero, and IsSet tells which settings were given that way.
type TopicConfig struct {
	// Partitions is the number of partitions (num.partitions). Default 1.
	Partitions int32
	// SegmentBytes is segment.bytes: a segment rolls once it holds this many
	// bytes. Default 1 GiB.
	SegmentBytes int64
	// SegmentMs is segment.ms: a segment rolls when its first append is older
	// than this. Default 7 days.
	SegmentMs int64
	// RetentionMs is retention.ms: segments whose newest record is older are
	// deleted. -1 keeps everything. Default 7 days.
	RetentionMs int64
	// RetentionBytes is retention.bytes: oldest segments are deleted while the
	// partition is bigger. -1 (default) means no limit.
	RetentionBytes int64
	// FlushMessages is flush.messages: fsync after this many records. 1 makes
	// every acknowledged append durable (with group commit); the default,
	// math.MaxInt64, leaves flushing to the OS and replication, like Kafka.
	FlushMessages int64
	// FlushMs is flush.ms: fsync when the oldest unflushed append is this old
	// (checked by a background flusher). Default math.MaxInt64 (never).
	FlushMs int64
	// CleanupPolicy is cleanup.policy: "delete", "compact" or both, comma
	// separated ("compact,delete"). Default "delete".
	CleanupPolicy string
	// MaxMessageBytes is max.message.bytes: the largest batch accepted.
	// Default 1048588 (Kafka's).
	MaxMessageBytes int32
	// LogAppendTime is message.timestamp.type=LogAppendTime: the broker
	// stamps each batch with its append time. Default false (CreateTime).
	LogAppendTime bool

	// CompressionType is compression.type: "producer" (default) keeps each
	// batch in the codec it was produced in; "uncompressed", "gzip",
	// "snappy", "lz4" or "zstd" makes Append re-compress batches that
	// arrive in another codec.
	CompressionType string
	// TimestampBeforeMaxMs is message.timestamp.before.max.ms (KIP-937):
	// a CreateTime batch with a record timestamp more than this far before
	// the broker's clock is refused (ErrInvalidTimestamp). Default
	// math.MaxInt64 (no bound). When only the deprecated
	// message.timestamp.difference.max.ms is given, it bounds both sides.
	TimestampBeforeMaxMs int64
	// TimestampAfterMaxMs is message.timestamp.after.max.ms: as
	// TimestampBeforeMaxMs, for timestamps ahead of the broker's clock.
	TimestampAfterMaxMs int64
	// TimestampDifferenceMaxMs is message.timestamp.difference.max.ms, the
	// deprecated bound on both sides (see TimestampBeforeMaxMs).
	TimestampDifferenceMaxMs int64
	// SegmentJitterMs is segment.jitter.ms: each segment rolls by time a
	// random amount up to this much before segment.ms. Default 0.
	SegmentJitterMs int64
	// SegmentIndexBytes is segment.index.bytes: the size each new
	// segment's offset index is preallocated to (the time index gets the
	// same). Default 10485760; the engine's Options.Segment applies while
	// the topic does not set it.
	SegmentIndexBytes int32
	// IndexIntervalBytes is index.interval.bytes: an offset index entry
	// every this many bytes of log in new segments. Default 4096; as
	// SegmentIndexBytes, Options.Segment applies while not set.
	IndexIntervalBytes int32
	// Preallocate is preallocate: new segments reserve segment.bytes of
	// disk (see segment.Config.Preallocate). Default false; as
	// SegmentIndexBytes, Options.Segment applies while not set.
	Preallocate bool
	// FileDeleteDelayMs is file.delete.delay.ms, stored and reported only:
	// the engine removes a deleted segment's files at once (a reader
	// holding them keeps its open file). Default 60000.
	FileDeleteDelayMs int64
	// MessageDownconversion is message.downconversion.enable, stored and
	// reported only: Easel serves no Fetch version old enough to need
	// down-conversion. Default true.
	MessageDownconversion bool

	// Log compaction (cleanup.policy compact).

	// DeleteRetentionMs is delete.retention.ms: how long a tombstone (a
	// record with a null value) stays once the cleaner first passed it.
	// Default 86400000 (1 day).
	DeleteRetentionMs int64
	// MinCompactionLagMs is min.compaction.lag.ms: a record stays
	// uncompacted for at least this long after it was written. Default 0.
	MinCompactionLagMs int64
	// MaxCompactionLagMs is max.compaction.lag.ms: a segment whose first
	// record is older is cleaned whatever the dirty ratio. Default
	// math.MaxInt64.
	MaxCompactionLagMs int64
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio: the log is
	// cleaned once the bytes not yet cleaned are at least this share of
	// the cleanable bytes. In [0, 1]; default 0.5.
	MinCleanableDirtyRatio float64

	// explicit has bit i set when configKeys[i] was given with Set. A bit
	// set rather than a map keeps TopicConfig comparable.
	explicit uint32
}

// IsSet reports whether the setting of this Kafka name was given with Set
// (a topic override, as opposed to a default).
func (c TopicConfig) IsSet(name string) bool {
	i := configKeyIndex(name)
	return i >= 0 && c.explicit&(1<<i) != 0
}

// Explicit lists the Kafka names given with Set, sorted.
func (c TopicConfig) Explicit() []string {
	var out []string
	for i, k := range configKeys {
		if c.explicit&(1<<i) != 0 {
			out = append(out, k)
		}
	}
	return out
}

func (c *TopicConfig) markSet(name string) {
	if i := configKeyIndex(name); i >= 0 {
		c.explicit |= 1 << i
	}
}

func configKeyIndex(name string) int {
	for i, k := range configKeys {
		if k == name {
			return i
		}
	}
	return -1
}

// DefaultTopicConfig returns Kafka's defaults.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		Partitions:      1,
		SegmentBytes:    1 << 30,
		SegmentMs:       int64(7 * 24 * time.Hour / time.Millisecond),
		RetentionMs:     int64(7 * 24 * time.Hour / time.Millisecond),
		RetentionBytes:  -1,
		FlushMessages:   math.MaxInt64,
		FlushMs:         math.MaxInt64,
		CleanupPolicy:   CleanupDelete,
		MaxMessageBytes: 1048588,

		CompressionType:          CompressionProducer,
		TimestampBeforeMaxMs:     math.MaxInt64,
		TimestampAfterMaxMs:      math.MaxInt64,
		TimestampDifferenceMaxMs: math.MaxInt64,
		SegmentIndexBytes:        10 << 20,
		IndexIntervalBytes:       4096,
		FileDeleteDelayMs:        60000,
		MessageDownconversion:    true,

		DeleteRetentionMs:      86400000,
		MaxCompactionLagMs:     math.MaxInt64,
		MinCleanableDirtyRatio: 0.5,
	}
}

// withDefaults fills the zero fields not given with Set from d.
func (c TopicConfig) withDefaults(d TopicConfig) TopicConfig {
	fill := func(name string, zero bool) bool { return zero && !c.IsSet(name) }
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if fill("segment.bytes", c.SegmentBytes == 0) {
		c.SegmentBytes = d.SegmentBytes
	}
	if fill("segment.ms", c.SegmentMs == 0) {
		c.SegmentMs = d.SegmentMs
	}
	if fill("retention.ms", c.RetentionMs == 0) {
		c.RetentionMs = d.RetentionMs
	}
	if fill("retention.bytes", c.RetentionBytes == 0) {
		c.RetentionBytes = d.RetentionBytes
	}
	if fill("flush.messages", c.FlushMessages == 0) {
		c.FlushMessages = d.FlushMessages
	}
	if fill("flush.ms", c.FlushMs == 0) {
		c.FlushMs = d.FlushMs
	}
	if fill("cleanup.policy", c.CleanupPolicy == "") {
		c.CleanupPolicy = d.CleanupPolicy
	}
	if fill("max.message.bytes", c.MaxMessageBytes == 0) {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if fill("message.timestamp.type", !c.LogAppendTime) {
		c.LogAppendTime = d.LogAppendTime
	}

	fillDefault(&c, "compression.type", &c.CompressionType, d.CompressionType)
	fillDefault(&c, "message.timestamp.before.max.ms", &c.TimestampBeforeMaxMs, d.TimestampBeforeMaxMs)
	fillDefault(&c, "message.timestamp.after.max.ms", &c.TimestampAfterMaxMs, d.TimestampAfterMaxMs)
	fillDefault(&c, "message.timestamp.difference.max.ms", &c.TimestampDifferenceMaxMs, d.TimestampDifferenceMaxMs)
	fillDefault(&c, "segment.jitter.ms", &c.SegmentJitterMs, d.SegmentJitterMs)
	fillDefault(&c, "segment.index.bytes", &c.SegmentIndexBytes, d.SegmentIndexBytes)
	fillDefault(&c, "index.interval.bytes", &c.IndexIntervalBytes, d.IndexIntervalBytes)
	fillDefault(&c, "preallocate", &c.Preallocate, d.Preallocate)
	fillDefault(&c, "file.delete.delay.ms", &c.FileDeleteDelayMs, d.FileDeleteDelayMs)
	fillDefault(&c, "message.downconversion.enable", &c.MessageDownconversion, d.MessageDownconversion)
	fillDefault(&c, "delete.retention.ms", &c.DeleteRetentionMs, d.DeleteRetentionMs)
	fillDefault(&c, "min.compaction.lag.ms", &c.MinCompactionLagMs, d.MinCompactionLagMs)
	fillDefault(&c, "max.compaction.lag.ms", &c.MaxCompactionLagMs, d.MaxCompactionLagMs)
	fillDefault(&c, "min.cleanable.dirty.ratio", &c.MinCleanableDirtyRatio, d.MinCleanableDirtyRatio)
	return c
}

// fillDefault sets *v, a field of c, to d when it is zero and was not
// given with Set.
func fillDefault[T comparable](c *TopicConfig, name string, v *T, d T) {
	var zero T
	if *v == zero && !c.IsSet(name) {
		*v = d
	}
}

// logConfig is what the partition's Log needs of c.
func (c TopicConfig) logConfig() LogConfig {
	lc := LogConfig{
		SegmentBytes:  c.SegmentBytes,
		SegmentAge:    time.Duration(c.SegmentMs) * time.Millisecond,
		SegmentJitter: time.Duration(c.SegmentJitterMs) * time.Millisecond,
		Preallocate:   c.Preallocate,
	}
	if c.IsSet("segment.index.bytes") {
		lc.IndexBytes = int(c.SegmentIndexBytes)
	}
	if c.IsSet("index.interval.bytes") {
		lc.IndexInterval = max(1, int(c.IndexIntervalBytes)) // 0, an entry per batch, is 1 to the segment
	}
	return lc
}

// Compression types of compression.type besides the codec names.
const (
	// CompressionProducer keeps each batch in the codec it was produced in.
	CompressionProducer = "producer"
	// CompressionUncompressed stores batches uncompressed.
	CompressionUncompressed = "uncompressed"
)

// TimestampBounds returns how far before and after the broker's clock a
// CreateTime record's timestamp may be (math.MaxInt64: no bound):
// message.timestamp.before.max.ms and after.max.ms, each falling back to
// message.timestamp.difference.max.ms when only that one was given, as in
// Kafka.
func (c TopicConfig) TimestampBounds() (before, after int64) {
	before, after = c.TimestampBeforeMaxMs, c.TimestampAfterMaxMs
	if c.IsSet("message.timestamp.difference.max.ms") {
		if !c.IsSet("message.timestamp.before.max.ms") {
			before = c.TimestampDifferenceMaxMs
		}
		if !c.IsSet("message.timestamp.after.max.ms") {
			after = c.TimestampDifferenceMaxMs
		}
	}
	return before, after
}

// Validate checks the ranges Kafka enforces.
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > 100000:
		return fmt.Errorf("%w: partitions %d not in 1..100000", ErrInvalidConfig, c.Partitions)
	case c.SegmentBytes < 14:
		return fmt.Errorf("%w: segment.bytes %d < 14", ErrInvalidConfig, c.SegmentBytes)
	case c.SegmentMs < 1:
		return fmt.Errorf("%w: segment.ms %d < 1", ErrInvalidConfig, c.SegmentMs)
	case c.RetentionMs < -1:
		return fmt.Errorf("%w: retention.ms %d < -1", ErrInvalidConfig, c.RetentionMs)
	case c.FlushMessages < 1:
		return fmt.Errorf("%w: flush.messages %d < 1", ErrInvalidConfig, c.FlushMessages)
	case c.FlushMs < 0:
		return fmt.Errorf("%w: flush.ms %d < 0", ErrInvalidConfig, c.FlushMs)
	case c.MaxMessageBytes < 0:
		return fmt.Errorf("%w: max.message.bytes %d < 0", ErrInvalidConfig, c.MaxMessageBytes)
	case c.DeleteRetentionMs < 0:
		return fmt.Errorf("%w: delete.retention.ms %d < 0", ErrInvalidConfig, c.DeleteRetentionMs)
	case c.MinCompactionLagMs < 0:
		return fmt.Errorf("%w: min.compaction.lag.ms %d < 0", ErrInvalidConfig, c.MinCompactionLagMs)
	case c.MaxCompactionLagMs < 1:
		return fmt.Errorf("%w: max.compaction.lag.ms %d < 1", ErrInvalidConfig, c.MaxCompactionLagMs)
	case c.MinCompactionLagMs > c.MaxCompactionLagMs:
		return fmt.Errorf("%w: min.compaction.lag.ms %d > max.compaction.lag.ms %d", ErrInvalidConfig, c.MinCompactionLagMs, c.MaxCompactionLagMs)
	case !(c.MinCleanableDirtyRatio >= 0 && c.MinCleanableDirtyRatio <= 1): // NaN fails too
		return fmt.Errorf("%w: min.cleanable.dirty.ratio %v not in [0, 1]", ErrInvalidConfig, c.MinCleanableDirtyRatio)

	case c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("%w: segment.bytes %d > %d", ErrInvalidConfig, c.SegmentBytes, math.MaxInt32)
	}
	for _, b := range []struct {
		name   string
		v, min int64
	}{
		{"message.timestamp.before.max.ms", c.TimestampBeforeMaxMs, 0},
		{"message.timestamp.after.max.ms", c.TimestampAfterMaxMs, 0},
		{"message.timestamp.difference.max.ms", c.TimestampDifferenceMaxMs, 0},
		{"segment.jitter.ms", c.SegmentJitterMs, 0},
		{"segment.index.bytes", int64(c.SegmentIndexBytes), 4},
		{"index.interval.bytes", int64(c.IndexIntervalBytes), 0},
		{"file.delete.delay.ms", c.FileDeleteDelayMs, 0},
	} {
		if b.v < b.min {
			return fmt.Errorf("%w: %s %d < %d", ErrInvalidConfig, b.name, b.v, b.min)
		}
	}
	if _, err := compressionCodec(c.CompressionType); err != nil {
		return err
	}
	if _, err := cleanupPolicy(c.CleanupPolicy); err != nil {
		return err
	}
	return nil
}

// compressionCodec returns the codec id compression.type names, or -1 for
// "producer".
func compressionCodec(name string) (int8, error) {
	switch name {
	case CompressionProducer:
		return -1, nil
	case CompressionUncompressed:
		return codec.None, nil
	case "none": // a codec's name, but not one of compression.type's
		return 0, fmt.Errorf("%w: compression.type %q (uncompressed, gzip, snappy, lz4, zstd or producer)", ErrInvalidConfig, name)
	}
	c, err := codec.ByName(name)
	if err != nil {
		return 0, fmt.Errorf("%w: compression.type %q (uncompressed, gzip, snappy, lz4, zstd or producer)", ErrInvalidConfig, name)
	}
	return c.ID(), nil
}

// configKeys lists the Kafka names Set and Entries understand (at most
// 32: TopicConfig.explicit is a bit set over it). Entries sorts by name.
var configKeys = []string{
	"cleanup.policy", "flush.messages", "flush.ms", "max.message.bytes",
	"message.timestamp.type", "retention.bytes", "retention.ms", "segment.bytes", "segment.ms",

	"compression.type", "file.delete.delay.ms", "index.interval.bytes", "message.downconversion.enable",
	"message.timestamp.after.max.ms", "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms",
	"preallocate", "segment.index.bytes", "segment.jitter.ms",

	"delete.retention.ms", "max.compaction.lag.ms", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
}

// Set changes one setting by its Kafka name, parsing value as Kafka does.
// Unknown names and unparsable values are errors wrapping ErrInvalidConfig.
func (c *TopicConfig) Set(name, value string) error {
	value = strings.TrimSpace(value) // as Kafka's ConfigDef parses
	parse := func() (int64, error) {
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s=%q: not a number of type LONG", ErrInvalidConfig, name, value)
		}
		return v, nil
	}
	parseInt := func() (int32, error) {
		v, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%w: %s=%q: not a number of type INT", ErrInvalidConfig, name, value)
		}
		return int32(v), nil
	}
	parseBool := func() (bool, error) {
		switch strings.ToLower(value) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, fmt.Errorf("%w: %s=%q: expected true or false", ErrInvalidConfig, name, value)
	}
	var err error
	switch name {
	case "segment.bytes":
		var v int32
		v, err = parseInt()
		c.SegmentBytes = int64(v)
	case "segment.ms":
		c.SegmentMs, err = parse()
	case "retention.ms":
		c.RetentionMs, err = parse()
	case "retention.bytes":
		c.RetentionBytes, err = parse()
	case "flush.messages":
		c.FlushMessages, err = parse()
	case "flush.ms":
		c.FlushMs, err = parse()
	case "max.message.bytes":
		c.MaxMessageBytes, err = parseInt()
	case "cleanup.policy":
		var v string
		if v, err = normalizePolicy(value); err == nil {
			c.CleanupPolicy = v
		}
	case "delete.retention.ms":
		c.DeleteRetentionMs, err = parse()
	case "min.compaction.lag.ms":
		c.MinCompactionLagMs, err = parse()
	case "max.compaction.lag.ms":
		c.MaxCompactionLagMs, err = parse()
	case "min.cleanable.dirty.ratio":
		v, perr := strconv.ParseFloat(strings.TrimSpace(value), 64)
		switch {
		case perr != nil:
			err = fmt.Errorf("%w: %s=%q: not a number", ErrInvalidConfig, name, value)
		case !(v >= 0 && v <= 1):
			err = fmt.Errorf("%w: min.cleanable.dirty.ratio %v not in [0, 1]", ErrInvalidConfig, v)
		default:
			c.MinCleanableDirtyRatio = v
		}
	case "message.timestamp.type":
		switch value {
		case "CreateTime":
			c.LogAppendTime = false
		case "LogAppendTime":
			c.LogAppendTime = true
		default:
			err = fmt.Errorf("%w: message.timestamp.type %q (CreateTime or LogAppendTime)", ErrInvalidConfig, value)
		}

	case "compression.type":
		value = strings.ToLower(value)
		if _, err = compressionCodec(value); err == nil {
			c.CompressionType = value
		}
	case "message.timestamp.before.max.ms":
		c.TimestampBeforeMaxMs, err = parse()
	case "message.timestamp.after.max.ms":
		c.TimestampAfterMaxMs, err = parse()
	case "message.timestamp.difference.max.ms":
		c.TimestampDifferenceMaxMs, err = parse()
	case "segment.jitter.ms":
		c.SegmentJitterMs, err = parse()
	case "segment.index.bytes":
		c.SegmentIndexBytes, err = parseInt()
	case "index.interval.bytes":
		c.IndexIntervalBytes, err = parseInt()
	case "preallocate":
		c.Preallocate, err = parseBool()
	case "file.delete.delay.ms":
		c.FileDeleteDelayMs, err = parse()
	case "message.downconversion.enable":
		c.MessageDownconversion, err = parseBool()
	default:
		err = fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, name)
	}
	if err == nil {
		c.markSet(name)
	}
	return err
}

// ConfigEntry is one setting by its Kafka name, as DescribeConfigs shows it.
type ConfigEntry struct {
	Name, Value string
}

// Entries returns every setting by Kafka name, sorted by name.
func (c TopicConfig) Entries() []ConfigEntry {
	ts := "CreateTime"
	if c.LogAppendTime {
		ts = "LogAppendTime"
	}
	vals := map[string]string{
		"cleanup.policy":         c.CleanupPolicy,
		"flush.messages":         strconv.FormatInt(c.FlushMessages, 10),
		"flush.ms":               strconv.FormatInt(c.FlushMs, 10),
		"max.message.bytes":      strconv.FormatInt(int64(c.MaxMessageBytes), 10),
		"message.timestamp.type": ts,
		"retention.bytes":        strconv.FormatInt(c.RetentionBytes, 10),
		"retention.ms":           strconv.FormatInt(c.RetentionMs, 10),
		"segment.bytes":          strconv.FormatInt(c.SegmentBytes, 10),
		"segment.ms":             strconv.FormatInt(c.SegmentMs, 10),

		"compression.type":                    c.CompressionType,
		"file.delete.delay.ms":                strconv.FormatInt(c.FileDeleteDelayMs, 10),
		"index.interval.bytes":                strconv.FormatInt(int64(c.IndexIntervalBytes), 10),
		"message.downconversion.enable":       strconv.FormatBool(c.MessageDownconversion),
		"message.timestamp.after.max.ms":      strconv.FormatInt(c.TimestampAfterMaxMs, 10),
		"message.timestamp.before.max.ms":     strconv.FormatInt(c.TimestampBeforeMaxMs, 10),
		"message.timestamp.difference.max.ms": strconv.FormatInt(c.TimestampDifferenceMaxMs, 10),
		"preallocate":                         strconv.FormatBool(c.Preallocate),
		"segment.index.bytes":                 strconv.FormatInt(int64(c.SegmentIndexBytes), 10),
		"segment.jitter.ms":                   strconv.FormatInt(c.SegmentJitterMs, 10),

		"delete.retention.ms":       strconv.FormatInt(c.DeleteRetentionMs, 10),
		"max.compaction.lag.ms":     strconv.FormatInt(c.MaxCompactionLagMs, 10),
		"min.compaction.lag.ms":     strconv.FormatInt(c.MinCompactionLagMs, 10),
		"min.cleanable.dirty.ratio": strconv.FormatFloat(c.MinCleanableDirtyRatio, 'g', -1, 64),
	}
	out := make([]ConfigEntry, 0, len(configKeys))
	for _, k := range configKeys {
		out = append(out, ConfigEntry{Name: k, Value: vals[k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// normalizePolicy checks a cleanup.policy list as Kafka does (comma
// separated, spaces around the names ignored, each "compact" or
// "delete") and returns it without spaces or repeats, in the order given.
func normalizePolicy(value string) (string, error) {
	var out []string
	for _, part := range strings.Split(value, ",") {
		part = strings.TrimSpace(part)
		if part != CleanupCompact && part != CleanupDelete {
			if _, err := cleanupPolicy(part); err != nil || part == "" {
				return "", fmt.Errorf("%w: cleanup.policy %q: %q is not compact or delete", ErrInvalidConfig, value, part)
			}
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return strings.Join(out, ","), nil
}
