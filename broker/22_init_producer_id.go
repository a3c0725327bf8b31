package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

func init() { regKey(22, 0, 4, (*Broker).handleInitProducerID, smallBody) }

// handleInitProducerID serves InitProducerId v0–4 for idempotent producers:
// every request gets a producer id never handed out before (see
// Config.DataDir; in a cluster, from the blocks the controller hands out)
// and epoch 0, as Kafka does for a null transactional id, so a producer that
// re-initialises starts fresh sequences. Transactions are not supported: a
// transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients
// treat as fatal rather than retrying.
func (b *Broker) handleInitProducerID(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrInitProducerIDRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.SetVersion(req.APIVersion)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		b.rejected(req, "init producer id", errTransactions, "transactional_id", *r.TransactionalID)
		resp.ErrorCode = errorCode(errTransactions)
		return netio.Response{Msg: resp}
	}
	var (
		id  int64
		err error
	)
	if b.node != nil {
		// A block from the controller (KIP-730): unique in the cluster.
		ctx, cancel := context.WithTimeout(ctx, clusterRequestTimeout)
		defer cancel()
		if id, err = b.node.NextProducerID(ctx); err != nil {
			err = fmt.Errorf("%w: %v", errNoController, err)
		}
	} else {
		id, err = b.pids.alloc()
	}
	if err != nil {
		b.log.Error("broker: cannot hand out a producer id", "err", err)
		resp.ErrorCode = errorCode(err)
		return netio.Response{Msg: resp}
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return netio.Response{Msg: resp}
}
