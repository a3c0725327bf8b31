//go:build !linux

package netio

import (
	"os"
	"syscall"
)

// sendfileState is unused off Linux: File parts are copied with pread and
// write.
type sendfileState struct{}

func (st *sendfileState) init(syscall.RawConn) {}

func (st *sendfileState) usable() bool { return false }

func (st *sendfileState) send(*os.File, int64, int64) (int64, error) {
	return 0, errNoSendfile
}
