package broker

import (
	"context"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

func init() { regKey(35, 0, 5, (*Broker).handleDescribeLogDirs, smallBody) }

// handleDescribeLogDirs serves DescribeLogDirs v0–5. The broker has one log
// directory, the engine's data directory (its absolute path), holding every
// partition hosted here: for each, the bytes of its log and its offset lag
// (as Kafka computes it for a current replica: how far the high watermark
// is past the log end, never below 0), for the topics and partitions asked
// (null: all); partitions not hosted here are left out. v4+ adds the size
// and the free bytes of the directory's file system (-1 when they cannot be
// read); v5's is_cordoned is always false.
func (b *Broker) handleDescribeLogDirs(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDescribeLogDirsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	resp.SetVersion(req.APIVersion)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.eng.Dir()
	if abs, err := filepath.Abs(dir.Dir); err == nil {
		dir.Dir = abs
	}
	dir.TotalBytes, dir.UsableBytes = diskSpace(dir.Dir)
	want := map[string][]int32{}
	if r.Topics != nil {
		for _, t := range r.Topics {
			want[t.Topic] = append(want[t.Topic], t.Partitions...)
		}
	}
	for _, info := range b.eng.Topics() {
		parts, asked := want[info.Name]
		if r.Topics != nil && !asked {
			continue
		}
		if r.Topics == nil {
			parts = make([]int32, info.Config.Partitions)
			for i := range parts {
				parts[i] = int32(i)
			}
		}
		rt := kmsg.NewDescribeLogDirsResponseDirTopic()
		rt.Topic = info.Name
		for _, i := range parts {
			p, err := b.eng.Partition(info.Name, i)
			if err != nil {
				continue // not hosted here
			}
			rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			rp.Partition = i
			rp.Size = p.Size()
			rp.OffsetLag = max(p.HighWatermark()-p.EndOffset(), 0)
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(rt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, rt)
		}
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return netio.Response{Msg: resp}
}
