package controller

import (
	"context"
	"log/slog"
	"time"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/gossip"
	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config configures a Node. Start fills zero fields with their defaults.
type Config struct {
	// Broker says who this broker is: ID, Host and Port (the advertised
	// Kafka address), RaftAddr (the advertised raft host:port; default the
	// address RaftBind bound), Rack. Start sets ControllerEligible (the id
	// is in Voters) and, when 0, Incarnation (from the clock, unique per
	// start in this process).
	Broker cluster.BrokerInfo
	// Dir holds the raft state: the log and stable store (raft-wal, in
	// Dir/wal) and the snapshots (Dir/snapshots). Created if missing.
	// Required.
	Dir string
	// RaftBind is the raft listen address. Default Broker.RaftAddr.
	RaftBind string
	// Voters are the raft voters (controller.quorum.voters): 1, 3 or 5
	// brokers. Required; every broker of the cluster, voter or not, is
	// configured with the same list (its fingerprint is gossiped and a
	// member with another one is refused).
	Voters []Voter
	// ClusterID, when set, is the gossip label (members of another cluster
	// are never heard) and the id InitCluster writes on a fresh log; a log
	// that names another id is refused (Start fails or, when the id is
	// learned from the leader later, the node stops serving and Err says
	// why). When empty, a fresh single-voter cluster picks a random id
	// (as Kafka's storage tool does) and a multi-voter cluster derives one
	// from the voter list (DerivedClusterID), so that a cluster needs no
	// more configuration than its voter list; the gossip label is then the
	// fixed "default", and the voter-list fingerprint in every member's
	// gossip metadata keeps differently configured brokers apart with a
	// clear error instead of a silent label mismatch.
	ClusterID string
	// Gossip configures membership: BindAddr, AdvertiseAddr, Seeds,
	// timings, Wrap, Logger. Start fills ClusterID and Meta. BindAddr ""
	// means no gossip, allowed only for a single-voter cluster of this
	// node (its only live member is itself).
	Gossip gossip.Config
	// Policy holds the controller's decision settings.
	Policy cluster.Policy
	// Raft sets raft's timings; zero fields come from DefaultRaftTiming.
	Raft RaftTiming
	// RaftTransport overrides the raft transport (tests). Default a
	// raft.NetworkTransport over a StreamLayer on RaftBind, which Node.Faults
	// returns so that tests can cut raft links.
	RaftTransport raft.Transport
	// Forward sends a Kafka request to the broker at a Kafka address and
	// returns its response. Default: an internal/kclient Client the node
	// owns (LocalNet.Forwarder serves in-process tests).
	Forward func(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error)
	// PreferredLeaderInterval is how often the controller moves leadership
	// back to preferred replicas and elects leaders for offline partitions
	// (Kafka's leader.imbalance.check.interval.seconds, 300 s). Default
	// 30 s: the check is a scan of the in-memory state and commits nothing
	// when all is in place, and after a rolling restart leadership should
	// come back within a minute rather than five; it also runs right after a
	// broker is unfenced.
	PreferredLeaderInterval time.Duration
	// NextProducerID is a reservation passed to Policy.InitCluster: the
	// first producer id a single node's old state file had not handed out.
	NextProducerID int64
	// Import, if set, is called by the controller each time it wins
	// leadership, after Barrier and Reconcile: it returns records to commit
	// (legacy single-node topics not yet in the state) or none. They are
	// committed as one entry.
	Import func(s *cluster.State) ([]cluster.Record, error)
	// OnApply, if set, runs after each committed entry on raft's FSM
	// goroutine (see cluster.FSM.OnApply); it must not block long.
	OnApply func(index uint64, recs []cluster.Record, err error)
	// OnRestore, if set, runs after a snapshot replaced the state (at start
	// or when the leader sent one), on raft's FSM goroutine.
	OnRestore func()
	// WALSegmentSize is the size of a raft-wal segment file, preallocated.
	// Default 16 MiB (raft-wal's 64 MiB is much more than a metadata log
	// between snapshots needs).
	WALSegmentSize int
	// Logger receives the node's, raft's and memberlist's logs. Default
	// slog.Default().
	Logger *slog.Logger
}

// RaftTiming sets raft's timings and snapshot policy (hashicorp/raft's
// Config fields of the same names).
type RaftTiming struct {
	// HeartbeatTimeout is how long a follower waits without contact from
	// the leader before it campaigns; ElectionTimeout how long a candidate
	// waits for votes. A new controller is elected about 2× their value
	// after the old one dies.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without
	// contact with a quorum (<= HeartbeatTimeout).
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long an idle leader waits before it sends
	// followers the commit index.
	CommitTimeout time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot;
	// SnapshotThreshold the number of entries since the last snapshot that
	// makes it do so; TrailingLogs the entries kept behind a snapshot for
	// followers that lag a little.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// DefaultRaftTiming returns production timings: raft's defaults for
// elections (1 s heartbeat and election timeouts: a dead controller is
// replaced in about 2 s), and snapshots every 1024 entries checked every
// 30 s, with 1024 entries kept behind, so a restart replays little (a
// metadata snapshot of 10,000 partitions is about 700 KB, so sending one to
// a lagging follower is cheap).
func DefaultRaftTiming() RaftTiming {
	return RaftTiming{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  1024,
		TrailingLogs:       1024,
	}
}

// FastRaftTiming returns timings for tests on loopback: heartbeat and
// election timeouts of 250 ms (a new leader about half a second after the
// old one dies), snapshots checked every second.
func FastRaftTiming() RaftTiming {
	return RaftTiming{
		HeartbeatTimeout:   250 * time.Millisecond,
		ElectionTimeout:    250 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotInterval:   time.Second,
		SnapshotThreshold:  64,
		TrailingLogs:       64,
	}
}

func (t RaftTiming) withDefaults() RaftTiming {
	d := DefaultRaftTiming()
	if t.HeartbeatTimeout <= 0 {
		t.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if t.ElectionTimeout <= 0 {
		t.ElectionTimeout = max(d.ElectionTimeout, t.HeartbeatTimeout)
	}
	if t.LeaderLeaseTimeout <= 0 {
		t.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, t.HeartbeatTimeout)
	}
	if t.CommitTimeout <= 0 {
		t.CommitTimeout = d.CommitTimeout
	}
	if t.SnapshotInterval <= 0 {
		t.SnapshotInterval = d.SnapshotInterval
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	return t
}
