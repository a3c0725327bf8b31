package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

func init() { regKey(apiVersionsKey, 0, 3, (*Broker).handleAPIVersions, smallBody) }

// apiVersionsResponse lists every registered key (see regKey), without the
// cluster-only ones unless clustered.
func apiVersionsResponse(version int16, code int16, clustered bool) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	resp.ErrorCode = code
	apis := apiList()
	resp.ApiKeys = make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for _, a := range apis {
		if a.clusterOnly && !clustered {
			continue
		}
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: a.key, MinVersion: a.min, MaxVersion: a.max})
	}
	return resp
}

// handleAPIVersions serves ApiVersions v0–3.
func (b *Broker) handleAPIVersions(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrApiVersionsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	return netio.Response{Msg: apiVersionsResponse(req.APIVersion, 0, b.node != nil)}
}

// apiVersionsTooNew answers an ApiVersions request newer than we speak the
// way Kafka does, so that the client retries with a version we list: a v0
// body with UNSUPPORTED_VERSION and the full key list. Its body is not read.
// Clients newer than us (franz-go) do this on every connection, so it is
// logged at Debug, not as a rejected request.
func (b *Broker) apiVersionsTooNew(req *netio.Request) netio.Response {
	b.log.Debug("broker: api versions request newer than served; answering v0 with UNSUPPORTED_VERSION", reqAttrs(req)...)
	return netio.Response{Msg: apiVersionsResponse(0, kerr.UnsupportedVersion.Code, b.node != nil)}
}
