package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// desc builds the description of a scrape-time metric.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// The scrape-time metrics: read from the engine, broker, groups and
// cluster state when /metrics is scraped, never counted on the hot path.
var (
	descBytesIn = desc("topic_bytes_in_total",
		"Bytes of record batches appended as leader, by topic (Kafka: BrokerTopicMetrics BytesInPerSec).", "topic")
	descRecordsIn = desc("topic_records_in_total",
		"Records appended as leader, by topic (Kafka: BrokerTopicMetrics MessagesInPerSec).", "topic")
	descBytesOut = desc("topic_bytes_out_total",
		"Record bytes sent to consumers, by topic (Kafka: BrokerTopicMetrics BytesOutPerSec).", "topic")
	descRecordsOut = desc("topic_records_out_total",
		"Records sent to consumers (of whole batches), by topic (no Kafka equivalent).", "topic")
	descReplBytesIn = desc("topic_replication_bytes_in_total",
		"Record bytes appended as follower, by topic (Kafka: ReplicationBytesInPerSec).", "topic")
	descReplBytesOut = desc("topic_replication_bytes_out_total",
		"Record bytes sent to followers, by topic (Kafka: ReplicationBytesOutPerSec).", "topic")

	descPartitions = desc("log_partitions",
		"Partitions hosted here, by topic (Kafka: ReplicaManager PartitionCount, summed).", "topic")
	descSegments = desc("log_segments",
		"Log segments, by topic (Kafka: kafka.log Log NumLogSegments, summed).", "topic")
	descLogBytes = desc("log_size_bytes",
		"Bytes of the log segments, by topic (Kafka: kafka.log Log Size, summed).", "topic")
	descMapped = desc("log_mapped_index_files",
		"Index files memory-mapped, by topic.", "topic")
	descMappedBytes = desc("log_mapped_bytes",
		"Bytes of the memory-mapped index files (their preallocated room included), by topic.", "topic")

	descErrors = desc("request_errors_total",
		"Error codes answered, by API and error, once per partition (Kafka: RequestMetrics ErrorsPerSec).", "api", "error")
	descParked = desc("purgatory_requests",
		"Requests waiting in the purgatory: fetch long polls and acks=all produces (Kafka: DelayedOperationPurgatory PurgatorySize).")
	descISRShrinks = desc("isr_shrinks_total",
		"ISR shrinks of partitions led here (Kafka: ReplicaManager IsrShrinksPerSec).")
	descISRExpands = desc("isr_expands_total",
		"ISR expands of partitions led here (Kafka: ReplicaManager IsrExpandsPerSec).")

	descGroups = desc("consumer_groups",
		"Consumer groups coordinated here, by state (Kafka: GroupMetadataManager NumGroups<State>).", "state")
	descMembers = desc("consumer_group_members",
		"Members of a consumer group coordinated here.", "group")
	descLag = desc("consumer_group_lag",
		"High watermark minus the group's committed offset, by group and partition, for partitions hosted here (Kafka: kafka-consumer-groups LAG; records-lag at the client).",
		"group", "topic", "partition")
	descCommitted = desc("consumer_group_committed_offset",
		"The group's committed offset, by partition (Kafka: kafka-consumer-groups CURRENT-OFFSET).", "group", "topic", "partition")

	descLeaders = desc("cluster_leader_partitions",
		"Partitions led by this broker (Kafka: ReplicaManager LeaderCount).")
	descUnderReplicated = desc("cluster_under_replicated_partitions",
		"Partitions led by this broker whose ISR is smaller than their replica set (Kafka: ReplicaManager UnderReplicatedPartitions).")
	descUnderMinISR = desc("cluster_under_min_isr_partitions",
		"Partitions led by this broker whose ISR is smaller than their min.insync.replicas (Kafka: ReplicaManager UnderMinIsrPartitionCount).")
	descOffline = desc("cluster_offline_partitions",
		"Partitions without a leader, as this broker's metadata shows them (Kafka: KafkaController OfflinePartitionsCount).")
	descController = desc("cluster_active_controller",
		"1 if this broker is the controller, else 0 (Kafka: KafkaController ActiveControllerCount).")
	descBrokers = desc("cluster_brokers",
		"Registered brokers, by fenced state (Kafka: KafkaController ActiveBrokerCount, FencedBrokerCount).", "fenced")
	descApplied = desc("cluster_metadata_applied_index",
		"Index of the last metadata log entry applied here (Kafka: broker-metadata-metrics last-applied-record-offset).")
)

// stateCollector emits the scrape-time metrics from Metrics' sources.
type stateCollector struct{ m *Metrics }

var allDescs = []*prometheus.Desc{
	descBytesIn, descRecordsIn, descBytesOut, descRecordsOut, descReplBytesIn, descReplBytesOut,
	descPartitions, descSegments, descLogBytes, descMapped, descMappedBytes,
	descErrors, descParked, descISRShrinks, descISRExpands,
	descGroups, descMembers, descLag, descCommitted,
	descLeaders, descUnderReplicated, descUnderMinISR, descOffline, descController, descBrokers, descApplied,
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.sources()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if e := src.Engine; e != nil {
		e.EachTopicCounters(func(topic string, tc *engine.TopicCounters) {
			counter(descBytesIn, float64(tc.BytesIn.Load()), topic)
			counter(descRecordsIn, float64(tc.RecordsIn.Load()), topic)
			counter(descBytesOut, float64(tc.BytesOut.Load()), topic)
			counter(descRecordsOut, float64(tc.RecordsOut.Load()), topic)
			counter(descReplBytesIn, float64(tc.ReplicationBytesIn.Load()), topic)
			counter(descReplBytesOut, float64(tc.ReplicationBytesOut.Load()), topic)
		})
		for _, ts := range e.TopicStats() {
			gauge(descPartitions, float64(ts.Partitions), ts.Name)
			gauge(descSegments, float64(ts.Segments), ts.Name)
			gauge(descLogBytes, float64(ts.Bytes), ts.Name)
			gauge(descMapped, float64(ts.MappedFiles), ts.Name)
			gauge(descMappedBytes, float64(ts.MappedBytes), ts.Name)
		}
	}
	if b := src.Broker; b != nil {
		b.EachError(func(key, code int16, n uint64) {
			counter(descErrors, float64(n), apiName(key), errorName(code))
		})
		st := b.Stats()
		gauge(descParked, float64(st.Parked))
		counter(descISRShrinks, float64(st.ISRShrinks))
		counter(descISRExpands, float64(st.ISRExpands))
		c.collectGroups(src, gauge)
	}
	if n := src.Node; n != nil {
		c.collectCluster(src, gauge)
	}
}

// errorName is Kafka's name of an error code.
func errorName(code int16) string {
	if err := kerr.ErrorForCode(code); err != nil {
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return strconv.Itoa(int(code))
}

// groupStates are the states a group can be in, so that each is reported
// (zero included).
var groupStates = []string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}

func (c *stateCollector) collectGroups(src Sources, gauge func(*prometheus.Desc, float64, ...string)) {
	groups := src.Broker.Groups().Stats()
	byState := map[string]int{}
	for _, g := range groups {
		byState[g.State]++
		gauge(descMembers, float64(g.Members), g.ID)
		for _, o := range g.Offsets {
			part := strconv.Itoa(int(o.Partition))
			gauge(descCommitted, float64(o.Offset), g.ID, o.Topic, part)
			if src.Engine == nil || o.Offset < 0 {
				continue
			}
			p, err := src.Engine.Partition(o.Topic, o.Partition)
			if err != nil {
				continue // not hosted here: its high watermark is another broker's
			}
			gauge(descLag, float64(max(p.HighWatermark()-o.Offset, 0)), g.ID, o.Topic, part)
		}
	}
	for _, s := range groupStates {
		gauge(descGroups, float64(byState[s]), s)
	}
}

func (c *stateCollector) collectCluster(src Sources, gauge func(*prometheus.Desc, float64, ...string)) {
	n := src.Node
	var leaders, under, underMin, offline, live, fenced int
	n.View(func(s *cluster.State) {
		for _, t := range s.Topics() {
			minISR := max(src.MinInsyncReplicas, 1)
			if v, ok := t.Config(cluster.ConfigMinInsyncReplicas); ok {
				if m, err := strconv.Atoi(v); err == nil {
					minISR = m
				}
			}
			for _, p := range s.Partitions(t.ID) {
				switch {
				case p.Leader == cluster.NoLeader:
					offline++
				case p.Leader == src.NodeID:
					leaders++
					if len(p.ISR) < len(p.Replicas) {
						under++
					}
					if len(p.ISR) < minISR {
						underMin++
					}
				}
			}
		}
		for _, b := range s.Brokers() {
			if b.Fenced {
				fenced++
			} else {
				live++
			}
		}
	})
	gauge(descLeaders, float64(leaders))
	gauge(descUnderReplicated, float64(under))
	gauge(descUnderMinISR, float64(underMin))
	gauge(descOffline, float64(offline))
	active := 0.0
	if n.IsController() {
		active = 1
	}
	gauge(descController, active)
	gauge(descBrokers, float64(live), "false")
	gauge(descBrokers, float64(fenced), "true")
	gauge(descApplied, float64(n.Applied()))
}
