package engine

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
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
	if fill("delete.retention.ms", c.DeleteRetentionMs == 0) {
		c.DeleteRetentionMs = d.DeleteRetentionMs
	}
	if fill("min.compaction.lag.ms", c.MinCompactionLagMs == 0) {
		c.MinCompactionLagMs = d.MinCompactionLagMs
	}
	if fill("max.compaction.lag.ms", c.MaxCompactionLagMs == 0) {
		c.MaxCompactionLagMs = d.MaxCompactionLagMs
	}
	if fill("min.cleanable.dirty.ratio", c.MinCleanableDirtyRatio == 0) {
		c.MinCleanableDirtyRatio = d.MinCleanableDirtyRatio
	}
	return c
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
	case c.RetentionBytes < -1:
		return fmt.Errorf("%w: retention.bytes %d < -1", ErrInvalidConfig, c.RetentionBytes)
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
	}
	if _, err := cleanupPolicy(c.CleanupPolicy); err != nil {
		return err
	}
	return nil
}

// configKeys lists the Kafka names Set and Entries understand, sorted (at
// most 32: TopicConfig.explicit is a bit set over it).
var configKeys = []string{
	"cleanup.policy", "delete.retention.ms", "flush.messages", "flush.ms",
	"max.compaction.lag.ms", "max.message.bytes", "message.timestamp.type",
	"min.cleanable.dirty.ratio", "min.compaction.lag.ms",
	"retention.bytes", "retention.ms", "segment.bytes", "segment.ms",
}

// Set changes one setting by its Kafka name, parsing value as Kafka does.
// Unknown names and unparsable values are errors wrapping ErrInvalidConfig.
func (c *TopicConfig) Set(name, value string) error {
	parse := func() (int64, error) {
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %s=%q: not an integer", ErrInvalidConfig, name, value)
		}
		return v, nil
	}
	var err error
	switch name {
	case "segment.bytes":
		c.SegmentBytes, err = parse()
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
		var v int64
		v, err = parse()
		if err == nil && (v < 0 || v > math.MaxInt32) {
			err = fmt.Errorf("%w: max.message.bytes %d out of range", ErrInvalidConfig, v)
		}
		c.MaxMessageBytes = int32(v)
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
			err = fmt.Errorf("%w: message.timestamp.type %q", ErrInvalidConfig, value)
		}
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
		"cleanup.policy":            c.CleanupPolicy,
		"delete.retention.ms":       strconv.FormatInt(c.DeleteRetentionMs, 10),
		"max.compaction.lag.ms":     strconv.FormatInt(c.MaxCompactionLagMs, 10),
		"min.compaction.lag.ms":     strconv.FormatInt(c.MinCompactionLagMs, 10),
		"min.cleanable.dirty.ratio": strconv.FormatFloat(c.MinCleanableDirtyRatio, 'g', -1, 64),
		"flush.messages":            strconv.FormatInt(c.FlushMessages, 10),
		"flush.ms":                  strconv.FormatInt(c.FlushMs, 10),
		"max.message.bytes":         strconv.FormatInt(int64(c.MaxMessageBytes), 10),
		"message.timestamp.type":    ts,
		"retention.bytes":           strconv.FormatInt(c.RetentionBytes, 10),
		"retention.ms":              strconv.FormatInt(c.RetentionMs, 10),
		"segment.bytes":             strconv.FormatInt(c.SegmentBytes, 10),
		"segment.ms":                strconv.FormatInt(c.SegmentMs, 10),
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
