package broker

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// A topic setting's value comes from the first of these that has it, as in
// Kafka (each a source of DescribeConfigs):
//
//	DYNAMIC_TOPIC_CONFIG           the topic's own (CreateTopics, AlterConfigs)
//	DYNAMIC_BROKER_CONFIG          this broker's dynamic default (AlterConfigs on BROKER "<id>")
//	DYNAMIC_DEFAULT_BROKER_CONFIG  the cluster-wide dynamic default (AlterConfigs on BROKER "")
//	STATIC_BROKER_CONFIG           the broker's start-up setting (engine.Options.Defaults,
//	                               Config.MinInsyncReplicas, the controller's Policy), where it
//	                               differs from Kafka's default
//	DEFAULT_CONFIG                 Kafka's default
//
// The dynamic settings live in the metadata log (cluster.TopicConfigRecord,
// cluster.BrokerConfigRecord), so every broker sees the same ones; the
// hosting loop applies them to the engine's partitions (hosting.go).

// configDef describes one setting for DescribeConfigs.
type configDef struct {
	typ kmsg.ConfigType
	doc string
}

// topicConfigDefs describes the topic settings: every name
// engine.TopicConfig knows, and the two the controller and the replica
// layer read. A name the engine knows but this table does not is reported
// as a LONG without documentation.
var topicConfigDefs = map[string]configDef{
	"cleanup.policy":                      {kmsg.ConfigTypeList, "delete: old segments are deleted by retention.ms and retention.bytes; compact: the log keeps the latest record per key."},
	"compression.type":                    {kmsg.ConfigTypeString, "producer keeps each batch in the codec it was produced in; uncompressed, gzip, snappy, lz4 or zstd re-compresses batches that arrive in another codec."},
	"file.delete.delay.ms":                {kmsg.ConfigTypeLong, "Stored and reported only: Easel removes a deleted segment's files at once (open readers keep their file)."},
	"flush.messages":                      {kmsg.ConfigTypeLong, "fsync a partition after this many records (1: every acknowledged produce is on disk)."},
	"flush.ms":                            {kmsg.ConfigTypeLong, "fsync a partition when its oldest unflushed append is this many milliseconds old."},
	"index.interval.bytes":                {kmsg.ConfigTypeInt, "An offset index entry every this many bytes of log (new segments)."},
	"max.message.bytes":                   {kmsg.ConfigTypeInt, "The largest record batch accepted, after re-compression by compression.type."},
	"message.downconversion.enable":       {kmsg.ConfigTypeBoolean, "Stored and reported only: Easel serves no Fetch version old enough to need down-conversion."},
	"message.timestamp.after.max.ms":      {kmsg.ConfigTypeLong, "A CreateTime record whose timestamp is more than this far ahead of the broker's clock is refused (INVALID_TIMESTAMP)."},
	"message.timestamp.before.max.ms":     {kmsg.ConfigTypeLong, "A CreateTime record whose timestamp is more than this far behind the broker's clock is refused (INVALID_TIMESTAMP)."},
	"message.timestamp.difference.max.ms": {kmsg.ConfigTypeLong, "Deprecated (KIP-937): bounds both sides when message.timestamp.before.max.ms or after.max.ms is not set."},
	"message.timestamp.type":              {kmsg.ConfigTypeString, "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's time."},
	"min.insync.replicas":                 {kmsg.ConfigTypeInt, "An acks=all produce needs this many replicas in the ISR (NOT_ENOUGH_REPLICAS otherwise)."},
	"preallocate":                         {kmsg.ConfigTypeBoolean, "New segments reserve segment.bytes of disk."},
	"retention.bytes":                     {kmsg.ConfigTypeLong, "The oldest segments of a partition are deleted while it is bigger (negative: no limit)."},
	"retention.ms":                        {kmsg.ConfigTypeLong, "Segments whose newest record is older than this are deleted (-1: keep everything)."},
	"segment.bytes":                       {kmsg.ConfigTypeInt, "A segment rolls once it holds this many bytes."},
	"segment.index.bytes":                 {kmsg.ConfigTypeInt, "The size each new segment's offset index is preallocated to."},
	"segment.jitter.ms":                   {kmsg.ConfigTypeLong, "Each segment rolls by time a random amount up to this much before segment.ms."},
	"segment.ms":                          {kmsg.ConfigTypeLong, "A segment rolls when its first append is this many milliseconds old."},
	// Compaction's settings (reported once the engine knows them).
	"delete.retention.ms":            {kmsg.ConfigTypeLong, "How long a compacted topic keeps tombstones."},
	"max.compaction.lag.ms":          {kmsg.ConfigTypeLong, "A record stays uncompacted at most this long."},
	"min.cleanable.dirty.ratio":      {kmsg.ConfigTypeDouble, "The share of a log not yet compacted above which it is compacted."},
	"min.compaction.lag.ms":          {kmsg.ConfigTypeLong, "A record stays uncompacted at least this long."},
	"unclean.leader.election.enable": {kmsg.ConfigTypeBoolean, "A partition whose ISR is all gone may elect a replica outside the ISR, losing committed records, rather than stay offline."},
}

// kafkaDefaults holds Kafka's default of every topic setting.
var kafkaDefaults = func() map[string]string {
	m := map[string]string{
		cluster.ConfigMinInsyncReplicas:     "1",
		cluster.ConfigUncleanLeaderElection: "false",
	}
	for _, e := range engine.DefaultTopicConfig().Entries() {
		m[e.Name] = e.Value
	}
	return m
}()

// topicConfigNames lists every topic setting, sorted.
var topicConfigNames = func() []string {
	var out []string
	for n := range kafkaDefaults {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}()

// configValue is one source's value of a setting, under the name that
// source knows it by (log.retention.ms for retention.ms set on a broker).
type configValue struct {
	name, value string
	source      kmsg.ConfigSource
}

// staticDefaults returns this broker's start-up value of each topic
// setting.
func (b *Broker) staticDefaults() map[string]string {
	m := make(map[string]string, len(kafkaDefaults))
	for _, e := range b.eng.Defaults().Entries() {
		m[e.Name] = e.Value
	}
	minISR := b.cfg.MinInsyncReplicas
	if minISR < 1 {
		minISR = DefaultMinInsyncReplicas
	}
	m[cluster.ConfigMinInsyncReplicas] = strconv.Itoa(minISR)
	unclean := false
	if b.node != nil {
		unclean = b.node.Policy().UncleanLeaderElection
	}
	m[cluster.ConfigUncleanLeaderElection] = strconv.FormatBool(unclean)
	return m
}

// topicConfigValues returns the values of topic setting name by source,
// the one in effect first: the topic's own (t nil: none), broker's dynamic
// one (broker cluster.DefaultBrokerConfigs: none), the cluster-wide dynamic
// one, the static one where it differs from Kafka's, and Kafka's default.
// s may be nil (a broker outside a cluster has no dynamic settings).
func topicConfigValues(s *cluster.State, t *cluster.Topic, broker int32, name string, static map[string]string) []configValue {
	var out []configValue
	if t != nil {
		if v, ok := t.Config(name); ok {
			out = append(out, configValue{name, v, kmsg.ConfigSourceDynamicTopicConfig})
		}
	}
	bn, hasBroker := cluster.BrokerConfigOf(name)
	if !hasBroker {
		bn = name
	}
	if s != nil && hasBroker {
		if broker != cluster.DefaultBrokerConfigs {
			if v, ok := cluster.LookupConfig(s.BrokerConfigs(broker), bn); ok {
				out = append(out, configValue{bn, v, kmsg.ConfigSourceDynamicBrokerConfig})
			}
		}
		if v, ok := cluster.LookupConfig(s.BrokerConfigs(cluster.DefaultBrokerConfigs), bn); ok {
			out = append(out, configValue{bn, v, kmsg.ConfigSourceDynamicDefaultBrokerConfig})
		}
	}
	if v, ok := static[name]; ok && v != kafkaDefaults[name] {
		out = append(out, configValue{bn, v, kmsg.ConfigSourceStaticBrokerConfig})
	}
	return append(out, configValue{bn, kafkaDefaults[name], kmsg.ConfigSourceDefaultConfig})
}

// dynamicDefaults returns the dynamic broker settings that apply to this
// broker (its own over the cluster-wide ones) by the topic settings they
// are the defaults of.
func (b *Broker) dynamicDefaults(s *cluster.State) []cluster.Config {
	var out []cluster.Config
	seen := map[string]bool{}
	for _, id := range []int32{b.cfg.NodeID, cluster.DefaultBrokerConfigs} {
		for _, c := range s.BrokerConfigs(id) {
			tn, ok := cluster.TopicConfigOf(c.Name)
			if ok && !seen[tn] {
				seen[tn] = true
				out = append(out, cluster.Config{Name: tn, Value: c.Value})
			}
		}
	}
	return out
}

// minInsyncReplicas returns topic's min.insync.replicas: its own, else this
// broker's or the cluster's dynamic default, else def (the broker's
// static one).
func (b *Broker) minInsyncReplicas(topic *cluster.Topic, def int) int {
	v, ok := topic.Config(cluster.ConfigMinInsyncReplicas)
	if !ok {
		b.node.View(func(s *cluster.State) { v, ok = s.BrokerConfig(b.cfg.NodeID, cluster.ConfigMinInsyncReplicas) })
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); ok && err == nil && n >= 1 {
		return n
	}
	return def
}
