// Package group is Easel's consumer-group coordinator: the classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets
// (OffsetCommit, OffsetFetch, stored durably in the engine's
// __consumer_offsets topic) and the admin APIs (FindCoordinator,
// DescribeGroups, ListGroups, DeleteGroups), as a library the broker calls
// with decoded kmsg requests:
//
//	c := group.New(eng, group.Config{NodeID: 0, Host: "broker1", Port: 9092})
//	ctx = group.WithConn(ctx, group.Conn{ClientID: id, ClientHost: "/10.0.0.7"})
//	resp := c.JoinGroup(ctx, req) // blocks until the rebalance completes
//	...
//	c.Close()
//
// Each method answers at the request's version; Versions lists the ranges.
// The package defines no wire or disk format of its own: requests and
// responses are Kafka's (kmsg), and the offset records are the engine's.
//
// # Group states
//
// Each group is a state machine after Kafka's GroupCoordinator:
//
//	         first join                 every member rejoined,
//	Empty ─────────────────► Preparing ─────────────────────────► Completing
//	  ▲     (waits the        Rebalance  or rebalance timeout      Rebalance
//	  │   initial delay)        ▲   │                                 │
//	  │                         │   │ no members left                 │ leader's SyncGroup
//	  └─────────────────────────┼───┘                                 ▼
//	                            └──────── join, leave, timeout ─── Stable
//
//	Empty ──DeleteGroups / offsets expired──► Dead (removed)
//
// JoinGroup responses are held until every known member has rejoined or
// the longest rebalance timeout of the members has passed; dynamic members
// that did not rejoin are then removed (static ones stay until their
// session times out). The first rebalance of an empty group waits
// InitialRebalanceDelay, extended by each new member up to the rebalance
// timeout. The leader's response lists every member with its metadata for
// the protocol chosen (among those all members support, by the members'
// first preferences, as Kafka votes); followers get their assignment from
// the leader's SyncGroup. A member whose JoinGroup or SyncGroup is not
// pending must heartbeat within its session timeout or be removed; a member
// that does not send SyncGroup within the rebalance timeout after the join
// is removed too. Member ids are generated here; from JoinGroup v4 a
// dynamic member's first join gets MEMBER_ID_REQUIRED with its new id.
//
// Static members (group.instance.id, KIP-345) that restart rejoin with an
// empty member id: the coordinator gives the known instance a new member id
// and fences the old one (FENCED_INSTANCE_ID). In a stable group whose
// selected protocol does not change that causes no rebalance: the member
// gets its old assignment back through SyncGroup (as in Kafka, changed
// metadata alone does not rebalance; the leader may rejoin to force one).
//
// Every group has its own lock, and timers (time.AfterFunc) drive session,
// rebalance, sync and retention timeouts; nothing polls.
//
// # What is and is not durable
//
// Committed offsets, with their leader epochs and metadata, are written to
// the engine before OffsetCommit returns and survive a crash. Group
// membership is not: after a restart every group starts empty (its offsets
// intact), members' heartbeats and commits get UNKNOWN_MEMBER_ID or
// ILLEGAL_GENERATION, and they rejoin. A group without members is deleted
// with its offsets once both its last member and its last commit are older
// than OffsetsRetention (counted from the coordinator's start for groups
// loaded from the engine).
package group
