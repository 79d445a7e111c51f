package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	goruntime "runtime"
	"time"

	"github.com/muprotocol/mu/bench/load"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// coldStartTrial is one deploy of hello on a fresh region (new runtime and
// gateway, PrewarmInstances 0) followed by its first request.
type coldStartTrial struct {
	deploy     time.Duration // Deploy RPC: compile or deserialize, then bookkeeping
	first      time.Duration // first GET: instance start-up + the call
	moduleLoad time.Duration // the runtime's own compile/deserialize time
	// cpu and allocs are the bench process's CPU time and Go heap
	// allocations over the deploy and the first request (the region runs
	// in this process: runtime, gateway and the client).
	cpu    time.Duration
	allocs uint64
}

func (t coldStartTrial) total() time.Duration { return t.deploy + t.first }

type coldStartResult struct {
	// empty: a new region on a new data dir (Deploy compiles, the wasm
	// inline). restarted: a new region on a data dir whose artifact cache
	// holds hello and its snapshot, its first deploy by binary id (as the
	// chain follower deploys); restartedInline the same with the wasm sent
	// inline, as the CLI's direct deploy does. warm: on a running region
	// whose cache holds hello and its snapshot, nothing of hello loaded (the
	// earlier stack that used it removed), a new stack deployed by id.
	empty, restarted, restartedInline, warm []coldStartTrial
	// warmRequest is the median latency of a request to a warm instance.
	warmRequest time.Duration
	// instanceFirst are first requests to new stacks whose module is
	// already loaded: instance start-up plus one warm request.
	instanceFirst []time.Duration
	// instanceDeploy are those stacks' deploys (no compile, no instance).
	instanceDeploy []time.Duration
	// startupFuel is the fuel one instance burns starting up.
	startupFuel float64
	// deserialize compares ways of loading the hello artifact.
	deserialize *deserializeResult
	// wasmBytes is the size of hello's wasm.
	wasmBytes int
	// sha256 is one SHA-256 over hello's wasm (its content id).
	sha256 time.Duration
}

func (r *coldStartResult) instanceStart() time.Duration {
	return max(median(r.instanceFirst)-r.warmRequest, 0)
}

func totals(ts []coldStartTrial) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.total()
	}
	return out
}

func pick(ts []coldStartTrial, f func(coldStartTrial) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = f(t)
	}
	return out
}

// coldRegion is a region started for one cold-start trial.
type coldRegion struct {
	region *region.Region
	client *http.Client
	base   string
}

func (s *Suite) startColdRegion(ctx context.Context, dataDir string) (*coldRegion, error) {
	reg, err := region.Start(ctx, region.Options{
		DataDir: dataDir,
		Runtime: &region.RuntimeOptions{
			Config: func(_ int, c *runtime.Config) { c.PrewarmInstances = 0 }, // the first request starts the instance
		},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return nil, err
	}
	cr := &coldRegion{region: reg, client: load.NewClient(1), base: "http://" + reg.Gateway().Addr()}
	// Connect to the gateway first: the first request is measured, not the TCP handshake.
	if err := cr.get(cr.base + "/_mu/health"); err != nil {
		cr.close()
		return nil, err
	}
	return cr, nil
}

func (cr *coldRegion) close() {
	cr.client.CloseIdleConnections()
	cr.region.Close()
}

func (cr *coldRegion) get(url string) error {
	resp, err := cr.client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return nil
}

// deployAndAsk deploys hello as a new stack and times the deploy and the
// first request. With inline the Deploy carries the wasm (the runtime
// checks its content id); without, it names the binary id only, as the
// chain follower's deploys do, and the runtime loads it from its cache.
func (s *Suite) deployAndAsk(ctx context.Context, cr *coldRegion, inline bool) (coldStartTrial, ids.StackID, string, error) {
	h, err := s.helloWasm(ctx)
	if err != nil {
		return coldStartTrial{}, ids.StackID{}, "", err
	}
	id, err := newStackID()
	if err != nil {
		return coldStartTrial{}, ids.StackID{}, "", err
	}
	var bins map[string][]byte
	if inline {
		bins = h.binaries()
	}
	url := cr.base + "/" + id.String() + "/greeting/greet/world"
	before := moduleLoadSeconds(cr.region.Runtime().Server())
	var ms0, ms1 goruntime.MemStats
	goruntime.ReadMemStats(&ms0)
	cpu0 := snapshotCPU()
	t0 := time.Now()
	if err := cr.region.Deploy(ctx, id, 1, h.manifest, bins); err != nil {
		return coldStartTrial{}, ids.StackID{}, "", err
	}
	t1 := time.Now()
	if err := cr.get(url); err != nil {
		return coldStartTrial{}, ids.StackID{}, "", err
	}
	t2 := time.Now()
	cpu := snapshotCPU().proc - cpu0.proc
	goruntime.ReadMemStats(&ms1)
	load := time.Duration((moduleLoadSeconds(cr.region.Runtime().Server()) - before) * float64(time.Second))
	return coldStartTrial{deploy: t1.Sub(t0), first: t2.Sub(t1), moduleLoad: load, cpu: cpu, allocs: ms1.Mallocs - ms0.Mallocs}, id, url, nil
}

// emptyTrial runs one cold start on a new region over the empty dataDir
// (Deploy compiles, with the wasm inline), then waits for the snapshot
// build so that the data dir's cache holds hello and its snapshot.
func (s *Suite) emptyTrial(ctx context.Context, dataDir string) (coldStartTrial, error) {
	cr, err := s.startColdRegion(ctx, dataDir)
	if err != nil {
		return coldStartTrial{}, err
	}
	defer cr.close()
	t, _, _, err := s.deployAndAsk(ctx, cr, true)
	if err != nil {
		return t, err
	}
	return t, cr.region.Runtime().Server().WaitSnapshots(ctx)
}

// warmTrials starts a new region over dataDir, whose cache holds hello
// and its snapshot, and runs on it: the restarted node's first deploy
// (inline or by id), then warm deploys by id, each after the stack
// before is removed (so the runtime holds nothing of hello: it maps the
// cached artifacts again).
func (s *Suite) warmTrials(ctx context.Context, dataDir string, inline bool, warm int) (restarted coldStartTrial, warmTs []coldStartTrial, err error) {
	cr, err := s.startColdRegion(ctx, dataDir)
	if err != nil {
		return coldStartTrial{}, nil, err
	}
	defer cr.close()
	restarted, id, _, err := s.deployAndAsk(ctx, cr, inline)
	if err != nil {
		return restarted, nil, err
	}
	for range warm {
		if err := cr.region.Remove(ctx, id); err != nil {
			return restarted, nil, err
		}
		var t coldStartTrial
		if t, id, _, err = s.deployAndAsk(ctx, cr, false); err != nil {
			return restarted, nil, err
		}
		warmTs = append(warmTs, t)
	}
	return restarted, warmTs, nil
}

func (s *Suite) runColdStart(ctx context.Context) error {
	nEmpty, nWarm, nInstance := 3, 6, 8
	if s.opts.Quick {
		nEmpty, nWarm, nInstance = 1, 3, 0
	}
	if _, err := s.helloWasm(ctx); err != nil {
		return err
	}
	res := &coldStartResult{wasmBytes: len(s.hello.wasm)}
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	// Empty- and warm-cache trials alternate: each empty trial fills a new
	// data dir's artifact cache, which the restarted regions after it
	// read; each restarted region runs warmPer warm trials.
	const warmPer = 2
	for i := 0; len(res.empty) < nEmpty || len(res.restarted)+len(res.restartedInline) < nWarm; i++ {
		if len(res.empty) < nEmpty && (i == 0 || len(res.restarted)+len(res.restartedInline) >= len(res.empty)*nWarm/nEmpty) {
			dir, err := os.MkdirTemp("", "mubench-cold-")
			if err != nil {
				return err
			}
			dirs = append(dirs, dir)
			t, err := s.emptyTrial(ctx, dir)
			if err != nil {
				return err
			}
			s.logf("coldstart: empty cache: deploy %v (module compile %v), first request %v", t.deploy, t.moduleLoad, t.first)
			res.empty = append(res.empty, t)
			continue
		}
		inline := i%2 == 0 // restarted regions alternate: deploy inline, by binary id
		r, ws, err := s.warmTrials(ctx, dirs[len(dirs)-1], inline, warmPer)
		if err != nil {
			return err
		}
		how := "by binary id"
		if inline {
			how = "wasm inline"
			res.restartedInline = append(res.restartedInline, r)
		} else {
			res.restarted = append(res.restarted, r)
		}
		s.logf("coldstart: restarted node, %s: deploy %v (module load %v), first request %v", how, r.deploy, r.moduleLoad, r.first)
		for _, t := range ws {
			s.logf("coldstart: warm cache: deploy %v (module load %v), first request %v; CPU %v, %d allocations", t.deploy, t.moduleLoad, t.first, t.cpu, t.allocs)
		}
		res.warm = append(res.warm, ws...)
	}

	if nInstance > 0 {
		if err := s.instanceStart(ctx, dirs[len(dirs)-1], nInstance, res); err != nil {
			return err
		}
		d, err := measureDeserialize(dirs[0], 7)
		if err != nil {
			return err
		}
		res.deserialize = d
		var hashes []time.Duration
		for range 5 {
			t0 := time.Now()
			_ = ids.BinaryID(s.hello.wasm)
			hashes = append(hashes, time.Since(t0))
		}
		res.sha256 = median(hashes)
		s.logf("coldstart: artifact of %.1f MiB: ReadFile+CRC32C+NewModuleDeserialize %v, streamed CRC32C+NewModuleDeserializeFile %v, NewModuleDeserializeFile alone %v",
			float64(d.artifactBytes)/(1<<20), d.asRuntime, d.streamedFile, d.file)
	}
	s.res.coldStart = res

	e, w, rs, ri := res.empty, res.warm, res.restarted, res.restartedInline
	deploys := func(ts []coldStartTrial) time.Duration {
		return median(pick(ts, func(t coldStartTrial) time.Duration { return t.deploy }))
	}
	loads := func(ts []coldStartTrial) time.Duration {
		return median(pick(ts, func(t coldStartTrial) time.Duration { return t.moduleLoad }))
	}
	s.res.add("first_request_empty_cache_ms", ms(median(totals(e))), "ms", "deploy (Cranelift compile, wasm inline) + first request, PrewarmInstances 0")
	s.res.add("first_request_warm_cache_ms", ms(median(totals(w))), "ms", "on a running region whose artifact cache holds hello and its snapshot, nothing of hello loaded (the stack before removed): deploy of a new stack by binary id (as the chain follower deploys) + first request, PrewarmInstances 0")
	s.res.add("first_request_warm_cache_cpu_ms", ms(median(pick(w, func(t coldStartTrial) time.Duration { return t.cpu }))), "ms", "CPU time of the bench process (runtime, gateway and client in it) over a warm-cache deploy + first request, median")
	s.res.add("first_request_warm_cache_allocs", float64(median(pick(w, func(t coldStartTrial) time.Duration { return time.Duration(t.allocs) }))), "allocs", "Go heap allocations of the bench process over a warm-cache deploy + first request, median")
	s.res.add("first_request_restarted_node_ms", ms(median(totals(rs))), "ms", "a new region on a data dir whose cache holds hello and its snapshot: its first deploy, by binary id, + first request")
	s.res.add("first_request_restarted_inline_ms", ms(median(totals(ri))), "ms", "as first_request_restarted_node_ms with the wasm sent inline (the runtime hashes it against its id)")
	s.res.add("deploy_empty_cache_ms", ms(deploys(e)), "ms", "Deploy RPC")
	s.res.add("deploy_warm_cache_ms", ms(deploys(w)), "ms", "Deploy RPC (warm-cache trials)")
	s.res.add("deploy_restarted_node_ms", ms(deploys(rs)), "ms", "Deploy RPC (restarted node, by binary id)")
	s.res.add("deploy_restarted_inline_ms", ms(deploys(ri)), "ms", "Deploy RPC (restarted node, wasm inline)")
	s.res.add("module_compile_ms", ms(loads(e)), "ms", "runtime's mu_runtime_module_load_seconds{from_cache=false}")
	s.res.add("module_deserialize_ms", ms(loads(w)), "ms", "runtime's mu_runtime_module_load_seconds{from_cache=true}, warm-cache trials: the artifact checked since the node started, mapped")
	s.res.add("module_deserialize_restarted_ms", ms(loads(rs)), "ms", "runtime's mu_runtime_module_load_seconds{from_cache=true}, a restarted node's first deploy (waits for or makes the artifact's CRC32C check)")
	s.res.add("first_request_after_deploy_ms", ms(median(pick(w, func(t coldStartTrial) time.Duration { return t.first }))), "ms", "the GET alone: instance start + call (warm-cache trials)")
	if nInstance > 0 {
		s.res.add("instance_start_ms", ms(res.instanceStart()), "ms", "first request to a new stack of an already loaded module minus a warm request")
		s.res.add("warm_request_us", us(res.warmRequest), "µs", "median of 200 sequential requests to a warm instance")
		loaded := make([]time.Duration, len(res.instanceFirst))
		for i := range loaded {
			loaded[i] = res.instanceDeploy[i] + res.instanceFirst[i]
		}
		s.res.add("first_request_loaded_module_ms", ms(median(loaded)), "ms", "deploy by binary id of a stack whose module and snapshot another stack holds + first request")
		s.res.add("deploy_loaded_module_ms", ms(median(res.instanceDeploy)), "ms", "Deploy RPC, by binary id, of a stack whose module another stack holds")
		if res.startupFuel > 0 {
			s.res.add("instance_startup_fuel", res.startupFuel, "fuel", "fuel one hello instance burns before its first request (Go runtime init)")
		}
		if d := res.deserialize; d != nil {
			note := fmt.Sprintf("hello's %.1f MiB artifact, engine as the runtime's, median of 7", float64(d.artifactBytes)/(1<<20))
			s.res.add("artifact_load_as_runtime_ms", ms(d.asRuntime), "ms", note+"; os.ReadFile + CRC32C + NewModuleDeserialize (copying the artifact; the runtime's cache did this before it mapped files)")
			s.res.add("artifact_load_streamed_crc_mmap_ms", ms(d.streamedFile), "ms", note+"; CRC32C streamed from the file + NewModuleDeserializeFile (the runtime's first load of an artifact it has not checked since it started)")
			s.res.add("artifact_load_mmap_ms", ms(d.file), "ms", note+"; NewModuleDeserializeFile alone")
			s.res.add("wasm_sha256_ms", ms(res.sha256), "ms", fmt.Sprintf("one SHA-256 over hello's %.1f MiB wasm; Deploy computes it once (the ids.BinaryID check; Compile reuses the verified id)", float64(res.wasmBytes)/(1<<20)))
		}
	}
	return nil
}

// instanceStart measures starting one instance: on a warm region, new
// stacks of the already loaded hello module are deployed and asked once.
func (s *Suite) instanceStart(ctx context.Context, dataDir string, n int, res *coldStartResult) error {
	cr, err := s.startColdRegion(ctx, dataDir)
	if err != nil {
		return err
	}
	defer cr.close()
	_, _, url, err := s.deployAndAsk(ctx, cr, true)
	if err != nil {
		return err
	}
	r, err := load.Run(ctx, load.Options{URL: url, Concurrency: 1, Requests: 200, Client: cr.client})
	if err != nil {
		return err
	}
	res.warmRequest = r.Percentile(0.5)
	for range n {
		t, _, _, err := s.deployAndAsk(ctx, cr, false)
		if err != nil {
			return err
		}
		res.instanceFirst = append(res.instanceFirst, t.first)
		res.instanceDeploy = append(res.instanceDeploy, t.deploy)
	}
	started := counterValue(cr.region.Runtime().Server(), "mu_runtime_instances_started_total")
	if started > 0 {
		res.startupFuel = counterValue(cr.region.Runtime().Server(), "mu_runtime_startup_fuel_total") / started
	}
	s.logf("coldstart: warm request %v; first request of a new instance %v (median of %d) → instance start %v; %0.f start-up fuel",
		res.warmRequest, median(res.instanceFirst), n, res.instanceStart(), res.startupFuel)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// moduleLoadSeconds is the sum of the runtime's module load histogram.
func moduleLoadSeconds(rt *runtime.Server) float64 {
	mfs, err := rt.Registry().Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "mu_runtime_module_load_seconds" {
			for _, m := range mf.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sum
}

func counterValue(rt *runtime.Server, name string) float64 {
	mfs, err := rt.Registry().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := 0.0
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0
}
