package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

// countGroupErrors counts the error codes of a group API response (see
// EachError) and logs those the broker is at fault for (brokerFault:
// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS,
// ...), rate-limited, with the group and, for offsets, the topic and
// partition. The group protocol's own codes (REBALANCE_IN_PROGRESS,
// UNKNOWN_MEMBER_ID, ...) are counted but not logged.
func (b *Broker) countGroupErrors(req *netio.Request, resp kmsg.Response) {
	code := func(c int16, attrs ...any) {
		if c == 0 {
			return
		}
		b.countError(req.APIKey, c)
		if brokerFault(c) {
			b.logFault(req, "group request", c, nil, attrs...)
		}
	}
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		code(r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		code(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		code(r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		code(r.ErrorCode)
		for _, m := range r.Members {
			code(m.ErrorCode)
		}
	case *kmsg.FindCoordinatorResponse:
		code(r.ErrorCode)
		for _, c := range r.Coordinators {
			code(c.ErrorCode, "key", c.Key)
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				code(p.ErrorCode, "topic", t.Topic, "partition", p.Partition)
			}
		}
	case *kmsg.OffsetFetchResponse:
		code(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				code(p.ErrorCode, "topic", t.Topic, "partition", p.Partition)
			}
		}
		for _, g := range r.Groups {
			code(g.ErrorCode, "group", g.Group)
			for _, t := range g.Topics {
				for _, p := range t.Partitions {
					code(p.ErrorCode, "group", g.Group, "topic", t.Topic, "partition", p.Partition)
				}
			}
		}
	case *kmsg.DescribeGroupsResponse:
		for _, g := range r.Groups {
			code(g.ErrorCode, "group", g.Group)
		}
	case *kmsg.ListGroupsResponse:
		code(r.ErrorCode)
	case *kmsg.DeleteGroupsResponse:
		for _, g := range r.Groups {
			code(g.ErrorCode, "group", g.Group)
		}
	}
}
