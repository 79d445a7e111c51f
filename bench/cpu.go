package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSnapshot is this process's CPU time, its system call and context switch
// counts, and the machine's CPU counters at one instant.
type cpuSnapshot struct {
	at           time.Time
	proc         time.Duration // user + system time of this process
	voluntary    int64         // voluntary context switches of this process
	involuntary  int64
	readCalls    int64 // read-like system calls (/proc/self/io syscr)
	writeCalls   int64 // write-like system calls (syscw)
	machineIdle  int64 // idle + iowait ticks of all CPUs (/proc/stat)
	machineTotal int64
}

func snapshotCPU() cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.proc = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		s.voluntary, s.involuntary = ru.Nvcsw, ru.Nivcsw
	}
	s.readCalls = procStatusField("/proc/self/io", "syscr")
	s.writeCalls = procStatusField("/proc/self/io", "syscw")
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			s.machineTotal += v
			if i == 4 || i == 5 {
				s.machineIdle += v
			}
		}
	}
	return s
}

// cpuUse is what happened between two snapshots.
type cpuUse struct {
	// procCores is this process's CPU time over the wall time.
	procCores float64
	// machineIdle is the idle share of the whole machine's CPU time.
	machineIdle float64
	// per request, when divided by a count
	reads, writes, voluntary float64
	cpuPerOp                 time.Duration
}

func (s cpuSnapshot) since(prev cpuSnapshot, ops int64) cpuUse {
	u := cpuUse{}
	if wall := s.at.Sub(prev.at); wall > 0 {
		u.procCores = float64(s.proc-prev.proc) / float64(wall)
	}
	if t := s.machineTotal - prev.machineTotal; t > 0 {
		u.machineIdle = float64(s.machineIdle-prev.machineIdle) / float64(t)
	}
	if ops > 0 {
		n := float64(ops)
		u.reads = float64(s.readCalls-prev.readCalls) / n
		u.writes = float64(s.writeCalls-prev.writeCalls) / n
		u.voluntary = float64(s.voluntary-prev.voluntary) / n
		u.cpuPerOp = (s.proc - prev.proc) / time.Duration(ops)
	}
	return u
}
