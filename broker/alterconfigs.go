package broker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/cluster/controller"
	"github.com/easel-io/easel/netio"
)

// What AlterConfigs (33) and IncrementalAlterConfigs (44) share: each
// resource of the request becomes a configChange, decided by the
// controller one resource at a time (a TopicConfigRecord or a
// BrokerConfigRecord), or with validate_only only checked against the
// node's copy of the metadata. Brokers that are not the controller forward
// the whole request to it, as Kafka's do (KIP-590).

// configChange is one resource of an alter request.
type configChange struct {
	typ  kmsg.ConfigResourceType
	name string
	// edit makes the resource's explicit settings from now on out of its
	// current ones; value returns a setting's value in effect (for APPEND
	// and SUBTRACT).
	edit func(current []cluster.Config, value func(name string) string) ([]cluster.Config, error)
}

// alterConfigs decides every change (at the controller; see above) and
// returns one error per change. A resource listed twice is INVALID_REQUEST,
// as in Kafka.
func (b *Broker) alterConfigs(ctx context.Context, changes []configChange, validateOnly bool) []error {
	type key struct {
		typ  kmsg.ConfigResourceType
		name string
	}
	count := make(map[key]int, len(changes))
	for _, c := range changes {
		count[key{c.typ, c.name}]++
	}
	errs := make([]error, len(changes))
	for i, c := range changes {
		if count[key{c.typ, c.name}] > 1 {
			errs[i] = fmt.Errorf("%w: resource %s of type %d is listed more than once", errInvalidRequest, c.name, c.typ)
			continue
		}
		errs[i] = b.alterResource(ctx, c, validateOnly)
	}
	return errs
}

// alterResource decides one change.
func (b *Broker) alterResource(ctx context.Context, c configChange, validateOnly bool) error {
	static := b.staticDefaults()
	var (
		edit   controller.ConfigEdit
		broker int32
	)
	switch c.typ {
	case kmsg.ConfigResourceTypeTopic:
		edit = func(s *cluster.State, cur []cluster.Config) ([]cluster.Config, error) {
			t := s.Topic(c.name)
			return c.edit(cur, func(n string) string { return topicConfigValues(s, t, b.cfg.NodeID, n, static)[0].value })
		}
	case kmsg.ConfigResourceTypeBroker:
		broker = cluster.DefaultBrokerConfigs
		if c.name != "" {
			id, err := strconv.ParseInt(c.name, 10, 32)
			if err != nil || id < 0 {
				return fmt.Errorf("%w: broker %q is not a broker id", errInvalidRequest, c.name)
			}
			broker = int32(id)
		}
		edit = func(s *cluster.State, cur []cluster.Config) ([]cluster.Config, error) {
			return c.edit(cur, func(bn string) string {
				tn, ok := cluster.TopicConfigOf(bn)
				if !ok {
					return ""
				}
				if v, ok := cluster.LookupConfig(cur, bn); ok {
					return v
				}
				return topicConfigValues(s, nil, broker, tn, static)[0].value
			})
		}
	default:
		return fmt.Errorf("%w: resource type %d is not supported", errInvalidRequest, c.typ)
	}
	if !validateOnly {
		if c.typ == kmsg.ConfigResourceTypeTopic {
			return b.node.AlterTopicConfigs(ctx, c.name, edit)
		}
		return b.node.AlterBrokerConfigs(ctx, broker, edit)
	}
	var err error
	b.node.View(func(s *cluster.State) {
		p := b.node.Policy()
		if c.typ == kmsg.ConfigResourceTypeTopic {
			t := s.Topic(c.name)
			if t == nil {
				err = fmt.Errorf("%w: topic %s", cluster.ErrUnknownTopic, c.name)
				return
			}
			var cs []cluster.Config
			if cs, err = edit(s, t.Configs); err == nil {
				_, err = p.AlterTopicConfigs(s, c.name, cs)
			}
			return
		}
		var cs []cluster.Config
		if cs, err = edit(s, s.BrokerConfigs(broker)); err == nil {
			_, err = p.AlterBrokerConfigs(s, broker, cs)
		}
	})
	return err
}

// serveAlter answers an alter request r (AlterConfigs or
// IncrementalAlterConfigs) whose resources are changes: at the controller
// each is decided, elsewhere r is forwarded to it. answer builds the
// response from one error per resource, or from all for every one when it
// is not nil.
func (b *Broker) serveAlter(ctx context.Context, req *netio.Request, r kmsg.Request, changes []configChange, validateOnly bool,
	answer func(errs []error, all error) kmsg.Response) netio.Response {
	ctx, cancel := requestTimeout(ctx, int32(clusterRequestTimeout.Milliseconds()))
	defer cancel()
	var resp kmsg.Response
	if !b.node.IsController() {
		fr, err := b.node.Forward(ctx, r)
		switch {
		case err != nil:
			resp = answer(make([]error, len(changes)), fmt.Errorf("%w: %v", errNoController, err))
		case fr.Key() != r.Key():
			resp = answer(make([]error, len(changes)), fmt.Errorf("%w: unexpected response %T", errNoController, fr))
		default:
			resp = fr
		}
	} else {
		errs := b.alterConfigs(ctx, changes, validateOnly)
		for i, err := range errs {
			if err != nil {
				b.rejected(req, "alter configs", err, "resource_type", changes[i].typ, "resource", changes[i].name)
			} else if !validateOnly {
				b.log.Info("broker: altered configs", "resource_type", changes[i].typ, "resource", changes[i].name)
			}
		}
		resp = answer(errs, nil)
	}
	resp.SetVersion(req.APIVersion)
	return netio.Response{Msg: resp}
}

// resourceError is the error of resource i of an alter: all when it is not
// nil, else errs[i].
func resourceError(errs []error, i int, all error) error {
	if all != nil {
		return all
	}
	return errs[i]
}
