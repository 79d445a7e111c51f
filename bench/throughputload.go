package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/muprotocol/mu/bench/load"
)

// The throughput step's load generator is the muDB step's child process
// (mudbload.go) running op "http": package load's closed loop over HTTP
// GETs. It tells the parent when its measured phase starts ("measure",
// after the warm-up) and when it ends ("end", as soon as the last measured
// request is answered, before anything is sorted or sent), so the parent
// snapshots its own counters over exactly that phase: what the server
// side — gateway, runtime, native twin, all in the bench process — spent
// on the measured requests, with no client work mixed in. Percentiles are
// computed in the child over every run of a series (the rounds of one side
// at one concurrency), so no samples cross the pipe.

// http runs one "http" command.
func (c *child) http(ctx context.Context, cmd childCmd, send func(childMsg) error) (childMsg, error) {
	client := c.client(cmd.Concurrency)
	var (
		mark useMark
		use  procUse
	)
	r, err := load.Run(ctx, load.Options{URL: cmd.URL, Concurrency: cmd.Concurrency, Duration: cmd.Duration, Requests: cmd.Requests,
		Warmup: cmd.Warmup, Client: client,
		OnMeasure: func() {
			send(childMsg{Event: "measure"})
			mark = markUse()
		},
		OnMeasureEnd: func() {
			use = mark.since()
			send(childMsg{Event: "end"})
		},
	})
	if err != nil {
		return childMsg{}, err
	}
	all := append(c.series[cmd.Series], r.Samples...)
	slices.Sort(all)
	c.series[cmd.Series] = all
	merged := &load.Result{Samples: all}
	return childMsg{Event: "result", Requests: r.Requests, Errors: r.Errors, FirstError: r.FirstError, Elapsed: r.Elapsed,
		Use: use, P50: merged.Percentile(0.50), P90: merged.Percentile(0.90), P99: merged.Percentile(0.99)}, nil
}

// client returns the load generator's HTTP client for c workers.
func (c *child) client(n int) *http.Client {
	hc := c.clients[n]
	if hc == nil {
		hc = load.NewClient(n)
		c.clients[n] = hc
	}
	return hc
}

// sideRun is one side (native, mu in process, mu remote) at one
// concurrency driven by the load generator process, rounds added up.
type sideRun struct {
	requests, errors int64
	firstError       string
	elapsed          time.Duration
	p50, p90, p99    time.Duration // of all rounds, from the load generator
	// server is what this process (the servers) spent over the measured
	// phases; client what the load generator process spent.
	server, client procUse
	// cores and idle: this process's CPU over wall time, the machine's idle share.
	use []cpuUse
	// starts is how many instances the side's runtime started during the
	// measured phases (mu sides only).
	starts float64
}

// measurer reads a side's extra counters at the start and end of a phase.
type measurer func() float64

// driveSide runs one round of one side: the load generator drives url, and
// this process's counters (and started, if not nil) are read exactly at the
// start and the end of the measured phase.
func (lg *loadChild) driveSide(series, url string, c int, d, warmup time.Duration, started measurer, into *sideRun) (childMsg, error) {
	var (
		mark        useMark
		here        procUse
		cu          cpuUse
		starts0     float64
		ended       bool
		startsDelta float64
	)
	msg, err := lg.callHooks(childCmd{Op: "http", URL: url, Concurrency: c, Duration: d, Warmup: warmup, Series: series},
		func() {
			if started != nil {
				starts0 = started()
			}
			mark = markUse()
		},
		func() {
			here = mark.since()
			cu = snapshotCPU().since(mark.cpu, 0)
			if started != nil {
				startsDelta = started() - starts0
			}
			ended = true
		})
	if err != nil {
		return msg, err
	}
	if !ended {
		return msg, fmt.Errorf("load generator answered %s without ending its measured phase", series)
	}
	into.requests += msg.Requests
	into.errors += msg.Errors
	if into.firstError == "" {
		into.firstError = msg.FirstError
	}
	into.elapsed += msg.Elapsed
	into.p50, into.p90, into.p99 = msg.P50, msg.P90, msg.P99
	into.server = into.server.add(here)
	into.client = into.client.add(msg.Use)
	into.use = append(into.use, cu)
	into.starts += startsDelta
	return msg, nil
}

func (r *sideRun) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// perRequest divides u by the requests served.
func (r *sideRun) perRequest(u procUse) (cpu time.Duration, allocs, syscalls float64) {
	if r.requests == 0 {
		return 0, 0, 0
	}
	n := r.requests
	return u.CPU / time.Duration(n), float64(u.Allocs) / float64(n), float64(u.Syscalls) / float64(n)
}

// genResult turns the rounds into the row figures results.md prints.
func (r *sideRun) genResult() *genResult {
	if r == nil {
		return nil
	}
	g := &genResult{RPS: r.rps(), P50: r.p50, P90: r.p90, P99: r.p99, Requests: r.requests, Errors: r.errors, FirstError: r.firstError,
		Server: r.server, Client: r.client, InstanceStarts: r.starts}
	g.Cores, g.MachineIdle = meanUse(r.use)
	return g
}
