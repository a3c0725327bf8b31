package engine

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/easel-io/easel/internal/fsutil"
)

// The registry of hosted partitions. Topic metadata has one owner: the
// engine itself on a single node (CreateTopic, DeleteTopic, files in
// <dir>/.meta), or the caller (Options.ExternalMetadata: in a cluster the
// controller's metadata log), which hosts the partitions this broker holds
// a replica of with HostPartition and drops them with StopHosting. Either
// way a log on disk that no metadata claims is set aside, never deleted by
// the engine on its own.

// TopicID is a topic's unique id (KIP-516): a deleted and recreated topic
// gets a new one, so old data never mixes with the new topic's.
type TopicID [16]byte

// String renders the id as Kafka does: URL-safe base64 without padding.
func (id TopicID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// IsZero reports the zero id (Kafka's ZERO_UUID: no id).
func (id TopicID) IsZero() bool { return id == TopicID{} }

// ParseTopicID parses the form String returns.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("engine: bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText and UnmarshalText store ids in their string form.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the form String returns.
func (id *TopicID) UnmarshalText(b []byte) error {
	v, err := ParseTopicID(string(b))
	*id = v
	return err
}

// NewTopicID returns a random id. Like Kafka it never returns the zero id
// nor one whose string form starts with '-' (which command lines mistake for
// a flag).
func NewTopicID() TopicID {
	for {
		var id TopicID
		rand.Read(id[:])
		if !id.IsZero() && id.String()[0] != '-' {
			return id
		}
	}
}

// partitionMetaName is the state file in each partition directory naming
// its topic's id, in Kafka's partition.metadata format (frozen):
//
//	version: 0
//	topic_id: <id>
const partitionMetaName = "partition.metadata"

func partitionMeta(id TopicID) []byte {
	return []byte("version: 0\ntopic_id: " + id.String() + "\n")
}

func parsePartitionMeta(b []byte) (TopicID, error) {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "topic_id: "); ok {
			return ParseTopicID(strings.TrimSpace(v))
		}
	}
	return TopicID{}, fmt.Errorf("engine: %s without topic_id", partitionMetaName)
}

// topicMeta is a topic's metadata file in <dir>/.meta (engine-owned
// metadata only).
type topicMeta struct {
	Name   string      `json:"name"`
	ID     TopicID     `json:"id"`
	Config TopicConfig `json:"config"`
	// Explicit lists the settings given by name (TopicConfig.IsSet).
	Explicit []string `json:"explicit,omitempty"`
}

func (e *Engine) metaPath(name string) string {
	return filepath.Join(e.dir, metaDir, name+".json")
}

func (e *Engine) writeMeta(name string, id TopicID, cfg TopicConfig) error {
	b, _ := json.Marshal(topicMeta{Name: name, ID: id, Config: cfg, Explicit: cfg.Explicit()})
	return fsutil.WriteFileAtomic(e.metaPath(name), b, true)
}

// loadTopics opens every topic of the engine's own metadata, then sets
// aside the logs that no metadata names.
func (e *Engine) loadTopics() error {
	if !e.opts.ExternalMetadata {
		if err := e.loadOwnMetadata(); err != nil {
			return err
		}
		if _, err := e.setAsideUnhosted(); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) loadOwnMetadata() error {
	ents, err := os.ReadDir(filepath.Join(e.dir, metaDir))
	if err != nil {
		return fmt.Errorf("engine: open: %w", err)
	}
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".json")
		if !ok || ent.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dir, metaDir, ent.Name()))
		if err != nil {
			return fmt.Errorf("engine: open: %w", err)
		}
		var m topicMeta
		if err := json.Unmarshal(b, &m); err != nil || m.Name != name {
			return fmt.Errorf("engine: open: topic metadata %s is corrupt: %v", ent.Name(), err)
		}
		for _, k := range m.Explicit {
			m.Config.markSet(k)
		}
		// Settings added since the file was written take their defaults.
		m.Config = m.Config.withDefaults(e.opts.Defaults)
		if m.ID.IsZero() {
			// Written before topics had ids: give it one, durably, before
			// any partition directory is stamped with it.
			m.ID = NewTopicID()
			if err := e.writeMeta(name, m.ID, m.Config); err != nil {
				return err
			}
		}
		t, err := e.openTopic(name, m.ID, m.Config, nil)
		if err != nil {
			return err
		}
		e.mu.topics[name] = t
	}
	return nil
}

// SetAsideUnhosted renames every partition log on disk that no hosted
// partition claims (to "<topic>-<partition>.<tag>-stray", logged), so that
// nothing is lost and nothing stale is served. With engine-owned metadata
// Open does this itself; with ExternalMetadata the caller calls it once its
// metadata is complete. It returns how many logs were set aside.
func (e *Engine) SetAsideUnhosted() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return 0, ErrClosed
	}
	return e.setAsideUnhosted()
}

// setAsideUnhosted is SetAsideUnhosted with mu held (or at Open, before the
// engine is shared). Renames are cheap and rare; holding mu keeps a
// concurrent HostPartition from claiming a log being renamed.
func (e *Engine) setAsideUnhosted() (int, error) {
	logs, err := e.store.Logs()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range logs {
		name, p, _ := splitLogName(l)
		if t, ok := e.mu.topics[name]; ok && p < int32(len(t.parts)) && t.parts[p] != nil {
			continue
		}
		if e.mu.busy[name] {
			continue
		}
		e.log.Warn("setting aside a partition log that no topic metadata names", "log", l)
		if err := e.store.SetAsideLog(l, "unclaimed"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// openTopic opens the partitions of a topic: all of them, or those in only.
func (e *Engine) openTopic(name string, id TopicID, cfg TopicConfig, only []int32) (*topic, error) {
	policy, err := cleanupPolicy(cfg.CleanupPolicy)
	if err != nil {
		return nil, err
	}
	t := &topic{name: name, id: id, cfg: cfg, policy: policy, parts: make([]*Partition, cfg.Partitions)}
	if only == nil {
		only = make([]int32, cfg.Partitions)
		for i := range only {
			only[i] = int32(i)
		}
	}
	err = parallel(len(only), func(i int) error {
		p, err := e.openHosted(t, only[i])
		t.parts[only[i]] = p
		return err
	})
	if err != nil {
		t.closeAll()
		return nil, err
	}
	return t, nil
}

// openHosted opens one partition of t, checking that a log already on disk
// belongs to this topic id; one of an older topic of the same name is set
// aside and a new log started.
func (e *Engine) openHosted(t *topic, part int32) (*Partition, error) {
	p, err := openPartition(e, t.name, part, t.cfg)
	if err != nil {
		return nil, err
	}
	b, err := p.log.LoadState(partitionMetaName)
	if err == nil && b != nil {
		var got TopicID
		if got, err = parsePartitionMeta(b); err == nil && got == t.id {
			return p, nil
		}
		e.log.Warn("setting aside the log of another topic with the same name", "topic", t.name, "partition", part, "log_topic_id", got, "topic_id", t.id, "err", err)
		p.close()
		if err := e.store.SetAsideLog(logName(t.name, part), got.String()); err != nil {
			return nil, err
		}
		if p, err = openPartition(e, t.name, part, t.cfg); err != nil {
			return nil, err
		}
	} else if err != nil {
		p.close()
		return nil, err
	}
	if err := p.log.SaveState(partitionMetaName, partitionMeta(t.id), true); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (t *topic) closeAll() error {
	var err error
	for _, p := range t.parts {
		if p != nil {
			err = errors.Join(err, p.close())
		}
	}
	return err
}

// reserve marks name busy for a create or delete; the I/O then runs
// without mu.
func (e *Engine) reserve(name string, mustExist bool) (*topic, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	if e.mu.busy[name] {
		return nil, fmt.Errorf("%w: %q is being created or deleted", ErrTopicBusy, name)
	}
	t, ok := e.mu.topics[name]
	switch {
	case mustExist && !ok:
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	case !mustExist && ok:
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	if ok {
		delete(e.mu.topics, name)
	}
	e.mu.busy[name] = true
	return t, nil
}

// install ends a reservation, publishing t (nil: none).
func (e *Engine) install(name string, t *topic) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.mu.busy, name)
	if t == nil {
		return nil
	}
	if e.mu.closed {
		t.closeAll()
		return ErrClosed
	}
	e.mu.topics[name] = t
	return nil
}

// ValidateTopicName checks a name as Kafka does: 1–249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has character %q", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// CreateTopic creates a topic with a new id and all its partitions; cfg's
// zero fields take the engine defaults (see TopicConfig). With
// ExternalMetadata it is ErrExternalMetadata: the metadata owner hosts
// partitions with HostPartition. No engine-wide lock is held during its
// file I/O.
func (e *Engine) CreateTopic(name string, cfg TopicConfig) error {
	if e.opts.ExternalMetadata {
		return ErrExternalMetadata
	}
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	cfg = cfg.withDefaults(e.opts.Defaults)
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := e.reserve(name, false); err != nil {
		return err
	}
	id := NewTopicID()
	t, err := e.openTopic(name, id, cfg, nil)
	if err == nil {
		if err = e.writeMeta(name, id, cfg); err != nil {
			t.abandonAll()
			e.removeLogs(t)
			t = nil
		}
	}
	return errors.Join(err, e.install(name, t))
}

// DeleteTopic deletes a topic and its data. Internal topics can be deleted
// too: refusing clients is the broker's business. With ExternalMetadata it
// is ErrExternalMetadata (use StopHosting). No engine-wide lock is held
// during its file I/O.
func (e *Engine) DeleteTopic(name string) error {
	if e.opts.ExternalMetadata {
		return ErrExternalMetadata
	}
	t, err := e.reserve(name, true)
	if err != nil {
		return err
	}
	defer e.install(name, nil)
	// Metadata goes first: a crash after this leaves logs no metadata
	// names, which the next Open sets aside.
	if err := os.Remove(e.metaPath(name)); err != nil {
		return fmt.Errorf("engine: delete topic: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Join(e.dir, metaDir)); err != nil {
		return fmt.Errorf("engine: delete topic: %w", err)
	}
	t.abandonAll()
	return e.removeLogs(t)
}

// abandonAll closes t's partitions without flushing them: their logs are
// about to be removed.
func (t *topic) abandonAll() {
	for _, p := range t.parts {
		if p != nil {
			p.abandon()
		}
	}
}

func (e *Engine) removeLogs(t *topic) error {
	var err error
	for i, p := range t.parts {
		if p != nil {
			err = errors.Join(err, e.store.RemoveLog(logName(t.name, int32(i))))
		}
	}
	return err
}

// HostPartition opens (creating if needed) one partition of a topic whose
// metadata the caller owns (Options.ExternalMetadata): info names the topic,
// its id and config (info.Config.Partitions is the topic's partition
// count). A log on disk of the same name but another topic id is set aside
// first. Hosting a partition already hosted returns it. A topic of the same
// name with another id must be dropped first (StopHosting of all its
// partitions): ErrTopicExists.
func (e *Engine) HostPartition(info TopicInfo, partition int32) (*Partition, error) {
	if !e.opts.ExternalMetadata {
		return nil, fmt.Errorf("%w: HostPartition needs Options.ExternalMetadata", ErrInvalidConfig)
	}
	if err := ValidateTopicName(info.Name); err != nil {
		return nil, err
	}
	if info.ID.IsZero() {
		return nil, fmt.Errorf("%w: topic %q without an id", ErrInvalidConfig, info.Name)
	}
	cfg := info.Config.withDefaults(e.opts.Defaults)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if partition < 0 || partition >= cfg.Partitions {
		return nil, fmt.Errorf("%w: %s/%d of %d", ErrUnknownPartition, info.Name, partition, cfg.Partitions)
	}
	policy, err := cleanupPolicy(cfg.CleanupPolicy)
	if err != nil {
		return nil, err
	}
	// Holding mu across the open keeps two hosts of one partition apart;
	// opening one partition is short (it is not the topic-wide I/O of
	// CreateTopic), and the cluster hosts partitions one by one.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	t := e.mu.topics[info.Name]
	if t != nil && t.id != info.ID {
		return nil, fmt.Errorf("%w: %q has id %s, not %s", ErrTopicExists, info.Name, t.id, info.ID)
	}
	if t == nil {
		t = &topic{name: info.Name, id: info.ID, cfg: cfg, policy: policy}
	}
	t.cfg, t.policy = cfg, policy
	if n := int(cfg.Partitions); len(t.parts) < n {
		t.parts = append(t.parts, make([]*Partition, n-len(t.parts))...)
	}
	if p := t.parts[partition]; p != nil {
		return p, nil
	}
	p, err := e.openHosted(t, partition)
	if err != nil {
		return nil, err
	}
	t.parts[partition] = p
	e.mu.topics[info.Name] = t
	return p, nil
}

// StopHosting closes a hosted partition (ExternalMetadata); with deleteData
// its log is removed too (the topic was deleted, or the replica moved away).
func (e *Engine) StopHosting(topic string, partition int32, deleteData bool) error {
	e.mu.Lock()
	t := e.mu.topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.parts) || t.parts[partition] == nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	}
	p := t.parts[partition]
	t.parts[partition] = nil
	empty := true
	for _, q := range t.parts {
		empty = empty && q == nil
	}
	if empty {
		delete(e.mu.topics, topic)
	}
	e.mu.Unlock()
	if deleteData {
		p.abandon() // no fsync of what is about to be removed
		return e.store.RemoveLog(logName(topic, partition))
	}
	return p.close()
}

// Topics lists the topics, sorted by name.
func (e *Engine) Topics() []TopicInfo {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]TopicInfo, 0, len(e.mu.topics))
	for _, t := range e.mu.topics {
		out = append(out, t.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (t *topic) info() TopicInfo {
	return TopicInfo{Name: t.name, ID: t.id, Config: t.cfg, Internal: isInternalTopic(t.name)}
}

// Topic describes one topic.
func (e *Engine) Topic(name string) (TopicInfo, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.mu.closed {
		return TopicInfo{}, ErrClosed
	}
	t, ok := e.mu.topics[name]
	if !ok {
		return TopicInfo{}, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return t.info(), nil
}

// Partition returns one hosted partition of a topic. A partition the topic
// has but this engine does not host is ErrUnknownPartition.
func (e *Engine) Partition(topic string, partition int32) (*Partition, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	t, ok := e.mu.topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if partition < 0 || int(partition) >= len(t.parts) || t.parts[partition] == nil {
		return nil, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, topic, partition)
	}
	return t.parts[partition], nil
}

// PartitionByID is Partition by topic id, for requests that name topics by
// id (Fetch v13+).
func (e *Engine) PartitionByID(id TopicID, partition int32) (*Partition, error) {
	e.mu.RLock()
	name := ""
	for _, t := range e.mu.topics {
		if t.id == id {
			name = t.name
			break
		}
	}
	e.mu.RUnlock()
	if name == "" {
		return nil, fmt.Errorf("%w: id %s", ErrUnknownTopic, id)
	}
	return e.Partition(name, partition)
}
