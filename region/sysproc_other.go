//go:build !linux

package region

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere a child
// outlives a parent that dies without calling Close.
func sysProcAttr() *syscall.SysProcAttr { return nil }
