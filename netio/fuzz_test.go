package netio

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzServeConn feeds arbitrary bytes to one connection (a net.Pipe, or
// loopback TCP to reach the sendfile path) and then checks that the server
// still answers a fresh connection, and that every Done ran exactly once and
// every deferred response was completed. The handler's ops make the input
// choose responses too: echoes, parts, file regions, closes, panics, and
// deferred responses completed inline, later, with Close, or wrongly.
func FuzzServeConn(f *testing.F) {
	h := newTestHandler()
	h.apiMax = map[int16]int16{3: 12, 18: 3}
	h.file, _ = testFile(f, 64<<10)
	h.big = make([]byte, 256<<10)
	h.maxWait = 300 * time.Millisecond // see testHandler.maxWait
	log := slog.New(slog.DiscardHandler)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Logger: log, MaxRequestSize: 1 << 16,
		IdleTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxInFlight: 4}, h)
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve()
	f.Cleanup(func() { s.Close(); waitConnsGone(f, s) })

	seed := func(frames ...[]byte) {
		var b []byte
		for _, fr := range frames {
			b = append(b, fr...)
		}
		f.Add(b)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	seed(testReq(1, opEcho, []byte("hi")), testReqFlex(2, opParts, make([]byte, 9000)), testReq(3, opNone, nil))
	seed(testReq(1, opFile, int64Arg(10, 100, 60000, 10000)), testReq(2, opFile, int64Arg(65000, 1000)))
	seed(testReq(1, opClose, nil), testReq(2, opEcho, nil))
	seed(testReq(1, opPanic, nil))
	seed(testReq(1, opBadPart, nil), testReq(2, opBig, int64Arg(1<<18)))
	seed(appendFrame(nil, reqHeader{key: 18, version: 3, flexible: true}, av.AppendTo(nil)),
		appendFrame(nil, reqHeader{key: 3, version: 12, flexible: true, tags: [][]byte{{1}}}, md.AppendTo(nil)))
	seed([]byte{0x80, 0, 0, 0})
	seed(binary.BigEndian.AppendUint32(nil, 1<<16+1))
	seed(testReq(1, opEcho, nil)[:9])
	seed([]byte{0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	ms := int64(time.Millisecond)
	seed(testReq(1, opDefer, int64Arg(5*ms)), testReq(2, opEcho, []byte("behind")), testReq(3, opDeferNow, []byte("now")),
		testReq(4, opHold, int64Arg(ms)), testReqFlex(5, opDefer, int64Arg(0)), testReq(6, opNone, nil))
	seed(testReq(1, opDefer, int64Arg(2*ms)), testReq(2, opDeferClose, int64Arg(ms)), testReq(3, opEcho, nil))
	seed(testReq(1, opDefer, int64Arg(ms)), testReq(2, opDeferBad, nil), testReq(3, opEcho, nil))
	seed(testReq(1, opDeferNow, nil), testReq(2, opDeferPanic, int64Arg(ms)), testReq(3, opDefer, nil))
	seed(testReq(1, opDefer, int64Arg(int64(time.Hour))), testReq(2, opFile, int64Arg(0, 60000)))

	// A trailing close request ends a well-formed input at once; zeros after
	// it complete any frame the input left open (MaxRequestSize is 64 KiB)
	// and then read as empty frames, which close the connection too.
	tail := append(testReq(0x7fffffff, opCloseNone, nil), make([]byte, 1<<16+8)...)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append(append([]byte(nil), data...), tail...)
		var client net.Conn
		var served chan struct{}
		if len(data)%2 == 0 {
			var server net.Conn
			client, server = net.Pipe()
			served = make(chan struct{})
			go func() { s.serveConn(server); close(served) }()
		} else {
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			client = c
		}
		go client.Write(in)
		read := make(chan struct{})
		go func() { io.Copy(io.Discard, client); close(read) }()
		select {
		case <-read:
		case <-time.After(200 * time.Millisecond): // a handler sleeping (opSleep, opWaitCtx)
		}
		client.Close()
		<-read
		if served != nil {
			<-served
		}

		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := roundTrip(t, c, testReq(9, opEcho, []byte("alive"))); string(got) != "alive" {
			t.Fatalf("server answered %q after the input", got)
		}
		if n := h.overlaps.Load(); n != 0 {
			t.Fatalf("%d overlapping Handle calls", n)
		}
		h.waitDone(t)
	})
}
