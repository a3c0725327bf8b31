package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// epochCheckpointName is the state file holding a partition's leader-epoch
// cache, in Kafka's leader-epoch-checkpoint text format (frozen):
//
//	0                      version
//	<n>                    number of entries
//	<epoch> <startOffset>  n lines, epochs and start offsets increasing
//
// It is written durably before the first batch of a new epoch is appended,
// so every batch in the log has its epoch in the file; entries at or past
// the log end (left by a crash that cut the tail) are dropped at open.
const epochCheckpointName = "leader-epoch-checkpoint"

// UndefinedEpoch and UndefinedOffset are what EndOffsetForEpoch answers when
// it knows nothing (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
const (
	UndefinedEpoch  int32 = -1
	UndefinedOffset int64 = -1
)

// epochEntry says that leader epoch epoch began at offset start.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache maps leader epochs to the offsets where they began (Kafka's
// LeaderEpochFileCache). It does no I/O; the partition checkpoints it.
//
// Invariant: entries are strictly increasing in epoch and non-decreasing in
// start.
type epochCache struct {
	entries []epochEntry
}

// latest returns the newest entry, or ok=false when the cache is empty.
func (c *epochCache) latest() (epochEntry, bool) {
	if len(c.entries) == 0 {
		return epochEntry{}, false
	}
	return c.entries[len(c.entries)-1], true
}

// assign records that epoch starts at start. It reports whether the cache
// changed. The latest epoch again changes nothing. As in Kafka, entries with
// a newer epoch or a start >= start give way (they can only be entries that
// hold no batch yet); if that leaves epoch itself as the latest, it goes on
// where it began. An older epoch over an entry that holds batches (a newer
// epoch starting below start) is an error.
func (c *epochCache) assign(epoch int32, start int64) (bool, error) {
	if epoch < 0 || start < 0 {
		return false, fmt.Errorf("%w: leader epoch %d at %d", errEpochOrder, epoch, start)
	}
	if l, ok := c.latest(); ok && epoch == l.epoch {
		return false, nil
	}
	n := len(c.entries)
	for n > 0 && (c.entries[n-1].epoch > epoch || c.entries[n-1].start >= start) {
		if e := c.entries[n-1]; e.epoch > epoch && e.start < start {
			return false, fmt.Errorf("%w: epoch %d at %d after epoch %d at %d", errEpochOrder, epoch, start, e.epoch, e.start)
		}
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	if l, ok := c.latest(); ok && l.epoch == epoch {
		return changed, nil // the epoch goes on where it began
	}
	c.entries = append(c.entries, epochEntry{epoch: epoch, start: start})
	return true, nil
}

// truncateFromEnd drops the entries that start at or after end (the log was
// cut to end). It reports whether anything changed.
func (c *epochCache) truncateFromEnd(end int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].start >= end {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart drops entries wholly below start (the log start moved)
// and moves the start of the one that covers it up to start.
func (c *epochCache) truncateFromStart(start int64) bool {
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].start <= start {
		i++
	}
	changed := i > 0
	c.entries = c.entries[i:]
	if len(c.entries) > 0 && c.entries[0].start < start {
		c.entries[0].start = start
		changed = true
	}
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch (KIP-101, KIP-279): the largest
// epoch <= epoch that the log holds, and the offset where the epoch after it
// begins (the log end offset for the latest epoch). Epochs above the latest,
// and an empty cache, give (UndefinedEpoch, UndefinedOffset); an epoch below
// the first gives (epoch, start of the first).
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	l, ok := c.latest()
	switch {
	case epoch == UndefinedEpoch || !ok:
		return UndefinedEpoch, UndefinedOffset
	case epoch == l.epoch:
		return epoch, logEnd
	case epoch > l.epoch:
		return UndefinedEpoch, UndefinedOffset
	}
	// The first entry with an epoch above the one asked for.
	hi := 0
	for hi < len(c.entries) && c.entries[hi].epoch <= epoch {
		hi++
	}
	if hi == 0 {
		return epoch, c.entries[0].start
	}
	return c.entries[hi-1].epoch, c.entries[hi].start
}

// epochAt returns the epoch of the entry covering offset, or UndefinedEpoch.
func (c *epochCache) epochAt(offset int64) int32 {
	e := UndefinedEpoch
	for _, en := range c.entries {
		if en.start > offset {
			break
		}
		e = en.epoch
	}
	return e
}

var (
	errEpochOrder     = errors.New("engine: leader epochs must grow")
	errBadEpochCkpt   = errors.New("engine: corrupt leader-epoch-checkpoint")
	epochCkptVersion0 = "0"
)

func (c *epochCache) marshal() []byte {
	var b strings.Builder
	b.WriteString(epochCkptVersion0 + "\n" + strconv.Itoa(len(c.entries)) + "\n")
	for _, e := range c.entries {
		b.WriteString(strconv.FormatInt(int64(e.epoch), 10) + " " + strconv.FormatInt(e.start, 10) + "\n")
	}
	return []byte(b.String())
}

func (c *epochCache) unmarshal(b []byte) error {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != epochCkptVersion0 {
		return errBadEpochCkpt
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n < 0 || n != len(lines)-2 {
		return errBadEpochCkpt
	}
	var out epochCache
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return errBadEpochCkpt
		}
		ep, err1 := strconv.ParseInt(f[0], 10, 32)
		st, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || ep < 0 || st < 0 {
			return errBadEpochCkpt
		}
		if l, ok := out.latest(); ok && (int32(ep) <= l.epoch || st < l.start) {
			return errBadEpochCkpt
		}
		out.entries = append(out.entries, epochEntry{epoch: int32(ep), start: st})
	}
	*c = out
	return nil
}
