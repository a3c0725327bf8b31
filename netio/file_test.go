package netio

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testFile writes size random bytes to a temp file and returns it open for
// reading, with its contents.
func testFile(t testing.TB, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "segment.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

// fileRequest builds an opFile request for the given regions and the body
// the test handler's response must carry.
func fileRequest(corr int32, data []byte, regions [][2]int64) (frame, want []byte) {
	var arg []byte
	for i, r := range regions {
		arg = append(arg, int64Arg(r[0], r[1])...)
		want = append(want, byte(i))
		want = append(want, data[r[0]:r[0]+r[1]]...)
	}
	want = append(want, bytes.Repeat([]byte{'z'}, 5000)...)
	return testReq(corr, opFile, arg), want
}

func randomRegions(rng *rand.Rand, size int64) [][2]int64 {
	regions := make([][2]int64, 1+rng.IntN(5))
	for i := range regions {
		var n int64
		switch rng.IntN(4) {
		case 0:
			n = 0
		case 1:
			n = rng.Int64N(100)
		default:
			n = rng.Int64N(600 << 10)
		}
		regions[i] = [2]int64{rng.Int64N(size - n + 1), n}
	}
	return regions
}

// exerciseFileParts sends requests for random file regions on conns
// concurrently and checks every response byte for byte.
func exerciseFileParts(t *testing.T, conns []net.Conn, data []byte) {
	var wg sync.WaitGroup
	for k, c := range conns {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 1))
			for i := range 10 {
				frame, want := fileRequest(int32(i), data, randomRegions(rng, int64(len(data))))
				if _, err := c.Write(frame); err != nil {
					t.Error(err)
					return
				}
				resp, err := readFrame(c)
				if err != nil {
					t.Error(err)
					return
				}
				if err := checkEcho(resp, int32(i), false, want); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestFilePartsOverTCP(t *testing.T) {
	h := newTestHandler()
	var data []byte
	h.file, data = testFile(t, 2<<20)
	s, _ := startServer(t, Config{}, h)
	conns := make([]net.Conn, 6)
	for i := range conns {
		conns[i] = dial(t, s)
	}
	exerciseFileParts(t, conns, data)
	if pos, err := h.file.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		t.Fatalf("file seek position moved to %d (%v)", pos, err)
	}
	h.waitDone(t)
}

func TestFilePartsOverPipe(t *testing.T) {
	// net.Pipe cannot sendfile: the pread fallback must give the same bytes.
	h := newTestHandler()
	var data []byte
	h.file, data = testFile(t, 2<<20)
	log, _ := newLogRecorder(t)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Logger: log}, h)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 3)
	var served sync.WaitGroup
	for i := range conns {
		client, server := net.Pipe()
		conns[i] = client
		served.Go(func() { s.serveConn(server) })
	}
	exerciseFileParts(t, conns, data)
	s.Shutdown(context.Background())
	served.Wait()
	h.waitDone(t)
}

func TestTruncatedFileClosesConnection(t *testing.T) {
	h := newTestHandler()
	var data []byte
	h.file, data = testFile(t, 64<<10)
	size := int64(len(data))
	s, rec := startServer(t, Config{}, h)
	for _, r := range [][2]int64{{size - 10, 100}, {size + 5, 1}, {0, size + 1}} {
		c := dial(t, s)
		frame, _ := fileRequest(1, append(data, make([]byte, 200)...), [][2]int64{r})
		c.Write(frame)
		got, _ := io.ReadAll(c) // the server closes: read what it sent
		if len(got) >= 4+4+1+int(r[1])+5000 {
			t.Fatalf("region %v: got a whole response of %d bytes", r, len(got))
		}
	}
	rec.waitFor(t, "file region shorter than its length")

	// The pread fallback detects it too.
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() { s.serveConn(server); close(done) }()
	frame, _ := fileRequest(1, append(data, make([]byte, 200)...), [][2]int64{{size - 10, 100}})
	go client.Write(frame)
	io.Copy(io.Discard, client)
	<-done
	h.waitDone(t)
}

func TestClosedFileClosesConnection(t *testing.T) {
	h := newTestHandler()
	var data []byte
	h.file, data = testFile(t, 4096)
	h.file.Close()
	s, rec := startServer(t, Config{}, h)
	c := dial(t, s)
	frame, _ := fileRequest(1, data, [][2]int64{{0, 10}})
	c.Write(frame)
	io.ReadAll(c)
	rec.waitFor(t, "response not written", "file")
	h.waitDone(t)
}
