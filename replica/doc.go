// Package replica runs a broker's follower fetchers: for every partition the
// broker follows, it fetches the leader's log with the Kafka Fetch protocol
// and writes it, byte for byte, to the local engine (Kafka's
// ReplicaFetcherThread and AbstractFetcherThread; KIP-101, KIP-279, KIP-320,
// KIP-595).
//
// # How it works
//
// The broker's hosting loop moves each followed partition to its leader
// epoch (engine.Partition.BecomeFollower) and then hands Fetchers.Set the
// complete desired set of Assignments. Set diffs it against the current one:
// partitions that went are dropped, new ones start, and a partition whose
// leader, address, topic id or leader epoch changed restarts from the
// truncation step. Set does no network I/O and, when nothing changed, takes
// no lock but its own.
//
// There is one fetcher goroutine per source broker (leader id and address).
// It multiplexes every partition it follows from that leader into one Fetch
// request at a time (so at most one response, at most Config.MaxBytes plus
// one first batch, is in memory per fetcher):
//
//	Fetch (v4–12, the highest both sides speak, capped at 12)
//	  replica_id           = Config.NodeID
//	  max_wait_ms, min_bytes, max_bytes = Config.MaxWait, MinBytes, MaxBytes
//	  per partition:
//	    current_leader_epoch = Assignment.LeaderEpoch (v9+; KIP-320 fencing)
//	    fetch_offset         = the local log end offset (LEO)
//	    last_fetched_epoch   = leader epoch of the last local batch (v12+)
//	    log_start_offset     = the local log start offset
//	    partition_max_bytes  = Config.PartitionMaxBytes
//
// Every partition passes through two phases:
//
//   - truncating, when it starts following or its assignment changes: the
//     follower's log may hold a tail the new leader does not have. An empty
//     log needs nothing. Otherwise, if the leader answers Fetch v12, the
//     first fetch carries last_fetched_epoch and the leader either serves it
//     (no divergence) or answers diverging_epoch; for older leaders an
//     OffsetForLeaderEpoch (key 23) request asks for the end of the last
//     local epoch. Either answer gives a truncation offset as Kafka computes
//     it (see truncationOffset): the follower truncates with
//     engine.FollowerWriter.TruncateTo(off, false), repeating while its own
//     epoch at that point is older than the leader's (KIP-279). A log whose last
//     batch has no epoch in the cache is cut to its high watermark (KIP-101's
//     fallback). A truncation the engine refuses because it would cut
//     committed records (engine.ErrBelowHighWatermark) stops the partition
//     with an error: after a clean election it is a bug elsewhere, and it
//     is not forced. Only when the leader's epoch follows an unclean
//     election that the local log predates (Assignment.UncleanEpoch newer
//     than its last batch's epoch) are committed records cut, with a
//     warning: what the old ISR committed and the new leader never had is
//     lost, as in Kafka.
//   - fetching: records are appended (FollowerWriter.Append; a
//     partial last batch, cut by max bytes, is ignored and fetched next
//     time), then the local high watermark is set to min(the leader's,
//     the local LEO) (SetHighWatermark; the engine must be opened with
//     Options.ManagedHighWatermarks) and the log start is moved up to the
//     leader's, as far as the local high watermark (DeleteRecords). With v12
//     every fetch carries last_fetched_epoch, so a divergence found later is
//     handled the same way.
//
// Responses are matched to the assignment they were asked under: each change
// Set makes to a partition bumps its generation, and a response (Fetch,
// OffsetForLeaderEpoch or ListOffsets) for an older generation is dropped
// whole, so a stale fetcher never appends under a stale epoch. Set takes
// the partition's lock to make the change, and the fetcher holds it while it
// writes that partition: once Set returns, no response of the old assignment
// is written (Set may therefore wait for one partition's append, never for
// the network). And every write, truncation and start over goes through the
// engine's fenced write path, engine.Partition.Follower(epoch) with the
// epoch the request was made in: the engine checks, under the lock that
// serialises the partition's appends with BecomeLeader and BecomeFollower,
// that the partition still follows exactly that epoch. A broker that
// promotes a partition (BecomeLeader) or moves it to a newer epoch before
// its next Set therefore gets nothing more written to it, however the
// calls interleave (the partition backs off with ErrNotFollower until Set
// catches up). Kafka's order, Set before BecomeLeader, is still the
// better one: no fetch is wasted.
//
// Errors, per partition (the others in the response go on):
//
//	FENCED_LEADER_EPOCH          stopped until Set gives a newer assignment
//	NOT_LEADER_OR_FOLLOWER,      backed off, then retried: the leader's copy
//	UNKNOWN_LEADER_EPOCH,        of the metadata may lag this broker's by a
//	UNKNOWN_TOPIC_OR_PARTITION,  few ms (a newer Set fixes it sooner); the
//	UNKNOWN_TOPIC_ID, others     pause starts at 10 ms and doubles while the
//	                             errors repeat, up to Config.Backoff
//	OFFSET_OUT_OF_RANGE          ListOffsets (replica id set) for the leader's
//	                             log end: a longer local log is cut to it; a
//	                             local log that ends below the leader's log
//	                             start (ListOffsets again) starts over there:
//	                             a Fetch at that start gives the base of the
//	                             batch holding it (DeleteRecords may have put
//	                             the start inside a batch), the local log is
//	                             started over, empty, at that base
//	                             (FollowerWriter.TruncateFullyAndStartAt; or
//	                             cut to it if it reaches that far) and the
//	                             fetched records appended
//
// A request that fails (connection lost, timeout, top-level error) backs off
// the whole fetcher for Config.Backoff; kclient dials again on the next one.
//
// # What is frozen
//
// Nothing here is stored: the package keeps no files. What goes on the wire
// is the Kafka protocol (Fetch, OffsetForLeaderEpoch, ListOffsets), frozen
// by Kafka; the kclient package doc has the framing.
package replica
