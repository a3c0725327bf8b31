package cluster

import (
	"slices"
	"strings"

	"github.com/easel-io/easel/engine"
)

// brokerSynonyms maps each dynamic broker setting (Kafka's per-broker and
// cluster-wide "log." defaults) to the topic setting it is the default of.
// These are the names a BrokerConfigRecord may hold: every one is a topic
// default that can change at run time, as in Kafka.
var brokerSynonyms = map[string]string{
	"compression.type":                        "compression.type",
	"log.cleanup.policy":                      "cleanup.policy",
	"log.cleaner.delete.retention.ms":         "delete.retention.ms",
	"log.cleaner.max.compaction.lag.ms":       "max.compaction.lag.ms",
	"log.cleaner.min.cleanable.ratio":         "min.cleanable.dirty.ratio",
	"log.cleaner.min.compaction.lag.ms":       "min.compaction.lag.ms",
	"log.flush.interval.messages":             "flush.messages",
	"log.flush.interval.ms":                   "flush.ms",
	"log.index.interval.bytes":                "index.interval.bytes",
	"log.index.size.max.bytes":                "segment.index.bytes",
	"log.message.downconversion.enable":       "message.downconversion.enable",
	"log.message.timestamp.after.max.ms":      "message.timestamp.after.max.ms",
	"log.message.timestamp.before.max.ms":     "message.timestamp.before.max.ms",
	"log.message.timestamp.difference.max.ms": "message.timestamp.difference.max.ms",
	"log.message.timestamp.type":              "message.timestamp.type",
	"log.preallocate":                         "preallocate",
	"log.retention.bytes":                     "retention.bytes",
	"log.retention.ms":                        "retention.ms",
	"log.roll.jitter.ms":                      "segment.jitter.ms",
	"log.roll.ms":                             "segment.ms",
	"log.segment.bytes":                       "segment.bytes",
	"log.segment.delete.delay.ms":             "file.delete.delay.ms",
	"message.max.bytes":                       "max.message.bytes",
	"min.insync.replicas":                     ConfigMinInsyncReplicas,
	"unclean.leader.election.enable":          ConfigUncleanLeaderElection,
}

// DynamicBrokerConfigs lists, sorted, the broker settings that can be
// changed at run time (BrokerConfigRecord): each is the broker-wide default
// of a topic setting (TopicConfigOf).
func DynamicBrokerConfigs() []string {
	out := make([]string, 0, len(brokerSynonyms))
	for k := range brokerSynonyms {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TopicConfigOf returns the topic setting a dynamic broker setting is the
// default of (log.retention.ms: retention.ms), or false for a name that is
// not one.
func TopicConfigOf(brokerName string) (string, bool) {
	t, ok := brokerSynonyms[brokerName]
	return t, ok
}

// BrokerConfigOf returns the dynamic broker setting that is the default of
// a topic setting (retention.ms: log.retention.ms), or false if there is
// none.
func BrokerConfigOf(topicName string) (string, bool) {
	for b, t := range brokerSynonyms {
		if t == topicName {
			return b, true
		}
	}
	return "", false
}

// AlterTopicConfigs decides replacing the explicit settings of the topic
// named name with configs (any order; none: every setting back to its
// default): one TopicConfigRecord. Errors: ErrUnknownTopic,
// ErrInvalidConfig (a name twice, an unknown name, a value out of range; see
// Policy.ValidateConfigs).
func (p Policy) AlterTopicConfigs(s *State, name string, configs []Config) ([]Record, error) {
	t := s.Topic(name)
	if t == nil {
		return nil, errf(ErrUnknownTopic, "topic %s", name)
	}
	cs, err := p.sortedConfigs(configs)
	if err != nil {
		return nil, err
	}
	return []Record{TopicConfigRecord{Topic: t.ID, Configs: cs}}, nil
}

// AlterBrokerConfigs decides replacing the dynamic settings of broker (or,
// with DefaultBrokerConfigs, the cluster-wide defaults) with configs, by
// broker name: one BrokerConfigRecord. Each name must be one of
// DynamicBrokerConfigs and its value valid for the topic setting it is the
// default of. Errors: ErrInvalidRequest (a broker id below -1),
// ErrInvalidConfig.
func (p Policy) AlterBrokerConfigs(s *State, broker int32, configs []Config) ([]Record, error) {
	if broker < DefaultBrokerConfigs {
		return nil, errf(ErrInvalidRequest, "broker %d", broker)
	}
	cs := slices.Clone(configs)
	for i := range cs {
		cs[i].Value = strings.TrimSpace(cs[i].Value)
	}
	slices.SortStableFunc(cs, func(a, b Config) int { return strings.Compare(a.Name, b.Name) })
	if err := validConfigs(cs); err != nil {
		return nil, err
	}
	for _, c := range cs {
		tn, ok := brokerSynonyms[c.Name]
		if !ok {
			return nil, errf(ErrInvalidConfig, "%s is not a broker setting that can be changed at run time", c.Name)
		}
		if err := p.validateConfigs([]Config{{Name: tn, Value: c.Value}}); err != nil {
			return nil, errf(ErrInvalidConfig, "%s: %v", c.Name, err)
		}
	}
	return []Record{BrokerConfigRecord{Broker: broker, Configs: nilIfNoConfigs(cs)}}, nil
}

// CompactOffsetsTopic decides giving __consumer_offsets Kafka's
// cleanup.policy=compact when it has another: an offsets topic created by an
// Easel that predates log compaction, or imported from a single node's
// topic file, has delete. Its other settings are kept. Nothing when the
// topic does not exist or is compacted already.
func (p Policy) CompactOffsetsTopic(s *State) []Record {
	t := s.Topic(engine.ConsumerOffsetsTopic)
	if t == nil {
		return nil
	}
	if v, ok := t.Config("cleanup.policy"); ok && v == engine.CleanupCompact {
		return nil
	}
	cs := slices.DeleteFunc(slices.Clone(t.Configs), func(c Config) bool { return c.Name == "cleanup.policy" })
	cs = append(cs, Config{Name: "cleanup.policy", Value: engine.CleanupCompact})
	recs, err := p.AlterTopicConfigs(s, t.Name, cs)
	if err != nil {
		return nil // the topic's other settings no longer validate: leave it
	}
	return recs
}
