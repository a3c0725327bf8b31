package broker

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
)

// describedTopic returns one topic's settings by name, failing the test on
// an error.
func describedTopic(t *testing.T, adm *kadm.Client, topic string) map[string]*kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx10s(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	out := map[string]*kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = &c
	}
	return out
}

// alterErr returns the error of the single resource of an alter, or of
// the request.
func alterErr(rs kadm.AlterConfigsResponses, err error) error {
	var se *kadm.ShardErrors
	if err != nil && !errors.As(err, &se) {
		return err
	}
	if len(rs) != 1 {
		return fmt.Errorf("%d responses (%v)", len(rs), err)
	}
	return rs[0].Err
}

func set(k, v string) kadm.AlterConfig {
	return kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v}
}

// TestAlterConfigs drives IncrementalAlterConfigs, AlterConfigs and
// DescribeConfigs through kadm on a cluster of one: sources and synonyms,
// validate_only, DELETE back to the default, the errors of unknown names,
// bad values and duplicates, broker and cluster-wide dynamic defaults, and
// that none of it is lost across a restart.
func TestAlterConfigs(t *testing.T) {
	c := newTestBrokers(t, 1)
	c.waitFor("ready", 20*time.Second, c.allReady)
	m := c.members[1]
	adm := kadm.NewClient(newClusterClient(t, c.running()))
	ctx := ctx10s(t)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "ac"); err != nil {
		t.Fatal(err)
	}

	if err := alterErr(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "1000"), set("compression.type", "lz4")}, "ac")); err != nil {
		t.Fatal(err)
	}
	got := describedTopic(t, adm, "ac")
	if rm := got["retention.ms"]; rm.MaybeValue() != "1000" || rm.Source != kmsg.ConfigSourceDynamicTopicConfig ||
		len(rm.Synonyms) != 2 || rm.Synonyms[1].Key != "log.retention.ms" || rm.Synonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms after SET: %+v", rm)
	}
	if sb := got["segment.bytes"]; sb.MaybeValue() != "1073741824" || sb.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes: %+v", sb)
	}

	// validate_only: checked, nothing changes.
	if err := alterErr(adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "5")}, "ac")); err != nil {
		t.Fatal(err)
	}
	if v := func() string { c := describedTopic(t, adm, "ac")["retention.ms"]; return c.MaybeValue() }(); v != "1000" {
		t.Fatalf("validate_only changed retention.ms to %s", v)
	}

	// Errors, each leaving the topic as it was.
	for _, tc := range []struct {
		ops  []kadm.AlterConfig
		want error
	}{
		{[]kadm.AlterConfig{set("no.such.config", "1")}, kerr.InvalidConfig},
		{[]kadm.AlterConfig{set("retention.ms", "abc")}, kerr.InvalidConfig},        // not a LONG
		{[]kadm.AlterConfig{set("segment.ms", "0")}, kerr.InvalidConfig},            // out of range
		{[]kadm.AlterConfig{set("compression.type", "brotli")}, kerr.InvalidConfig}, // not in the enum
		{[]kadm.AlterConfig{set("min.insync.replicas", "0")}, kerr.InvalidConfig},
		{[]kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "retention.ms", Value: strp("1")}}, kerr.InvalidConfig}, // not a LIST
		{[]kadm.AlterConfig{set("retention.ms", "1"), set("retention.ms", "2")}, kerr.InvalidRequest},
		{[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms"}}, kerr.InvalidRequest}, // null value
	} {
		if err := alterErr(adm.AlterTopicConfigs(ctx, tc.ops, "ac")); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.ops, err, tc.want)
		}
	}
	if err := alterErr(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "1")}, "nope")); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
	if v := func() string { c := describedTopic(t, adm, "ac")["retention.ms"]; return c.MaybeValue() }(); v != "1000" {
		t.Fatalf("a refused alter changed retention.ms to %s", v)
	}

	// APPEND of a value the list holds changes nothing; DELETE goes back to
	// the default, reported as such.
	if err := alterErr(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: strp("delete")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"}}, "ac")); err != nil {
		t.Fatal(err)
	}
	got = describedTopic(t, adm, "ac")
	if rm := got["retention.ms"]; rm.MaybeValue() != "604800000" || rm.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms after DELETE: %+v", rm)
	}
	if cp := got["cleanup.policy"]; cp.MaybeValue() != "delete" || cp.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("cleanup.policy after APPEND: %+v", cp)
	}

	// Dynamic broker settings: the cluster-wide default, then this
	// broker's own, become the topic's value where it sets none.
	if err := alterErr(adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.retention.ms", "7000")})); err != nil {
		t.Fatal(err)
	}
	if rm := describedTopic(t, adm, "ac")["retention.ms"]; rm.MaybeValue() != "7000" || rm.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("retention.ms with a cluster default: %+v", rm)
	}
	defs, err := adm.DescribeBrokerConfigs(ctx) // the BROKER resource "": the cluster-wide defaults set
	if err != nil || len(defs) != 1 || defs[0].Err != nil || len(defs[0].Configs) != 1 ||
		defs[0].Configs[0].Key != "log.retention.ms" || defs[0].Configs[0].Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("cluster-wide defaults: %v %+v", err, defs)
	}
	if err := alterErr(adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.retention.ms", "8000"), set("min.insync.replicas", "1")}, 1)); err != nil {
		t.Fatal(err)
	}
	if rm := describedTopic(t, adm, "ac")["retention.ms"]; rm.MaybeValue() != "8000" || rm.Source != kmsg.ConfigSourceDynamicBrokerConfig || len(rm.Synonyms) != 3 {
		t.Fatalf("retention.ms with a broker default: %+v", rm)
	}
	for _, bad := range []kadm.AlterConfig{set("retention.ms", "1"), set("broker.id", "2"), set("log.roll.ms", "0")} {
		if err := alterErr(adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{bad}, 1)); !errors.Is(err, kerr.InvalidConfig) {
			t.Errorf("broker %s: %v", bad.Name, err)
		}
	}
	brs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	br, _ := brs.On("1", nil)
	var found bool
	for _, cfg := range br.Configs {
		if cfg.Key == "log.retention.ms" {
			found = cfg.MaybeValue() == "8000" && cfg.Source == kmsg.ConfigSourceDynamicBrokerConfig
		}
	}
	if !found || br.Err != nil {
		t.Fatalf("broker configs: %v %+v", br.Err, br.Configs)
	}
	// The engine's partitions follow: the broker default is their retention.
	waitFor(t, "the broker default reaching the engine", func() bool {
		info, err := m.eng.Topic("ac")
		return err == nil && info.Config.RetentionMs == 8000
	})

	// Legacy AlterConfigs replaces the topic's settings whole.
	if err := alterErr(adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("segment.ms", "60000")}, "ac")); err != nil {
		t.Fatal(err)
	}
	got = describedTopic(t, adm, "ac")
	if got["segment.ms"].MaybeValue() != "60000" || got["cleanup.policy"].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("after AlterConfigs: segment.ms %+v cleanup.policy %+v", got["segment.ms"], got["cleanup.policy"])
	}

	// A restart keeps all of it: it is in the metadata log.
	c.stop(1)
	c.start(1)
	c.waitFor("ready again", 20*time.Second, c.allReady)
	adm = kadm.NewClient(newClusterClient(t, c.running()))
	got = describedTopic(t, adm, "ac")
	if got["segment.ms"].MaybeValue() != "60000" || got["retention.ms"].MaybeValue() != "8000" {
		t.Fatalf("after restart: segment.ms %+v retention.ms %+v", got["segment.ms"], got["retention.ms"])
	}
	m = c.members[1]
	waitFor(t, "the engine hosting with the settings", func() bool {
		info, err := m.eng.Topic("ac")
		return err == nil && info.Config.SegmentMs == 60000 && info.Config.RetentionMs == 8000
	})
}

// TestConfigChangeLive checks that segment.bytes and retention.bytes
// changed with AlterConfigs take effect on a partition that is already open
// (it rolls at the new size, retention deletes by the new bound) without a
// restart, and hold after one.
func TestConfigChangeLive(t *testing.T) {
	c := newTestBrokers(t, 1)
	c.waitFor("ready", 20*time.Second, c.allReady)
	cl := newClusterClient(t, c.running(), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	ctx := ctx10s(t)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "live"); err != nil {
		t.Fatal(err)
	}
	produce := func(n int) {
		t.Helper()
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "live", Value: make([]byte, 1000)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(5)
	p0 := func() *engine.Partition {
		p, err := c.members[1].eng.Partition("live", 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := c.members[1].eng.Stats().Segments
	if err := alterErr(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("segment.bytes", "3000"), set("retention.bytes", "4000")}, "live")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change reaching the engine", func() bool {
		info, err := c.members[1].eng.Topic("live")
		return err == nil && info.Config.SegmentBytes == 3000
	})
	produce(10)
	if after := c.members[1].eng.Stats().Segments; after < before+3 {
		t.Fatalf("%d segments before, %d after: the open partition did not roll at the new segment.bytes", before, after)
	}
	if n, err := c.members[1].eng.EnforceRetention(); err != nil || n == 0 || p0().StartOffset() == 0 {
		t.Fatalf("retention.bytes: %d segments deleted, %v, start %d", n, err, p0().StartOffset())
	}
	c.stop(1)
	c.start(1)
	c.waitFor("ready again", 20*time.Second, c.allReady)
	waitFor(t, "the partition hosted again with its settings", func() bool {
		info, err := c.members[1].eng.Topic("live")
		return err == nil && info.Config.SegmentBytes == 3000 && info.Config.RetentionBytes == 4000
	})
}

// TestIncrementalEdit checks the operations of IncrementalAlterConfigs on
// a resource's settings, list settings included, as pure functions.
func TestIncrementalEdit(t *testing.T) {
	op := func(o kmsg.IncrementalAlterConfigOp, name string, v *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name, c.Value = o, name, v
		return c
	}
	inEffect := func(n string) string { return map[string]string{"cleanup.policy": "delete"}[n] }
	for _, tc := range []struct {
		ops  []kmsg.IncrementalAlterConfigsRequestResourceConfig
		cur  []cluster.Config
		want []cluster.Config
		err  error
	}{
		{ops: nil, cur: []cluster.Config{{Name: "a", Value: "1"}}, want: []cluster.Config{{Name: "a", Value: "1"}}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpSet, "retention.ms", strp("5"))},
			cur: []cluster.Config{{Name: "retention.ms", Value: "1"}, {Name: "segment.ms", Value: "9"}}, want: []cluster.Config{{Name: "segment.ms", Value: "9"}, {Name: "retention.ms", Value: "5"}}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpDelete, "segment.ms", nil), op(kmsg.IncrementalAlterConfigOpDelete, "unset", nil)},
			cur: []cluster.Config{{Name: "segment.ms", Value: "9"}}, want: []cluster.Config{}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpAppend, "cleanup.policy", strp("compact"))},
			want: []cluster.Config{{Name: "cleanup.policy", Value: "delete,compact"}}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpSubtract, "cleanup.policy", strp("delete"))},
			cur: []cluster.Config{{Name: "cleanup.policy", Value: "compact,delete"}}, want: []cluster.Config{{Name: "cleanup.policy", Value: "compact"}}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpAppend, "log.cleanup.policy", strp("compact, delete"))},
			want: []cluster.Config{{Name: "log.cleanup.policy", Value: "compact,delete"}}},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpSubtract, "segment.ms", strp("1"))}, err: cluster.ErrInvalidConfig},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpAppend, "cleanup.policy", nil)}, err: errInvalidRequest},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(9, "cleanup.policy", strp("x"))}, err: errInvalidRequest},
		{ops: []kmsg.IncrementalAlterConfigsRequestResourceConfig{op(kmsg.IncrementalAlterConfigOpSet, "a", strp("1")), op(kmsg.IncrementalAlterConfigOpDelete, "a", nil)}, err: errInvalidRequest},
	} {
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.Configs = tc.ops
		got, err := incrementalEdit(res, tc.cur, inEffect)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%+v: %v, want %v", tc.ops, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%+v on %v: %v %v, want %v", tc.ops, tc.cur, got, err, tc.want)
		}
	}
}

// TestClusterAlterConfigs checks that a topic setting altered through a
// broker that is not the controller (the request is forwarded) reaches
// every broker of three: their metadata and the engines hosting the
// topic's replicas, leader and followers; and so does a cluster-wide
// dynamic default.
func TestClusterAlterConfigs(t *testing.T) {
	c := newTestBrokers(t, 1, 2, 3)
	c.waitFor("ready", 30*time.Second, c.allReady)
	ctrl := c.members[1].node.Controller()
	var via *clusterMember
	for id, m := range c.members {
		if id != ctrl {
			via = m
			break
		}
	}
	adm := kadm.NewClient(newClusterClient(t, []string{via.addr}))
	ctx := ctx10s(t)
	if r, err := adm.CreateTopic(ctx, 2, 3, nil, "everywhere"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	// Sent to a non-controller broker by hand, so the forwarding path runs.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "everywhere"
	for _, kv := range [][2]string{{"retention.ms", "4321"}, {"message.timestamp.type", "LogAppendTime"}} {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Value = kv[0], strp(kv[1])
		res.Configs = append(res.Configs, rc)
	}
	req.Resources = append(req.Resources, res)
	kresp, err := req.RequestWith(ctx, newClusterClient(t, []string{via.addr}).Broker(int(via.id)))
	if err != nil {
		t.Fatal(err)
	}
	if code := kresp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("alter via broker %d: %v", via.id, kerr.ErrorForCode(code))
	}
	c.waitFor("every broker's engine to follow", 20*time.Second, func() bool {
		for id, m := range c.members {
			var cfgs []cluster.Config
			m.node.View(func(s *cluster.State) {
				if tp := s.Topic("everywhere"); tp != nil {
					cfgs = tp.Configs
				}
			})
			if v, _ := cluster.LookupConfig(cfgs, "retention.ms"); v != "4321" {
				return false
			}
			info, err := m.eng.Topic("everywhere")
			if err != nil || info.Config.RetentionMs != 4321 || !info.Config.LogAppendTime {
				t.Logf("broker %d: %v %+v", id, err, info.Config.RetentionMs)
				return false
			}
		}
		return true
	})
	// DescribeConfigs at each broker shows the same.
	for _, m := range c.members {
		got := describedTopic(t, kadm.NewClient(newClusterClient(t, []string{m.addr})), "everywhere")
		if got["retention.ms"].MaybeValue() != "4321" {
			t.Fatalf("broker %d describes retention.ms %+v", m.id, got["retention.ms"])
		}
	}
	// A cluster-wide dynamic default (legacy AlterConfigs on BROKER "")
	// reaches every broker's partitions of the topic, which does not set it.
	if err := alterErr(adm.AlterBrokerConfigsState(ctx, []kadm.AlterConfig{set("log.segment.bytes", "5000000")})); err != nil {
		t.Fatal(err)
	}
	c.waitFor("every broker's engine to take the cluster default", 20*time.Second, func() bool {
		for _, m := range c.members {
			if info, err := m.eng.Topic("everywhere"); err != nil || info.Config.SegmentBytes != 5000000 {
				return false
			}
		}
		return true
	})
}

// FuzzIncrementalEdit feeds arbitrary operations to incrementalEdit: it
// never panics, and what it returns for a resource holds no name twice.
func FuzzIncrementalEdit(f *testing.F) {
	f.Add("cleanup.policy", int8(2), "compact", "retention.ms", int8(0), "1", "delete")
	f.Add("log.cleanup.policy", int8(3), "delete,,", "segment.ms", int8(1), "", "compact,delete")
	f.Add("a", int8(9), "x", "a", int8(0), "y", "")
	f.Fuzz(func(t *testing.T, n1 string, op1 int8, v1, n2 string, op2 int8, v2, inEffect string) {
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		for _, c := range []struct {
			n  string
			op int8
			v  string
		}{{n1, op1, v1}, {n2, op2, v2}} {
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Op, rc.Value = c.n, kmsg.IncrementalAlterConfigOp(c.op), &c.v
			if c.op == 1 {
				rc.Value = nil
			}
			res.Configs = append(res.Configs, rc)
		}
		cur := []cluster.Config{{Name: "cleanup.policy", Value: inEffect}, {Name: "retention.ms", Value: "5"}}
		out, err := incrementalEdit(res, cur, func(string) string { return inEffect })
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range out {
			if seen[c.Name] {
				t.Fatalf("%s twice in %v", c.Name, out)
			}
			seen[c.Name] = true
		}
	})
}

// TestMinInsyncReplicasDynamic checks where min.insync.replicas comes from
// on acks=all produce, changed at run time: a dynamic broker default of 2
// refuses acks=all on a one-replica topic (NOT_ENOUGH_REPLICAS), the
// topic's own 1 overrides it, and deleting the broker default lets every
// topic through again.
func TestMinInsyncReplicasDynamic(t *testing.T) {
	c := newTestBrokers(t, 1)
	c.waitFor("ready", 20*time.Second, c.allReady)
	cl := newClusterClient(t, c.running(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.RecordRetries(0), kgo.RequestRetries(0))
	adm := kadm.NewClient(cl)
	ctx := ctx10s(t)
	for _, topic := range []string{"plain", "own"} {
		if r, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || r.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, r.Err)
		}
	}
	produce := func(topic string) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	}
	if err := produce("plain"); err != nil {
		t.Fatal(err)
	}
	if err := alterErr(adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("min.insync.replicas", "2")}, 1)); err != nil {
		t.Fatal(err)
	}
	if err := alterErr(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("min.insync.replicas", "1")}, "own")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broker default refusing acks=all", func() bool { return errors.Is(produce("plain"), kerr.NotEnoughReplicas) })
	// The topic's setting was committed after the broker's, but this
	// broker may apply it a moment later: wait for it, then check that the
	// broker default still holds for the other topic.
	waitFor(t, "the topic's own min.insync.replicas=1 accepting acks=all", func() bool { return produce("own") == nil })
	if err := produce("plain"); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("the broker default of 2 on a topic without its own: %v", err)
	}
	if err := alterErr(adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "min.insync.replicas"}}, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acks=all accepted again", func() bool { return produce("plain") == nil })
}

// TestCreatePartitionsAdmin drives CreatePartitions through kadm on a
// cluster of one: growing works and the new partition takes writes;
// validate_only, a lowered or equal count and an unknown topic change
// nothing.
func TestCreatePartitionsAdmin(t *testing.T) {
	c := newTestBrokers(t, 1)
	c.waitFor("ready", 20*time.Second, c.allReady)
	cl := newClusterClient(t, c.running(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := ctx10s(t)
	if r, err := adm.CreateTopic(ctx, 2, 1, nil, "grow"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	count := func() int {
		td, err := adm.ListTopics(ctx, "grow")
		if err != nil {
			t.Fatal(err)
		}
		return len(td["grow"].Partitions)
	}
	one := func(rs kadm.CreatePartitionsResponses, err error) error {
		if err != nil {
			return err
		}
		for _, r := range rs {
			return r.Err
		}
		return fmt.Errorf("no response")
	}
	if err := one(adm.ValidateCreatePartitions(ctx, 3, "grow")); err != nil || count() != 2 {
		t.Fatalf("validate_only: %v, %d partitions", err, count())
	}
	if err := one(adm.CreatePartitions(ctx, 1, "grow")); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d partitions after adding one", n)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "grow", Partition: 2, Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatalf("produce to the new partition: %v", err)
	}
	for _, tc := range []struct {
		set   int
		topic string
		want  error
	}{{2, "grow", kerr.InvalidPartitions}, {3, "grow", kerr.InvalidPartitions}, {5, "nope", kerr.UnknownTopicOrPartition}} {
		if err := one(adm.UpdatePartitions(ctx, tc.set, tc.topic)); !errors.Is(err, tc.want) {
			t.Errorf("set %s to %d: %v, want %v", tc.topic, tc.set, err, tc.want)
		}
	}
	if n := count(); n != 3 {
		t.Fatalf("%d partitions after refused changes", n)
	}
}
