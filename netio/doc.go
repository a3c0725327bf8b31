// Package netio is the broker's network layer: it accepts TCP connections,
// splits each byte stream into Kafka request frames, parses request headers,
// hands every request to a Handler and writes the responses back in request
// order, sending file regions straight from disk with sendfile(2).
//
// netio knows frames and bytes, not Kafka API semantics: request bodies are
// passed through undecoded and response bodies come back encoded (a
// kmsg.Response satisfies Response.Msg) or as pre-encoded pieces.
//
// # Wire format
//
// All integers are big-endian. A request frame:
//
//	+------------+----------------+------------------+---------------------+
//	| size int32 | api_key int16  | api_version int16| correlation_id int32|
//	+------------+----------------+------------------+---------------------+
//	| client_id_len int16 (-1 = null) | client_id [client_id_len]byte      |
//	+-----------------------------------------------------------------------+
//	| header v2 only (flexible requests): tagged fields                     |
//	|   count uvarint, then count × (tag uvarint | len uvarint | [len]byte) |
//	+-----------------------------------------------------------------------+
//	| body (size - header length bytes), passed to the Handler as is        |
//	+-----------------------------------------------------------------------+
//
// size counts the bytes after itself and must be 0 <= size <= MaxRequestSize.
// client_id keeps its int16 length even in header v2. Whether a request uses
// header v2 depends on its api_key and api_version (kmsg's IsFlexible).
//
// A response frame:
//
//	+------------+----------------------+--------------------+--------------+
//	| size int32 | correlation_id int32 | tag byte 0x00 (v1) | body         |
//	+------------+----------------------+--------------------+--------------+
//
// The tag byte (response header v1: an empty tagged-field section) is present
// when the request was flexible, except for ApiVersions (api_key 18), whose
// response header is always v0 so that a client can parse it before it knows
// which versions the broker speaks. These layouts are frozen: they are the
// Kafka protocol.
//
// # Connections
//
// Each connection runs three goroutines: a reader that keeps reading frames
// while earlier requests are handled, a handler goroutine that calls
// Handler.Handle for one request at a time in arrival order (idempotent
// producers depend on that order), and a writer that writes the responses in
// request order, so reading, handling and writing overlap. The requests of
// one connection read and not yet answered are bounded by Config.MaxInFlight,
// and their frames by MaxRequestSize bytes (a lone frame always passes); at
// either bound the reader stops reading.
//
// # Deferred responses
//
// A request that must wait (a Fetch long poll, a Produce with acks=all) need
// not block the handler goroutine, and with it every later request of the
// connection: Handle calls Request.Defer, hands the Deferred to whatever
// will wake it, and returns at once; later, any goroutine calls Complete:
//
//	func (b *Broker) Handle(ctx context.Context, req *netio.Request) netio.Response {
//		d := req.Defer()
//		b.purgatory.Wait(ctx, req, func(resp netio.Response) { d.Complete(resp) })
//		return netio.Response{Deferred: d}
//	}
//
// The handler goes on with the next request at once. The writer keeps
// request order: it writes what is ready up to the first deferred response
// not yet completed and waits there. A deferred request holds its slot of
// MaxInFlight, its frame (Body stays valid) and its share of the
// MaxRequestSize budget until its response is written or dropped.
// Graceful Shutdown waits for deferred responses to be completed and written;
// a forced close (Close, Shutdown's ctx ending, a dead client) drops them, and
// the eventual Complete still runs the Response's Done. The idle timeout does
// not fire while a request, deferred or not, is outstanding.
//
// The writer gathers responses that are already waiting into one write
// (writev), copies small pieces next to their header, and sends File parts
// with sendfile(2) at their explicit offset; on connections that cannot
// (net.Pipe, TLS, or a file sendfile refuses) it falls back to pread and
// write. Response.Done runs once the response is on the socket or dropped.
//
// Frame sizes are checked before any buffer is allocated; a negative or
// oversize frame, a malformed header or an unknown api key closes the
// connection. A panic in Handle, or a misuse of Defer, closes only that
// connection.
package netio
