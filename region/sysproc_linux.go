package region

import "syscall"

// sysProcAttr makes a child die with the thread that started it, so a
// region's services never outlive a crashed test or benchmark.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
