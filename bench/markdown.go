package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// targetOrder is the order of the targets in results.md.
var targetOrder = []string{
	"throughput_ratio_c64", "p50_us_c1", "throughput_ratio_c64_remote", "instance_starts_c64_steady", "instance_starts_c64_steady_remote",
	"fuel_overhead_hello", "wrk_throughput_ratio_c64", "first_request_warm_cache_ms", "instance_start_us", "fuel_overhead_fib",
	"mudb_get_ratio", "mudb_put_ratio", "idle_stacks_pss_mib_10000", "idle_stacks_pss_mib_10000_called", "density_pss_mib_prewarm1", "density_pss_mib_prewarm0",
	"deadline_overrun_8_pct", "deadline_overrun_8_max_ms",
}

// WriteMarkdown writes results.md: the machine, the targets, every figure,
// then the details of each benchmark and the c=64 profile.
func (r *Results) WriteMarkdown(path string) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# mu benchmark results\n\n")
	took := "the suite took"
	if len(r.only) > 0 {
		took = "this run took"
	}
	w("Written by `make bench` (`go run ./bench/cmd/mubench -out bench`) on %s; %s %s. ",
		r.Started.Format("2006-01-02 15:04 UTC"), took, r.Duration.Round(time.Second))
	w("Every comparison below was measured side by side in this run (mu and its baseline alternating), " +
		"because absolute figures on a shared 2-core machine drift from run to run; read the ratios first.\n\n")
	if len(r.runs) > 0 {
		var ran, kept []string
		for st := range r.ran {
			ran = append(ran, st)
		}
		for st, at := range r.runs {
			kept = append(kept, st+" ("+at.Format("2006-01-02 15:04 UTC")+")")
		}
		slices.Sort(ran)
		slices.Sort(kept)
		w("This run (`-only`) measured %s; the figures and sections of %s are kept from the earlier runs named, as the last column of the figures says.\n\n",
			strings.Join(ran, ", "), strings.Join(kept, ", "))
	}

	m := r.Machine
	w("## Machine\n\n| | |\n|---|---|\n")
	w("| cores | %d (GOMAXPROCS %d) |\n", m.Cores, m.GOMAXPROCS)
	w("| CPU model | %s |\n", m.CPUModel)
	w("| memory | %d MiB |\n", m.MemoryMiB)
	w("| kernel | %s |\n", m.Kernel)
	w("| Go | %s |\n", m.GoVersion)
	wt := m.WasmtimeGo
	if m.Wasmtime != "" {
		wt += " (wasmtime C API " + m.Wasmtime + ")"
	}
	w("| wasmtime-go | %s |\n", wt)
	if m.Wrk != "" {
		w("| wrk | %s |\n", m.Wrk)
	} else {
		w("| wrk | not installed (optional) |\n")
	}
	w("| load average at start | %s |\n\n", m.LoadAverage)

	w("## Targets\n\n| metric | value | target | met? | bound by |\n|---|---|---|---|---|\n")
	for _, name := range targetOrder {
		if met := r.Get(name); met != nil {
			w("| `%s` | %s | %s | %s | %s |\n", name, valueUnit(met), met.Target, metText(met), cell(met.BoundBy))
			continue
		}
		for _, n := range r.NotYet {
			if n.Name == name {
				w("| `%s` | %s | %s | — | — |\n", name, n.Reason, n.Target)
			}
		}
	}
	w("\n## All figures\n\n| metric | value | target | met? | bound by | how measured | step, run |\n|---|---|---|---|---|---|---|\n")
	for _, met := range r.Metrics {
		w("| `%s` | %s | %s | %s | %s | %s | %s |\n", met.Name, valueUnit(met), dash(met.Target), metText(met), dash(cell(met.BoundBy)), cell(met.Note), stepRun(met))
	}
	for _, n := range r.NotYet {
		w("| `%s` | %s | %s | — | — | — | — |\n", n.Name, n.Reason, n.Target)
	}

	sec := r.section(w, "throughput")
	if len(r.throughput) > 0 || len(r.wrk) > 0 {
		w("\n## 1. Throughput and latency\n\n")
		w("`GET /{stack}/greeting/greet/world` on the hello stack, four ways side by side, each served from the bench process: " +
			"**in process** — a local region whose gateway calls its runtime's `RuntimeService` in the same process, as `mu run` serves (region default); " +
			"**remote** — a second local region with `GatewayOptions.ViaGRPC`: gateway → gRPC over loopback TCP → runtime; " +
			"**remote, mTLS** — a third, remote too, with `Options.TLS`: every gRPC link TLS 1.3 with client certificates and the runtime authorizing the gateway's identity (the cost of mTLS on the remote hot path, beside plaintext remote); " +
			"**native** — a `net/http` handler answering the same status, headers and 13-byte body. " +
			"The load generator (package load: closed loop, each connection sends its next request when the previous answer is read) runs in a process of its own " +
			"and tells the bench process when its measured phase starts (after the warm-up) and ends, so CPU (getrusage user + system), allocations " +
			"(runtime/metrics `/gc/heap/allocs:objects`) and syscalls (`/proc/self/io` syscr + syscw) per request are the servers' alone, over exactly the measured requests; " +
			"percentiles are computed in the load generator over all rounds. The sides alternate round by round; all share the machine's 2 cores with the load generator.\n\n")
		w("| c | generator | path | req/s | ÷ native | p50 | p90 | p99 | server CPU / req | allocs / req | syscalls / req | client CPU / req | server cores | machine idle | instance starts |\n")
		w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, row := range append(append([]*throughputRow(nil), r.throughput...), r.wrk...) {
			for _, side := range throughputSides {
				g := row.side(side)
				if g == nil {
					continue
				}
				cpu, allocs, sys := g.perRequest(g.Server)
				ccpu, _, _ := g.perRequest(g.Client)
				perReq := fmt.Sprintf("%s | %.0f | %.1f | %s", dur(cpu), allocs, sys, dur(ccpu))
				starts := fmt.Sprintf("%.0f", g.InstanceStarts)
				if row.Gen == "wrk" {
					perReq, starts = "— | — | — | —", "—"
				}
				if side == sideNative {
					starts = "—"
				}
				w("| %d | %s | %s | %.0f | %.3f | %s | %s | %s | %s | %.2f | %.0f%% | %s |\n", row.Concurrency, row.Gen, sideLabel(side), g.RPS, ratioOf(g, row.Native),
					dur(g.P50), dur(g.P90), dur(g.P99), perReq, g.Cores, 100*g.MachineIdle, starts)
			}
		}
		w("\nServer CPU, allocations and syscalls are the bench process's (gateways, runtimes, native server) over the measured phases divided by the requests served; " +
			"client CPU is the load generator process's; server cores is the bench process's CPU over wall time; machine idle is the idle share of all cores meanwhile; " +
			"instance starts is `mu_runtime_instances_started_total` of the path's runtime over the measured phases (after the warm-up: steady state).\n")
	}
	if b := r.breakdown; b != nil {
		p50, _ := r.value("p50_us_c1")
		nat, _ := r.value("native_p50_us_c1")
		w("\n### Latency at c=1, hop by hop\n\n")
		w("Measured alone, sequentially (%d calls each, medians), on the in-process region:\n\n| what | latency |\n|---|---|\n", b.calls)
		w("| native HTTP round trip (p50, c=1) | %.0f µs |\n", nat)
		w("| gRPC null RPC to the runtime (health Check) | %s |\n", dur(b.nullRPC))
		w("| runtime's own Invoke handler (mean, its mu_runtime_call_seconds) | %s |\n", dur(b.serverInvoke))
		w("| Runtime.Invoke over gRPC, no gateway | %s |\n", dur(b.invoke))
		w("| through the gateway, in process (p50, c=1) | %.0f µs |\n", p50)
		if rp, ok := r.value("p50_us_c1_remote"); ok {
			w("| through the gateway, remote (p50, c=1) | %.0f µs |\n", rp)
		}
		if rp, ok := r.value("p50_us_c1_remote_mtls"); ok {
			w("| through the gateway, remote with mTLS (p50, c=1) | %.0f µs |\n", rp)
		}
		w("\nOne hello call burns %.0f fuel.\n", b.fuelPerCall)
	}
	if h := r.handoff; h != nil {
		w("\n### Calling into an instance\n\n")
		w("A guest reduced to the runtime's calling pattern with no work of its own, on the runtime's engine settings. " +
			"*Parked*: how command modules (`_start`) are served — `_start` runs on its own goroutine (a cgo call, so a locked OS thread) and waits in a host " +
			"function for the next call on a channel; the caller sends, the instance thread wakes, returns into wasm, calls back out " +
			"with the result and the caller wakes. *Direct*: an exported function called with `Func.Call` on the caller's goroutine — how SDK functions, built as reactors, are served (`mu_serve`).\n\n")
		w("| | one call (median of sequential calls) | calls/s with %d callers, an instance each |\n|---|---|---|\n", h.callers)
		w("| parked `_start` (command modules) | %s | %.0f |\n", dur(h.parked), h.parkedRPS)
		w("| direct export (reactors: SDK functions) | %s | %.0f |\n", dur(h.direct), h.directRPS)
	}
	if g := r.gomaxprocs; g != nil {
		w("\n### GOMAXPROCS at c=64 (wrk)\n\n| GOMAXPROCS | mu req/s | p50 | CPU | machine idle |\n|---|---|---|---|---|\n")
		for _, side := range []struct {
			n  int
			rs []*genResult
		}{{g.def, g.defRuns}, {g.more, g.moreRuns}} {
			w("| %d | %.0f | %s | %.2f cores | %.0f%% |\n", side.n, g.rps(side.rs),
				dur(timeDur(g.mean(side.rs, func(x *genResult) float64 { return float64(x.P50) }))),
				g.mean(side.rs, func(x *genResult) float64 { return x.Cores }),
				100*g.mean(side.rs, func(x *genResult) float64 { return x.MachineIdle }))
		}
		w("\nMeans of 2 runs each, alternating, changed in this process with runtime.GOMAXPROCS.\n")
	}
	for _, p := range []*profileSummary{r.profile, r.profileRemote} {
		if p == nil {
			continue
		}
		w("\n### CPU profile of the servers at c=64, %s\n\n", sideLabel(p.side))
		w("`%s`, taken over the measured phase of a separate c=64 run at %.0f req/s (the profiler costs a little throughput). "+
			"The bench process holds only the servers (the load generator runs apart); %s of CPU were sampled. "+
			"Inspect with `go tool pprof -top %s`.\n\n", p.path, p.rps, p.total, p.path)
		w("Where the CPU went (cumulative share of each part's entry point; parts nest, so shares overlap):\n\n| part | cum %% |\n|---|---|\n")
		for _, pt := range p.parts {
			w("| %s | %.1f%% |\n", strings.ReplaceAll(pt.Name, "  ", "↳ "), pt.CumPct)
		}
		w("\nTop functions by own (flat) time:\n\n| flat | flat %% | cum %% | function |\n|---|---|---|---|\n")
		for _, row := range p.topFlat(25) {
			w("| %s | %.1f%% | %.1f%% | `%s` |\n", row.Flat, row.FlatPct, row.CumPct, row.Name)
		}
	}
	sec.end()
	sec = r.section(w, "coldstart")
	if c := r.coldStart; c != nil {
		w("\n## 2. Cold start\n\n")
		w("Each region is a new local region (runtime + gateway, `PrewarmInstances` 0 so nothing runs before the first request); a trial " +
			"deploys hello as a new stack through the runtime's gRPC Deploy and sends the first request. " +
			"Empty cache: a new data dir, so Deploy compiles with Cranelift (the wasm inline) and writes the artifact; the snapshot is then built and cached. " +
			"Restarted node: a new region on a data dir whose cache holds hello and its snapshot, its first deploy (by binary id, as the chain follower deploys, " +
			"or with the wasm inline). Warm cache: on that region, after the stack before is removed (nothing of hello stays loaded), a new stack deployed by binary id. Trials alternate.\n\n")
		w("| trial | deploy | of which module load | first request | deploy + first request | CPU (bench process) | allocations |\n|---|---|---|---|---|---|---|\n")
		rows := func(name string, ts []coldStartTrial) {
			for i, t := range ts {
				w("| %s #%d | %s | %s | %s | %s | %s | %d |\n", name, i+1, dur(t.deploy), dur(t.moduleLoad), dur(t.first), dur(t.total()), dur(t.cpu), t.allocs)
			}
		}
		rows("empty cache", c.empty)
		rows("restarted node, by id", c.restarted)
		rows("restarted node, inline", c.restartedInline)
		rows("warm cache", c.warm)
		if d := c.deserialize; d != nil {
			w("\nLoading hello's %.1f MiB artifact (wasm %.1f MiB) into an engine configured as the runtime's, median of 7:\n\n| how | time |\n|---|---|\n",
				float64(d.artifactBytes)/(1<<20), float64(c.wasmBytes)/(1<<20))
			w("| `os.ReadFile` + CRC32C + `NewModuleDeserialize` (the runtime's cache before it mapped files) | %s |\n", dur(d.asRuntime))
			w("| CRC32C streamed from the file + `NewModuleDeserializeFile` (a node's first load of an artifact it has not checked yet) | %s |\n", dur(d.streamedFile))
			w("| `NewModuleDeserializeFile` alone (mmap; every later load of a checked artifact) | %s |\n", dur(d.file))
		}
		if len(c.instanceFirst) > 0 {
			w("\nStarting one instance: on a region that has the module loaded, %d new stacks of the same binary were deployed by binary id "+
				"(median deploy %s) and asked once each: median first request %s, against %s for a request to a warm instance, "+
				"so starting an instance costs about **%s** (%.0f fuel of Go runtime start-up in the guest).\n",
				len(c.instanceFirst), dur(median(c.instanceDeploy)), dur(median(c.instanceFirst)), dur(c.warmRequest), dur(c.instanceStart()), c.startupFuel)
		}
	}
	sec.end()
	sec = r.section(w, "fuel")
	if len(r.fuel) > 0 {
		w("\n## 3. Fuel overhead\n\n")
		w("The same wasm on two wasmtime engines configured as the runtime's (Cranelift `speed`, epoch interruption on, 1 MiB wasm stack), " +
			"one with fuel metering on and one with it off. Each guest is a Go program built for wasip1 (`bench/guests`); " +
			"it times every repetition of its workload itself, so the Go runtime's start-up is left out. " +
			"Instances alternate between the engines; medians.\n\n")
		w("| guest | fuel off | fuel on | ratio | fastest off / on | _start off / on (Go start-up + %s) | fuel per repetition | compile off / on |\n|---|---|---|---|---|---|---|---|\n", "all repetitions")
		for _, f := range r.fuel {
			w("| %s (%s), %d× per instance | %s | %s | %.3f× | %s / %s | %s / %s | %.3g | %s / %s |\n", f.guest.name, f.guest.what, f.guest.reps, dur(f.off), dur(f.on), f.ratio(),
				dur(f.minOff), dur(f.minOn), dur(f.startOff), dur(f.startOn), float64(f.fuelPerWorkload), dur(f.compileOff), dur(f.compileOn))
		}
	}
	r.writeReactorFuelMarkdown(w)
	sec.end()
	sec = r.section(w, "mudb")
	if m := r.mudb; m != nil {
		w("\n## 4. muDB\n\n")
		w("Get and put of 16-byte keys and %d-byte values (gets read %d preloaded keys round-robin; each put worker writes its own keys, so puts never conflict), "+
			"three ways, alternating in this run, driven by a load generator in a process of its own (this executable started again):\n\n"+
			"- **direct**: client-go `txnkv` on an embedded store opened the way muDB opens its own (mock TiKV persisted in LevelDB, one store), "+
			"inside the load generator process: get = `Begin` + `Get` + `Rollback`, put = `Begin` + `Set` + `Commit`. "+
			"No network hop: the cheapest a client-go program can do for one key on this machine;\n"+
			"- **grpc**: `MudbService` Get/Put from the load generator to the region's muDB node over loopback "+
			"(muDB's transaction: table check, TTL envelope, metering);\n"+
			"- **mu**: HTTP to the gateway → runtime → the kv function (`bench/guests/kv`) → `Table.Get`/`Table.Put` → muDB gRPC → store.\n\n"+
			"The region (gateway, runtime, muDB and its store) runs in the bench process. CPU, allocations and syscalls are per request of the process "+
			"holding the store (the region's for grpc and mu, the load generator's for direct); client CPU is the load generator's.\n\n", mudbValueSize, mudbKeys)
		w("| op | c | path | req/s | p50 | p99 | CPU / req | allocs / req | syscalls / req | client CPU / req |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, run := range m.runs {
			cpu, sys, allocs := run.perRequest(run.server)
			client := "—"
			if run.path != "direct" {
				c, _, _ := run.perRequest(run.client)
				client = dur(c)
			}
			w("| %s | %d | %s | %.0f | %s | %s | %s | %.0f | %.1f | %s |\n", run.kind, run.concurrency, run.path, run.res.RPS(),
				dur(run.res.Percentile(0.5)), dur(run.res.Percentile(0.99)), dur(cpu), allocs, sys, client)
		}
		if b := r.mudbBound(); b != "" {
			w("\nGet at c=1: %s.\n", b)
		}
	}
	sec.end()
	sec = r.section(w, "ledger")
	r.writeLedgerMarkdown(w)
	sec.end()
	sec = r.section(w, "density")
	if len(r.density) > 0 {
		w("\n## 5. Density\n\n")
		w("`mu-runtime` built from `services/runtime/cmd/mu-runtime` and started as a child process on 127.0.0.1 with a fresh data dir; " +
			"1,000 stacks of hello (distinct ids, the same binary: the first Deploy carries the wasm, the rest name it) deployed over its gRPC API, " +
			"two at a time; then 2 s of quiet and `/proc/<pid>/status` is read.\n\n")
		w("| --prewarm-instances | VmRSS at start | with 1 stack | with 1,000 | per extra stack | Pss with 1,000 | peak (VmHWM) | threads | warm instances | deploy time |\n|---|---|---|---|---|---|---|---|---|---|\n")
		var base *densityResult
		for _, d := range r.density {
			per := "≈ 0 (RSS fell: GC)"
			if k := d.perStackKiB(); k > 0 {
				per = fmt.Sprintf("%.1f KiB", k)
			}
			w("| %d | %.0f MiB | %.0f MiB | %.0f MiB | %s | %.0f MiB | %.0f MiB | %d | %d | %s |\n", d.prewarm, kbToMiB(d.baseRSS), kbToMiB(d.oneRSS),
				kbToMiB(d.rss), per, kbToMiB(d.pss), kbToMiB(d.hwm), d.threads, d.warm, d.deployTime.Round(time.Millisecond))
			if d.prewarm == 0 {
				base = d
			}
		}
		for _, d := range r.density {
			if d.prewarm > 0 && base != nil && d.warm >= densityStacks {
				w("\nWith --prewarm-instances %d each warm instance costs ≈ %.0f KiB of Pss (reactor instances hold no thread); "+
					"the pool keeps all %d (IdleMemoryBudget counts what each has written). These deploys come before hello's snapshot is ready (it is built in the background), "+
					"so the instances start normally; the idle stacks step below waits for the snapshot and goes to 10,000.\n",
					d.prewarm, float64(d.pss-base.pss)/float64(d.warm), d.warm)
			} else if d.prewarm > 0 && base != nil && d.warm > 0 {
				w("\nWith --prewarm-instances %d each warm instance costs ≈ %.2f MiB of RSS (reactor instances hold no thread); "+
					"the pool keeps %d of them (IdleMemoryBudget), so at this rate 1,000 warm instances would need ≈ %.0f MiB.\n",
					d.prewarm, kbToMiB(d.rss-base.rss)/float64(d.warm), d.warm, kbToMiB(base.rss)+1000*kbToMiB(d.rss-base.rss)/float64(d.warm))
			}
		}
	}
	sec.end()
	sec = r.section(w, "idlestacks")
	if len(r.idleStacks) > 0 {
		w("\n## 5b. Idle stacks\n\n")
		w("`mu-runtime` as a child process (as in Density) with `--prewarm-instances 1`; hello deployed once with its wasm, "+
			"then, once its snapshot is built (the runtime's metrics), %d more stacks of it (distinct ids, the binary named by id) over gRPC, two at a time, "+
			"so every stack holds one idle instance started from the snapshot; in the second process each stack's instance also serves one request before it idles "+
			"(with a 4 GiB `idle_memory_budget`, room for all of them; the targets' bound-by text says how many the default 1 GiB holds). "+
			"VmRSS is read every 1,000 stacks and after 2 s of quiet, with Pss from `smaps_rollup`: VmRSS counts a shared page once per mapping of it, "+
			"and each instance maps the snapshot's memory image, so it counts the image pages every instance read again per instance; "+
			"Pss counts each page once, as the memory cgroup charges it.\n\n", idleStacksTarget-1)
		w("| instances | stacks | idle instances | idle_memory_budget | VmRSS at start | with 1 stack | with all | per extra stack | Pss with all (written + images) | peak (VmHWM) | mappings | threads | deploy time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, d := range r.idleStacks {
			how := "prewarmed"
			if d.called {
				how = "served one request"
			}
			w("| %s | %d | %d | %d MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.1f KiB | %.0f MiB (%.0f + %.0f) | %.0f MiB | %d | %d | %s |\n", how, d.stacks, d.warm, d.budget>>20, kbToMiB(d.baseRSS), kbToMiB(d.oneRSS),
				kbToMiB(d.rss), d.perStackKiB(), kbToMiB(d.pss), kbToMiB(d.pssAnon), kbToMiB(d.pssShmem), kbToMiB(d.hwm), d.mappings, d.threads, d.deployTime.Round(time.Millisecond))
		}
		for _, d := range r.idleStacks {
			if len(d.curve) == 0 {
				continue
			}
			how := "prewarmed"
			if d.called {
				how = "served one request"
			}
			var pts []string
			for _, p := range d.curve {
				pts = append(pts, fmt.Sprintf("%d: %.0f MiB", p.stacks, kbToMiB(p.rss)))
			}
			w("\nVmRSS as the stacks were deployed (%s): %s.\n", how, strings.Join(pts, ", "))
		}
	}
	sec.end()
	sec = r.section(w, "deadline")
	if d := r.deadline; d != nil {
		w("\n## 6. Deadlines under load\n\n")
		w("A lone runtime (region.Start, in process) with CallTimeout %s, EpochTick %s and MaxFuelPerCall %.3g, so that only the wall-clock deadline ends a call, "+
			"serves a reactor whose `mu_serve` writes one Log frame and then loops forever (`(loop $l (br $l))`, no more host calls). Each round deploys it as one new stack "+
			"per call (each deploy prewarms an instance, and each call's logs carry its own stack id) and sends the calls at once as `Runtime.Invoke` RPCs straight to the runtime (no gateway). "+
			"The overrun inside the runtime runs from the guest's Log (the call has started; the runtime armed the deadline microseconds before) to the runtime's log of the deadline error (the call is over and its instance closed), both timestamped by the runtime, minus CallTimeout. "+
			"The RPC overrun is the RPC's time, as its caller timed it, minus CallTimeout. Rounds of %d calls and of one call alternate. "+
			"Target: the overrun inside the runtime at most 10%% of CallTimeout plus one EpochTick, %s.\n\n",
			dur(d.timeout), dur(d.tick), float64(d.fuelBudget), d.spinners, dur(d.limit()))
		w("| round | calls | overrun in the runtime, mean / max | max / CallTimeout | RPC overrun, mean / max | start delay, max | instances started | this process / machine idle | fuel billed per call |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, side := range [][]*deadlineRound{d.loaded, d.alone} {
			for i, rd := range side {
				mean, mx := rd.stat(runtimeOverrun)
				rmean, rmax := rd.stat(rpcOverrun)
				_, smax := rd.stat(startDelay)
				var fuel uint64
				for _, c := range rd.calls {
					fuel = max(fuel, c.fuel)
				}
				w("| %d | %d | %s / %s | %.2f%% | %s / %s | %s | %d | %.2f cores / %.0f%% | %.3g |\n", i+1, len(rd.calls), dur(mean), dur(mx), pct(mx, d.timeout),
					dur(rmean), dur(rmax), dur(smax), rd.started, rd.use.procCores, 100*rd.use.machineIdle, float64(fuel))
			}
		}
		w("\nStart delay: from sending the RPC to the guest's Log. A deadline kill is billed the call's whole fuel budget " +
			"(the epoch trap loses the count; see RATIONALE.md).\n")
	}
	sec.end()
	return writeFile(path, []byte(b.String()))
}

// stepRun says which step measured m and when its run started.
func stepRun(m *Metric) string {
	if m.Step == "" {
		return "—"
	}
	return m.Step + ", " + m.Measured.Format("2006-01-02 15:04 UTC")
}

func sideLabel(side string) string {
	switch side {
	case sideRemote:
		return "mu remote"
	case sideRemoteMTLS:
		return "mu remote, mTLS"
	case sideNative:
		return "native"
	}
	return "mu in process"
}

// writeReactorFuelMarkdown writes the fuel table of the SDK functions.
func (r *Results) writeReactorFuelMarkdown(w func(string, ...any)) {
	if len(r.reactorFuel) == 0 {
		return
	}
	w("\nReal handlers: SDK functions built as reactors, served as the runtime serves them — `_initialize` and `mu_init` once, then one `mu_serve` call per request " +
		"with the ExecuteFunction frame on stdin (fd_read and fd_write shadowed by host functions over byte slices, as the runtime does). " +
		"One warm instance per engine, calls alternating between them, each `mu_serve` call timed on the host (the guest's work plus its few host calls); medians.\n\n")
	w("| handler | calls per side | fuel off | fuel on | ratio | fastest off / on | fuel per call |\n|---|---|---|---|---|---|---|\n")
	for _, f := range r.reactorFuel {
		w("| %s (%s) | %d | %s | %s | %.3f× | %s / %s | %d |\n", f.guest.name, f.guest.what, f.calls, dur(f.off), dur(f.on), f.ratio(), dur(f.minOff), dur(f.minOn), f.fuelPerCall)
	}
}

func valueUnit(m *Metric) string {
	v := formatValue(m.Value)
	switch m.Unit {
	case "ratio", "":
		return v
	case "×":
		return v + "×"
	}
	return v + " " + m.Unit
}

func metText(m *Metric) string {
	if m.Met == nil {
		return "—"
	}
	if *m.Met {
		return "yes"
	}
	return "**no**"
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// dur prints a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3g ms", float64(d)/1e6)
	case d >= time.Microsecond:
		return fmt.Sprintf("%.3g µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%d ns", d.Nanoseconds())
}

func timeDur(ns float64) time.Duration { return time.Duration(ns) }
