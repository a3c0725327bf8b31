package netio

import (
	"net"
	"sync/atomic"
	"testing"
)

var sendfileBytes atomic.Int64

func init() { sendfileHook = func(n int64) { sendfileBytes.Add(n) } }

func TestSendfileIsUsedOverTCP(t *testing.T) {
	h := newTestHandler()
	var data []byte
	h.file, data = testFile(t, 1<<20)
	s, _ := startServer(t, Config{}, h)
	before := sendfileBytes.Load()
	exerciseFileParts(t, []net.Conn{dial(t, s)}, data)
	if sendfileBytes.Load() == before {
		t.Fatal("no byte went through sendfile")
	}
}
