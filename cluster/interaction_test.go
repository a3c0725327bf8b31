package cluster

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/easel-io/easel/engine"
)

// Scenario tests as data, after etcd-io/raft's interaction_test.go: each
// file in testdata/ is a script of commands, each followed by "----" and
// the transcript it must produce (ended by a blank line). The commands
// drive the decisions; every decision's records are encoded, decoded and
// applied, and after each the invariants, the History and a snapshot round
// trip are checked. go test -run TestInteraction -rewrite regenerates the
// transcripts.
//
// Commands (ids are broker ids, t a topic name, t/0 a partition):
//
//	init [cluster=ID] [next-pid=N]          InitCluster
//	policy [rf=N] [partitions=N] [unclean=B] [pid-block=N]
//	register ID [rack=R] [inc=N] [host=H] [port=N] [controller]   BrokerJoined
//	caught-up ID [epoch=N]                  BrokerCaughtUp (epoch: the current one)
//	fail ID                                 BrokerFailed
//	return ID [inc=N]                       BrokerJoined with the next incarnation, then BrokerCaughtUp
//	shutdown ID [epoch=N]                   ControlledShutdown
//	reconcile [ID,ID...]                    Reconcile with these members until it returns nothing
//	create-topic T [partitions=N] [rf=N] [assign=1,2,3/2,3,1] [unclean=B] [config:K=V]...
//	create-partitions T count=N [assign=...]
//	delete-topic T
//	alter-topic-config T [K=V]...           AlterTopicConfigs (the topic's settings from now on)
//	alter-broker-config ID|-1 [K=V]...      AlterBrokerConfigs
//	configs T | configs broker=ID           a topic's explicit settings, a broker's dynamic ones
//	alter-isr T/P isr=1,2 [broker=N] [broker-epoch=N] [epoch=N] [pepoch=N]   AlterPartition
//	elect-preferred | elect-offline
//	reassign T/P replicas=4,5,6 | reassign T/P cancel   AlterReassignment
//	complete-reassignments                  CompleteReassignments
//	reassignments                           the partitions being reassigned
//	restore                                 a new controller: the state restored from a snapshot
//	alloc-pids ID [epoch=N]                 AllocateProducerIDs
//	show [T...]                             partitions
//	brokers                                 brokers
//	balance T                               replicas and leaders per broker, racks per partition
var rewrite = flag.Bool("rewrite", false, "rewrite the transcripts in testdata/")

func TestInteraction(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

// scriptBlock is one command and its transcript, with the lines (comments,
// blanks) before it.
type scriptBlock struct {
	pre     []string
	line    int
	command string
	want    string
}

func parseScript(t *testing.T, data string) (blocks []scriptBlock, tail []string) {
	lines := strings.Split(strings.TrimRight(data, "\n"), "\n")
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := scriptBlock{pre: pre, line: i + 1, command: l}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("line %d: %q not followed by ----", i+1, l)
		}
		i += 2
		var out []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		b.want = strings.Join(out, "\n")
		blocks = append(blocks, b)
	}
	return blocks, pre
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, tail := parseScript(t, string(data))
	h := newHarness(t)
	var out bytes.Buffer
	for _, b := range blocks {
		got := strings.TrimRight(h.run(b.command), "\n")
		if got == "" {
			got = "ok"
		}
		for _, l := range b.pre {
			out.WriteString(l + "\n")
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", b.command, got)
		if !*rewrite && got != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, b.line, b.command, got, b.want)
		}
	}
	for _, l := range tail {
		out.WriteString(l + "\n")
	}
	h.replayCheck()
	if *rewrite {
		if err := os.WriteFile(path, append(bytes.TrimRight(out.Bytes(), "\n"), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness drives the decisions of a Policy over a State, committing every
// decision's records as an entry and checking what can be checked.
type harness struct {
	t      testing.TB
	s      *State
	p      Policy
	names  map[engine.TopicID]string // every topic ever, for rendering
	nextID byte
	infos  map[int32]BrokerInfo
	hist   History
	log    [][]byte // every committed entry
	// snapEvery > 1 checks the snapshot round trip every snapEvery commits
	// only (the random test's many steps); otherwise after each.
	snapEvery, commits int
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, s: NewState(), names: map[engine.TopicID]string{}, infos: map[int32]BrokerInfo{}}
}

// commit encodes, decodes and applies recs as one entry; the records of a
// decision must always apply.
func (h *harness) commit(recs []Record) {
	h.t.Helper()
	if len(recs) == 0 {
		return
	}
	data := AppendEntry(nil, recs)
	dec, err := DecodeEntry(data)
	if err != nil {
		h.t.Fatalf("decode: %v", err)
	}
	if !bytes.Equal(AppendEntry(nil, dec), data) {
		h.t.Fatalf("entry does not re-encode identically")
	}
	if err := h.s.Apply(dec); err != nil {
		h.t.Fatalf("a decision's records do not apply: %v\n%s", err, h.render(recs))
	}
	h.log = append(h.log, data)
	h.check()
}

// check verifies the invariants, the history and a snapshot round trip.
func (h *harness) check() {
	h.t.Helper()
	if err := h.s.Check(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.hist.Observe(0, h.s); err != nil {
		h.t.Fatal(err)
	}
	h.commits++
	if h.snapEvery > 1 && h.commits%h.snapEvery != 0 {
		return
	}
	snap := h.s.Snapshot()
	r := NewState()
	if err := r.Restore(snap); err != nil {
		h.t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(r.Snapshot(), snap) {
		h.t.Fatalf("snapshot does not round-trip")
	}
}

// replayCheck replays the log into a new state: it must equal the state.
func (h *harness) replayCheck() {
	h.t.Helper()
	r := NewState()
	for i, data := range h.log {
		recs, err := DecodeEntry(data)
		if err != nil {
			h.t.Fatalf("entry %d: %v", i, err)
		}
		if err := r.Apply(recs); err != nil {
			h.t.Fatalf("replay of entry %d: %v", i, err)
		}
	}
	if !bytes.Equal(r.Snapshot(), h.s.Snapshot()) {
		h.t.Fatalf("replaying the log gives another state than applying it did")
	}
}

// decided commits a decision's records and renders them, or renders the
// error (a failed decision must return no records).
func (h *harness) decided(recs []Record, err error) string {
	h.t.Helper()
	if err != nil {
		if recs != nil {
			h.t.Fatalf("a decision returned records with its error %v", err)
		}
		return fmt.Sprintf("error: %s: %v", KafkaError(err).Message, err)
	}
	if len(recs) == 0 {
		return "no change"
	}
	h.commit(recs)
	return h.render(recs)
}

func (h *harness) render(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		var line string
		switch r := r.(type) {
		case TopicRecord:
			line = "topic " + r.Name
			if len(r.Configs) > 0 {
				cs := make([]string, len(r.Configs))
				for i, c := range r.Configs {
					cs[i] = c.Name + "=" + c.Value
				}
				line += " configs=[" + strings.Join(cs, ",") + "]"
			}
		default:
			line = r.String()
			for id, name := range h.names {
				line = strings.ReplaceAll(line, id.String(), name)
			}
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// args splits a command's key=value arguments; bare words go under "".
type args struct {
	pos []string
	kv  map[string]string
}

func parseArgs(fields []string) args {
	a := args{kv: map[string]string{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok && !strings.HasPrefix(f, "config:") {
			a.kv[k] = v
		} else {
			a.pos = append(a.pos, f)
		}
	}
	return a
}

func (h *harness) num(s string) int64 {
	h.t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		h.t.Fatalf("bad number %q", s)
	}
	return n
}

func (h *harness) intOr(a args, key string, def int64) int64 {
	if v, ok := a.kv[key]; ok {
		return h.num(v)
	}
	return def
}

func (h *harness) ids(s string) []int32 {
	if s == "" {
		return []int32{}
	}
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		ids = append(ids, int32(h.num(f)))
	}
	return ids
}

func (h *harness) assignment(s string) [][]int32 {
	if s == "" {
		return nil
	}
	var out [][]int32
	for _, p := range strings.Split(s, "/") {
		out = append(out, h.ids(p))
	}
	return out
}

func (h *harness) epochOf(id int32) int64 {
	if b := h.s.Broker(id); b != nil {
		return b.Epoch
	}
	return 0
}

func (h *harness) run(command string) string {
	h.t.Helper()
	fields := strings.Fields(command)
	a := parseArgs(fields[1:])
	arg := func(i int) string {
		if i >= len(a.pos) {
			h.t.Fatalf("%s: argument %d missing", command, i+1)
		}
		return a.pos[i]
	}
	p := h.p
	switch fields[0] {
	case "init":
		cid := "c1"
		if v, ok := a.kv["cluster"]; ok {
			cid = v
		}
		return h.decided(p.InitCluster(h.s, cid, h.intOr(a, "next-pid", 0)))
	case "policy":
		h.p.DefaultReplicationFactor = int16(h.intOr(a, "rf", int64(h.p.DefaultReplicationFactor)))
		h.p.DefaultPartitions = int32(h.intOr(a, "partitions", int64(h.p.DefaultPartitions)))
		h.p.ProducerIDBlockSize = h.intOr(a, "pid-block", h.p.ProducerIDBlockSize)
		if v, ok := a.kv["unclean"]; ok {
			h.p.UncleanLeaderElection = v == "true"
		}
		return ""
	case "register":
		id := int32(h.num(arg(0)))
		info := BrokerInfo{
			ID: id, Incarnation: uint64(h.intOr(a, "inc", 1)),
			Host: "b" + strconv.Itoa(int(id)), Port: int32(h.intOr(a, "port", 9092)),
			RaftAddr: "b" + strconv.Itoa(int(id)) + ":9093", Rack: a.kv["rack"],
			ControllerEligible: slices.Contains(a.pos, "controller"),
		}
		if v, ok := a.kv["host"]; ok {
			info.Host = v
		}
		h.infos[id] = info
		return h.decided(p.BrokerJoined(h.s, info))
	case "caught-up":
		id := int32(h.num(arg(0)))
		return h.decided(p.BrokerCaughtUp(h.s, id, h.intOr(a, "epoch", h.epochOf(id))))
	case "fail":
		return h.decided(p.BrokerFailed(h.s, int32(h.num(arg(0)))))
	case "return":
		id := int32(h.num(arg(0)))
		info := h.infos[id]
		info.Incarnation = uint64(h.intOr(a, "inc", int64(info.Incarnation)+1))
		h.infos[id] = info
		out := strings.TrimRight(h.decided(p.BrokerJoined(h.s, info)), "\n")
		return out + "\n" + h.decided(p.BrokerCaughtUp(h.s, id, h.epochOf(id)))
	case "shutdown":
		id := int32(h.num(arg(0)))
		return h.decided(p.ControlledShutdown(h.s, id, h.intOr(a, "epoch", h.epochOf(id))))
	case "reconcile":
		var live []BrokerInfo
		if len(a.pos) > 0 {
			for _, id := range h.ids(a.pos[0]) {
				info, ok := h.infos[id]
				if !ok {
					info = BrokerInfo{ID: id, Incarnation: 1, Host: "b" + strconv.Itoa(int(id)), Port: 9092}
					h.infos[id] = info
				}
				live = append(live, info)
			}
		}
		var out []string
		for i := 0; ; i++ {
			if i > 100 {
				h.t.Fatal("reconcile does not converge")
			}
			recs, err := p.Reconcile(h.s, live)
			if err != nil || len(recs) == 0 {
				if err != nil || i == 0 {
					out = append(out, h.decided(recs, err))
				}
				return strings.Join(out, "\n")
			}
			out = append(out, strings.TrimRight(h.decided(recs, nil), "\n"))
		}
	case "create-topic":
		name := arg(0)
		h.nextID++
		id := engine.TopicID{15: h.nextID}
		req := CreateTopicRequest{
			Name: name, ID: id,
			Partitions:        int32(h.intOr(a, "partitions", -1)),
			ReplicationFactor: int16(h.intOr(a, "rf", -1)),
			Assignment:        h.assignment(a.kv["assign"]),
		}
		if v, ok := a.kv["unclean"]; ok {
			req.Configs = append(req.Configs, Config{ConfigUncleanLeaderElection, v})
		}
		for _, f := range a.pos[1:] {
			if kv, ok := strings.CutPrefix(f, "config:"); ok {
				k, v, _ := strings.Cut(kv, "=")
				req.Configs = append(req.Configs, Config{k, v})
			}
		}
		recs, err := p.CreateTopic(h.s, req)
		if err == nil {
			h.names[id] = name
		}
		return h.decided(recs, err)
	case "create-partitions":
		return h.decided(p.CreatePartitions(h.s, arg(0), int32(h.intOr(a, "count", 0)), h.assignment(a.kv["assign"])))
	case "delete-topic":
		return h.decided(p.DeleteTopic(h.s, arg(0)))
	case "alter-topic-config", "alter-broker-config":
		var cs []Config
		for _, f := range fields[2:] {
			k, v, _ := strings.Cut(f, "=")
			cs = append(cs, Config{k, v})
		}
		if fields[0] == "alter-topic-config" {
			return h.decided(p.AlterTopicConfigs(h.s, fields[1], cs))
		}
		return h.decided(p.AlterBrokerConfigs(h.s, int32(h.num(fields[1])), cs))
	case "configs":
		var cs []Config
		if id, ok := a.kv["broker"]; ok {
			cs = h.s.BrokerConfigs(int32(h.num(id)))
		} else if t := h.s.Topic(arg(0)); t != nil {
			cs = t.Configs
		} else {
			return "no topic " + arg(0)
		}
		return configList(cs)
	case "alter-isr":
		name, idx, _ := strings.Cut(arg(0), "/")
		part := h.s.Partition(name, int32(h.num(idx)))
		if part == nil {
			h.t.Fatalf("%s: no partition %s", command, arg(0))
		}
		broker := int32(h.intOr(a, "broker", int64(part.Leader)))
		req := AlterPartitionRequest{
			Broker: broker, BrokerEpoch: h.intOr(a, "broker-epoch", h.epochOf(broker)),
			Topic: part.Topic, Partition: part.Index,
			LeaderEpoch:    int32(h.intOr(a, "epoch", int64(part.LeaderEpoch))),
			PartitionEpoch: int32(h.intOr(a, "pepoch", int64(part.PartitionEpoch))),
			ISR:            h.ids(a.kv["isr"]),
		}
		return h.decided(p.AlterPartition(h.s, req))
	case "reassign":
		name, idx, _ := strings.Cut(arg(0), "/")
		var target []int32
		if !slices.Contains(a.pos, "cancel") {
			target = h.ids(a.kv["replicas"])
		}
		return h.decided(p.AlterReassignment(h.s, name, int32(h.num(idx)), target))
	case "complete-reassignments":
		return h.decided(p.CompleteReassignments(h.s), nil)
	case "reassignments":
		var b strings.Builder
		for _, part := range h.s.Reassignments() {
			fmt.Fprintf(&b, "%s/%d replicas=%s adding=%s removing=%s target=%s original=%s\n", h.s.TopicByID(part.Topic).Name, part.Index,
				brokerList(part.Replicas), brokerList(part.Adding), brokerList(part.Removing), brokerList(part.Target()), brokerList(part.Original()))
		}
		if b.Len() == 0 {
			return "none"
		}
		return b.String()
	case "restore":
		snap := h.s.Snapshot()
		r := NewState()
		if err := r.Restore(snap); err != nil {
			h.t.Fatalf("restore: %v", err)
		}
		h.s = r
		h.check()
		return fmt.Sprintf("restored %d bytes", len(snap))
	case "elect-preferred":
		return h.decided(p.ElectPreferredLeaders(h.s), nil)
	case "elect-offline":
		return h.decided(p.ElectOfflineLeaders(h.s), nil)
	case "alloc-pids":
		id := int32(h.num(arg(0)))
		return h.decided(p.AllocateProducerIDs(h.s, id, h.intOr(a, "epoch", h.epochOf(id))))
	case "show":
		return h.show(a.pos)
	case "brokers":
		var b strings.Builder
		for _, br := range h.s.Brokers() {
			state := "live"
			if br.Fenced {
				state = "fenced"
			}
			fmt.Fprintf(&b, "broker %d epoch=%d inc=%d %s", br.ID, br.Epoch, br.Incarnation, state)
			if br.Rack != "" {
				fmt.Fprintf(&b, " rack=%s", br.Rack)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "next producer id %d", h.s.NextProducerID())
		return b.String()
	case "balance":
		return h.balance(arg(0))
	}
	h.t.Fatalf("unknown command %q", command)
	return ""
}

func (h *harness) show(topics []string) string {
	if len(topics) == 0 {
		for _, t := range h.s.Topics() {
			topics = append(topics, t.Name)
		}
	}
	var b strings.Builder
	for _, name := range topics {
		t := h.s.Topic(name)
		if t == nil {
			fmt.Fprintf(&b, "%s: no such topic\n", name)
			continue
		}
		for _, p := range h.s.Partitions(t.ID) {
			fmt.Fprintf(&b, "%s/%d replicas=%s isr=%s leader=%d epochs=%d/%d", name, p.Index,
				brokerList(p.Replicas), brokerList(p.ISR), p.Leader, p.LeaderEpoch, p.PartitionEpoch)
			if off := h.s.OfflineReplicas(p); len(off) > 0 {
				b.WriteString(" offline=" + brokerList(off))
			}
			if p.Reassigning() {
				b.WriteString(" adding=" + brokerList(p.Adding) + " removing=" + brokerList(p.Removing))
			}
			if p.UncleanEpoch != 0 {
				fmt.Fprintf(&b, " unclean_epoch=%d", p.UncleanEpoch)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func (h *harness) balance(name string) string {
	t := h.s.Topic(name)
	if t == nil {
		return name + ": no such topic"
	}
	racked := slices.ContainsFunc(h.s.Brokers(), func(b *Broker) bool { return b.Rack != "" })
	replicas, leaders := map[int32]int{}, map[int32]int{}
	var b strings.Builder
	for _, p := range h.s.Partitions(t.ID) {
		for _, r := range p.Replicas {
			replicas[r]++
		}
		leaders[p.Replicas[0]]++
		if racked {
			var racks []string
			for _, r := range p.Replicas {
				racks = append(racks, h.s.Broker(r).Rack)
			}
			fmt.Fprintf(&b, "%s/%d replicas=%s racks=%s\n", name, p.Index, brokerList(p.Replicas), strings.Join(racks, ","))
		}
	}
	for _, br := range h.s.Brokers() {
		fmt.Fprintf(&b, "broker %d", br.ID)
		if racked {
			fmt.Fprintf(&b, " rack=%s", br.Rack)
		}
		fmt.Fprintf(&b, " replicas=%d preferred-leader=%d\n", replicas[br.ID], leaders[br.ID])
	}
	return b.String()
}
