package broker

import (
	"context"
	"fmt"

	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
)

// api is one served API key: the versions advertised in ApiVersions and the
// function that handles a request whose version is in range.
type api struct {
	key, min, max int16
	// maxBody bounds the request body (0: only netio's frame limit). kmsg
	// allocates arrays by their declared counts, so this bounds what a
	// hostile body can make the decoder allocate.
	maxBody int
	handle  func(b *Broker, ctx context.Context, req *netio.Request) netio.Response
}

const (
	smallBody = 1 << 20 // admin and metadata requests
	fetchBody = 4 << 20 // fetch requests for ~100k partitions fit
)

// apis is the version table: what ApiVersions advertises and what Handle
// dispatches, sorted by key. Keep it and the package doc's table in step.
var apis = [...]api{
	{key: 0, min: 0, max: 9, handle: (*Broker).handleProduce}, // v0–2 answered UNSUPPORTED_VERSION
	{key: 1, min: 4, max: 12, maxBody: fetchBody, handle: (*Broker).handleFetch},
	{key: 2, min: 1, max: 6, maxBody: smallBody, handle: (*Broker).handleListOffsets},
	{key: 3, min: 0, max: 9, maxBody: smallBody, handle: (*Broker).handleMetadata},
	// Group APIs: package group serves them (versions: group.Versions).
	{key: 8, min: 2, max: 8, maxBody: smallBody, handle: groupAPI((*group.Coordinator).OffsetCommit)},
	{key: 9, min: 1, max: 7, maxBody: smallBody, handle: groupAPI((*group.Coordinator).OffsetFetch)},
	{key: 10, min: 0, max: 3, maxBody: smallBody, handle: groupAPI((*group.Coordinator).FindCoordinator)},
	{key: 11, min: 0, max: 7, maxBody: groupBody, handle: groupAPI((*group.Coordinator).JoinGroup)},
	{key: 12, min: 0, max: 4, maxBody: smallBody, handle: groupAPI((*group.Coordinator).Heartbeat)},
	{key: 13, min: 0, max: 4, maxBody: smallBody, handle: groupAPI((*group.Coordinator).LeaveGroup)},
	{key: 14, min: 0, max: 5, maxBody: groupBody, handle: groupAPI((*group.Coordinator).SyncGroup)},
	{key: 15, min: 0, max: 5, maxBody: smallBody, handle: groupAPI((*group.Coordinator).DescribeGroups)},
	{key: 16, min: 0, max: 4, maxBody: smallBody, handle: groupAPI((*group.Coordinator).ListGroups)},
	{key: 18, min: 0, max: 3, maxBody: smallBody}, // handled in Handle: it lists this table
	{key: 19, min: 0, max: 5, maxBody: smallBody, handle: (*Broker).handleCreateTopics},
	{key: 20, min: 0, max: 4, maxBody: smallBody, handle: (*Broker).handleDeleteTopics},
	{key: 22, min: 0, max: 4, maxBody: smallBody, handle: (*Broker).handleInitProducerID},
	{key: 32, min: 0, max: 4, maxBody: smallBody, handle: (*Broker).handleDescribeConfigs},
	{key: 42, min: 0, max: 2, maxBody: smallBody, handle: groupAPI((*group.Coordinator).DeleteGroups)},
}

const apiVersionsKey = 18

func lookupAPI(key int16) *api {
	for i := range apis {
		if apis[i].key == key {
			return &apis[i]
		}
	}
	return nil
}

// Handle serves one request. Requests for unknown keys, unsupported
// versions and undecodable bodies close the connection (with a log line);
// ApiVersions with a too-new version gets a v0 body holding
// UNSUPPORTED_VERSION and the full key list, as Kafka does.
func (b *Broker) Handle(ctx context.Context, req *netio.Request) netio.Response {
	a := lookupAPI(req.APIKey)
	switch {
	case a == nil:
		return b.closeConn(req, errUnknownAPI)
	case req.APIKey == apiVersionsKey && req.APIVersion > a.max:
		return b.apiVersionsTooNew(req)
	case req.APIVersion < a.min || req.APIVersion > a.max:
		return b.closeConn(req, fmt.Errorf("%w: %d not in %d..%d", errBadVersion, req.APIVersion, a.min, a.max))
	case a.maxBody > 0 && len(req.Body) > a.maxBody:
		return b.closeConn(req, fmt.Errorf("%w: %d bytes > %d", errBodyTooBig, len(req.Body), a.maxBody))
	case a.handle == nil:
		return b.handleAPIVersions(ctx, req)
	}
	return a.handle(b, ctx, req)
}
