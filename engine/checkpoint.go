package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/easel-io/easel/internal/fsutil"
)

// hwCheckpointFile holds the high watermark of every partition of the data
// directory, in Kafka's replication-offset-checkpoint text format (frozen):
//
//	0                              version
//	<n>                            number of entries
//	<topic> <partition> <offset>   n lines
//
// It is rewritten atomically and fsynced every Options.HWCheckpointInterval
// when a high watermark moved, and on Close. A partition that the file does
// not name starts with its high watermark at the log end when its high
// watermark is not managed (see Partition.ManageHighWatermark), else at its
// log start.
const hwCheckpointFile = "replication-offset-checkpoint"

// DefaultHWCheckpointInterval is Kafka's replica.high.watermark.checkpoint.interval.ms.
const DefaultHWCheckpointInterval = 5 * time.Second

var errBadHWCkpt = errors.New("engine: corrupt " + hwCheckpointFile)

func marshalHWCheckpoint(m map[TopicPartition]int64) []byte {
	tps := make([]TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var b strings.Builder
	b.WriteString("0\n" + strconv.Itoa(len(tps)) + "\n")
	for _, tp := range tps {
		fmt.Fprintf(&b, "%s %d %d\n", tp.Topic, tp.Partition, m[tp])
	}
	return []byte(b.String())
}

func unmarshalHWCheckpoint(b []byte) (map[TopicPartition]int64, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "0" {
		return nil, errBadHWCkpt
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, errBadHWCkpt
	}
	m := make(map[TopicPartition]int64, n)
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, errBadHWCkpt
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		off, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || off < 0 {
			return nil, errBadHWCkpt
		}
		m[TopicPartition{Topic: f[0], Partition: int32(p)}] = off
	}
	return m, nil
}

// loadHWCheckpoint reads the checkpoint; a missing file is empty, a corrupt
// one is logged and ignored (high watermarks then start as if new).
func (e *Engine) loadHWCheckpoint() map[TopicPartition]int64 {
	b, err := os.ReadFile(filepath.Join(e.dir, hwCheckpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var m map[TopicPartition]int64
	if err == nil {
		m, err = unmarshalHWCheckpoint(b)
	}
	if err != nil {
		e.log.Warn("ignoring high watermark checkpoint", "err", err)
		return nil
	}
	return m
}

// checkpointHW writes every partition's high watermark if any moved since
// the last write. Writes are serialised.
func (e *Engine) checkpointHW() error {
	e.hwCkpt.Lock()
	defer e.hwCkpt.Unlock()
	m := make(map[TopicPartition]int64)
	changed := false
	for _, p := range e.allPartitions() {
		hw := p.HighWatermark()
		m[TopicPartition{Topic: p.topic, Partition: p.id}] = hw
		if e.hwCkpt.last[TopicPartition{Topic: p.topic, Partition: p.id}] != hw {
			changed = true
		}
	}
	if !changed && len(m) == len(e.hwCkpt.last) {
		return nil
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(e.dir, hwCheckpointFile), marshalHWCheckpoint(m), true); err != nil {
		return err
	}
	e.hwCkpt.last = m
	return nil
}

func (e *Engine) hwCheckpointLoop() {
	t := time.NewTicker(e.opts.HWCheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if err := e.checkpointHW(); err != nil {
				e.log.Error("high watermark checkpoint failed", "err", err)
			}
		}
	}
}
