// Package controller is a broker's part in Easel's control plane: one Node
// per broker process runs its raft node on the metadata log, its gossip
// membership and, while its raft node leads, the controller loop that
// turns gossip events and requests into the cluster package's decisions.
//
//	n, err := controller.Start(controller.Config{Broker: info, Dir: dir, Voters: voters, Gossip: g})
//	<-n.Ready()                                // registered and unfenced
//	n.View(func(s *cluster.State) { ... })     // answer Metadata from the local copy
//	err = n.CreateTopic(ctx, req)              // at the controller (else ErrNotController)
//	resp, err := n.Forward(ctx, kreq)          // from any broker to the controller
//	err = n.Shutdown(ctx)                      // controlled shutdown, leave, stop
//
// # Raft
//
// The metadata log is hashicorp/raft: server ids are the decimal node ids,
// server addresses the raft addresses. The brokers of Config.Voters (Kafka's
// controller.quorum.voters) are the voters; a voter with no raft state
// bootstraps the log from that list exactly once (raft.HasExistingState
// guards it), and a node whose state has other voters is refused at Start.
// Every other broker is a raft non-voter that the controller adds
// (AddNonvoter) when gossip reports it, rather than a broker fetching the
// log from the controller: raft then replicates, truncates and sends
// snapshots to every broker with the same code that serves the voters, and
// every broker applies the log to its own FSM, from which it answers
// Metadata; a non-voter does not count for the quorum, so a slow broker
// never slows commits. A non-voter that leaves (gossip leave) is removed.
//
// The log and stable store is raft-wal (Dir/wal), snapshots raft's
// FileSnapshotStore (Dir/snapshots), taken every RaftTiming.SnapshotThreshold
// entries so a restart replays little. Raft logs through an hclog adapter
// to slog.
//
// # The controller loop
//
// Leadership is watched through raft's NotifyCh (LeaderCh drops changes).
// On winning, the loop (the shape of Consul's leader.go) does Barrier, so
// everything of earlier terms has applied; InitCluster (the cluster id, and
// the producer-id reservation of a single node's old state); Reconcile
// against gossip's live members until it returns nothing; adds missing
// non-voters; runs Config.Import; elects offline leaders. Then it makes one
// decision at a time, each inside FSM.View on the latest state, committed
// as one raft entry and applied before the next: gossip joins and updates
// (BrokerJoined), failures and leaves (BrokerFailed), requests
// (CreateTopic, AlterPartition, BrokerHeartbeat, ...), and every
// PreferredLeaderInterval and after an unfencing ElectOfflineLeaders and
// ElectPreferredLeaders; a periodic Reconcile repairs what a failed change
// left behind. Partition reassignments (AlterReassignments, KIP-455) are in
// the log, so a new controller carries them on: CompleteReassignments runs
// on taking over, after each AlterPartition and unfencing, and with each
// periodic Reconcile (AlterPartition itself completes a move whose last
// target replica joins the ISR). A new controller does not know when brokers were last seen,
// so it fences only what gossip reports dead or Reconcile finds missing:
// every live broker gets a fresh grace period. On losing leadership the
// loop stops and requests fail with ErrNotController.
//
// A gossip member is refused (logged as an error, never registered nor
// added to raft) when its voter-list fingerprint (gossip.Meta.VoterSet)
// differs from the controller's, when its controller eligibility disagrees
// with the voter list, when a voter's raft address is not the list's, or a
// non-voter uses a voter's raft address. Members of another cluster id are
// never heard (the gossip label), and a log that names another cluster id
// than the configured one stops the node (Err).
//
// # The broker side
//
// Every node watches its own registration in its local state: once this
// incarnation is registered, fenced, and the local applied index has
// reached the index at which its epoch was set, it sends BrokerHeartbeat
// (CurrentMetadataOffset = applied index) to the controller, which unfences
// it (BrokerCaughtUp) when gossip lists it alive; Ready closes the first
// time it is unfenced. A restart registers a new incarnation through gossip's
// join. NextProducerID hands out ids from KIP-730 blocks
// (AllocateProducerIDs). Forward reaches the controller wherever it is,
// retrying with backoff while there is none or it answers NOT_CONTROLLER.
//
// # Timings
//
// DefaultRaftTiming is raft's defaults (1 s heartbeat and election
// timeouts: a dead controller is replaced in about 2 s); FastRaftTiming
// (250 ms) replaces it in about half a second on loopback. Gossip's timings
// are gossip.Config's; a dead broker is fenced and its partitions move once
// gossip declares it dead.
//
// # Faults for tests
//
// StreamLayer (the default raft network, from Node.Faults) cuts raft links
// with Block and Heal, gossip.FaultTransport cuts gossip links, and
// LocalNet is an in-process Kafka network (a Config.Forward) with cuttable
// links, so tests of every package can partition a broker away.
package controller
