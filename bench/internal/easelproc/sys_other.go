//go:build !linux

package easelproc

import "syscall"

// sysProcAttr: only Linux can make a child die with its parent.
func sysProcAttr() *syscall.SysProcAttr { return nil }
