package broker

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/netio"
)

func init() { regClusterKey(33, 0, 2, (*Broker).handleAlterConfigs, smallBody) }

// handleAlterConfigs serves AlterConfigs v0–2 (cluster only): each resource's
// explicit settings are replaced by the request's (a setting not listed
// goes back to its default), for a TOPIC, a BROKER by id, or the BROKER ""
// (the cluster-wide dynamic defaults; see alterconfigs.go and
// cluster.DynamicBrokerConfigs). A null value or a name twice is
// INVALID_REQUEST, an unknown name or a bad value INVALID_CONFIG, an unknown
// topic UNKNOWN_TOPIC_OR_PARTITION; validate_only changes nothing.
func (b *Broker) handleAlterConfigs(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrAlterConfigsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	changes := make([]configChange, len(r.Resources))
	for i, res := range r.Resources {
		changes[i] = configChange{typ: res.ResourceType, name: res.ResourceName,
			edit: func([]cluster.Config, func(string) string) ([]cluster.Config, error) {
				var cs []cluster.Config
				for _, c := range res.Configs {
					if c.Value == nil {
						return nil, fmt.Errorf("%w: null value for %s", errInvalidRequest, c.Name)
					}
					cs = append(cs, cluster.Config{Name: c.Name, Value: *c.Value})
				}
				return cs, duplicateConfig(cs)
			}}
	}
	return b.serveAlter(ctx, req, r, changes, r.ValidateOnly, func(errs []error, all error) kmsg.Response {
		return alterConfigsResponse(r, errs, all)
	})
}

// alterConfigsResponse answers each resource of r with its error, or all
// of them with all when it is not nil.
func alterConfigsResponse(r *kmsg.AlterConfigsRequest, errs []error, all error) *kmsg.AlterConfigsResponse {
	resp := kmsg.NewPtrAlterConfigsResponse()
	for i, res := range r.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		err := resourceError(errs, i, all)
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// duplicateConfig refuses a name given twice (INVALID_REQUEST, as Kafka).
func duplicateConfig(cs []cluster.Config) error {
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if seen[c.Name] {
			return fmt.Errorf("%w: config %s is given more than once", errInvalidRequest, c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}
