package netio

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSendfileChunk stays under Linux's per-call cap of 0x7ffff000 bytes.
const maxSendfileChunk = 1 << 30

// sendfileHook, if set (by tests, before any connection), is told how many
// bytes each send moved with sendfile.
var sendfileHook func(n int64)

// sendfileState sends file regions to a socket with sendfile(2). It is owned
// by the connection's writer goroutine. Its callbacks are bound once, in
// init, so that sending allocates nothing but the file's RawConn.
//
// The file descriptor is borrowed through (*os.File).SyscallConn and
// Control, not Fd: Control holds a reference on the descriptor for the whole
// send, so a concurrent Close of the *os.File cannot close it under us (the
// close is deferred until we return), and the file is not switched to
// blocking mode. The explicit offset is passed to sendfile, which leaves the
// file's shared seek position alone.
type sendfileState struct {
	raw   syscall.RawConn // the socket; nil if it cannot sendfile
	ctl   func(uintptr)
	write func(uintptr) bool

	// Per send.
	ffd  int
	off  int64
	left int64
	sent int64
	err  error // from sendfile itself
	werr error // from the socket's RawConn.Write (deadline, closed)
}

func (st *sendfileState) init(raw syscall.RawConn) {
	st.raw = raw
	st.ctl = st.control
	st.write = st.writeTo
}

func (st *sendfileState) usable() bool { return st.raw != nil }

// send writes n bytes of f from off and returns how many it sent. It returns
// errNoSendfile when the remainder should be copied another way.
func (st *sendfileState) send(f *os.File, off, n int64) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("netio: response file: %w", err)
	}
	st.off, st.left, st.sent, st.err, st.werr = off, n, 0, nil, nil
	if err := rc.Control(st.ctl); err != nil {
		return 0, fmt.Errorf("netio: response file %s: %w", f.Name(), err)
	}
	sent, serr, werr := st.sent, st.err, st.werr
	st.err, st.werr = nil, nil
	if sendfileHook != nil {
		sendfileHook(sent)
	}
	switch {
	case werr != nil:
		return sent, fmt.Errorf("%w: %w", errIO, werr)
	case serr == nil:
		return sent, nil
	case errors.Is(serr, errTruncated):
		return sent, fmt.Errorf("%w: %d bytes missing at offset %d of %s", errTruncated, n-sent, off+sent, f.Name())
	case errors.Is(serr, unix.EINVAL), errors.Is(serr, unix.ENOSYS), errors.Is(serr, unix.EOPNOTSUPP):
		return sent, errNoSendfile
	default: // EPIPE, ECONNRESET, EIO...: the socket or the file failed
		return sent, fmt.Errorf("%w: sendfile %s: %w", errIO, f.Name(), serr)
	}
}

// control runs with the file descriptor held.
func (st *sendfileState) control(ffd uintptr) {
	st.ffd = int(ffd)
	st.werr = st.raw.Write(st.write)
}

// writeTo runs with the socket locked for writing; returning false makes the
// runtime poller wait until the socket is writable and call it again.
func (st *sendfileState) writeTo(sfd uintptr) bool {
	for st.left > 0 {
		m, err := unix.Sendfile(int(sfd), st.ffd, &st.off, int(min(st.left, maxSendfileChunk)))
		if m > 0 {
			st.sent += int64(m)
			st.left -= int64(m)
		}
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			st.err = err
			return true
		case m == 0:
			st.err = errTruncated // end of file before left bytes
			return true
		}
	}
	return true
}
