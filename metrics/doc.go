// Package metrics exposes a broker's metrics to Prometheus
// (github.com/prometheus/client_golang) and serves them with the health
// endpoints (Handler: /metrics, /healthz, /readyz).
//
// It is the only package that imports Prometheus. The packages below it
// stay free of it: netio and engine report events through small observer
// interfaces (netio.Observer, engine.Observer), which this package
// implements with metrics resolved in advance (one array index and atomic
// operations per request: no lock, no allocation); the engine, broker,
// group coordinator and cluster node keep their own atomic counters and
// state, which a collector reads only when /metrics is scraped.
//
// # Metrics
//
// Names follow Prometheus conventions (base units, _total for counters).
// The Kafka name each corresponds to is given for operators moving
// dashboards and alerts over; where Kafka reports a rate (…PerSec), take
// rate() of the counter.
//
// Requests and connections (netio):
//
//	easel_requests_total{api,version}          counter    RequestMetrics RequestsPerSec
//	easel_request_queue_seconds{api}           histogram  RequestMetrics RequestQueueTimeMs
//	easel_request_handle_seconds{api}          histogram  RequestMetrics LocalTimeMs + RemoteTimeMs (long polls, acks=all waits)
//	easel_request_send_seconds{api}            histogram  RequestMetrics ResponseQueueTimeMs + ResponseSendTimeMs
//	easel_request_errors_total{api,error}      counter    RequestMetrics ErrorsPerSec (per partition)
//	easel_connections_open                     gauge      socket-server-metrics connection-count
//	easel_connections_accepted_total           counter    socket-server-metrics connection-creation-total
//	easel_connections_refused_total            counter    (max.connections reached)
//	easel_purgatory_requests                   gauge      DelayedOperationPurgatory PurgatorySize (Fetch + Produce)
//
// Topics and logs (engine):
//
//	easel_topic_bytes_in_total{topic}               counter    BrokerTopicMetrics BytesInPerSec
//	easel_topic_records_in_total{topic}             counter    BrokerTopicMetrics MessagesInPerSec
//	easel_topic_bytes_out_total{topic}              counter    BrokerTopicMetrics BytesOutPerSec
//	easel_topic_records_out_total{topic}            counter    (records sent to consumers; Kafka counts none)
//	easel_topic_replication_bytes_in_total{topic}   counter    BrokerTopicMetrics ReplicationBytesInPerSec
//	easel_topic_replication_bytes_out_total{topic}  counter    BrokerTopicMetrics ReplicationBytesOutPerSec
//	easel_produce_batch_bytes                       histogram  (batch sizes; no Kafka equivalent)
//	easel_produce_batch_records                     histogram  (records per batch)
//	easel_log_flush_seconds                         histogram  LogFlushStats LogFlushRateAndTimeMs (flush.messages, flush.ms, rolled segments)
//	easel_log_partitions{topic}                     gauge      ReplicaManager PartitionCount (by topic)
//	easel_log_segments{topic}                       gauge      Log NumLogSegments (summed)
//	easel_log_size_bytes{topic}                     gauge      Log Size (summed)
//	easel_log_mapped_index_files{topic}             gauge      (memory-mapped index files)
//	easel_log_mapped_bytes{topic}                   gauge      (bytes of those mappings)
//
// Consumer groups (group coordinator, for the groups coordinated here):
//
//	easel_consumer_groups{state}                           gauge  GroupMetadataManager NumGroups<State>
//	easel_consumer_group_members{group}                    gauge  (members; kafka-consumer-groups --members)
//	easel_consumer_group_committed_offset{group,topic,partition}  gauge  kafka-consumer-groups CURRENT-OFFSET
//	easel_consumer_group_lag{group,topic,partition}        gauge  kafka-consumer-groups LAG (high watermark − committed)
//
// Only the group's coordinator reports its metrics, and the lag only for
// the partitions whose replica it hosts (as leader or follower: a
// follower's high watermark may trail the leader's a little); the
// committed offsets are reported for all.
//
// Cluster (from this broker's copy of the metadata, and the ISR tracker):
//
//	easel_cluster_leader_partitions              gauge    ReplicaManager LeaderCount
//	easel_cluster_under_replicated_partitions    gauge    ReplicaManager UnderReplicatedPartitions
//	easel_cluster_under_min_isr_partitions       gauge    ReplicaManager UnderMinIsrPartitionCount
//	easel_cluster_offline_partitions             gauge    KafkaController OfflinePartitionsCount
//	easel_cluster_active_controller              gauge    KafkaController ActiveControllerCount
//	easel_cluster_brokers{fenced}                gauge    KafkaController ActiveBrokerCount / FencedBrokerCount
//	easel_cluster_metadata_applied_index         gauge    broker-metadata-metrics last-applied-record-offset
//	easel_isr_shrinks_total                      counter  ReplicaManager IsrShrinksPerSec
//	easel_isr_expands_total                      counter  ReplicaManager IsrExpandsPerSec
//
// Plus the Go runtime (go_*) and process (process_*) collectors.
package metrics
