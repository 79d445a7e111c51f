package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run happened; results.md prints it above the figures.
type Machine struct {
	Cores       int    `json:"cores"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	CPUModel    string `json:"cpu_model"`
	MemoryMiB   int    `json:"memory_mib"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	WasmtimeGo  string `json:"wasmtime_go_version"`
	Wasmtime    string `json:"wasmtime_version,omitempty"`
	Wrk         string `json:"wrk_version,omitempty"`
	LoadAverage string `json:"load_average_at_start"`
}

func probeMachine(ctx context.Context) Machine {
	m := Machine{
		Cores:       goruntime.NumCPU(),
		GOMAXPROCS:  goruntime.GOMAXPROCS(0),
		CPUModel:    cpuModel(),
		MemoryMiB:   memTotalMiB(),
		GoVersion:   goruntime.Version(),
		LoadAverage: loadAverage(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.HasPrefix(d.Path, "github.com/bytecodealliance/wasmtime-go") {
				m.WasmtimeGo = d.Path + " " + d.Version
				m.Wasmtime = wasmtimeCVersion(ctx, d.Path, d.Version)
			}
		}
	}
	if path, err := exec.LookPath("wrk"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, path, "-v").CombinedOutput()
		if line, _, _ := strings.Cut(string(out), "\n"); strings.HasPrefix(line, "wrk ") {
			m.Wrk = strings.Fields(line)[1]
		}
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotalMiB() int {
	kb := procStatusField("/proc/meminfo", "MemTotal")
	return int(kb / 1024)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// wasmtimeCVersion reads WASMTIME_VERSION from the wasmtime.h that the
// wasmtime-go module bundles, when the module is in the local module cache.
func wasmtimeCVersion(ctx context.Context, path, version string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	h := filepath.Join(strings.TrimSpace(string(out)), path+"@"+version, "build", "include", "wasmtime.h")
	b, err := os.ReadFile(h)
	if err != nil {
		return ""
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("#define WASMTIME_VERSION ")); ok {
			return strings.Trim(string(bytes.TrimSpace(rest)), `"`)
		}
	}
	return ""
}

// procStatusField reads a "Name:   123 kB" line of a /proc status-like
// file and returns the number (kB for memory fields), or 0.
func procStatusField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n
	}
	return 0
}
