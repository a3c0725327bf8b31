package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/cluster"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(32, 0, 4, (*Broker).handleDescribeConfigs, smallBody) }

// handleDescribeConfigs serves DescribeConfigs v0–4. A TOPIC resource
// lists every topic setting with the value in effect and its source (see
// configs.go: the topic's own, this broker's or the cluster's dynamic
// default, the static broker setting, Kafka's default); a BROKER resource
// named by this broker's id lists the dynamic broker settings
// (cluster.DynamicBrokerConfigs) the same way, then this broker's
// read-only ones; a BROKER resource named "" lists the cluster-wide dynamic
// defaults that are set. include_synonyms adds each setting's values by
// source, the one in effect first; include_documentation a line of
// documentation. Another broker's id is INVALID_REQUEST (clients ask each
// broker for its own), an unknown topic UNKNOWN_TOPIC_OR_PARTITION, and
// other resource types INVALID_REQUEST.
func (b *Broker) handleDescribeConfigs(_ context.Context, req *netio.Request) netio.Response {
	r := kmsg.NewPtrDescribeConfigsRequest()
	if err := decode(req, r, false); err != nil {
		return b.closeConn(req, err)
	}
	resp := kmsg.NewPtrDescribeConfigsResponse()
	resp.SetVersion(req.APIVersion)
	resp.Resources = make([]kmsg.DescribeConfigsResponseResource, 0, len(r.Resources))
	for i := range r.Resources {
		res := &r.Resources[i]
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		entries, err := b.describeResource(res.ResourceType, res.ResourceName)
		if err != nil {
			rr.ErrorCode = errorCode(err)
			rr.ErrorMessage = errorMessage(err)
			b.rejected(req, "describe configs", err, "resource_type", res.ResourceType, "resource", res.ResourceName)
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		for _, e := range entries {
			if res.ConfigNames != nil && !slices.Contains(res.ConfigNames, e.name) {
				continue
			}
			rr.Configs = append(rr.Configs, e.response(r.IncludeSynonyms, r.IncludeDocumentation))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return netio.Response{Msg: resp}
}

// describedConfig is one setting as DescribeConfigs shows it.
type describedConfig struct {
	name string
	// values are the setting's values by source, the one in effect first
	// (never empty).
	values   []configValue
	readOnly bool
	def      configDef
}

// response renders the setting for the response.
func (d describedConfig) response(synonyms, docs bool) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	v := d.values[0]
	c.Name, c.Value, c.Source = d.name, &v.value, v.source
	c.IsDefault = v.source == kmsg.ConfigSourceDefaultConfig
	c.ReadOnly = d.readOnly
	c.ConfigType = d.def.typ
	if docs && d.def.doc != "" {
		c.Documentation = &d.def.doc
	}
	if synonyms {
		for _, s := range d.values {
			sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			sy.Name, sy.Value, sy.Source = s.name, &s.value, s.source
			c.ConfigSynonyms = append(c.ConfigSynonyms, sy)
		}
	}
	return c
}

// describeResource lists the settings of one resource.
func (b *Broker) describeResource(typ kmsg.ConfigResourceType, name string) ([]describedConfig, error) {
	static := b.staticDefaults()
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if b.node == nil {
			info, err := b.eng.Topic(name)
			if err != nil {
				return nil, err
			}
			return describeTopic(nil, engineTopic(info), b.cfg.NodeID, static), nil
		}
		var out []describedConfig
		err := fmt.Errorf("%w: %q", engine.ErrUnknownTopic, name)
		b.node.View(func(s *cluster.State) {
			if t := s.Topic(name); t != nil {
				out, err = describeTopic(s, t, b.cfg.NodeID, static), nil
			}
		})
		return out, err
	case kmsg.ConfigResourceTypeBroker:
		node := strconv.Itoa(int(b.cfg.NodeID))
		switch {
		case name == "" && b.node != nil:
			var out []describedConfig
			b.node.View(func(s *cluster.State) {
				for _, c := range s.BrokerConfigs(cluster.DefaultBrokerConfigs) {
					tn, _ := cluster.TopicConfigOf(c.Name)
					out = append(out, describedConfig{name: c.Name, def: topicConfigDefs[tn],
						values: []configValue{{c.Name, c.Value, kmsg.ConfigSourceDynamicDefaultBrokerConfig}}})
				}
			})
			return out, nil
		case name != node:
			return nil, fmt.Errorf("%w: broker %q is not this broker (%s)", errInvalidRequest, name, node)
		}
		var out []describedConfig
		describe := func(s *cluster.State) {
			for _, bn := range cluster.DynamicBrokerConfigs() {
				tn, _ := cluster.TopicConfigOf(bn)
				out = append(out, describedConfig{name: bn, def: topicConfigDefs[tn],
					values: topicConfigValues(s, nil, b.cfg.NodeID, tn, static)})
			}
		}
		if b.node != nil {
			b.node.View(describe)
		} else {
			describe(nil)
		}
		return append(out, b.readOnlyBrokerConfigs()...), nil
	}
	return nil, fmt.Errorf("%w: resource type %d is not supported", errInvalidRequest, typ)
}

// describeTopic lists every topic setting of t (s nil: no dynamic broker
// settings).
func describeTopic(s *cluster.State, t *cluster.Topic, broker int32, static map[string]string) []describedConfig {
	out := make([]describedConfig, 0, len(topicConfigNames))
	for _, n := range topicConfigNames {
		def, ok := topicConfigDefs[n]
		if !ok {
			def.typ = kmsg.ConfigTypeLong
		}
		out = append(out, describedConfig{name: n, def: def, values: topicConfigValues(s, t, broker, n, static)})
	}
	return out
}

// engineTopic is a topic of the engine's own metadata (a broker outside a
// cluster) as the metadata log would have it: its explicit settings.
func engineTopic(info engine.TopicInfo) *cluster.Topic {
	t := &cluster.Topic{Name: info.Name, ID: info.ID, Partitions: info.Config.Partitions}
	for _, e := range info.Config.Entries() {
		if info.Config.IsSet(e.Name) {
			t.Configs = append(t.Configs, cluster.Config{Name: e.Name, Value: e.Value})
		}
	}
	return t
}

// readOnlyBrokerConfigs are this broker's settings that only a restart
// changes.
func (b *Broker) readOnlyBrokerConfigs() []describedConfig {
	static := func(name, value string, typ kmsg.ConfigType, doc string) describedConfig {
		return describedConfig{name: name, readOnly: true, def: configDef{typ, doc},
			values: []configValue{{name, value, kmsg.ConfigSourceStaticBrokerConfig}}}
	}
	node := strconv.Itoa(int(b.cfg.NodeID))
	rf := 1
	if b.node != nil && b.node.Policy().DefaultReplicationFactor > 0 {
		rf = int(b.node.Policy().DefaultReplicationFactor)
	}
	return []describedConfig{
		static("auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics), kmsg.ConfigTypeBoolean, "Metadata requests for an unknown topic create it."),
		static("broker.id", node, kmsg.ConfigTypeInt, "This broker's id."),
		static("default.replication.factor", strconv.Itoa(rf), kmsg.ConfigTypeInt, "The replication factor of topics created with -1."),
		static("node.id", node, kmsg.ConfigTypeInt, "This broker's id."),
		static("num.partitions", strconv.Itoa(int(b.cfg.NumPartitions)), kmsg.ConfigTypeInt, "The partition count of topics created with -1."),
	}
}
