package bench

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// annotate attaches the targets to the key figures and says, from
// this run's own measurements, what bounds each.
func (s *Suite) annotate() {
	r := s.res
	if m := r.Get("throughput_ratio_c64"); m != nil {
		m.target("≥", 0.40, "ratio")
		m.BoundBy = r.throughputBound(sideInProc)
	}
	if m := r.Get("throughput_ratio_c64_remote"); m != nil {
		m.target("≥", 0.30, "ratio")
		m.BoundBy = r.throughputBound(sideRemote)
	}
	if m := r.Get("wrk_throughput_ratio_c64"); m != nil {
		m.target("≥", 0.40, "ratio")
		m.BoundBy = r.wrkBound()
	}
	if m := r.Get("p50_us_c1"); m != nil {
		m.target("≤", 200, "µs")
		m.BoundBy = r.latencyBound()
	}
	for _, side := range []string{sideInProc, sideRemote} {
		if m := r.Get("instance_starts_c64_steady" + sideSuffix(side)); m != nil {
			m.target("=", 0, "instances")
			m.BoundBy = r.startsBound(side)
		}
	}
	if m := r.Get("fuel_overhead_hello"); m != nil {
		m.target("≤", 1.15, "×")
		m.BoundBy = r.reactorFuelBound("hello")
	}
	if m := r.Get("first_request_warm_cache_ms"); m != nil {
		m.target("≤", 2, "ms")
		m.BoundBy = r.coldStartBound()
	}
	if m := r.Get("instance_start_us"); m != nil {
		m.target("≤", 500, "µs")
	}
	if m := r.Get("mudb_get_ratio"); m != nil {
		m.target("≤", 2, "×")
		m.BoundBy = r.mudbBound()
	}
	if m := r.Get("fuel_overhead_fib"); m != nil {
		m.target("≤", 1.25, "×")
		m.BoundBy = r.fuelBound()
	}
	if d := r.deadline; d != nil {
		why := fmt.Sprintf(" (10 %% of CallTimeout %s + one EpochTick %s)", dur(d.timeout), dur(d.tick))
		if m := r.Get("deadline_overrun_8_pct"); m != nil {
			m.target("≤", pct(d.limit(), d.timeout), "%")
			m.Target += why
			m.BoundBy = r.deadlineBound()
		}
		if m := r.Get("deadline_overrun_8_max_ms"); m != nil {
			m.target("≤", ms(d.limit()), "ms")
			m.Target += why
			m.BoundBy = r.deadlineBound()
		}
	}
	for _, r0 := range r.idleStacks {
		name := "idle_stacks_pss_mib_10000"
		if r0.called {
			name += "_called"
		}
		if m := r.Get(name); m != nil {
			m.target("≤", 2048, "MiB")
			m.BoundBy = r.idleStacksBound(r0)
		}
	}
	for _, name := range []string{"density_pss_mib_prewarm1", "density_pss_mib_prewarm0"} {
		if m := r.Get(name); m != nil {
			m.target("≤", 2048, "MiB")
			m.BoundBy = r.densityBound(strings.HasSuffix(name, "1"))
		}
	}
}

func (r *Results) value(name string) (float64, bool) {
	if m := r.Get(name); m != nil {
		return m.Value, true
	}
	return 0, false
}

func (r *Results) row(rows []*throughputRow, c int) *throughputRow {
	for _, row := range rows {
		if row.Concurrency == c {
			return row
		}
	}
	return nil
}

// throughputBound says what bounds a mu side's req/s at c=64 against
// native, from the server-side figures of this run.
func (r *Results) throughputBound(side string) string {
	row := r.row(r.throughput, 64)
	if row == nil || row.side(side) == nil || row.Native == nil {
		return ""
	}
	mu, nat := row.side(side), row.Native
	mcpu, malloc, msys := mu.perRequest(mu.Server)
	ncpu, nalloc, nsys := nat.perRequest(nat.Server)
	mcl, _, _ := mu.perRequest(mu.Client)
	ncl, _, _ := nat.perRequest(nat.Client)
	var parts []string
	// Closed loop on a shared machine: when the cores are busy, req/s is
	// the cores over the CPU a request costs on both ends.
	predicted := 0.0
	if mcpu+mcl > 0 {
		predicted = float64(ncpu+ncl) / float64(mcpu+mcl)
	}
	parts = append(parts, fmt.Sprintf("CPU per request: the servers spend %s on a request through %s against %s native (%.1f×), and the load generator %s against %s; "+
		"with the cores busy, req/s follows the whole machine's CPU per request, which predicts a ratio of %.3f (measured %.3f)",
		dur(mcpu), sideName(side), dur(ncpu), float64(mcpu)/math.Max(float64(ncpu), 1), dur(mcl), dur(ncl), predicted, ratioOf(mu, nat)))
	idle := "busy"
	if mu.MachineIdle > 0.15 {
		idle = "not saturated, so waiting (hand-offs, wake-ups, scheduling) and not CPU bounds part of it"
	}
	parts = append(parts, fmt.Sprintf("the bench process used %.2f cores at %.0f req/s with the machine %.0f%% idle (%s); native %.2f cores at %.0f req/s, %.0f%% idle",
		mu.Cores, mu.RPS, 100*mu.MachineIdle, idle, nat.Cores, nat.RPS, 100*nat.MachineIdle))
	if cores := float64(max(r.Machine.Cores, 1)); mu.MachineIdle < 0.15 && mu.Cores+float64(mcl)/float64(max(mcpu, 1))*mu.Cores < 0.8*cores {
		parts = append(parts, fmt.Sprintf("the servers and the load generator together used well under the %.0f cores while they were busy: other processes on the machine (load average %s at the start) took the rest, so the absolute req/s are low and the ratio is the figure to read", cores, r.Machine.LoadAverage))
	}
	parts = append(parts, fmt.Sprintf("per request %.0f allocations and %.1f syscalls against %.0f and %.1f native", malloc, msys, nalloc, nsys))
	if side == sideRemote && row.Mu != nil {
		icpu, ialloc, isys := row.Mu.perRequest(row.Mu.Server)
		parts = append(parts, fmt.Sprintf("the gRPC hop itself: %s of CPU, %.0f allocations and %.1f syscalls per request more than the in-process path (%s, %.0f, %.1f)",
			dur(mcpu-icpu), malloc-ialloc, msys-isys, dur(icpu), ialloc, isys))
	}
	if mu.InstanceStarts > 0 {
		parts = append(parts, fmt.Sprintf("%.0f instances started during the measured phases (≈ 2 ms each)", mu.InstanceStarts))
	}
	p := r.profile
	if side == sideRemote {
		p = r.profileRemote
	}
	if p != nil {
		parts = append(parts, fmt.Sprintf("c=64 profile of the servers: wasm code + wasmtime %.0f%%, gateway HTTP handler %.0f%%, runtime Invoke handler %.0f%%, gRPC client Invoke %.0f%%, futex %.0f%%, socket syscalls %.0f%%, GC %.0f%%, malloc %.0f%%",
			p.part("  of which wasm code"), p.part("gateway HTTP handler"), p.part("runtime Invoke handler"), p.part("  of which the Invoke RPC"),
			p.part("futex"), p.part("network syscalls"), p.part("garbage collector"), p.part("memory allocation")))
	}
	return strings.Join(parts, "; ") + "."
}

func sideName(side string) string {
	switch side {
	case sideRemote:
		return "gateway → gRPC → runtime"
	case sideRemoteMTLS:
		return "gateway → gRPC with mTLS → runtime"
	case sideNative:
		return "native net/http"
	}
	return "gateway → runtime in process"
}

// wrkBound is the wrk row's: wrk runs apart, so the bench process's cores are the servers'.
func (r *Results) wrkBound() string {
	row := r.row(r.wrk, 64)
	if row == nil {
		return ""
	}
	parts := []string{fmt.Sprintf("the servers used %.2f cores serving mu at %.0f req/s with the machine %.0f%% idle, and %.2f cores serving native at %.0f req/s (%.0f%% idle)",
		row.Mu.Cores, row.Mu.RPS, 100*row.Mu.MachineIdle, row.Native.Cores, row.Native.RPS, 100*row.Native.MachineIdle)}
	if g := r.gomaxprocs; g != nil {
		parts = append(parts, fmt.Sprintf("with GOMAXPROCS %d mu served %.0f req/s (%.0f%% machine idle), with GOMAXPROCS %d %.0f req/s (%.0f%% idle)",
			g.def, g.rps(g.defRuns), 100*g.mean(g.defRuns, func(x *genResult) float64 { return x.MachineIdle }),
			g.more, g.rps(g.moreRuns), 100*g.mean(g.moreRuns, func(x *genResult) float64 { return x.MachineIdle })))
	}
	return strings.Join(parts, "; ") + "."
}

// latencyBound says what p50 at c=1 (in process) is made of.
func (r *Results) latencyBound() string {
	var parts []string
	row := r.row(r.throughput, 1)
	if row == nil {
		return ""
	}
	mu, nat := row.Mu, row.Native
	mcpu, malloc, msys := mu.perRequest(mu.Server)
	ncpu, _, nsys := nat.perRequest(nat.Server)
	mcl, _, _ := mu.perRequest(mu.Client)
	parts = append(parts, fmt.Sprintf("at c=1 a request is served in series: p50 %s against %s native, %s more; the servers spend %s of CPU on it (native %s) with %.0f allocations and %.1f syscalls (native %.1f), the load generator %s",
		dur(mu.P50), dur(nat.P50), dur(mu.P50-nat.P50), dur(mcpu), dur(ncpu), malloc, msys, nsys, dur(mcl)))
	if wait := mu.P50 - mcpu - mcl; wait > mu.P50/10 {
		parts = append(parts, fmt.Sprintf("about %s of the p50 is neither process computing: wake-ups of the goroutines and threads that pass the request along", dur(wait)))
	} else {
		parts = append(parts, fmt.Sprintf("the CPU both processes spend per request (%s) is as long as the p50 itself: the request is CPU-bound end to end, and with the machine %.0f%% idle other processes stretch that CPU time too",
			dur(mcpu+mcl), 100*mu.MachineIdle))
	}
	if rem := row.Remote; rem != nil {
		parts = append(parts, fmt.Sprintf("over loopback gRPC the same request takes %s at p50", dur(rem.P50)))
	}
	if b := r.breakdown; b != nil {
		parts = append(parts, fmt.Sprintf("measured alone: a gRPC null RPC to the runtime %s, Runtime.Invoke over gRPC %s, of which the runtime's own Invoke handler %s (%.0f fuel of guest work: the SDK decoding, the handler, slog, encoding, entered through mu_serve)",
			dur(b.nullRPC), dur(b.invoke), dur(b.serverInvoke), b.fuelPerCall))
	}
	if f := r.reactorFuelFor("hello"); f != nil {
		parts = append(parts, fmt.Sprintf("one warm hello mu_serve call alone, caches hot, takes %s with fuel metering (%s without)", dur(f.on), dur(f.off)))
	}
	return strings.Join(parts, "; ") + "."
}

// startsBound says why instances started at c=64 in steady state, if any did.
func (r *Results) startsBound(side string) string {
	row := r.row(r.throughput, 64)
	if row == nil || row.side(side) == nil {
		return ""
	}
	g := row.side(side)
	if g.InstanceStarts == 0 {
		return fmt.Sprintf("none started in %d requests after the warm-up: the pool kept an idle instance for every concurrent call", g.Requests)
	}
	return fmt.Sprintf("%.0f instances started in %d requests (%.1f per 1,000) after the warm-up: the pool kept fewer idle instances than calls in flight, "+
		"so a call that found none started one (≈ 2 ms) and an instance returned to a full pool was dropped", g.InstanceStarts, g.Requests, 1000*g.InstanceStarts/float64(max(g.Requests, 1)))
}

func (r *Results) coldStartBound() string {
	c := r.coldStart
	if c == nil || len(c.warm) == 0 {
		return ""
	}
	deploy := func(ts []coldStartTrial) time.Duration {
		return median(pick(ts, func(t coldStartTrial) time.Duration { return t.deploy }))
	}
	load := func(ts []coldStartTrial) time.Duration {
		return median(pick(ts, func(t coldStartTrial) time.Duration { return t.moduleLoad }))
	}
	first := func(ts []coldStartTrial) time.Duration {
		return median(pick(ts, func(t coldStartTrial) time.Duration { return t.first }))
	}
	parts := []string{fmt.Sprintf("a running node whose artifact cache holds hello and its snapshot (nothing of hello loaded): Deploy by binary id %s, of which mapping the checked artifact %s "+
		"(NewModuleDeserializeFile; its CRC32C was read once, when the node started) and taking the snapshot (mapped the same way); the first request %s, "+
		"its instance started from the snapshot", dur(deploy(c.warm)), dur(load(c.warm)), dur(first(c.warm)))}
	if len(c.restarted) > 0 {
		parts = append(parts, fmt.Sprintf("on a node just restarted, its first deploy by id takes %s (module load %s: it waits for or makes the artifact's CRC32C check, which the node starts at once in the background) and the first request %s, %s in all",
			dur(deploy(c.restarted)), dur(load(c.restarted)), dur(first(c.restarted)), dur(median(totals(c.restarted)))))
	}
	if len(c.restartedInline) > 0 {
		parts = append(parts, fmt.Sprintf("with the %.1f MiB wasm sent inline the restarted node's deploy takes %s (shipping it over gRPC and one SHA-256 against its id, %s), %s in all",
			float64(c.wasmBytes)/(1<<20), dur(deploy(c.restartedInline)), dur(c.sha256), dur(median(totals(c.restartedInline)))))
	}
	if len(c.instanceFirst) > 0 {
		parts = append(parts, fmt.Sprintf("with the module and snapshot held by another stack a deploy by id takes %s and its first request %s (an instance start ≈ %s over a warm request)",
			dur(median(c.instanceDeploy)), dur(median(c.instanceFirst)), dur(c.instanceStart())))
	}
	if d := c.deserialize; d != nil {
		parts = append(parts, fmt.Sprintf("the %.1f MiB artifact: read + CRC32C + mapped %s, mapped alone %s", float64(d.artifactBytes)/(1<<20), dur(d.streamedFile), dur(d.file)))
	}
	parts = append(parts, fmt.Sprintf("with an empty cache Cranelift's compile (%s) dominates", dur(load(c.empty))))
	return strings.Join(parts, "; ") + "."
}

// idleStacksBound says what the RSS of many idle stacks is made of.
func (r *Results) idleStacksBound(d *idleStacksResult) string {
	how := "prewarmed from the snapshot and never called"
	if d.called {
		how = "started from the snapshot, each having served one request"
	}
	s := fmt.Sprintf("%d stacks, %d idle instances kept (%s): %.0f MiB at start, %.0f MiB with the first stack (compiling hello, building its snapshot: the compiled code and images, shared by all), "+
		"then %.1f KiB of VmRSS per stack: the pages each instance wrote (instantiation, %s) and the runtime's bookkeeping, %.0f MiB for the %d; "+
		"the idle budget (%d MiB) counts written pages (ResidentBytes), so none was evicted",
		d.stacks, d.warm, how, kbToMiB(d.baseRSS), kbToMiB(d.oneRSS), d.perStackKiB(), map[bool]string{false: "nothing else", true: "and what the call wrote"}[d.called],
		kbToMiB(d.rss-d.oneRSS), d.stacks-1, d.budget>>20)
	if d.warm < d.stacks {
		s = strings.Replace(s, "so none was evicted", fmt.Sprintf("and evicted %d", d.stacks-d.warm), 1)
	}
	s += fmt.Sprintf("; the pool counts %.1f KiB per idle instance (its written pages: ResidentBytes)", d.held/1024/float64(max(d.warm, 1)))
	s += fmt.Sprintf("; Pss %.0f MiB: %.0f MiB written (the instances' own pages, the runtime's heap and compiled code) and %.0f MiB of shared memory images",
		kbToMiB(d.pss), kbToMiB(d.pssAnon), kbToMiB(d.pssShmem))
	if d.rss > d.pss+d.pss/10 {
		s += fmt.Sprintf("; VmRSS reads %.0f MiB because it counts a shared page once per mapping of it, and every instance maps the snapshot's image and has read pages of it", kbToMiB(d.rss))
	}
	if held := d.held / 1024 / float64(max(d.warm, 1)); held > 0 {
		s += fmt.Sprintf("; at %.1f KiB counted per instance the default idle_memory_budget of 1 GiB holds ≈ %d such instances", held, int(float64(1<<20)/held))
	}
	if d.stacks > 0 {
		s += fmt.Sprintf("; the process has %d memory mappings (≈ %.1f per instance) against vm.max_map_count 65530, which, not memory, bounds one process at ≈ %d such instances",
			d.mappings, float64(d.mappings)/float64(d.stacks), int(65530/(float64(d.mappings)/float64(d.stacks))))
	}
	return s + "."
}

func (r *Results) fuelBound() string {
	var parts []string
	for _, f := range r.fuel {
		parts = append(parts, fmt.Sprintf("%s %.3f×", f.guest.name, f.ratio()))
	}
	return "the metering code Cranelift emits with consume_fuel (" + strings.Join(parts, ", ") + "): every basic block adds its instruction count " +
		"to a fuel counter that lives in the store's context across calls and is checked at function entries and loop headers; Go's wasm output " +
		"(resumable functions dispatching through br_table, a stack check per call) is dense in small blocks and calls. Nothing in mu's code is on " +
		"this path: the lever is how fuel is metered (wasmtime option) or what the guest compiles to."
}

func (r *Results) densityBound(prewarm bool) string {
	var with, without *densityResult
	for _, d := range r.density {
		if d.prewarm > 0 {
			with = d
		} else {
			without = d
		}
	}
	if prewarm && with != nil {
		kept := "every stack keeps its prewarmed instance (the pool's IdleMemoryBudget counts what each has written)"
		if with.warm < densityStacks {
			kept = fmt.Sprintf("%d of the 1,000 stacks keep a prewarmed instance (the pool's IdleMemoryBudget evicts the rest)", with.warm)
		}
		s := fmt.Sprintf("warm instances: %s; reactor instances hold no OS thread of their own (%d threads in the whole process)", kept, with.threads)
		if without != nil && with.warm > 0 {
			s += fmt.Sprintf(" and ≈ %.0f KiB each (Pss; the pool counts %.0f KiB each)", float64(with.pss-without.pss)/float64(with.warm), with.held/1024/float64(with.warm))
		}
		if with.rss > with.pss+with.pss/10 {
			s += fmt.Sprintf("; VmRSS reads %.0f MiB because it counts a shared page once per mapping of it, and each instance maps its module's memory image", kbToMiB(with.rss))
		}
		s += "; these stacks were deployed before hello's snapshot was ready, so their instances started normally (the Go runtime's start-up written into each): the idle stacks step measures instances started from the snapshot"
		return s + "; the compiled module is shared by all stacks."
	}
	if without != nil {
		per := "no measurable RSS (it fell a little as the GC returned compile garbage)"
		if k := without.perStackKiB(); k > 0 {
			per = fmt.Sprintf("%.1f KiB of bookkeeping each", k)
		}
		return fmt.Sprintf("the compiled module and what compiling it left in the heap (%.0f MiB after the first deploy); the other 999 stacks add %s.",
			kbToMiB(without.oneRSS), per)
	}
	return ""
}

func (r *Results) deadlineBound() string {
	d := r.deadline
	if d == nil || len(d.loaded) == 0 {
		return ""
	}
	cores := max(r.Machine.Cores, 1)
	mean8, max8, at := worst(d.loaded, runtimeOverrun)
	parts := []string{fmt.Sprintf("resolution: a deadline falls on the first %s epoch tick at or after it, so up to one tick (≈ %s on average) of every overrun is the clock's", dur(d.tick), dur(d.tick/2))}
	if len(d.alone) > 0 {
		mean1, max1, _ := worst(d.alone, runtimeOverrun)
		parts = append(parts, fmt.Sprintf("one spinner alone overruns by %s on average (at most %s): that tick, the ticker's wake-up and the trap's way out", dur(mean1), dur(max1)))
	}
	parts = append(parts, fmt.Sprintf("%d spinners on %d cores overrun by %s on average, at most %s: each spinner is an OS thread inside wasm (a cgo call) that wants a core for the whole call, "+
		"and one whose deadline has passed traps only once the kernel runs it again (it checks the epoch at its loop header): with %d spinners per core, and the epoch ticker needing a core to advance the clock at all, that wait is the scheduler's",
		d.spinners, cores, dur(mean8), dur(max8), (d.spinners+cores-1)/cores))
	if at != nil {
		parts = append(parts, fmt.Sprintf("in the worst round this process had %.2f cores and the machine was %.0f%% idle (other work on the machine takes cores from the spinners too)", at.use.procCores, 100*at.use.machineIdle))
	}
	_, rmax, _ := worst(d.loaded, rpcOverrun)
	_, smax, _ := worst(d.loaded, startDelay)
	parts = append(parts, fmt.Sprintf("as their callers saw them the RPCs ran up to %s past CallTimeout: a call that reaches the runtime while the others spin waits for a core before it starts (up to %s from sending to the guest's first instruction) and its answer waits again on the way back; that is queueing in front of the call, which the deadline does not bound", dur(rmax), dur(smax)))
	return strings.Join(parts, "; ") + "."
}
