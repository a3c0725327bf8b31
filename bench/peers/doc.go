// Command peers measures Easel side by side with its peers and with the
// machine's limits, in one process run, and writes a JSON file of every
// result, a Markdown report with ratio tables, and charts.
//
// Run it from the repository root (the -C flag makes the go command work in
// this nested module):
//
//	go -C bench/peers run . -quick          # < 3 minutes on a 2-core machine
//	go -C bench/peers run . -full -pprof    # < 20 minutes, with broker CPU profiles
//	go -C bench/peers run . -quick -pprof -benchmarks-md BENCHMARKS.md
//
// README.md beside this file says what each phase measures and how.
//
// Targets (see -targets): easel-embedded (engine API, no network), wal
// (github.com/tidwall/wal, the embedded peer), easel-broker (the cmd/easel
// binary in its own process), kfake (franz-go's fake Kafka, cmd/kfake in its
// own process, persisting to a data dir), nats (an embedded nats-server with
// JetStream file storage, cmd/natsd in its own process), redis (Debian's
// redis-server with appendonly yes; skipped if not installed), and machine
// (memory copy, page-cache and fsync'd file writes, loopback TCP between two
// processes).
//
// Kafka-protocol targets are driven by two load generators: "kgo" (franz-go,
// what users run; "kgo-if5" is the same with five produce requests in flight
// per broker instead of one when idempotence is off) and "raw" (kmsg-encoded
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
