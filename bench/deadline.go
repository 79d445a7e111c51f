package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// spinnerLog is the body of the Log the spinner writes as its call starts.
const spinnerLog = "spinning"

// spinnerWAT is a reactor whose mu_serve writes one Log frame (so the
// runtime timestamps the call's start from inside it) and then spins
// forever without calling the host: only the epoch deadline can end it.
func spinnerWAT() (string, error) {
	frame, err := fnproto.AppendFrame(nil, &fnproto.Log{Body: spinnerLog, Level: fnproto.LogLevelInfo})
	if err != nil {
		return "", err
	}
	var data strings.Builder
	for _, b := range frame {
		fmt.Fprintf(&data, "\\%02x", b)
	}
	return fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "%s")
  (func (export "_initialize"))
  (func (export "mu_init"))
  (func (export "mu_serve") (result i32)
    (i32.store (i32.const 8) (i32.const 256))
    (i32.store (i32.const 12) (i32.const %d))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
    (loop $l (br $l))
    (i32.const 0)))`, data.String(), len(frame)), nil
}

// deadlinePlan is how the deadline benchmark runs.
type deadlinePlan struct {
	timeout  time.Duration // the runtime's CallTimeout
	spinners int           // concurrent calls of the loaded rounds
	rounds   int           // rounds of spinners concurrent calls
	baseline int           // rounds of a single call
}

func (s *Suite) deadlinePlan() deadlinePlan {
	if s.opts.Quick {
		return deadlinePlan{timeout: time.Second, spinners: 8, rounds: 3, baseline: 1}
	}
	return deadlinePlan{timeout: time.Second, spinners: 8, rounds: 5, baseline: 3}
}

// spinnerCall is one call of a round, each on a stack of its own.
type spinnerCall struct {
	// overrun is how long past CallTimeout the call ran inside the runtime:
	// from the Log the guest wrote as it started to the runtime's own log
	// of the deadline error, both timestamped by the runtime.
	overrun time.Duration
	// rpcOverrun is how long past CallTimeout the Invoke RPC took, timed by
	// its caller: overrun plus the wait before the call started and the
	// answer's way back.
	rpcOverrun time.Duration
	// startDelay is from sending the RPC to the guest's first Log.
	startDelay time.Duration
	fuel       uint64
}

// deadlineRound is one round of concurrent spinner calls.
type deadlineRound struct {
	calls []spinnerCall
	// started is how many instances the runtime started during the calls
	// (0: every call found its prewarmed instance).
	started int
	// use is this process's and the machine's CPU during the calls.
	use cpuUse
}

func (r *deadlineRound) stat(f func(spinnerCall) time.Duration) (mean, maxOver time.Duration) {
	for i, c := range r.calls {
		v := f(c)
		mean += v
		if i == 0 || v > maxOver {
			maxOver = v
		}
	}
	return mean / time.Duration(max(len(r.calls), 1)), maxOver
}

func runtimeOverrun(c spinnerCall) time.Duration { return c.overrun }
func rpcOverrun(c spinnerCall) time.Duration     { return c.rpcOverrun }
func startDelay(c spinnerCall) time.Duration     { return c.startDelay }

// deadlineResult is the outcome of the deadline benchmark.
type deadlineResult struct {
	timeout, tick time.Duration
	fuelBudget    uint64
	spinners      int
	loaded, alone []*deadlineRound
}

// worst returns, over rounds, the largest mean and the largest value of f,
// and the round with that largest value.
func worst(rounds []*deadlineRound, f func(spinnerCall) time.Duration) (mean, maxOver time.Duration, at *deadlineRound) {
	for _, r := range rounds {
		m, x := r.stat(f)
		mean = max(mean, m)
		if at == nil || x > maxOver {
			maxOver, at = x, r
		}
	}
	return mean, maxOver, at
}

// limit is the target: 10 % of CallTimeout plus one EpochTick.
func (d *deadlineResult) limit() time.Duration { return d.timeout/10 + d.tick }

func pct(d, of time.Duration) float64 { return 100 * float64(d) / float64(of) }

// deadlineRegion is a lone runtime configured so that only the wall-clock
// deadline ends a spinner: a fuel budget far beyond what a core burns in
// CallTimeout.
type deadlineRegion struct {
	region  *region.Region
	cfg     runtime.Config
	wasm    []byte
	binary  string
	dataDir string
}

func startDeadlineRegion(ctx context.Context, plan deadlinePlan) (_ *deadlineRegion, err error) {
	src, err := spinnerWAT()
	if err != nil {
		return nil, err
	}
	wasm, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		return nil, err
	}
	dr := &deadlineRegion{wasm: wasm, binary: ids.BinaryID(wasm)}
	defer func() {
		if err != nil {
			dr.close()
		}
	}()
	if dr.dataDir, err = os.MkdirTemp("", "mubench-deadline-"); err != nil {
		return nil, err
	}
	dr.region, err = region.Start(ctx, region.Options{
		DataDir: dr.dataDir,
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) {
			c.CallTimeout = plan.timeout
			// A spinner burns about one fuel per nanosecond of a core; 2^44
			// (1.8·10^13) is hours of it, so fuel never ends a call.
			c.MaxFuelPerCall = 1 << 44
			c.PrewarmInstances = max(c.PrewarmInstances, 1) // no call pays an instance start
			dr.cfg = *c
		}},
	})
	if err != nil {
		return nil, err
	}
	return dr, nil
}

func (dr *deadlineRegion) close() {
	if dr.region != nil {
		dr.region.Close()
	}
	if dr.dataDir != "" {
		os.RemoveAll(dr.dataDir)
	}
}

// round deploys the spinner as n new stacks (each deploy prewarms an
// instance, so no call pays an instance start, and each call's logs carry
// its own stack id), sends one Invoke RPC to each at once, straight to the
// runtime, and removes the stacks. Every call must end by its deadline, and
// none before it.
func (dr *deadlineRegion) round(ctx context.Context, n int) (_ *deadlineRound, err error) {
	m := &manifest.Manifest{Name: "spinner", Version: "1", Functions: []manifest.Function{{
		Name: "spinner", Binary: dr.binary, Runtime: manifest.RuntimeWASI1, MemoryLimit: manifest.MiB,
	}}}
	stacks := make([]ids.StackID, 0, n)
	defer func() {
		for _, id := range stacks {
			if rerr := dr.region.Remove(context.WithoutCancel(ctx), id); err == nil && rerr != nil {
				err = rerr
			}
		}
	}()
	index := make(map[ids.StackID]int, n)
	for i := range n {
		id, err := newStackID()
		if err != nil {
			return nil, err
		}
		if err := dr.region.Deploy(ctx, id, 1, m, map[string][]byte{dr.binary: dr.wasm}); err != nil {
			return nil, err
		}
		stacks = append(stacks, id)
		index[id] = i
	}
	node := dr.region.Runtime()
	sub := node.Server().Logs().Subscribe(logs.Filter{})
	defer sub.Close()
	rt := node.Client()
	timeout := dr.cfg.CallTimeout

	started0 := counterValue(node.Server(), "mu_runtime_instances_started_total")
	before := snapshotCPU()
	r := &deadlineRound{calls: make([]spinnerCall, n)}
	sent := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i, id := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "spinner.spin", Request: &typesv1.HttpRequest{Method: "GET"}}
			<-ready
			sent[i] = time.Now()
			resp, err := rt.Invoke(ctx, req)
			elapsed := time.Since(sent[i])
			switch {
			case err != nil:
				errs[i] = err
			case resp.GetError().GetKind() != runtimev1.InvokeError_KIND_DEADLINE_EXCEEDED:
				errs[i] = fmt.Errorf("a spinner ended with %v (%q), not its deadline", resp.GetError().GetKind(), resp.GetError().GetMessage())
			case elapsed < timeout:
				errs[i] = fmt.Errorf("a spinner's RPC returned %v before its %v deadline", timeout-elapsed, timeout)
			default:
				r.calls[i].rpcOverrun = elapsed - timeout
				r.calls[i].fuel = resp.GetFuelUsed()
			}
		}()
	}
	close(ready)
	wg.Wait()
	r.use = snapshotCPU().since(before, 0)
	r.started = int(counterValue(node.Server(), "mu_runtime_instances_started_total") - started0)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// The runtime published both log lines of every call before answering it.
	begun := make([]time.Time, n)
	ended := make([]time.Time, n)
	for left := 2 * n; left > 0; {
		var e logs.Entry
		select {
		case e = <-sub.C:
		default:
			return nil, fmt.Errorf("the runtime logged %d of the %d start and deadline lines of the calls", 2*n-left, 2*n)
		}
		i, ok := index[e.Stack]
		if !ok {
			continue
		}
		switch {
		case e.Source == logs.SourceLog && e.Body == spinnerLog && begun[i].IsZero():
			begun[i] = e.Time
			left--
		case e.Source == logs.SourceRuntime && ended[i].IsZero():
			ended[i] = e.Time
			left--
		}
	}
	for i := range r.calls {
		c := &r.calls[i]
		c.overrun = ended[i].Sub(begun[i]) - timeout
		c.startDelay = begun[i].Sub(sent[i])
		// The runtime's deadline runs from the call's start, which comes
		// before the guest's first Log: a guest thread the kernel kept off
		// a core in between (8 spinners on 2 cores) shows a negative
		// figure. That is not an early deadline (the RPC check above is
		// the lower bound that holds), so it counts as no overrun.
		c.overrun = max(c.overrun, 0)
	}
	return r, nil
}

// measureDeadline runs plan.rounds rounds of plan.spinners concurrent
// spinner calls and plan.baseline rounds of one call, interleaved, on one
// region.
func (s *Suite) measureDeadline(ctx context.Context, plan deadlinePlan) (*deadlineResult, error) {
	dr, err := startDeadlineRegion(ctx, plan)
	if err != nil {
		return nil, err
	}
	defer dr.close()
	res := &deadlineResult{timeout: dr.cfg.CallTimeout, tick: dr.cfg.EpochTick, fuelBudget: dr.cfg.MaxFuelPerCall, spinners: plan.spinners}
	for i := 0; i < max(plan.rounds, plan.baseline); i++ {
		for _, side := range []struct {
			want, n int
			into    *[]*deadlineRound
		}{{plan.rounds, plan.spinners, &res.loaded}, {plan.baseline, 1, &res.alone}} {
			if i >= side.want {
				continue
			}
			r, err := dr.round(ctx, side.n)
			if err != nil {
				return nil, err
			}
			mean, mx := r.stat(runtimeOverrun)
			rmean, rmax := r.stat(rpcOverrun)
			_, smax := r.stat(startDelay)
			s.logf("deadline: %d call(s), round %d: overrun in the runtime mean %v, max %v (%.2f%% of %v); RPC overrun mean %v, max %v; start delay up to %v; "+
				"%d instances started; this process %.2f cores, machine %.0f%% idle",
				side.n, i+1, mean.Round(10*time.Microsecond), mx.Round(10*time.Microsecond), pct(mx, res.timeout), res.timeout,
				rmean.Round(10*time.Microsecond), rmax.Round(10*time.Microsecond), smax.Round(10*time.Microsecond),
				r.started, r.use.procCores, 100*r.use.machineIdle)
			*side.into = append(*side.into, r)
		}
	}
	return res, nil
}

func (s *Suite) runDeadline(ctx context.Context) error {
	d, err := s.measureDeadline(ctx, s.deadlinePlan())
	if err != nil {
		return err
	}
	s.res.deadline = d
	for _, side := range []struct {
		n      int
		rounds []*deadlineRound
	}{{d.spinners, d.loaded}, {1, d.alone}} {
		if len(side.rounds) == 0 {
			continue
		}
		what := fmt.Sprintf("%d concurrent calls", side.n)
		if side.n == 1 {
			what = "one call alone (baseline)"
		}
		note := fmt.Sprintf("%s of a spinning wasm function (infinite loop; fuel budget %.3g, CallTimeout %s, EpochTick %s), each on its own stack of a lone in-process runtime, "+
			"sent at once as Invoke RPCs; worst of %d rounds", what, float64(d.fuelBudget), dur(d.timeout), dur(d.tick), len(side.rounds))
		inside := "; overrun inside the runtime: from the guest's first Log to the runtime's log of the deadline error (both timestamped by the runtime) minus CallTimeout"
		rpc := "; overrun as the caller saw it: the Invoke RPC's time minus CallTimeout (adds the wait before the call starts and the answer's way back)"
		p := fmt.Sprintf("deadline_overrun_%d_", side.n)
		mean, mx, _ := worst(side.rounds, runtimeOverrun)
		s.res.add(p+"pct", pct(mx, d.timeout), "%", note+inside+"; the largest, as a share of CallTimeout")
		s.res.add(p+"max_ms", ms(mx), "ms", note+inside+"; the largest")
		s.res.add(p+"mean_ms", ms(mean), "ms", note+inside+"; the mean of the round with the largest mean")
		mean, mx, _ = worst(side.rounds, rpcOverrun)
		s.res.add(p+"rpc_pct", pct(mx, d.timeout), "%", note+rpc+"; the largest, as a share of CallTimeout")
		s.res.add(p+"rpc_max_ms", ms(mx), "ms", note+rpc+"; the largest")
		s.res.add(p+"rpc_mean_ms", ms(mean), "ms", note+rpc+"; the mean of the round with the largest mean")
		_, mx, _ = worst(side.rounds, startDelay)
		s.res.add(fmt.Sprintf("deadline_start_delay_%d_max_ms", side.n), ms(mx), "ms", note+"; the longest time from sending the RPC to the guest's first Log")
	}
	return nil
}
