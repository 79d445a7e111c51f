package bench

import (
	"fmt"
	"strings"
	"time"
)

// annotate attaches the targets to the key figures and says, from
// this run's own measurements, what bounds each.
func (s *Suite) annotate() {
	r := s.res
	if m := r.Get("throughput_ratio_c64"); m != nil {
		m.target("≥", 0.25, "ratio")
		m.BoundBy = r.throughputBound(false)
	}
	if m := r.Get("wrk_throughput_ratio_c64"); m != nil {
		m.target("≥", 0.25, "ratio")
		m.BoundBy = r.throughputBound(true)
	}
	if m := r.Get("p50_us_c1"); m != nil {
		m.target("≤", 300, "µs")
		m.BoundBy = r.latencyBound()
	}
	if m := r.Get("first_request_warm_cache_ms"); m != nil {
		m.target("≤", 20, "ms")
		m.BoundBy = r.coldStartBound()
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
	for _, name := range []string{"density_rss_mib_prewarm1", "density_rss_mib_prewarm0"} {
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

func (r *Results) throughputBound(wrk bool) string {
	var parts []string
	rows := r.throughput
	if wrk {
		rows = r.wrk
	}
	if row := r.row(rows, 64); row != nil {
		who := "this process (load generator + gateway + runtime)"
		if wrk {
			who = "the gateway + runtime process (wrk runs apart)"
		}
		parts = append(parts, fmt.Sprintf("CPU per request on 2 cores, and cores left idle: %s used %.2f cores serving mu at %.0f req/s with the machine %.0f%% idle, "+
			"and %.2f cores serving native at %.0f req/s (%.0f%% idle)", who, row.Mu.Cores, row.Mu.RPS, 100*row.Mu.MachineIdle, row.Native.Cores, row.Native.RPS, 100*row.Native.MachineIdle))
	}
	if c1, ok := r.value("cpu_per_request_us_mu"); ok {
		n1, _ := r.value("cpu_per_request_us_native")
		parts = append(parts, fmt.Sprintf("a hello request costs %.0f µs of CPU against %.0f µs native (c=1, client included)", c1, n1))
	}
	if p := r.profile; p != nil {
		parts = append(parts, fmt.Sprintf("c=64 profile: wasm code + wasmtime %.0f%%, locked-thread hand-offs (startlockedm + stoplockedm) %.0f%%, futex %.0f%%, socket syscalls %.0f%%, gRPC client Invoke %.0f%%, runtime Invoke handler %.0f%%",
			p.part("  of which wasm code"), p.part("handing Ps")+p.part("parking locked"), p.part("futex"), p.part("network syscalls"),
			p.part("  of which the Invoke RPC"), p.part("runtime Invoke handler")))
	}
	if g := r.gomaxprocs; g != nil && wrk {
		parts = append(parts, fmt.Sprintf("idle cores while goroutines wait for a P: with GOMAXPROCS %d mu served %.0f req/s (%.0f%% machine idle), with GOMAXPROCS %d %.0f req/s (%.0f%% idle)",
			g.def, g.rps(g.defRuns), 100*g.mean(g.defRuns, func(x *genResult) float64 { return x.MachineIdle }),
			g.more, g.rps(g.moreRuns), 100*g.mean(g.moreRuns, func(x *genResult) float64 { return x.MachineIdle })))
	}
	if !wrk {
		if row := r.row(r.wrk, 64); row != nil {
			parts = append(parts, fmt.Sprintf("the in-process Go client also loads the native side, which flatters the ratio: wrk (a separate, cheaper client) measures %.3f", row.ratio()))
		}
	}
	return strings.Join(parts, "; ") + "."
}

func (r *Results) latencyBound() string {
	var parts []string
	b := r.breakdown
	p50, _ := r.value("p50_us_c1")
	if b != nil {
		nat, _ := r.value("native_p50_us_c1")
		parts = append(parts, fmt.Sprintf("hops in series: HTTP client → gateway ≈ %.0f µs (native p50) plus the gateway's own work — together p50 − direct Invoke = %.0f µs; "+
			"gRPC gateway → runtime ≈ %.0f µs (null RPC); the runtime's Invoke handler %.0f µs; the rest of a direct Invoke (%.0f µs) is wake-ups and marshalling around it",
			nat, p50-us(b.invoke), us(b.nullRPC), us(b.serverInvoke), us(b.invoke)-us(b.nullRPC)-us(b.serverInvoke)))
		parts = append(parts, fmt.Sprintf("inside Invoke: %.0f fuel of guest work (the SDK decoding, the handler, slog, encoding), entered through the instance's mu_serve export on the Invoke goroutine (reactor mode: no thread hand-off)", b.fuelPerCall))
		parts = append(parts, fmt.Sprintf("per request mu makes %.1f socket syscalls and %.1f voluntary context switches (native %.1f and %.1f)",
			b.mu.reads+b.mu.writes, b.mu.voluntary, b.native.reads+b.native.writes, b.native.voluntary))
	}
	if h := r.handoff; h != nil {
		parts = append(parts, fmt.Sprintf("an empty call through a parked _start (how command modules are served) takes %s, a direct export call (how SDK functions, built as reactors, are served) %s", dur(h.parked), dur(h.direct)))
	}
	return strings.Join(parts, "; ") + "."
}

func (r *Results) coldStartBound() string {
	c := r.coldStart
	if c == nil || len(c.warm) == 0 {
		return ""
	}
	deploy := median(pick(c.warm, func(t coldStartTrial) time.Duration { return t.deploy }))
	load := median(pick(c.warm, func(t coldStartTrial) time.Duration { return t.moduleLoad }))
	first := median(pick(c.warm, func(t coldStartTrial) time.Duration { return t.first }))
	shipping := ""
	if len(c.instanceDeploy) > 0 {
		shipping = fmt.Sprintf(" (a deploy of an already loaded module takes %s; one SHA-256 %s)", dur(median(c.instanceDeploy)), dur(c.sha256))
	}
	parts := []string{fmt.Sprintf("Deploy %s, of which loading the artifact %s (after one SHA-256 binary-id check of the %.1f MiB wasm: a CRC32C streamed over the artifact, then NewModuleDeserializeFile) "+
		"and the rest shipping the wasm inline over gRPC%s; the first request %s",
		dur(deploy), dur(load), float64(c.wasmBytes)/(1<<20), shipping, dur(first))}
	if len(c.instanceFirst) > 0 {
		parts = append(parts, fmt.Sprintf("of which starting the instance ≈ %s (%.0f fuel of Go runtime start-up in the guest)", dur(c.instanceStart()), c.startupFuel))
	}
	if d := c.deserialize; d != nil {
		parts = append(parts, fmt.Sprintf("loading the %.1f MiB artifact by copying it (os.ReadFile + CRC32C + NewModuleDeserialize) takes %s; as the runtime does (streamed CRC32C + NewModuleDeserializeFile, which maps the file) %s, the mapping alone %s",
			float64(d.artifactBytes)/(1<<20), dur(d.asRuntime), dur(d.streamedFile), dur(d.file)))
	}
	cmp := "under"
	if first > 20*time.Millisecond {
		cmp = "over"
	}
	parts = append(parts, fmt.Sprintf("counted from the end of Deploy, the first request alone is %s, %s 20 ms; with an empty cache Cranelift's compile (%s) dominates",
		dur(first), cmp, dur(median(pick(c.empty, func(t coldStartTrial) time.Duration { return t.moduleLoad })))))
	return strings.Join(parts, "; ") + "."
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
		s := fmt.Sprintf("warm instances: %d of the 1,000 stacks keep a prewarmed instance (the pool's IdleMemoryBudget, 1 GiB of linear memory, evicts the rest); reactor instances hold no OS thread of their own (%d threads in the whole process)",
			with.warm, with.threads)
		if without != nil && with.warm > 0 {
			s += fmt.Sprintf(" and ≈ %.1f MiB of RSS", kbToMiB(with.rss-without.rss)/float64(with.warm))
		}
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
