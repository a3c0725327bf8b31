package broker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/netio"
)

func init() { regKey(32, 0, 4, (*Broker).handleDescribeConfigs, smallBody) }

// configEntry is one setting as DescribeConfigs shows it.
type configEntry struct {
	name, value string
	source      kmsg.ConfigSource
	readOnly    bool
	typ         kmsg.ConfigType
}

// topicConfigTypes are the types of the topic settings the engine knows;
// the rest are LONG.
var topicConfigTypes = map[string]kmsg.ConfigType{
	"cleanup.policy":         kmsg.ConfigTypeList,
	"message.timestamp.type": kmsg.ConfigTypeString,
	"max.message.bytes":      kmsg.ConfigTypeInt,
}

// kafkaTopicDefaults holds Kafka's default value of each topic setting; a
// topic's setting that differs is reported as set on the topic.
var kafkaTopicDefaults = func() map[string]string {
	m := make(map[string]string)
	for _, e := range engine.DefaultTopicConfig().Entries() {
		m[e.Name] = e.Value
	}
	return m
}()

// handleDescribeConfigs serves DescribeConfigs v0–4 for topics (every
// setting of engine.TopicConfig, marked DYNAMIC_TOPIC_CONFIG where it
// differs from Kafka's default) and for this broker (its node id, partition
// and auto-creation defaults, read-only).
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
		entries, err := b.configEntries(res)
		if err != nil {
			rr.ErrorCode = errorCode(err)
			rr.ErrorMessage = errorMessage(err)
			b.rejected(req, "describe configs", err, "resource_type", res.ResourceType, "resource", res.ResourceName)
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		var want map[string]bool
		if res.ConfigNames != nil {
			want = make(map[string]bool, len(res.ConfigNames))
			for _, n := range res.ConfigNames {
				want[n] = true
			}
		}
		for _, e := range entries {
			if want != nil && !want[e.name] {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value = e.name, &e.value
			c.ReadOnly = e.readOnly
			c.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig
			c.Source = e.source
			c.ConfigType = e.typ
			if r.IncludeSynonyms {
				c.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{{
					Name: e.name, Value: &e.value, Source: e.source,
				}}
			}
			rr.Configs = append(rr.Configs, c)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return netio.Response{Msg: resp}
}

// configEntries lists the settings of one resource.
func (b *Broker) configEntries(res *kmsg.DescribeConfigsRequestResource) ([]configEntry, error) {
	switch res.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		info, err := b.topic(res.ResourceName)
		if err != nil {
			return nil, err
		}
		var out []configEntry
		for _, e := range info.Config.Entries() {
			ce := configEntry{name: e.Name, value: e.Value, source: kmsg.ConfigSourceDynamicTopicConfig, typ: kmsg.ConfigTypeLong}
			if d, ok := kafkaTopicDefaults[e.Name]; ok && d == e.Value {
				ce.source = kmsg.ConfigSourceDefaultConfig
			}
			if t, ok := topicConfigTypes[e.Name]; ok {
				ce.typ = t
			}
			out = append(out, ce)
		}
		return out, nil
	case kmsg.ConfigResourceTypeBroker:
		node := strconv.Itoa(int(b.cfg.NodeID))
		if res.ResourceName != "" && res.ResourceName != node {
			return nil, fmt.Errorf("%w: broker %q is not this broker (%s)", errInvalidRequest, res.ResourceName, node)
		}
		static := func(name, value string, typ kmsg.ConfigType) configEntry {
			return configEntry{name: name, value: value, source: kmsg.ConfigSourceStaticBrokerConfig, readOnly: true, typ: typ}
		}
		return []configEntry{
			static("auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics), kmsg.ConfigTypeBoolean),
			static("broker.id", node, kmsg.ConfigTypeInt),
			static("default.replication.factor", "1", kmsg.ConfigTypeInt),
			static("node.id", node, kmsg.ConfigTypeInt),
			static("num.partitions", strconv.Itoa(int(b.cfg.NumPartitions)), kmsg.ConfigTypeInt),
		}, nil
	}
	return nil, fmt.Errorf("%w: resource type %d is not supported", errInvalidRequest, res.ResourceType)
}
