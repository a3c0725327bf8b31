// Command peers measures Easel side by side with its peers and with the
// machine's limits, in one process run, and writes a JSON file of every
// result, a Markdown report with ratio tables, and charts.
//
// Run it from the repository root (the -C flag makes the go command work in
// this nested module):
//
//	go -C bench/peers run . -quick          # 3 rounds, about 5 minutes on a 2-core machine
//	go -C bench/peers run . -full -pprof    # 5 rounds, with broker CPU profiles
//	go -C bench/peers run . -quick -benchmarks-md BENCHMARKS.md
//
// README.md beside this file says what each phase measures and how.
//
// Method (repeat.go, run.go): every target runs -repeat times, interleaved
// (round 1 runs every target once, then round 2, ...); the report gives
// medians with min–max, ratios of medians, and marks a ratio whose ranges
// overlap as a tie. Before each target the page cache is warmed (a file
// written and deleted) and each target's data is deleted when it is done,
// so that every target starts from the same memory state.
//
// Targets (see -targets): easel-embedded (engine API, no network),
// easel-embedded-prealloc (the same with segment preallocation), wal
// (github.com/tidwall/wal, the embedded peer), easel-broker (the cmd/easel
// binary in its own process), easel-cluster (three cmd/easel processes, all
// raft voters, topics with replication factor 3 and min.insync.replicas 2,
// compared with easel-broker's replication factor 1), kfake (franz-go's fake Kafka, cmd/kfake in its
// own process, persisting to a data dir), nats (an embedded nats-server with
// JetStream file storage, cmd/natsd in its own process), redis (Debian's
// redis-server with appendonly yes; skipped if not installed), and machine
// (memory copy, page-cache and fsync'd file writes, loopback TCP between two
// processes).
//
// Kafka-protocol targets are driven by two load generators: "kgo" (franz-go,
// what users run, with its default 10 ms ProducerLinger; "kgo-if5" is the
// same with five produce requests in flight per broker instead of one when
// idempotence is off, "kgo-linger0" the same with no linger, for end-to-end
// latency) and "raw" (kmsg-encoded
// produce requests carrying pre-built record batches, pipelined over a few TCP
// connections; fetch responses read and dropped without decoding records).
//
// Every payload-rate figure (MB/s) counts record value bytes (records × size),
// not wire bytes, so targets with different framing compare fairly.
//
// Output goes to bench/out/ (gitignored): results.json, report.md, charts
// (throughput.png/.svg, latency.png/.svg), logs/ of the child processes and,
// with -pprof, the Easel broker's CPU profiles.
package main
