package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/codec"
	"github.com/easel-io/easel/engine"
	"github.com/easel-io/easel/group"
	"github.com/easel-io/easel/netio"
	"github.com/easel-io/easel/record"
)

// Config configures a Broker. The zero value is a valid single-node broker
// with node id 0 that advertises the address each client connected to.
type Config struct {
	// NodeID is Kafka's node.id (broker.id): the id of this broker in
	// Metadata, the leader and only replica of every partition, and the
	// controller. Default 0.
	NodeID int32

	// Host and Port are the advertised address returned in Metadata
	// (advertised.listeners). An empty Host or a zero Port is replaced by the
	// local address of the connection the request came on, which is right
	// for clients on the same network but not behind NAT or a proxy.
	Host string
	Port int32

	// AutoCreateTopics is auto.create.topics.enable: Metadata requests for an
	// unknown topic create it (Metadata v4+ only when the client allows it
	// too). Default false.
	AutoCreateTopics bool

	// NumPartitions is num.partitions: the partition count of auto-created
	// topics and of CreateTopics requests that ask for -1. Values < 1 mean 1.
	NumPartitions int32

	// DataDir is where the broker keeps its own small state: the cluster id
	// and the high-water mark of handed-out producer ids (files
	// broker.cluster-id and broker.producer-id; see the package doc). It may
	// be the engine's data directory. Empty keeps nothing: the cluster id is
	// then the constant "easel" and producer ids are seeded from the clock
	// (unique across restarts unless the clock goes back or more than a
	// million ids a second are handed out).
	DataDir string

	// Logger receives a line for each rejected request or input. Default
	// slog.Default().
	Logger *slog.Logger

	// Group configures the consumer-group coordinator (timeouts, retention
	// of committed offsets, limits). Its NodeID, Host, Port and Logger are
	// taken from the fields above.
	Group group.Config
}

// Broker serves the Kafka API over an engine. It implements netio.Handler.
// All methods are safe for concurrent use.
type Broker struct {
	eng       *engine.Engine
	cfg       Config
	log       *slog.Logger
	clusterID string
	pids      pidAllocator
	groups    *group.Coordinator

	closed    chan struct{} // closed by Close: long polls return at once
	closeOnce sync.Once
}

var _ netio.Handler = (*Broker)(nil)

// New returns a Broker serving eng. It never fails: problems with
// cfg.DataDir are logged and surface as errors of the requests that need it
// (InitProducerId).
func New(eng *engine.Engine, cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NumPartitions < 1 {
		cfg.NumPartitions = 1
	}
	b := &Broker{
		eng:    eng,
		cfg:    cfg,
		log:    cfg.Logger,
		closed: make(chan struct{}),
	}
	b.clusterID = loadClusterID(cfg.DataDir, b.log)
	b.pids.init(cfg.DataDir)
	gc := cfg.Group
	gc.NodeID, gc.Host, gc.Port, gc.Logger = cfg.NodeID, "", 0, cfg.Logger // the address comes per connection (advertised)
	b.groups = group.New(eng, gc)
	return b
}

// Close makes waiting and future long-polling fetches return at once, so
// that a server shutdown need not wait for them, and closes the group
// coordinator: waiting JoinGroup and SyncGroup requests, and later group
// requests, get NOT_COORDINATOR. The broker keeps serving other requests;
// it does not close the engine.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.groups.Close()
	})
}

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

// Errors the broker itself detects. The table in errorCode maps them, with
// the engine's, record's and codec's sentinels, to Kafka error codes.
var (
	errUnknownAPI       = errors.New("broker: unsupported api key")
	errBadVersion       = errors.New("broker: unsupported api version")
	errBodyTooBig       = errors.New("broker: request body too large for its api")
	errDecode           = errors.New("broker: malformed request body")
	errOldProduce       = errors.New("broker: produce v0-2 (message sets) is not supported; use v3+")
	errTransactions     = errors.New("broker: transactions are not supported")
	errNoBatch          = fmt.Errorf("broker: produce: no record batch: %w", record.ErrInvalid)
	errTwoBatches       = fmt.Errorf("broker: produce: more than one record batch per partition: %w", record.ErrInvalid)
	errTrailingBytes    = fmt.Errorf("broker: produce: bytes after the record batch: %w", record.ErrCorrupt)
	errInternalTopic    = errors.New("broker: cannot produce to an internal topic")
	errInvalidAcks      = errors.New("broker: acks must be -1, 0 or 1")
	errPartitions       = errors.New("broker: invalid number of partitions")
	errReplication      = errors.New("broker: invalid replication factor (one broker)")
	errAssignment       = errors.New("broker: invalid replica assignment")
	errInvalidRequest   = errors.New("broker: invalid request")
	errLeaderEpoch      = errors.New("broker: leader epoch newer than the broker's")
	errFetchSession     = errors.New("broker: fetch sessions are not supported")
	errProducerIDSource = errors.New("broker: cannot reserve producer ids")
)

// errorCodes maps Go errors to Kafka error codes, checked in order with
// errors.Is. This is the only place where that mapping lives.
var errorCodes = [...]struct {
	err  error
	code *kerr.Error
}{
	{engine.ErrMessageTooLarge, kerr.MessageTooLarge},
	{engine.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{engine.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{engine.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{engine.ErrUnknownPartition, kerr.UnknownTopicOrPartition},
	{engine.ErrInvalidTopic, kerr.InvalidTopicException},
	{engine.ErrTopicExists, kerr.TopicAlreadyExists},
	{engine.ErrInvalidConfig, kerr.InvalidConfig},
	{engine.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{engine.ErrClosed, kerr.NotLeaderForPartition}, // shutting down: retriable
	{codec.ErrUnknownCodec, kerr.UnsupportedCompressionType},
	{record.ErrInvalid, kerr.InvalidRecord},
	{record.ErrCorrupt, kerr.CorruptMessage},
	{record.ErrShort, kerr.CorruptMessage},
	{codec.ErrCorrupt, kerr.CorruptMessage},
	{codec.ErrTooLarge, kerr.CorruptMessage},
	{errOldProduce, kerr.UnsupportedVersion},
	{errBadVersion, kerr.UnsupportedVersion},
	{errTransactions, kerr.TransactionalIDAuthorizationFailed},
	{errInternalTopic, kerr.InvalidTopicException},
	{errInvalidAcks, kerr.InvalidRequiredAcks},
	{errPartitions, kerr.InvalidPartitions},
	{errReplication, kerr.InvalidReplicationFactor},
	{errAssignment, kerr.InvalidReplicaAssignment},
	{errInvalidRequest, kerr.InvalidRequest},
	{errLeaderEpoch, kerr.UnknownLeaderEpoch},
	{errFetchSession, kerr.FetchSessionIDNotFound},
	{errProducerIDSource, kerr.KafkaStorageError},
}

// errorCode returns the Kafka error code for err: 0 for nil,
// UNKNOWN_SERVER_ERROR (-1) for an error the table does not know.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

// errorMessage returns err's text for the error_message fields of responses,
// or nil for no error.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// closeConn logs a rejected request and closes its connection without
// answering.
func (b *Broker) closeConn(req *netio.Request, err error) netio.Response {
	b.log.Warn("broker: rejected request; closing connection", append(reqAttrs(req), "err", err)...)
	return netio.Response{None: true, Close: true}
}

// rejected logs one rejected input that was answered with an error code.
func (b *Broker) rejected(req *netio.Request, what string, err error, attrs ...any) {
	if !b.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs = append(attrs, "err", err, "code", errorCode(err))
	b.log.Info("broker: rejected "+what, append(reqAttrs(req), attrs...)...)
}

func reqAttrs(req *netio.Request) []any {
	attrs := make([]any, 0, 12)
	attrs = append(attrs, "api_key", req.APIKey, "api_version", req.APIVersion)
	if req.ClientID != nil {
		attrs = append(attrs, "client_id", *req.ClientID)
	}
	if req.Conn != nil && req.Conn.RemoteAddr != nil {
		attrs = append(attrs, "remote", req.Conn.RemoteAddr.String())
	}
	return attrs
}

// decode reads req.Body into r at req's version. Bodies that kmsg cannot
// read whole are rejected. unsafe decodes strings as views of the body,
// which is valid until the response is written: use it only where no
// decoded string outlives the request.
func decode(req *netio.Request, r kmsg.Request, unsafe bool) error {
	r.SetVersion(req.APIVersion)
	var err error
	if u, ok := r.(interface{ UnsafeReadFrom([]byte) error }); ok && unsafe {
		err = u.UnsafeReadFrom(req.Body)
	} else {
		err = r.ReadFrom(req.Body)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errDecode, err)
	}
	return nil
}

// advertised returns the host and port this broker advertises to the client
// of req.
func (b *Broker) advertised(req *netio.Request) (string, int32) {
	host, port := b.cfg.Host, b.cfg.Port
	if host != "" && port != 0 {
		return host, port
	}
	lhost, lport := "localhost", int32(9092)
	if req.Conn != nil && req.Conn.LocalAddr != nil {
		if h, p, err := net.SplitHostPort(req.Conn.LocalAddr.String()); err == nil {
			lhost = h
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n <= 65535 {
				lport = int32(n)
			}
		}
	}
	if host == "" {
		host = lhost
	}
	if port == 0 {
		port = lport
	}
	return host, port
}
