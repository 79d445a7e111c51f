package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/muprotocol/mu/bench/load"
	"github.com/muprotocol/mu/region"
)

// genResult is one target driven by one generator at one concurrency.
type genResult struct {
	RPS           float64
	P50, P90, P99 time.Duration
	Requests      int64
	Errors        int64
	FirstError    string
	// Cores is the CPU this process used during the runs, in cores (the
	// load generator included when it is package load); MachineIdle is the
	// idle share of the whole machine's CPU meanwhile.
	Cores, MachineIdle float64
}

// throughputRow compares mu with native at one concurrency and generator.
type throughputRow struct {
	Concurrency int
	Gen         string // "mubench" (package load) or "wrk"
	Mu, Native  *genResult
}

func (r *throughputRow) ratio() float64 {
	if r.Native.RPS == 0 {
		return 0
	}
	return r.Mu.RPS / r.Native.RPS
}

func fromLoad(r *load.Result) *genResult {
	return &genResult{
		RPS: r.RPS(), P50: r.Percentile(0.50), P90: r.Percentile(0.90), P99: r.Percentile(0.99),
		Requests: r.Requests, Errors: r.Errors, FirstError: r.FirstError,
	}
}

// throughputPlan is how long and how often each side is driven.
type throughputPlan struct {
	concurrency []int
	rounds      int           // mu and native alternate, rounds times each
	duration    time.Duration // per round and side
	warmup      time.Duration // before each round, unrecorded
	wrk         time.Duration // per wrk run (0: no wrk)
	profile     time.Duration // CPU profile of mu at c=64 (0: none)
	breakdown   int           // sequential calls per hop for the c=1 breakdown (0: none)
}

func (s *Suite) throughputPlan() throughputPlan {
	if s.opts.Quick {
		return throughputPlan{concurrency: []int{1, 64}, rounds: 1, duration: 2 * time.Second, warmup: 500 * time.Millisecond}
	}
	p := throughputPlan{concurrency: []int{1, 8, 64}, rounds: 2, duration: 4 * time.Second, warmup: time.Second,
		wrk: 5 * time.Second, profile: 5 * time.Second, breakdown: 2000}
	if len(s.opts.Only) > 0 {
		if !s.opts.Only["throughput"] {
			p.concurrency = nil
		}
		if !s.opts.Only["throughput"] && !s.opts.Only["wrk"] {
			p.wrk = 0
		}
		if !s.opts.Only["throughput"] && !s.opts.Only["profile"] {
			p.profile = 0
			p.breakdown = 0
		}
	}
	return p
}

// helloTarget is the hello stack deployed on a local region, and a native
// server answering with the same status, headers and body.
type helloTarget struct {
	region    *region.Region
	muURL     string
	nativeURL string
	native    *http.Server
	stackID   []byte
	body      []byte
	header    http.Header
	dataDir   string
}

func (t *helloTarget) close() {
	if t.native != nil {
		t.native.Close()
	}
	if t.region != nil {
		t.region.Close()
	}
	if t.dataDir != "" {
		os.RemoveAll(t.dataDir)
	}
}

// startHello starts a local region (runtime and gateway in this process,
// real gRPC between them, default configuration), deploys examples/hello,
// asks it once for /greet/world and starts the native twin of its answer.
func (s *Suite) startHello(ctx context.Context) (_ *helloTarget, err error) {
	h, err := s.helloWasm(ctx)
	if err != nil {
		return nil, err
	}
	t := &helloTarget{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.dataDir, err = os.MkdirTemp("", "mubench-region-"); err != nil {
		return nil, err
	}
	t.region, err = region.Start(ctx, region.Options{
		DataDir: t.dataDir,
		Runtime: &region.RuntimeOptions{},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return nil, err
	}
	id, err := newStackID()
	if err != nil {
		return nil, err
	}
	if err := t.region.Deploy(ctx, id, 1, h.manifest, h.binaries()); err != nil {
		return nil, err
	}
	t.muURL = "http://" + t.region.Gateway().Addr() + "/" + id.String() + "/greeting/greet/world"
	t.stackID = id.Bytes()

	resp, err := http.Get(t.muURL)
	if err != nil {
		return nil, err
	}
	t.body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || string(t.body) != "Hello, world!" {
		return nil, fmt.Errorf("hello answered %s %q, want 200 %q", resp.Status, t.body, "Hello, world!")
	}
	t.header = http.Header{}
	for k, vs := range resp.Header {
		if k != "Date" && k != "Content-Length" { // net/http writes these itself
			t.header[k] = vs
		}
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body, header, length := t.body, t.header, fmt.Sprint(len(t.body))
	t.native = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wh := w.Header()
		for k, vs := range header {
			wh[k] = vs
		}
		wh["Content-Length"] = []string{length}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})}
	go t.native.Serve(lis)
	t.nativeURL = "http://" + lis.Addr().String() + "/greet/world"
	return t, nil
}

func (s *Suite) runThroughput(ctx context.Context) error {
	plan := s.throughputPlan()
	t, err := s.startHello(ctx)
	if err != nil {
		return err
	}
	defer t.close()
	s.logf("throughput: mu %s, native %s; both answer %d bytes with %v", t.muURL, t.nativeURL, len(t.body), t.header)

	for _, c := range plan.concurrency {
		var mu, native []*load.Result
		use := map[string][]cpuUse{}
		for round := range plan.rounds {
			order := []string{"mu", "native"}
			if round%2 == 1 {
				order = []string{"native", "mu"}
			}
			for _, side := range order {
				url := t.muURL
				if side == "native" {
					url = t.nativeURL
				}
				var before cpuSnapshot
				r, err := load.Run(ctx, load.Options{URL: url, Concurrency: c, Duration: plan.duration, Warmup: plan.warmup,
					OnMeasure: func() { before = snapshotCPU() }})
				if err != nil {
					return err
				}
				use[side] = append(use[side], snapshotCPU().since(before, r.Requests))
				s.logf("throughput: c=%d %s round %d: %.0f req/s p50 %v p99 %v errors %d", c, side, round+1,
					r.RPS(), r.Percentile(0.5), r.Percentile(0.99), r.Errors)
				if side == "mu" {
					mu = append(mu, r)
				} else {
					native = append(native, r)
				}
			}
		}
		row := &throughputRow{Concurrency: c, Gen: "mubench", Mu: fromLoad(load.Merge(mu...)), Native: fromLoad(load.Merge(native...))}
		row.Mu.Cores, row.Mu.MachineIdle = meanUse(use["mu"])
		row.Native.Cores, row.Native.MachineIdle = meanUse(use["native"])
		if row.Mu.Errors > 0 || row.Native.Errors > 0 {
			return fmt.Errorf("c=%d: %d errors from mu (%s), %d from native (%s)", c, row.Mu.Errors, row.Mu.FirstError, row.Native.Errors, row.Native.FirstError)
		}
		s.res.throughput = append(s.res.throughput, row)
		s.addThroughputMetrics(row, "")
	}

	if plan.breakdown > 0 {
		b, err := s.measureBreakdown(ctx, t, t.stackID, plan.breakdown)
		if err != nil {
			return fmt.Errorf("breakdown: %w", err)
		}
		s.res.breakdown = b
		s.logf("breakdown: gRPC null RPC %v, direct Invoke %v, runtime's own Invoke %v, %.0f fuel per call",
			b.nullRPC, b.invoke, b.serverInvoke, b.fuelPerCall)
		note := fmt.Sprintf("median of %d sequential calls on the throughput region", b.calls)
		s.res.add("latency_c1_grpc_null_us", us(b.nullRPC), "µs", note+"; gRPC health Check on the runtime: the gateway → runtime hop with no work")
		s.res.add("latency_c1_invoke_direct_us", us(b.invoke), "µs", note+"; Runtime.Invoke of hello over gRPC, no gateway")
		s.res.add("latency_c1_runtime_invoke_us", us(b.serverInvoke), "µs", "mean of the runtime's own mu_runtime_call_seconds during those calls (pool, instance call, usage)")
		s.res.add("fuel_per_request", b.fuelPerCall, "fuel", "fuel of one hello call (≈ wasm instructions)")
		for _, side := range []struct {
			name string
			u    cpuUse
		}{{"mu", b.mu}, {"native", b.native}} {
			note := fmt.Sprintf("per request at c=1, whole process (package load client included), %d requests", b.calls)
			s.res.add("syscalls_per_request_"+side.name, side.u.reads+side.u.writes, "syscalls", note+"; /proc/self/io syscr+syscw")
			s.res.add("context_switches_per_request_"+side.name, side.u.voluntary, "switches", note+"; voluntary, getrusage")
			s.res.add("cpu_per_request_us_"+side.name, us(side.u.cpuPerOp), "µs", note+"; user+system CPU")
		}
	}
	if plan.wrk > 0 {
		if err := s.runWrk(ctx, t, plan); err != nil {
			return err
		}
	}
	if plan.profile > 0 {
		if err := s.profileC64(ctx, t, plan); err != nil {
			return err
		}
	}
	return nil
}

func (s *Suite) addThroughputMetrics(row *throughputRow, prefix string) {
	c := row.Concurrency
	gen := "package load (Go net/http client, in process)"
	if row.Gen == "wrk" {
		gen = "wrk"
	}
	note := fmt.Sprintf("%s, c=%d", gen, c)
	s.res.add(fmt.Sprintf("%sthroughput_rps_c%d", prefix, c), row.Mu.RPS, "req/s", note)
	s.res.add(fmt.Sprintf("%snative_rps_c%d", prefix, c), row.Native.RPS, "req/s", note)
	s.res.add(fmt.Sprintf("%sthroughput_ratio_c%d", prefix, c), row.ratio(), "ratio", note+"; mu req/s ÷ native req/s")
	for _, p := range []struct {
		name string
		mu   time.Duration
		nat  time.Duration
	}{{"p50", row.Mu.P50, row.Native.P50}, {"p99", row.Mu.P99, row.Native.P99}} {
		s.res.add(fmt.Sprintf("%s%s_us_c%d", prefix, p.name, c), us(p.mu), "µs", note+"; through gateway → runtime")
		s.res.add(fmt.Sprintf("%snative_%s_us_c%d", prefix, p.name, c), us(p.nat), "µs", note)
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// profileC64 takes a CPU profile of this process (load generator, gateway
// and runtime) while package load drives mu at c=64, and summarises it.
func (s *Suite) profileC64(ctx context.Context, t *helloTarget, plan throughputPlan) error {
	dir := filepath.Join(s.opts.Out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "throughput_c64.cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	r, err := load.Run(ctx, load.Options{URL: t.muURL, Concurrency: 64, Duration: plan.profile})
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.logf("profile: c=64 under the profiler: %.0f req/s; profile in %s", r.RPS(), path)
	sum, err := summarizeProfile(ctx, path)
	if err != nil {
		return fmt.Errorf("summarise %s: %w", path, err)
	}
	sum.rps = r.RPS()
	sum.path = path
	s.res.profile = sum

	h, err := measureHandoff(ctx, 20000)
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	s.res.handoff = h
	s.logf("handoff: parked _start %v per call, direct export %v; %d callers: %.0f vs %.0f calls/s",
		h.parked, h.direct, h.callers, h.parkedRPS, h.directRPS)
	note := "empty guest on the runtime's engine settings; median of 20,000 sequential calls"
	s.res.add("call_handoff_parked_us", us(h.parked), "µs", note+"; the runtime's model: _start parked in a host call on its own goroutine, woken by a channel")
	s.res.add("call_handoff_direct_us", us(h.direct), "µs", note+"; an exported function called on the caller's goroutine")
	note = fmt.Sprintf("empty guest, %d callers with an instance each", h.callers)
	s.res.add("call_handoff_parked_per_s", h.parkedRPS, "calls/s", note+"; parked _start")
	s.res.add("call_handoff_direct_per_s", h.directRPS, "calls/s", note+"; direct export")
	return nil
}

func meanUse(us []cpuUse) (cores, idle float64) {
	for _, u := range us {
		cores += u.procCores
		idle += u.machineIdle
	}
	if len(us) > 0 {
		cores /= float64(len(us))
		idle /= float64(len(us))
	}
	return cores, idle
}
