package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/netio"
)

func init() {
	regClusterKey(44, 0, 1, (*Broker).handleIncrementalAlterConfigs, smallBody)
}

// handleIncrementalAlterConfigs serves IncrementalAlterConfigs v0–1 (cluster
// only), for the resources AlterConfigs takes (see alterconfigs.go): each
// operation changes one setting of the resource's explicit ones, in order:
// SET gives it a value, DELETE returns it to its default (a name not set,
// or not known, is left alone), APPEND adds the comma-separated items of the
// value that the setting in effect lacks, SUBTRACT removes them (list
// settings only: cleanup.policy, log.cleanup.policy; others are
// INVALID_CONFIG). A null value for SET, APPEND or SUBTRACT, an unknown
// operation or a name twice is INVALID_REQUEST; the resulting settings are
// checked as AlterConfigs' are. validate_only changes nothing.
func (b *Broker) handleIncrementalAlterConfigs(ctx context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrIncrementalAlterConfigsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	changes := make([]configChange, len(r.Resources))
	for i, res := range r.Resources {
		changes[i] = configChange{typ: res.ResourceType, name: res.ResourceName,
			edit: func(cur []cluster.Config, value func(string) string) ([]cluster.Config, error) {
				return incrementalEdit(res, cur, value)
			}}
	}
	return b.serveAlter(ctx, req, r, changes, r.ValidateOnly, func(errs []error, all error) kmsg.Response {
		return incrementalAlterResponse(r, errs, all)
	})
}

// incrementalEdit applies one resource's operations to its current
// explicit settings.
func incrementalEdit(res kmsg.IncrementalAlterConfigsRequestResource, cur []cluster.Config, value func(string) string) ([]cluster.Config, error) {
	names := make([]string, len(res.Configs))
	for i, c := range res.Configs {
		names[i] = c.Name
	}
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return nil, fmt.Errorf("%w: config %s is given more than once", errInvalidRequest, n)
		}
	}
	out := slices.Clone(cur)
	set := func(name, v string) {
		out = slices.DeleteFunc(out, func(c cluster.Config) bool { return c.Name == name })
		out = append(out, cluster.Config{Name: name, Value: v})
	}
	for _, c := range res.Configs {
		if c.Op != kmsg.IncrementalAlterConfigOpDelete && c.Value == nil {
			return nil, fmt.Errorf("%w: null value for %s %s", errInvalidRequest, c.Op, c.Name)
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			set(c.Name, *c.Value)
		case kmsg.IncrementalAlterConfigOpDelete:
			out = slices.DeleteFunc(out, func(e cluster.Config) bool { return e.Name == c.Name })
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if !isListConfig(c.Name) {
				return nil, fmt.Errorf("%w: cannot %s to %s: its type is not LIST", cluster.ErrInvalidConfig, c.Op, c.Name)
			}
			base, ok := cluster.LookupConfig(sortedConfigs(out), c.Name)
			if !ok {
				base = value(c.Name)
			}
			items := splitList(base)
			for _, it := range splitList(*c.Value) {
				has := slices.Contains(items, it)
				switch {
				case c.Op == kmsg.IncrementalAlterConfigOpAppend && !has:
					items = append(items, it)
				case c.Op == kmsg.IncrementalAlterConfigOpSubtract && has:
					items = slices.DeleteFunc(items, func(x string) bool { return x == it })
				}
			}
			set(c.Name, strings.Join(items, ","))
		default:
			return nil, fmt.Errorf("%w: unknown operation %d for %s", errInvalidRequest, c.Op, c.Name)
		}
	}
	return out, nil
}

// sortedConfigs returns a copy of cs sorted by name.
func sortedConfigs(cs []cluster.Config) []cluster.Config {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b cluster.Config) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// isListConfig reports whether a topic or dynamic broker setting is of
// type LIST.
func isListConfig(name string) bool {
	if tn, ok := cluster.TopicConfigOf(name); ok {
		name = tn
	}
	return topicConfigDefs[name].typ == kmsg.ConfigTypeList
}

// splitList splits a LIST value at its commas, trimming each item and
// dropping empty ones.
func splitList(v string) []string {
	var out []string
	for _, it := range strings.Split(v, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// incrementalAlterResponse answers each resource of r with its error, or
// all of them with all when it is not nil.
func incrementalAlterResponse(r *kmsg.IncrementalAlterConfigsRequest, errs []error, all error) *kmsg.IncrementalAlterConfigsResponse {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	for i, res := range r.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		err := resourceError(errs, i, all)
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}
