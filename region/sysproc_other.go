//go:build !linux

package region

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere a child
// outlives a parent that dies without calling Close.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// detachedProcAttr starts a child in a session of its own, so it outlives
// the process that started it.
func detachedProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
