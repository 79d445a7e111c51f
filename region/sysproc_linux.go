package region

import "syscall"

// sysProcAttr makes a child die with the thread that started it, so a
// region's services never outlive a crashed test or benchmark. (Go ends a
// thread only when a goroutine exits while locked to it, which nothing in
// mu does, so in practice the child dies with the process.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// detachedProcAttr starts a child in a session of its own, without the
// parent-death signal, so it outlives the process that started it.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}
