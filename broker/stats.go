package broker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/easel-io/easel/netio"
)

// maxErrorCode bounds the Kafka error codes counted by code (Kafka's run
// below 130); others are counted as UNKNOWN_SERVER_ERROR.
const maxErrorCode = 127

// stats are the broker's own counters, for metrics (Stats). Every counter
// is an atomic in a fixed place: counting takes no lock and allocates
// nothing.
type stats struct {
	// errors counts the error codes clients were answered with, by API key
	// and code+1 (index 0 is UNKNOWN_SERVER_ERROR, -1).
	errors [maxAPIKey + 1][maxErrorCode + 2]atomic.Uint64
	// isrShrinks and isrExpands count ISR changes of partitions led here
	// that the controller accepted (Kafka's IsrShrinksPerSec and
	// IsrExpandsPerSec).
	isrShrinks, isrExpands atomic.Uint64
	// faultNext is, by code+1, the earliest time (unix nanos) the next
	// broker-fault line of that code may be logged; faultHidden counts the
	// lines not logged since the last one.
	faultNext   [maxErrorCode + 2]atomic.Int64
	faultHidden [maxErrorCode + 2]atomic.Uint64
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	// ISRShrinks and ISRExpands count the ISR changes of partitions led
	// here that the controller accepted.
	ISRShrinks, ISRExpands uint64
	// Parked is the number of requests waiting in the purgatory (Fetch long
	// polls and acks=all produces); ParkedTotal counts every request that
	// ever waited.
	Parked, ParkedTotal int
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	n, total, _ := b.parked.count()
	return Stats{
		ISRShrinks:  b.counters.isrShrinks.Load(),
		ISRExpands:  b.counters.isrExpands.Load(),
		Parked:      n,
		ParkedTotal: total,
	}
}

// EachError calls fn for every API key and error code that clients have
// been answered with, with how many times (partition errors count once per
// partition). It covers the per-partition errors of Produce, Fetch,
// ListOffsets, OffsetForLeaderEpoch and DeleteRecords, the rejections the
// admin APIs log (see rejected), and the group APIs' codes
// (countGroupErrors). Requests answered by closing the connection (an
// unknown API, a malformed body) are not counted.
func (b *Broker) EachError(fn func(apiKey, code int16, n uint64)) {
	for k := range b.counters.errors {
		for i := range b.counters.errors[k] {
			if n := b.counters.errors[k][i].Load(); n > 0 {
				fn(int16(k), int16(i-1), n)
			}
		}
	}
}

// countISRChange counts a led partition's ISR going from old to isr in a
// new partition epoch (changed) of the same leader epoch; old is nil when
// the leadership is new, which is no change.
func (s *stats) countISRChange(old, isr []int32, changed bool) {
	switch {
	case !changed || old == nil:
	case len(isr) < len(old):
		s.isrShrinks.Add(1)
	case len(isr) > len(old):
		s.isrExpands.Add(1)
	}
}

// codeIndex maps an error code to its index in the stats arrays.
func codeIndex(code int16) int {
	if code < -1 || code > maxErrorCode {
		return 0
	}
	return int(code) + 1
}

// countError counts one error code answered to a request of apiKey.
func (b *Broker) countError(apiKey, code int16) {
	if code == 0 || apiKey < 0 || apiKey > maxAPIKey {
		return
	}
	b.counters.errors[apiKey][codeIndex(code)].Add(1)
}

// brokerFault reports whether an error code is the broker's doing rather
// than the client's: the client did nothing wrong and gets it because of
// the broker's or the cluster's state (storage failure, leadership moving,
// replicas missing, timeouts).
func brokerFault(code int16) bool {
	switch code {
	case kerr.UnknownServerError.Code, kerr.KafkaStorageError.Code, kerr.NotLeaderForPartition.Code,
		kerr.LeaderNotAvailable.Code, kerr.RequestTimedOut.Code, kerr.ReplicaNotAvailable.Code,
		kerr.NotEnoughReplicas.Code, kerr.NotEnoughReplicasAfterAppend.Code, kerr.NotController.Code,
		kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code:
		return true
	}
	return false
}

// faultLogInterval is how often at most a broker-fault line of one error
// code is logged; the lines in between are counted in the next one.
const faultLogInterval = time.Second

// logFault logs at Warn that the client of req (nil: not at hand) got a
// broker-fault error (see brokerFault), with topic and partition among
// attrs, at most once per faultLogInterval per error code.
func (b *Broker) logFault(req *netio.Request, what string, code int16, err error, attrs ...any) {
	i := codeIndex(code)
	now := time.Now().UnixNano()
	next := b.counters.faultNext[i].Load()
	if now < next || !b.counters.faultNext[i].CompareAndSwap(next, now+int64(faultLogInterval)) {
		b.counters.faultHidden[i].Add(1)
		return
	}
	if !b.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	attrs = append(attrs, "code", code, "error", kerr.ErrorForCode(code))
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if hidden := b.counters.faultHidden[i].Swap(0); hidden > 0 {
		attrs = append(attrs, "not_logged_since_last", hidden)
	}
	if req != nil {
		attrs = append(reqAttrs(req), attrs...)
	}
	b.log.Warn("broker: client got an error caused by the broker: "+what, attrs...)
}
