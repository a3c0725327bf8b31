package group

import (
	"bytes"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
)

// state is a group's place in the classic protocol.
type state int8

const (
	stateEmpty               state = iota // no members
	statePreparingRebalance               // waiting for members to (re)join
	stateCompletingRebalance              // joined; waiting for the leader's SyncGroup
	stateStable                           // assignment handed out
	stateDead                             // deleted; the object is no longer in the map
)

var stateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

// String returns Kafka's name for the state, as DescribeGroups and
// ListGroups report it.
func (s state) String() string { return stateNames[s] }

type protocol struct {
	name     string
	metadata []byte // owned by the group, never modified: responses share it
}

// member is one member of a group. All fields are guarded by its group's mu.
type member struct {
	id               string
	instance         *string // group.instance.id of a static member, else nil; shared with responses
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []protocol // as the member listed them, names unique
	assignment       []byte     // from the leader's SyncGroup; shared with responses

	// join is non-nil while the member awaits its JoinGroup response, sync
	// while it awaits its SyncGroup response. Each is buffered (1) and
	// receives exactly one value before it is reset to nil.
	// Invariant: join != nil only in PreparingRebalance; sync != nil only
	// in CompletingRebalance.
	join chan joinResult
	sync chan syncResult

	isNew   bool // joined but not yet through a completed join
	hbSeq   uint64
	hbTimer stopper
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// matches reports whether protos are the member's protocols, in order.
func (m *member) matches(protos []protocol) bool {
	if len(protos) != len(m.protocols) {
		return false
	}
	for i, p := range protos {
		if p.name != m.protocols[i].name || !bytes.Equal(p.metadata, m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// pendingMember is a member id handed out with MEMBER_ID_REQUIRED and
// not yet used to join.
type pendingMember struct {
	id    string // owned copy: requests' strings may alias their buffers
	timer stopper
}

// group is one consumer group: its members and the rebalance state machine,
// after Kafka's GroupCoordinator and GroupMetadata. Methods named ...Locked
// expect mu held.
type group struct {
	c     *Coordinator
	id    string
	shard *shard  // the __consumer_offsets partition holding the group
	w     *writer // that partition's writer when the group was created (or loaded)

	// commitMu serialises the group's offset writes with the deletion of its
	// offsets (DeleteGroups, expiry). Taken before mu; held across engine
	// I/O, which mu never is for commits.
	commitMu sync.Mutex

	mu           sync.Mutex
	state        state
	generation   int32
	protocolType string // of the first member; kept when the group empties
	protocol     string // selected protocol of the current generation; "" when Empty
	leader       string // Invariant: a member's id, or "" when there are none
	members      []*member
	byID         map[string]*member
	static       map[string]*member // by group.instance.id
	pending      map[string]*pendingMember
	protoCount   map[string]int // how many members support each protocol
	awaitingJoin int            // Invariant: members with join != nil
	pendingSync  map[string]bool

	newMemberAdded   bool          // a member joined during the initial delay
	initialDelay     bool          // the join timer is the initial delay; joins cannot complete early
	initialRemaining time.Duration // how much more the initial delay may grow
	joinSeq          uint64
	joinTimer        stopper
	syncSeq          uint64
	syncTimer        stopper

	emptySince time.Time // Config.Now when the group last became empty
	lastCommit time.Time
	// offsets are the group's committed offsets, each already appended to
	// the log. Guarded by mu; changed only with commitMu held too.
	offsets map[engine.TopicPartition]committed
	// persisted is set once a GroupMetadata record of the group may be in
	// the log, so that deleting the group must write its tombstone.
	persisted bool
}

// newGroup returns an empty group of shard s writing with w.
func newGroup(c *Coordinator, s *shard, w *writer, id string) *group {
	return &group{
		c:           c,
		id:          id,
		shard:       s,
		w:           w,
		offsets:     make(map[engine.TopicPartition]committed),
		byID:        make(map[string]*member),
		static:      make(map[string]*member),
		pending:     make(map[string]*pendingMember),
		protoCount:  make(map[string]int),
		pendingSync: make(map[string]bool),
		emptySince:  c.cfg.Now(),
	}
}

type joinResult struct {
	code       int16
	memberID   string
	generation int32
	ptype      string
	protocol   string
	leader     string
	members    []kmsg.JoinGroupResponseMember // the leader's view of the group
}

type syncResult struct {
	code       int16
	assignment []byte
	ptype      string
	protocol   string
}

func joinError(code int16, memberID string) joinResult {
	return joinResult{code: code, memberID: memberID, generation: -1}
}

// joinParams is a decoded JoinGroup request. Its strings and slices are
// owned by the coordinator (copied from the request), except memberID,
// which may alias the request buffer: use it for lookups only.
type joinParams struct {
	memberID         string
	instance         *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []protocol
	requireKnownID   bool // v4+ dynamic members: MEMBER_ID_REQUIRED first
}

// --- membership bookkeeping ---

func (g *group) addLocked(m *member, join chan joinResult) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.members = append(g.members, m)
	g.byID[m.id] = m
	if m.instance != nil {
		g.static[*m.instance] = m
	}
	for _, p := range m.protocols {
		g.protoCount[p.name]++
	}
	if join != nil {
		m.join = join
		g.awaitingJoin++
	}
	if p := g.pending[m.id]; p != nil {
		stop(p.timer)
		delete(g.pending, m.id)
	}
}

// removeLocked drops m from the group's books, answering any request it
// has waiting with UNKNOWN_MEMBER_ID.
func (g *group) removeLocked(m *member) {
	if m.join != nil {
		m.join <- joinError(kerr.UnknownMemberID.Code, "")
		m.join = nil
		g.awaitingJoin--
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.UnknownMemberID.Code}
		m.sync = nil
	}
	stop(m.hbTimer)
	m.hbSeq++
	for i, x := range g.members {
		if x == m {
			copy(g.members[i:], g.members[i+1:])
			g.members[len(g.members)-1] = nil
			g.members = g.members[:len(g.members)-1]
			break
		}
	}
	delete(g.byID, m.id)
	if m.instance != nil && g.static[*m.instance] == m {
		delete(g.static, *m.instance)
	}
	g.countLocked(m, -1)
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
		if len(g.members) > 0 {
			g.leader = g.members[0].id
		}
	}
}

func (g *group) countLocked(m *member, d int) {
	for _, p := range m.protocols {
		if n := g.protoCount[p.name] + d; n > 0 {
			g.protoCount[p.name] = n
		} else {
			delete(g.protoCount, p.name)
		}
	}
}

// updateLocked replaces m's protocols and timeouts and makes it await join
// with ch.
func (g *group) updateLocked(m *member, p *joinParams, ch chan joinResult) {
	g.countLocked(m, -1)
	m.protocols = p.protocols
	g.countLocked(m, +1)
	m.sessionTimeout = p.sessionTimeout
	m.rebalanceTimeout = p.rebalanceTimeout
	if m.join != nil {
		// A second JoinGroup while one waits: the first is superseded.
		m.join <- joinError(kerr.RebalanceInProgress.Code, m.id)
		g.awaitingJoin--
	}
	m.join = ch
	g.awaitingJoin++
}

// supportsLocked is Kafka's supportsProtocols: the protocol type matches and
// at least one protocol is supported by every member.
func (g *group) supportsLocked(ptype string, protos []protocol) bool {
	if ptype == "" || len(protos) == 0 {
		return false
	}
	if g.state == stateEmpty {
		return true
	}
	if ptype != g.protocolType {
		return false
	}
	for _, p := range protos {
		if g.protoCount[p.name] == len(g.members) {
			return true
		}
	}
	return false
}

// selectProtocolLocked picks, among the protocols every member supports,
// the one most members list first (ties: the smallest name), as Kafka votes.
// It returns "" if there is no common protocol (which supportsLocked
// prevents).
func (g *group) selectProtocolLocked() string {
	n := len(g.members)
	votes := make(map[string]int, 4)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.protoCount[p.name] == n {
				votes[p.name]++
				break
			}
		}
	}
	best, bestVotes := "", 0
	for name, v := range votes {
		if v > bestVotes || v == bestVotes && name < best {
			best, bestVotes = name, v
		}
	}
	return best
}

func (g *group) rebalanceTimeoutLocked() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// validateMemberLocked is Kafka's validateCurrentMember: instance (if any)
// maps to memberID, and memberID is a member.
func (g *group) validateMemberLocked(memberID string, instance *string) int16 {
	if instance != nil {
		m := g.static[*instance]
		switch {
		case m == nil:
			return kerr.UnknownMemberID.Code
		case m.id != memberID:
			return kerr.FencedInstanceID.Code
		}
		return 0
	}
	if g.byID[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// --- timers ---

// scheduleHeartbeatLocked (re)starts m's session timer: unless m
// heartbeats (or is in a rebalance) within d, it is removed.
func (g *group) scheduleHeartbeatLocked(m *member, d time.Duration) {
	stop(m.hbTimer)
	m.hbSeq++
	seq := m.hbSeq
	m.hbTimer = g.c.after(d, func() { g.expireHeartbeat(m, seq) })
}

func (g *group) expireHeartbeat(m *member, seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead || m.hbSeq != seq || g.byID[m.id] != m {
		return
	}
	if !m.isNew && (m.join != nil || m.sync != nil) {
		return // members waiting in a rebalance need not heartbeat
	}
	g.c.log.Info("group: member session timed out", "group", g.id, "member", m.id)
	g.removeMemberLocked(m, "session timeout")
}

func (g *group) armJoinTimerLocked(d time.Duration) {
	stop(g.joinTimer)
	g.joinSeq++
	seq := g.joinSeq
	g.joinTimer = g.c.after(d, func() { g.joinTimerFired(seq) })
}

func (g *group) joinTimerFired(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.joinSeq != seq || g.state != statePreparingRebalance {
		return
	}
	if g.initialDelay {
		if g.newMemberAdded && g.initialRemaining > 0 {
			g.newMemberAdded = false
			d := min(g.c.cfg.InitialRebalanceDelay, g.initialRemaining)
			g.initialRemaining -= d
			g.armJoinTimerLocked(d)
			return
		}
		g.initialDelay = false
	}
	g.completeJoinLocked()
}

func (g *group) armSyncTimerLocked(d time.Duration) {
	stop(g.syncTimer)
	g.syncSeq++
	seq, gen := g.syncSeq, g.generation
	g.syncTimer = g.c.after(d, func() { g.syncTimerFired(seq, gen) })
}

// syncTimerFired removes the members that have not sent SyncGroup within
// the rebalance timeout after the join completed, and rebalances.
func (g *group) syncTimerFired(seq uint64, gen int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.syncSeq != seq || g.generation != gen || len(g.pendingSync) == 0 ||
		(g.state != stateCompletingRebalance && g.state != stateStable) {
		return
	}
	for _, m := range append([]*member(nil), g.members...) {
		if g.pendingSync[m.id] {
			g.c.log.Info("group: member did not sync in time", "group", g.id, "member", m.id)
			g.removeLocked(m)
		}
	}
	g.prepareRebalanceLocked()
}

// shutdownLocked stops g's timers and answers its waiting JoinGroup and
// SyncGroup requests with NOT_COORDINATOR, so that clients look for the
// coordinator again (on Close; a deleted group has no members left).
func (g *group) shutdownLocked() {
	stop(g.joinTimer)
	stop(g.syncTimer)
	g.joinSeq++
	g.syncSeq++
	for _, p := range g.pending {
		stop(p.timer)
	}
	for _, m := range g.members {
		stop(m.hbTimer)
		m.hbSeq++
		if m.join != nil {
			m.join <- joinError(kerr.NotCoordinator.Code, m.id)
			m.join = nil
			g.awaitingJoin--
		}
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.NotCoordinator.Code}
			m.sync = nil
		}
	}
}

// --- the state machine ---

// removeMemberLocked is Kafka's removeMemberAndUpdateGroup.
func (g *group) removeMemberLocked(m *member, reason string) {
	g.removeLocked(m)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.maybePrepareRebalanceLocked(reason)
	case statePreparingRebalance:
		g.tryCompleteJoinLocked()
	}
}

func (g *group) maybePrepareRebalanceLocked(reason string) {
	switch g.state {
	case stateStable, stateCompletingRebalance, stateEmpty:
		g.c.log.Debug("group: preparing rebalance", "group", g.id, "reason", reason)
		g.prepareRebalanceLocked()
	}
}

func (g *group) prepareRebalanceLocked() {
	if g.state == stateCompletingRebalance {
		g.propagateErrorLocked(kerr.RebalanceInProgress.Code)
	}
	stop(g.syncTimer)
	g.syncSeq++
	clear(g.pendingSync)
	wasEmpty := g.state == stateEmpty
	g.state = statePreparingRebalance
	if wasEmpty {
		delay := g.c.cfg.InitialRebalanceDelay
		g.initialDelay = true
		g.newMemberAdded = false
		g.initialRemaining = max(g.rebalanceTimeoutLocked()-delay, 0)
		g.armJoinTimerLocked(delay)
		return
	}
	g.initialDelay = false
	g.armJoinTimerLocked(g.rebalanceTimeoutLocked())
	g.tryCompleteJoinLocked()
}

// tryCompleteJoinLocked completes the join phase once every member has
// rejoined and no member id handed out is outstanding.
func (g *group) tryCompleteJoinLocked() {
	if g.state == statePreparingRebalance && !g.initialDelay &&
		g.awaitingJoin == len(g.members) && len(g.pending) == 0 {
		g.completeJoinLocked()
	}
}

// completeJoinLocked is Kafka's onCompleteJoin: dynamic members that did
// not rejoin are removed, a leader that did not rejoin is replaced, and the
// next generation starts, answering every waiting JoinGroup.
func (g *group) completeJoinLocked() {
	stop(g.joinTimer)
	g.joinSeq++
	for _, m := range append([]*member(nil), g.members...) {
		if m.join == nil && m.instance == nil {
			g.c.log.Info("group: member did not rejoin in time", "group", g.id, "member", m.id)
			g.removeLocked(m)
		}
	}
	if len(g.members) > 0 && !g.electJoinedLeaderLocked() {
		// Only static members that did not rejoin are left: wait another
		// rebalance timeout (their sessions may expire meanwhile), at least
		// a second, so that a zero timeout does not spin.
		g.armJoinTimerLocked(max(g.rebalanceTimeoutLocked(), minRejoinWait))
		return
	}
	g.generation++
	clear(g.pendingSync)
	if len(g.members) == 0 {
		g.protocol = ""
		g.state = stateEmpty
		g.emptySince = g.c.cfg.Now()
		g.c.log.Info("group: empty", "group", g.id, "generation", g.generation)
		g.storeEmptyLocked()
		return
	}
	g.protocol = g.selectProtocolLocked()
	g.state = stateCompletingRebalance
	g.c.log.Info("group: rebalanced", "group", g.id, "generation", g.generation,
		"members", len(g.members), "protocol", g.protocol, "leader", g.leader)
	var all []kmsg.JoinGroupResponseMember
	for _, m := range g.members {
		if m.join != nil {
			r := g.currentJoinResultLocked(m.id, g.leader)
			if m.id == g.leader {
				if all == nil {
					all = g.memberListLocked()
				}
				r.members = all
			}
			m.join <- r
			m.join = nil
			g.awaitingJoin--
		}
		g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		m.isNew = false
		g.pendingSync[m.id] = true
	}
	g.armSyncTimerLocked(g.rebalanceTimeoutLocked())
}

// electJoinedLeaderLocked keeps the leader if it rejoined, else makes the
// first member that did the leader. It reports whether any member rejoined.
func (g *group) electJoinedLeaderLocked() bool {
	if l := g.byID[g.leader]; l != nil && l.join != nil {
		return true
	}
	for _, m := range g.members {
		if m.join != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

func (g *group) currentJoinResultLocked(memberID, leader string) joinResult {
	return joinResult{
		memberID:   memberID,
		generation: g.generation,
		ptype:      g.protocolType,
		protocol:   g.protocol,
		leader:     leader,
	}
}

// memberListLocked is what the leader gets: every member with its metadata
// for the selected protocol.
func (g *group) memberListLocked() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, len(g.members))
	for i, m := range g.members {
		out[i] = kmsg.JoinGroupResponseMember{
			MemberID:         m.id,
			InstanceID:       m.instance,
			ProtocolMetadata: m.metadataFor(g.protocol),
		}
	}
	return out
}

// propagateErrorLocked is Kafka's resetAndPropagateAssignmentError.
func (g *group) propagateErrorLocked(code int16) {
	for _, m := range g.members {
		m.assignment = nil
		if m.sync != nil {
			m.sync <- syncResult{code: code}
			m.sync = nil
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		}
	}
}

// setAssignmentLocked is Kafka's setAndPropagateAssignment followed by the
// move to Stable.
func (g *group) setAssignmentLocked(assign map[string][]byte) {
	for _, m := range g.members {
		m.assignment = assign[m.id]
		if m.sync != nil {
			m.sync <- syncResult{assignment: m.assignment, ptype: g.protocolType, protocol: g.protocol}
			m.sync = nil
			g.scheduleHeartbeatLocked(m, m.sessionTimeout)
		}
	}
	g.state = stateStable
}
