package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/netio"
)

// closeConn logs a rejected request and closes its connection without
// answering.
func (b *Broker) closeConn(req *netio.Request, err error) netio.Response {
	b.log.Warn("broker: rejected request; closing connection", append(reqAttrs(req), "err", err)...)
	return netio.Response{None: true, Close: true}
}

// rejected counts and logs one request or partition answered with an
// error code: at Info for the client's own doing, at Warn (rate-limited,
// see logFault) for the broker's.
func (b *Broker) rejected(req *netio.Request, what string, err error, attrs ...any) {
	code := errorCode(err)
	b.countError(req.APIKey, code)
	if brokerFault(code) {
		b.logFault(req, what, code, err, attrs...)
		return
	}
	if !b.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs = append(attrs, "err", err, "code", code)
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
