// Package jepsen is a Jepsen-style test of a Kafka-compatible cluster, after
// Jepsen's Kafka "queue" workload: producers send unique values, consumers
// in a group poll them, every send attempt and every poll is written to a
// History, and after the faults are healed a final reader reads every
// partition from its start to its end. Check then looks for anomalies in
// the history. The package knows nothing of how the cluster is run: it
// needs seed addresses (Workload) or a history (Check), and faults are
// injected through the small Nemesis interface by whoever runs the brokers
// (child processes in cmd/easel, in-process brokers in package broker).
//
// # History
//
// A Send is one produce attempt of one value: who sent it, to which
// partition, when it started and ended, and its outcome:
//
//	Acked          the broker acknowledged it at (Partition, Offset)
//	Failed         the send definitely did not write the value
//	Indeterminate  an error or timeout after which it may or may not be written
//
// A Poll is one record delivered to one consumer: consumer id, the
// consumer's assignment epoch (bumped on every rebalance or seek), partition,
// offset, value and time. The final read is recorded as polls by the
// consumer FinalReader, together with each partition's end offset at the
// time of the final read (History.FinalEnd).
//
// # Checkers
//
// Check runs every checker; each returns all counts and at most
// MaxExamples concrete counterexamples.
//
//   - Lost: a value acknowledged but absent from the final read. The final
//     read covers every partition from its start to an end offset listed
//     after the producers stopped and the faults healed, so an acknowledged
//     record below the end that is not read was truncated or overwritten:
//     acks=all promised it was committed.
//   - InconsistentOffsets: one (partition, offset) that held two different
//     values across acknowledgements, polls and the final read. Offsets
//     name records; two values at one offset means two replicas' logs
//     diverged and both were exposed (or an acknowledgement named the
//     wrong offset).
//   - Duplicates: one value at more than one (partition, offset), counting
//     the acknowledged position and every read. Values are sent once, so
//     with idempotent producers a retried send must not be appended twice.
//   - Unseen: a value in the final read that no group consumer ever polled,
//     although the consumers ran until they had caught up after the heal.
//     It proves at-least-once delivery through the group (committed offsets
//     never jump over records, a rebalance never skips), provided the
//     workload drained the consumers (Workload does, up to DrainTimeout).
//   - NonMonotonic: within one consumer, one assignment epoch and one
//     partition, an offset not greater than the one polled before it. A
//     consumer must see a partition in offset order unless it seeks or is
//     rebalanced; going back means the client was served an older log or
//     a stale leader's records.
//   - Skipped: within one consumer, epoch and partition, two successive polls
//     at offsets o1 < o2 while the final read has a record strictly between
//     them: the consumer was served a log missing records (a fetch above a
//     hole, a gap from a truncation it did not notice).
//   - AbortedReads: there are no transactions here (Easel refuses
//     transactional ids), so Jepsen's aborted read, a read of a write whose
//     transaction aborted, has two analogues. A read of a value whose send
//     definitely failed (Outcome Failed: the write was rejected, yet it is
//     visible), and a dirty read: a poll of a value at (partition, offset)
//     that the final read does not hold there, a record that was visible
//     to a consumer and later vanished. Consumers must read below the high
//     watermark only, and records below it are never truncated, so both
//     are errors.
//   - Unexpected: a value read that no send ever carried (corruption, or a
//     record from elsewhere).
//
// Indeterminate sends are not anomalies whether or not they show up; the
// result counts how many of them were written.
package jepsen
