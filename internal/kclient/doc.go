// Package kclient is a small Kafka protocol client for the requests brokers
// of an Easel cluster send each other (forwarded CreateTopics, BrokerHeartbeat,
// AlterPartition, follower Fetch, ...): it sends a kmsg.Request to host:port
// and returns the decoded kmsg.Response.
//
// It is not a Kafka client library: it has no metadata cache, no retries, no
// batching of records and no consumer or producer logic. The caller picks the
// broker and decides what to do with errors.
//
// # Connections
//
// A Client keeps one TCP connection per address and reuses it for every
// request to that address. Requests on a connection are pipelined: each
// caller encodes its own request, one writer goroutine per connection assigns
// correlation ids and writes whatever requests are waiting in one writev, and
// one reader goroutine reads responses, which Kafka sends in request order,
// matching each with the oldest outstanding request. A response whose
// correlation id is not that request's, a frame that cannot be a response
// (shorter than its header or longer than 256 MiB), a malformed header or any
// read or write error breaks the connection: every request outstanding on it
// fails with an error naming the address, and the next Request dials again.
// Nothing is retried: a failed request may or may not have been processed
// by the peer.
//
// A caller whose ctx ends while it waits gets ctx.Err() (wrapped); if its
// request was already written, the response is still read when it comes and
// then dropped, so the connection stays in step. A request the writer has
// not yet taken when its ctx ends is not written at all.
//
// A connection that no Request has used for Config.IdleTimeout is closed; a
// response still owed to a caller that gave up is dropped with it.
//
// Every connection starts with an ApiVersions handshake (v3, naming the
// software "easel"; if the peer answers UNSUPPORTED_VERSION, v0, as Kafka
// clients do). The version ranges it returns are kept for the life of the
// connection.
//
// # Versions
//
// Request sends req at version
//
//	v = min(req.MaxVersion(), peer's max for req.Key(), cap)
//
// where cap is req.GetVersion() if that is > 0 and absent otherwise. If the
// peer does not list the key, or v is below the peer's min, Request fails with
// an error wrapping ErrUnsupported without sending anything. Once v is
// chosen it is left set on req (and on the response), whatever the outcome,
// so the caller can read fields by version; a Request that fails before
// (dial, handshake, ErrUnsupported) leaves req's version as it was. Because
// of that, a request value reused for another Request carries v as its cap:
// call req.SetVersion(0) first to negotiate afresh. A cap cannot ask for
// exactly v0 (0 means "no cap").
//
// # Produce with acks=0
//
// A ProduceRequest with Acks 0 gets no response in Kafka. Request supports
// it: it returns (nil, nil) once the request is written to the socket. That
// says nothing about delivery; a peer that fails such a produce closes the
// connection, which the next Request notices.
//
// # Wire format
//
// All integers are big-endian. A request frame, as kmsg.RequestFormatter
// writes it:
//
//	+------------+---------------+-------------------+----------------------+
//	| size int32 | api_key int16 | api_version int16 | correlation_id int32 |
//	+------------+---------------+-------------------+----------------------+
//	| client_id_len int16 | client_id [client_id_len]byte                   |
//	+-----------------------------------------------------------------------+
//	| header v2 only (flexible requests): tagged fields, here always 0x00   |
//	+-----------------------------------------------------------------------+
//	| body                                                                  |
//	+-----------------------------------------------------------------------+
//
// (ControlledShutdown v0 has header v0: no client_id.) A response frame:
//
//	+------------+----------------------+--------------------------+------+
//	| size int32 | correlation_id int32 | header v1: tagged fields | body |
//	+------------+----------------------+--------------------------+------+
//
// size counts the bytes after itself; a response must have 4 <= size <=
// 256 MiB, checked before anything is allocated. The tagged-field section
// (count uvarint, then count × (tag uvarint | len uvarint | [len]byte)) is
// present when the request was flexible, except in ApiVersions responses,
// whose header is always v0 so that a client can read them before it knows
// which versions the peer speaks. These layouts are the Kafka protocol and
// are frozen.
package kclient
