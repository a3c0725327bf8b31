package easelproc

import "syscall"

// sysProcAttr makes a child die with the bench, even if the bench itself is
// killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
