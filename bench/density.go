package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// densityStacks is how many idle stacks the density benchmark deploys.
const densityStacks = 1000

// densityResult is one runtime process with densityStacks idle stacks.
type densityResult struct {
	prewarm      int
	baseRSS      int64   // kB, after start, before any deploy
	oneRSS       int64   // kB, after the first deploy (module compiled)
	rss          int64   // kB, after all deploys, settled
	hwm          int64   // kB, peak
	pss          int64   // kB, Pss (smaps_rollup): shared pages counted once
	held         float64 // bytes the pool counts for idle instances (mu_runtime_idle_instance_bytes)
	threads      int64
	warm         int // idle instances the runtime reports
	deployTime   time.Duration
	deployedOver time.Duration
}

func (d *densityResult) perStackKiB() float64 {
	return float64(d.rss-d.oneRSS) / float64(densityStacks-1)
}

func (s *Suite) runDensity(ctx context.Context) error {
	if s.opts.Quick {
		return nil
	}
	h, err := s.helloWasm(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mubench-density-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	yml, err := h.manifest.Marshal()
	if err != nil {
		return err
	}
	for _, prewarm := range []int{0, 1} {
		r, err := s.density(ctx, filepath.Join(tmp, fmt.Sprintf("data-%d", prewarm)), prewarm, h, yml)
		if err != nil {
			return err
		}
		s.res.density = append(s.res.density, r)
		suffix := fmt.Sprintf("_prewarm%d", prewarm)
		note := fmt.Sprintf("mu-runtime child process, --prewarm-instances %d, %d hello stacks; VmRSS", prewarm, densityStacks)
		s.res.add("density_rss_mib"+suffix, kbToMiB(r.rss), "MiB", note)
		s.res.add("density_rss_delta_mib"+suffix, kbToMiB(r.rss-r.baseRSS), "MiB", "VmRSS after the deploys minus after start-up")
		s.res.add("density_per_stack_kib"+suffix, r.perStackKiB(), "KiB", "(VmRSS after 1,000 − after 1) ÷ 999")
		s.res.add("density_peak_rss_mib"+suffix, kbToMiB(r.hwm), "MiB", "VmHWM")
		s.res.add("density_pss_mib"+suffix, kbToMiB(r.pss), "MiB", "Pss (smaps_rollup): each page once, where VmRSS counts a shared page once per mapping of it")
		s.res.add("density_idle_counted_mib"+suffix, r.held/(1<<20), "MiB", "what the pool counts for the idle instances against idle_memory_budget (mu_runtime_idle_instance_bytes)")
		s.res.add("density_threads"+suffix, float64(r.threads), "threads", "OS threads of the runtime process")
		s.res.add("density_warm_instances"+suffix, float64(r.warm), "instances", "idle instances the runtime keeps (Status)")
	}
	if d := s.res.density; len(d) == 2 && d[1].warm > 0 {
		s.res.add("density_rss_per_warm_instance_mib", kbToMiB(d[1].rss-d[0].rss)/float64(d[1].warm), "MiB",
			"(VmRSS with prewarm 1 − with prewarm 0) ÷ warm instances")
	}
	return nil
}

func kbToMiB(kb int64) float64 { return float64(kb) / 1024 }

// density starts mu-runtime as a child process (region's process mode,
// which builds it from the repository), deploys densityStacks stacks of
// hello through its gRPC API and reads its resident memory.
func (s *Suite) density(ctx context.Context, dataDir string, prewarm int, h *helloBuild, yml []byte) (*densityResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.logf("density: mu-runtime child process, --prewarm-instances %d", prewarm)
	reg, err := region.Start(ctx, region.Options{
		Mode:    region.Processes,
		DataDir: dataDir,
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) {
			c.NodeName = "density"
			c.PrewarmInstances = prewarm
		}},
		Process: region.ProcessOptions{RepoDir: s.repo},
	})
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	rt := reg.Runtime()
	status := fmt.Sprintf("/proc/%d/status", rt.Process().Pid())
	client := rt.Client()
	time.Sleep(500 * time.Millisecond)
	r := &densityResult{prewarm: prewarm, baseRSS: procStatusField(status, "VmRSS")}

	deploy := func(withBinary bool) error {
		id, err := newStackID()
		if err != nil {
			return err
		}
		req := &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: yml}}
		if withBinary {
			req.Binaries = []*runtimev1.FunctionBinary{{BinaryId: h.binaryID, Wasm: h.wasm}}
		}
		_, err = client.Deploy(ctx, req)
		return err
	}
	// The first deploy carries the wasm and compiles it; the others name
	// the same binary, which the runtime already has.
	if err := deploy(true); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	r.oneRSS = procStatusField(status, "VmRSS")
	start := time.Now()
	var next atomic.Int64
	next.Store(1)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range 2 { // two deploys in flight, one per core
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= densityStacks {
				if err := deploy(false); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("deploy: %w", err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.deployTime = time.Since(start)
	st, err := client.Status(ctx, &runtimev1.StatusRequest{})
	if err != nil {
		return nil, err
	}
	if len(st.GetStacks()) != densityStacks {
		return nil, fmt.Errorf("runtime reports %d stacks, want %d", len(st.GetStacks()), densityStacks)
	}
	for _, ss := range st.GetStacks() {
		for _, f := range ss.GetFunctions() {
			r.warm += int(f.GetWarmInstances())
		}
	}
	time.Sleep(2 * time.Second) // let the runtime settle (GC, released pages)
	r.rss = procStatusField(status, "VmRSS")
	r.hwm = procStatusField(status, "VmHWM")
	r.pss = procStatusField(fmt.Sprintf("/proc/%d/smaps_rollup", rt.Process().Pid()), "Pss")
	if m, err := scrapeMetrics(ctx, "http://"+rt.AdminAddr()+"/metrics"); err == nil {
		r.held = m["mu_runtime_idle_instance_bytes"]
	}
	r.threads = procStatusField(status, "Threads")
	s.logf("density: prewarm %d: VmRSS %.0f MiB at start, %.0f MiB with 1 stack, %.0f MiB with %d (peak %.0f MiB), Pss %.0f MiB, pool counts %.0f MiB, %d threads, %d warm instances; deploys took %v",
		prewarm, kbToMiB(r.baseRSS), kbToMiB(r.oneRSS), kbToMiB(r.rss), densityStacks, kbToMiB(r.hwm), kbToMiB(r.pss), r.held/(1<<20), r.threads, r.warm, r.deployTime.Round(time.Millisecond))
	return r, nil
}
