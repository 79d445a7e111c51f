package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"
)

// runWrk drives mu and native with wrk at each concurrency, one run each,
// mu and native back to back, when wrk is installed (it is optional).
func (s *Suite) runWrk(ctx context.Context, t *helloTarget, plan throughputPlan) error {
	path, err := exec.LookPath("wrk")
	if err != nil {
		s.logf("wrk: not installed; skipped (apt-get install wrk)")
		return nil
	}
	for _, c := range []int{1, 8, 64} {
		row := &throughputRow{Concurrency: c, Gen: "wrk"}
		for _, side := range []string{"mu", "native"} {
			url := t.muURL
			if side == "native" {
				url = t.nativeURL
			}
			before := snapshotCPU()
			r, err := wrk(ctx, path, url, c, plan.wrk)
			if err != nil {
				return err
			}
			r.Cores, r.MachineIdle = meanUse([]cpuUse{snapshotCPU().since(before, 0)})
			s.logf("wrk: c=%d %s: %.0f req/s p50 %v p99 %v errors %d", c, side, r.RPS, r.P50, r.P99, r.Errors)
			if side == "mu" {
				row.Mu = r
			} else {
				row.Native = r
			}
		}
		s.res.wrk = append(s.res.wrk, row)
		s.addWrkMetrics(row)
	}
	return s.wrkGOMAXPROCS(ctx, path, t, plan)
}

// wrkGOMAXPROCS drives mu with wrk at c=64 with this process's GOMAXPROCS
// at its default and at twice the cores, alternating: wasm instances hold
// their P while in cgo and hand Ps to locked threads, so a default-sized P
// set can leave cores idle while goroutines wait to run.
func (s *Suite) wrkGOMAXPROCS(ctx context.Context, path string, t *helloTarget, plan throughputPlan) error {
	def := goruntime.GOMAXPROCS(0)
	more := 2 * goruntime.NumCPU()
	defer goruntime.GOMAXPROCS(def)
	res := map[int][]*genResult{}
	for round := range 2 {
		order := []int{def, more}
		if round%2 == 1 {
			order = []int{more, def}
		}
		for _, procs := range order {
			goruntime.GOMAXPROCS(procs)
			before := snapshotCPU()
			r, err := wrk(ctx, path, t.muURL, 64, plan.wrk)
			if err != nil {
				return err
			}
			r.Cores, r.MachineIdle = meanUse([]cpuUse{snapshotCPU().since(before, 0)})
			s.logf("wrk: c=64 mu with GOMAXPROCS %d: %.0f req/s p50 %v, %.2f cores, machine idle %.0f%%", procs, r.RPS, r.P50, r.Cores, 100*r.MachineIdle)
			res[procs] = append(res[procs], r)
		}
	}
	s.res.gomaxprocs = &gomaxprocsResult{def: def, more: more, defRuns: res[def], moreRuns: res[more]}
	g := s.res.gomaxprocs
	note := fmt.Sprintf("wrk, 64 connections, mean of 2 runs alternating with GOMAXPROCS %d", def)
	s.res.add(fmt.Sprintf("wrk_throughput_rps_c64_gomaxprocs%d", more), g.rps(g.moreRuns), "req/s", note)
	s.res.add(fmt.Sprintf("wrk_throughput_rps_c64_gomaxprocs%d", def), g.rps(g.defRuns), "req/s", fmt.Sprintf("wrk, 64 connections, mean of 2 runs alternating with GOMAXPROCS %d", more))
	return nil
}

// gomaxprocsResult is mu at c=64 under wrk with two GOMAXPROCS settings.
type gomaxprocsResult struct {
	def, more         int
	defRuns, moreRuns []*genResult
}

func (g *gomaxprocsResult) rps(rs []*genResult) float64 {
	sum := 0.0
	for _, r := range rs {
		sum += r.RPS
	}
	return sum / float64(max(len(rs), 1))
}

func (g *gomaxprocsResult) mean(rs []*genResult, f func(*genResult) float64) float64 {
	sum := 0.0
	for _, r := range rs {
		sum += f(r)
	}
	return sum / float64(max(len(rs), 1))
}

// wrk runs wrk with min(c, 2) threads and c connections for d and parses
// its requests per second and latency distribution.
func wrk(ctx context.Context, path, url string, c int, d time.Duration) (*genResult, error) {
	threads := min(c, 2)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(c),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return r, nil
}

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (*genResult, error) {
	r := &genResult{}
	sc := bufio.NewScanner(strings.NewReader(out))
	inDist := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "Latency" && len(f) > 1 && f[1] == "Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return nil, err
			}
			switch f[0] {
			case "50%", "50.000%":
				r.P50 = d
			case "90%", "90.000%":
				r.P90 = d
			case "99%", "99.000%":
				r.P99 = d
			}
		case f[0] == "Requests/sec:" && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return nil, err
			}
			r.RPS = v
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return nil, err
			}
			r.Requests = n
			inDist = false
		case f[0] == "Non-2xx" && len(f) >= 5:
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			r.Errors += n
			r.FirstError = "non-2xx answers"
		case f[0] == "Socket" && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.Errors += n
			}
			if r.Errors > 0 && r.FirstError == "" {
				r.FirstError = "socket errors"
			}
		}
	}
	if r.RPS == 0 || r.P50 == 0 {
		return nil, fmt.Errorf("no requests/sec or latency distribution in the output")
	}
	return r, nil
}

func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"us", 1e3}, {"ms", 1e6}, {"m", 60e9}, {"s", 1e9}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(f * u.scale), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q", s)
}
