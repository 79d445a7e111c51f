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
	"slices"
	"time"

	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// genResult is one target driven by one generator at one concurrency.
type genResult struct {
	RPS           float64
	P50, P90, P99 time.Duration
	Requests      int64
	Errors        int64
	FirstError    string
	// Cores is the CPU the bench process (the servers; wrk and the load
	// generator run apart) used during the runs, in cores; MachineIdle is
	// the idle share of the whole machine's CPU meanwhile.
	Cores, MachineIdle float64
	// Server is what the bench process spent over the measured phases,
	// Client what the load generator process spent (package load only).
	Server, Client procUse
	// InstanceStarts is how many instances the runtime started during the
	// measured phases (mu sides, package load only).
	InstanceStarts float64
}

// perRequest divides u by the requests served.
func (g *genResult) perRequest(u procUse) (cpu time.Duration, allocs, syscalls float64) {
	if g.Requests == 0 {
		return 0, 0, 0
	}
	n := g.Requests
	return u.CPU / time.Duration(n), float64(u.Allocs) / float64(n), float64(u.Syscalls) / float64(n)
}

// throughputRow compares mu with native at one concurrency and generator:
// Mu is mu as `mu run` serves it (the gateway calls the runtime in
// process), Remote the gateway calling the runtime over loopback gRPC
// (nil for wrk rows).
type throughputRow struct {
	Concurrency        int
	Gen                string // "mubench" (package load, in its own process) or "wrk"
	Mu, Remote, Native *genResult
	// RemoteMTLS is the remote path with mTLS on its gRPC hop.
	RemoteMTLS *genResult `json:",omitempty"`
}

func (r *throughputRow) ratio() float64 { return ratioOf(r.Mu, r.Native) }

func (r *throughputRow) ratioRemote() float64 { return ratioOf(r.Remote, r.Native) }

func ratioOf(mu, native *genResult) float64 {
	if mu == nil || native == nil || native.RPS == 0 {
		return 0
	}
	return mu.RPS / native.RPS
}

// The sides of the throughput step, and the suffix of their figures:
// mu in process has the plain names (throughput_ratio_c64), as
// `mu run` serves.
const (
	sideNative = "native"
	sideInProc = "inproc"
	sideRemote = "remote"
	// sideRemoteMTLS is sideRemote with mTLS on every gRPC link (the
	// region's throwaway CA), measured in the same run: the latency cost
	// of mTLS on the remote hot path.
	sideRemoteMTLS = "remote_mtls"
)

var throughputSides = []string{sideInProc, sideRemote, sideRemoteMTLS, sideNative}

func sideSuffix(side string) string {
	switch side {
	case sideRemote:
		return "_remote"
	case sideRemoteMTLS:
		return "_remote_mtls"
	case sideNative:
		return "_native"
	}
	return ""
}

var sideWhat = map[string]string{
	sideInProc:     "mu in process (gateway → runtime Invoke in the same process, as mu run serves)",
	sideRemote:     "mu remote (gateway → gRPC over loopback TCP → runtime)",
	sideRemoteMTLS: "mu remote with mTLS (gateway → gRPC over TLS 1.3 with client certificates, loopback TCP → runtime authorizing the gateway's identity)",
	sideNative:     "native net/http handler answering the same bytes",
}

// throughputPlan is how long and how often each side is driven.
type throughputPlan struct {
	concurrency []int
	rounds      int              // the sides alternate, rounds times each
	duration    time.Duration    // per round and side
	warmup      time.Duration    // before each round, unrecorded
	wrk         time.Duration    // per wrk run (0: no wrk)
	profile     time.Duration    // CPU profile of each mu side at c=64 (0: none)
	breakdown   int              // sequential calls per hop for the c=1 breakdown (0: none)
	skip        map[int][]string // sides not driven at a concurrency
}

func (s *Suite) throughputPlan() throughputPlan {
	if s.opts.Quick {
		// Only what bench-quick prints: in process at c=1 and 64, remote at 64.
		return throughputPlan{concurrency: []int{1, 64}, rounds: 1, duration: 1500 * time.Millisecond, warmup: 500 * time.Millisecond,
			skip: map[int][]string{1: {sideRemote, sideRemoteMTLS}}}
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

// helloPath is the hello stack deployed on a local region of its own.
type helloPath struct {
	side    string
	region  *region.Region
	url     string
	stackID []byte
}

// started is the runtime's mu_runtime_instances_started_total.
func (p *helloPath) started() float64 {
	return counterValue(p.region.Runtime().Server(), "mu_runtime_instances_started_total")
}

// helloTarget is the hello stack deployed on two local regions, one whose
// gateway calls its runtime in process (region's default, as `mu run`
// serves) and one over loopback gRPC (ViaGRPC), and a native server
// answering with the same status, headers and body; all in this process.
type helloTarget struct {
	// region, muURL and stackID are the in-process path's.
	region    *region.Region
	muURL     string
	stackID   []byte
	paths     map[string]*helloPath // by side; sideNative is absent
	nativeURL string
	native    *http.Server
	body      []byte
	header    http.Header
	dataDir   string
}

func (t *helloTarget) close() {
	if t.native != nil {
		t.native.Close()
	}
	for _, p := range t.paths {
		p.region.Close()
	}
	if t.dataDir != "" {
		os.RemoveAll(t.dataDir)
	}
}

func (t *helloTarget) url(side string) string {
	if side == sideNative {
		return t.nativeURL
	}
	return t.paths[side].url
}

// startHello starts the three local regions (runtime and gateway in this
// process, default configuration but for ViaGRPC, and mTLS for the third),
// deploys
// examples/hello on each, asks each once for /greet/world and starts the
// native twin of the answer.
func (s *Suite) startHello(ctx context.Context) (_ *helloTarget, err error) {
	h, err := s.helloWasm(ctx)
	if err != nil {
		return nil, err
	}
	t := &helloTarget{paths: map[string]*helloPath{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.dataDir, err = os.MkdirTemp("", "mubench-region-"); err != nil {
		return nil, err
	}
	for _, side := range []string{sideInProc, sideRemote, sideRemoteMTLS} {
		p := &helloPath{side: side}
		// Each runtime keeps its compiled artifacts across runs (like a
		// deployed node), so the step does not pay two module compiles.
		artifacts := filepath.Join(filepath.Dir(s.wasmCache), "mubench-throughput-"+side)
		opts := region.Options{
			DataDir: filepath.Join(t.dataDir, side),
			Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) { c.DataDir = artifacts }},
			Gateway: &region.GatewayOptions{ViaGRPC: side != sideInProc},
		}
		if side == sideRemoteMTLS {
			opts.TLS = &region.TLSOptions{}
		}
		p.region, err = region.Start(ctx, opts)
		if err != nil {
			return nil, err
		}
		t.paths[side] = p
		id, err := newStackID()
		if err != nil {
			return nil, err
		}
		if err := p.region.Deploy(ctx, id, 1, h.manifest, h.binaries()); err != nil {
			return nil, err
		}
		p.url = "http://" + p.region.Gateway().Addr() + "/" + id.String() + "/greeting/greet/world"
		p.stackID = id.Bytes()
		body, header, err := helloAnswer(ctx, p.url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", side, err)
		}
		if t.body == nil {
			t.body, t.header = body, header
		}
	}
	in := t.paths[sideInProc]
	t.region, t.muURL, t.stackID = in.region, in.url, in.stackID

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

// helloAnswer asks url once and checks it greets the world; it returns the
// body and the headers net/http does not write itself.
func helloAnswer(ctx context.Context, url string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "Hello, world!" {
		return nil, nil, fmt.Errorf("hello answered %s %q, want 200 %q", resp.Status, body, "Hello, world!")
	}
	header := http.Header{}
	for k, vs := range resp.Header {
		if k != "Date" && k != "Content-Length" { // net/http writes these itself
			header[k] = vs
		}
	}
	return body, header, nil
}

func (s *Suite) runThroughput(ctx context.Context) error {
	plan := s.throughputPlan()
	t, err := s.startHello(ctx)
	if err != nil {
		return err
	}
	defer t.close()
	s.logf("throughput: mu in process %s, mu remote %s, native %s; all answer %d bytes with %v",
		t.url(sideInProc), t.url(sideRemote), t.nativeURL, len(t.body), t.header)

	var lg *loadChild
	if len(plan.concurrency) > 0 || plan.profile > 0 {
		tmp, err := os.MkdirTemp("", "mubench-throughput-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if lg, err = s.startLoadChild(ctx, tmp); err != nil {
			return err
		}
		defer lg.close()
	}

	for _, c := range plan.concurrency {
		runs := map[string]*sideRun{}
		for round := range plan.rounds {
			for i := range throughputSides {
				side := throughputSides[(i+round)%len(throughputSides)]
				if slices.Contains(plan.skip[c], side) {
					continue
				}
				run := runs[side]
				if run == nil {
					run = &sideRun{}
					runs[side] = run
				}
				var started measurer
				if p := t.paths[side]; p != nil {
					started = p.started
				}
				if _, err := lg.driveSide(fmt.Sprintf("%s-c%d", side, c), t.url(side), c, plan.duration, plan.warmup, started, run); err != nil {
					return fmt.Errorf("%s c=%d: %w", side, c, err)
				}
				cpu, allocs, sys := run.perRequest(run.server)
				s.logf("throughput: c=%d %s round %d: %.0f req/s so far, p50 %v p99 %v; server %v CPU, %.0f allocs, %.1f syscalls per request; %.0f instance starts",
					c, side, round+1, run.rps(), run.p50, run.p99, cpu, allocs, sys, run.starts)
			}
		}
		row := &throughputRow{Concurrency: c, Gen: "mubench",
			Mu: runs[sideInProc].genResult(), Remote: runs[sideRemote].genResult(), Native: runs[sideNative].genResult(),
			RemoteMTLS: runs[sideRemoteMTLS].genResult()}
		for _, side := range throughputSides {
			if g := row.side(side); g != nil && g.Errors > 0 {
				return fmt.Errorf("c=%d: %d errors from %s, first: %s", c, g.Errors, side, g.FirstError)
			}
		}
		s.res.throughput = append(s.res.throughput, row)
		s.addThroughputMetrics(row, plan)
	}

	if plan.breakdown > 0 {
		b, err := s.measureBreakdown(ctx, t, t.stackID, plan.breakdown)
		if err != nil {
			return fmt.Errorf("breakdown: %w", err)
		}
		s.res.breakdown = b
		s.logf("breakdown: gRPC null RPC %v, direct Invoke %v, runtime's own Invoke %v, %.0f fuel per call",
			b.nullRPC, b.invoke, b.serverInvoke, b.fuelPerCall)
		note := fmt.Sprintf("median of %d sequential calls on the in-process region", b.calls)
		s.res.add("latency_c1_grpc_null_us", us(b.nullRPC), "µs", note+"; gRPC health Check on the runtime: the gateway → runtime hop with no work")
		s.res.add("latency_c1_invoke_direct_us", us(b.invoke), "µs", note+"; Runtime.Invoke of hello over gRPC, no gateway")
		s.res.add("latency_c1_runtime_invoke_us", us(b.serverInvoke), "µs", "mean of the runtime's own mu_runtime_call_seconds during those calls (pool, instance call, usage)")
		s.res.add("fuel_per_request", b.fuelPerCall, "fuel", "fuel of one hello call (≈ wasm instructions)")
	}
	if plan.wrk > 0 {
		if err := s.runWrk(ctx, t, plan); err != nil {
			return err
		}
	}
	if plan.profile > 0 {
		if err := s.profileC64(ctx, t, lg, plan); err != nil {
			return err
		}
	}
	return nil
}

func (r *throughputRow) side(side string) *genResult {
	switch side {
	case sideRemote:
		return r.Remote
	case sideRemoteMTLS:
		return r.RemoteMTLS
	case sideNative:
		return r.Native
	}
	return r.Mu
}

func (s *Suite) addThroughputMetrics(row *throughputRow, plan throughputPlan) {
	c := row.Concurrency
	how := fmt.Sprintf("package load in its own process, c=%d, %d×%s per side, sides alternating", c, plan.rounds, plan.duration)
	for _, side := range throughputSides {
		g, sfx := row.side(side), sideSuffix(side)
		if g == nil {
			continue
		}
		note := sideWhat[side] + "; " + how
		if side == sideNative {
			// The native figures keep their names of earlier runs.
			s.res.add(fmt.Sprintf("native_rps_c%d", c), g.RPS, "req/s", note)
			s.res.add(fmt.Sprintf("native_p50_us_c%d", c), us(g.P50), "µs", note)
			s.res.add(fmt.Sprintf("native_p99_us_c%d", c), us(g.P99), "µs", note)
		} else {
			s.res.add(fmt.Sprintf("throughput_rps_c%d%s", c, sfx), g.RPS, "req/s", note)
			s.res.add(fmt.Sprintf("throughput_ratio_c%d%s", c, sfx), ratioOf(g, row.Native), "ratio", note+"; mu req/s ÷ native req/s")
			s.res.add(fmt.Sprintf("p50_us_c%d%s", c, sfx), us(g.P50), "µs", note)
			s.res.add(fmt.Sprintf("p99_us_c%d%s", c, sfx), us(g.P99), "µs", note)
		}
		cpu, allocs, sys := g.perRequest(g.Server)
		server := "; the bench process (servers only: the load generator runs apart) over exactly the measured phases"
		s.res.add(fmt.Sprintf("cpu_us_per_request_c%d%s", c, sfx), us(cpu), "µs", note+server+"; user+system CPU (getrusage)")
		s.res.add(fmt.Sprintf("allocs_per_request_c%d%s", c, sfx), allocs, "allocs", note+server+"; Go heap objects (runtime/metrics /gc/heap/allocs:objects)")
		s.res.add(fmt.Sprintf("syscalls_per_request_c%d%s", c, sfx), sys, "syscalls", note+server+"; /proc/self/io syscr+syscw")
		ccpu, _, _ := g.perRequest(g.Client)
		s.res.add(fmt.Sprintf("client_cpu_us_per_request_c%d%s", c, sfx), us(ccpu), "µs", note+"; the load generator process's user+system CPU")
		if side != sideNative {
			s.res.add(fmt.Sprintf("instance_starts_c%d_steady%s", c, sfx), g.InstanceStarts, "instances",
				fmt.Sprintf("%s; instances the runtime started (mu_runtime_instances_started_total) during the measured phases, after each round's %s warm-up; %d requests", note, plan.warmup, g.Requests))
		}
	}
}

// addWrkMetrics records a wrk row (mu in process against native).
func (s *Suite) addWrkMetrics(row *throughputRow) {
	c := row.Concurrency
	note := fmt.Sprintf("wrk, c=%d; %s", c, sideWhat[sideInProc])
	s.res.add(fmt.Sprintf("wrk_throughput_rps_c%d", c), row.Mu.RPS, "req/s", note)
	s.res.add(fmt.Sprintf("wrk_native_rps_c%d", c), row.Native.RPS, "req/s", note)
	s.res.add(fmt.Sprintf("wrk_throughput_ratio_c%d", c), row.ratio(), "ratio", note+"; mu req/s ÷ native req/s")
	s.res.add(fmt.Sprintf("wrk_p50_us_c%d", c), us(row.Mu.P50), "µs", note)
	s.res.add(fmt.Sprintf("wrk_native_p50_us_c%d", c), us(row.Native.P50), "µs", note)
	s.res.add(fmt.Sprintf("wrk_p99_us_c%d", c), us(row.Mu.P99), "µs", note)
	s.res.add(fmt.Sprintf("wrk_native_p99_us_c%d", c), us(row.Native.P99), "µs", note)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// profileC64 takes a CPU profile of this process — the servers only: the
// load generator runs in its own process — over the measured phase while
// the load generator drives each mu side at c=64, and summarises it.
func (s *Suite) profileC64(ctx context.Context, t *helloTarget, lg *loadChild, plan throughputPlan) error {
	dir := filepath.Join(s.opts.Out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, side := range []string{sideInProc, sideRemote} {
		name := "throughput_c64.cpu.pprof"
		if side == sideRemote {
			name = "throughput_c64_remote.cpu.pprof"
		}
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		var perr error
		msg, err := lg.callHooks(childCmd{Op: "http", URL: t.url(side), Concurrency: 64, Duration: plan.profile, Warmup: plan.warmup, Series: "profile-" + side},
			func() { perr = pprof.StartCPUProfile(f) },
			pprof.StopCPUProfile)
		pprof.StopCPUProfile() // a no-op unless the load generator failed mid-phase
		f.Close()
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		sum, err := summarizeProfile(ctx, path)
		if err != nil {
			return fmt.Errorf("summarise %s: %w", path, err)
		}
		sum.path = path
		sum.side = side
		if msg.Elapsed > 0 {
			sum.rps = float64(msg.Requests) / msg.Elapsed.Seconds()
		}
		s.logf("profile: %s c=64 profiled; %s", side, path)
		if side == sideRemote {
			s.res.profileRemote = sum
		} else {
			s.res.profile = sum
		}
	}

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
