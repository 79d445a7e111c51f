package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// profRow is one function of a CPU profile.
type profRow struct {
	Name            string
	Flat, Cum       time.Duration
	FlatPct, CumPct float64
}

// profileSummary is what results.md shows of the c=64 profile.
type profileSummary struct {
	path  string
	side  string // sideInProc or sideRemote
	rps   float64
	total time.Duration
	rows  []profRow
	// parts: CPU share of the parts of the process, by cumulative time of
	// their entry points.
	parts []profPart
}

type profPart struct {
	Name   string
	CumPct float64
}

// profileParts are the goroutine entry points of the benchmark process
// (the servers: the load generator runs in a process of its own)
// whose cumulative CPU tells where a request's cost goes.
//
// A name ending in ".func" matches its closures; other names match exactly.
// Parts marked flat count the function's own time only.
var profileParts = []struct {
	name, fn string
	flat     bool
}{
	{"gateway HTTP handler (gateway.(*Server).ServeHTTP)", "github.com/muprotocol/mu/services/gateway.(*Server).ServeHTTP", false},
	{"  of which the Invoke RPC, client side (gRPC)", "github.com/muprotocol/mu/proto/mu/runtime/v1.(*runtimeServiceClient).Invoke", false},
	{"runtime Invoke handler (runtime.(*Server).Invoke)", "github.com/muprotocol/mu/services/runtime.(*Server).Invoke", false},
	{"wasm instance goroutines (guest start-up and calls, WASI host calls)", "github.com/muprotocol/mu/services/runtime/internal/wasm.(*Instance).run", false},
	{"  of which wasm code and wasmtime (flat in runtime.cgocall)", "runtime.cgocall", true},
	{"  of which host functions called from wasm (cgo callbacks)", "runtime.cgocallback", false},
	{"handing Ps to locked threads (runtime.startlockedm)", "runtime.startlockedm", false},
	{"parking locked threads (runtime.stoplockedm)", "runtime.stoplockedm", false},
	{"futex (thread sleep/wake)", "runtime.futex", false},
	{"network syscalls (syscall.Syscall)", "syscall.Syscall", false},
	{"gRPC writers (loopy, both ends)", "google.golang.org/grpc/internal/transport.(*loopyWriter).run", false},
	{"gRPC server reader", "google.golang.org/grpc/internal/transport.(*http2Server).HandleStreams", false},
	{"gRPC server unary calls (decode, interceptors, encode; the remote path)", "google.golang.org/grpc.(*Server).processUnaryRPC", false},
	{"gRPC client reader", "google.golang.org/grpc/internal/transport.(*http2Client).reader", false},
	{"net/http server connections (gateway's)", "net/http.(*conn).serve", false},
	{"net/http client connections (load's)", "net/http.(*persistConn).readLoop", false},
	{"garbage collector (background mark)", "runtime.gcBgMarkWorker", false},
	{"scheduler (runtime.schedule)", "runtime.schedule", false},
	{"memory allocation (runtime.mallocgc)", "runtime.mallocgc", false},
	{"usage sink (usage.Memory.Report)", "github.com/muprotocol/mu/libs/usage.(*Memory).Report", false},
	{"function logs (logs.Hub.Publish)", "github.com/muprotocol/mu/services/runtime/logs.(*Hub).Publish", false},
}

// summarizeProfile reads a CPU profile with `go tool pprof -top`.
func summarizeProfile(ctx context.Context, path string) (*profileSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=0", path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %w", err)
	}
	rows, total, err := parsePprofTop(string(out))
	if err != nil {
		return nil, err
	}
	sum := &profileSummary{rows: rows, total: total}
	for _, p := range profileParts {
		best := 0.0
		for _, r := range rows {
			match := r.Name == p.fn || strings.HasSuffix(p.fn, ".func") && strings.HasPrefix(r.Name, p.fn)
			switch {
			case match && p.flat:
				best = max(best, r.FlatPct)
			case match:
				best = max(best, r.CumPct)
			}
		}
		sum.parts = append(sum.parts, profPart{Name: p.name, CumPct: best})
	}
	return sum, nil
}

// topFlat and topCum return the n functions with the most flat or
// cumulative time.
func (p *profileSummary) topFlat(n int) []profRow {
	rs := slices.Clone(p.rows)
	slices.SortStableFunc(rs, func(a, b profRow) int { return int(b.Flat - a.Flat) })
	return rs[:min(n, len(rs))]
}

func (p *profileSummary) part(prefix string) float64 {
	for _, pt := range p.parts {
		if strings.HasPrefix(strings.TrimSpace(pt.Name), strings.TrimSpace(prefix)) {
			return pt.CumPct
		}
	}
	return 0
}

// parsePprofTop parses `go tool pprof -top` output:
//
//	Duration: 5.1s, Total samples = 9.8s (192.1%)
//	      flat  flat%   sum%        cum   cum%
//	     1.2s 12.24% 12.24%      1.3s 13.27%  runtime.futex
func parsePprofTop(out string) ([]profRow, time.Duration, error) {
	var rows []profRow
	var total time.Duration
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	header := false
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "Total samples = "); i >= 0 {
			v, _, _ := strings.Cut(line[i+len("Total samples = "):], " ")
			total, _ = time.ParseDuration(v)
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
			header = true
			continue
		}
		if !header || len(f) < 6 {
			continue
		}
		flat, err1 := parsePprofDuration(f[0])
		flatPct, err2 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err3 := parsePprofDuration(f[3])
		cumPct, err4 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		name := strings.Join(f[5:], " ")
		name = strings.TrimSuffix(name, " (inline)")
		rows = append(rows, profRow{Name: name, Flat: flat, FlatPct: flatPct, Cum: cum, CumPct: cumPct})
	}
	if len(rows) == 0 {
		return nil, 0, fmt.Errorf("no rows in pprof output")
	}
	return rows, total, nil
}

func parsePprofDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
