package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/easel-io/easel/netio"
)

// handler serves one request whose version is in its API's range.
type handler func(b *Broker, ctx context.Context, req *netio.Request) netio.Response

// api is one served API key: the versions advertised in ApiVersions and the
// function that handles a request whose version is in range.
type api struct {
	key, min, max int16
	// maxBody bounds the request body (0: only netio's frame limit). kmsg
	// allocates arrays by their declared counts, so this bounds what a
	// hostile body can make the decoder allocate.
	maxBody int
	handle  handler
	// clusterOnly APIs are served and advertised only by a broker in a
	// cluster (Config.Cluster): the inter-broker requests and those that
	// only the controller can carry out.
	clusterOnly bool
}

const (
	smallBody = 1 << 20 // admin and metadata requests
	fetchBody = 4 << 20 // fetch requests for ~100k partitions fit
)

// maxAPIKey bounds the keys the registry can hold (Kafka's run below 100).
const maxAPIKey = 127

// registry holds the served APIs by key, nil where a key is not served.
// Each API file declares its own key in its init with regKey (as franz-go's
// kfake does), so the versions a handler serves, its doc comment and
// ApiVersions sit side by side; the group APIs take their versions from
// group.Versions (apis_group.go). Written only by init functions, read-only
// afterwards. TestSupportedAPIsTables checks README.md and the package doc
// against it.
var registry [maxAPIKey + 1]*api

// regKey registers the handler of one API key for versions lo..hi. maxBody
// bounds the request body (0: only netio's frame limit). It panics on a
// duplicate key or an empty range: a programming error found at start.
func regKey(key, lo, hi int16, h handler, maxBody int) {
	if key < 0 || key > maxAPIKey || registry[key] != nil || lo < 0 || lo > hi || h == nil {
		panic(fmt.Sprintf("broker: bad registration of api key %d (%d..%d)", key, lo, hi))
	}
	registry[key] = &api{key: key, min: lo, max: hi, maxBody: maxBody, handle: h}
}

// regClusterKey is regKey for an API that only a broker in a cluster serves.
func regClusterKey(key, lo, hi int16, h handler, maxBody int) {
	regKey(key, lo, hi, h, maxBody)
	registry[key].clusterOnly = true
}

// apiList returns the registered APIs sorted by key. Built once, on first
// use (after every init ran); do not modify it.
var apiList = sync.OnceValue(func() []*api {
	var out []*api
	for _, a := range registry {
		if a != nil {
			out = append(out, a)
		}
	}
	return slices.Clip(out)
})

const apiVersionsKey = 18

func lookupAPI(key int16) *api {
	if key < 0 || key > maxAPIKey {
		return nil
	}
	return registry[key]
}

// Handle serves one request. Requests for unknown keys, unsupported
// versions and undecodable bodies close the connection (with a log line);
// ApiVersions with a too-new version gets a v0 body holding
// UNSUPPORTED_VERSION and the full key list, as Kafka does. Requests that
// must wait (Fetch long polls, Produce with acks=all until the high
// watermark passes the batch) are deferred (see purgatory.go), so the
// connection's later requests are handled meanwhile.
func (b *Broker) Handle(ctx context.Context, req *netio.Request) netio.Response {
	a := lookupAPI(req.APIKey)
	switch {
	case a == nil, a.clusterOnly && b.node == nil:
		return b.closeConn(req, errUnknownAPI)
	case req.APIKey == apiVersionsKey && req.APIVersion > a.max:
		return b.apiVersionsTooNew(req)
	case req.APIVersion < a.min || req.APIVersion > a.max:
		return b.closeConn(req, fmt.Errorf("%w: %d not in %d..%d", errBadVersion, req.APIVersion, a.min, a.max))
	case a.maxBody > 0 && len(req.Body) > a.maxBody:
		return b.closeConn(req, fmt.Errorf("%w: %d bytes > %d", errBodyTooBig, len(req.Body), a.maxBody))
	}
	return a.handle(b, ctx, req)
}
