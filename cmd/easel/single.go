package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/easel-io/easel/broker"
	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
)

// A broker started without --controller-voters is a cluster of one: a
// single raft voter (itself) on an in-process transport, without gossip,
// with the data directory laid out as any cluster member's. Its raft
// address is never bound; it is the voter's name in the metadata log, so it
// must stay the same across restarts.
const singleNodeRaftAddr = "localhost:9093"

// legacyMetaDir is where a data directory written by a single node before
// it was a cluster of one keeps its topics (the engine's own metadata);
// importedMetaDir is what it is renamed to once the metadata log has them.
const (
	legacyMetaDir   = ".meta"
	importedMetaDir = ".meta-imported"
)

// legacyData is what a data directory of an older single node holds that
// the metadata log takes over: its topics (with the leader epoch of each
// partition), its cluster id and its producer-id counter.
type legacyData struct {
	topics    []engine.TopicInfo
	epochs    map[string][]int32
	clusterID string
	nextPID   int64
}

// readLegacy reads a data directory an older single node wrote (topics in
// .meta), or returns nil if there is none. It opens the engine with its own
// metadata once, which recovers the logs, and lets the group coordinator
// migrate an old __consumer_offsets layout (refusing, as before, one it
// does not know).
func readLegacy(cfg config, log *slog.Logger) (*legacyData, error) {
	ents, err := os.ReadDir(filepath.Join(cfg.DataDir, legacyMetaDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", legacyMetaDir, err)
	}
	if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasSuffix(e.Name(), ".json") }) {
		return nil, nil
	}
	log.Info("importing the topics of a single-node data directory into its metadata log", "data_dir", cfg.DataDir)
	eng, err := engine.Open(cfg.DataDir, cfg.engineOptions(log))
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	g := group.New(eng, group.Config{OffsetsTopicNumPartitions: cfg.OffsetsTopicPartitions, Logger: log, DeferLoad: true})
	gerr := g.Err()
	g.Close()
	if gerr != nil {
		eng.Close()
		return nil, fmt.Errorf("consumer groups: %w", gerr)
	}
	l := &legacyData{topics: eng.Topics(), epochs: map[string][]int32{}}
	for _, t := range l.topics {
		es := make([]int32, t.Config.Partitions)
		for i := range es {
			p, err := eng.Partition(t.Name, int32(i))
			if err != nil {
				eng.Close()
				return nil, fmt.Errorf("topic %s: %w", t.Name, err)
			}
			es[i] = p.LeaderEpoch()
		}
		l.epochs[t.Name] = es
	}
	if err := eng.Close(); err != nil {
		return nil, fmt.Errorf("close engine: %w", err)
	}
	if l.clusterID, l.nextPID, err = broker.LegacyState(cfg.DataDir); err != nil {
		return nil, err
	}
	return l, nil
}

// importRecords is the controller's Import hook: the records creating each
// old topic the metadata log does not have yet, with this broker as the
// only replica. The partitions start without a leader, in the leader epoch
// their logs are in; the broker leads them (in the next epoch) once it is
// unfenced, like any broker that returns.
func (l *legacyData) importRecords(self int32) func(s *cluster.State) ([]cluster.Record, error) {
	return func(s *cluster.State) ([]cluster.Record, error) {
		var recs []cluster.Record
		for _, t := range l.topics {
			if s.Topic(t.Name) != nil {
				continue
			}
			recs = append(recs, cluster.TopicRecord{Name: t.Name, ID: t.ID, Configs: explicitConfigs(t.Config)})
			for i, e := range l.epochs[t.Name] {
				recs = append(recs, cluster.PartitionRecord{
					Topic: t.ID, Partition: int32(i),
					Replicas: []int32{self}, ISR: []int32{self},
					Leader: cluster.NoLeader, LeaderEpoch: max(e, 0),
				})
			}
		}
		return recs, nil
	}
}

// explicitConfigs lists the settings of an old topic that are not Kafka's
// defaults, or were given explicitly, sorted by name: the topic keeps the
// settings it was created with, whatever the broker's defaults are later.
func explicitConfigs(c engine.TopicConfig) []cluster.Config {
	defaults := map[string]string{}
	for _, e := range engine.DefaultTopicConfig().Entries() {
		defaults[e.Name] = e.Value
	}
	var out []cluster.Config
	for _, e := range c.Entries() {
		if d, ok := defaults[e.Name]; !ok || d != e.Value || c.IsSet(e.Name) {
			out = append(out, cluster.Config{Name: e.Name, Value: e.Value})
		}
	}
	slices.SortFunc(out, func(a, b cluster.Config) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// finishLegacy waits until the metadata log has every old topic, then
// renames .meta out of the way so that it is never imported again (a topic
// deleted later must not come back). A crash before the rename imports
// again at the next start what the log does not have yet, which is nothing
// or the rest.
func finishLegacy(ctx context.Context, cfg config, l *legacyData, has func(name string) bool, changed func() <-chan struct{}) error {
	for {
		ch := changed()
		if !slices.ContainsFunc(l.topics, func(t engine.TopicInfo) bool { return !has(t.Name) }) {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("importing the old topics into the metadata log: %w", ctx.Err())
		}
	}
	from := filepath.Join(cfg.DataDir, legacyMetaDir)
	to := filepath.Join(cfg.DataDir, importedMetaDir)
	if _, err := os.Stat(to); err == nil {
		to += "." + time.Now().UTC().Format("20060102T150405")
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("importing the old topics: %w", err)
	}
	return nil
}
