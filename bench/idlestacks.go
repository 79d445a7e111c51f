package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// idleStacksTarget is how many idle stacks issue 19 wants within 2 GiB.
const idleStacksTarget = 10_000

// idleStacksCalledBudget is the idle_memory_budget of the run whose
// instances each served a request: 4 GiB, above what 10,000 of them hold.
const idleStacksCalledBudget = 4 << 30

// idleStacksTimeLimit bounds the deploys of the idle stacks step: on a
// machine too slow for 10,000 in that time the step stops where it is and
// reports how many it measured (never an extrapolation as the figure).
const idleStacksTimeLimit = 4 * time.Minute

// idleStacksResult is one mu-runtime child process holding many hello
// stacks, each with one idle warm instance started from hello's snapshot.
type idleStacksResult struct {
	called  bool // each stack's instance served one request before it idled
	stacks  int  // deployed
	warm    int  // idle instances the runtime reports (Status)
	budget  int64
	baseRSS int64 // kB, after start
	oneRSS  int64 // kB, with the first stack (compiled) and its snapshot
	rss     int64 // kB, with all stacks, settled
	// pss is the proportional set size (smaps_rollup) with all stacks: a
	// page mapped by many instances counts once, as the memory cgroup
	// charges it, where VmRSS counts it once per mapping; pssAnon and
	// pssShmem are its written pages and the shared memory images.
	pss, pssAnon, pssShmem int64
	// held is what the pool counts for the idle instances
	// (mu_runtime_idle_instance_bytes), in bytes.
	held       float64
	hwm        int64 // kB
	threads    int64
	mappings   int // lines of /proc/<pid>/maps
	deployTime time.Duration
	timedOut   bool
	// curve is VmRSS (kB) after every checkpoint of deployed stacks.
	curve []idleStacksPoint
}

type idleStacksPoint struct {
	stacks int
	rss    int64
}

// perStackKiB is the RSS each stack after the first added.
func (r *idleStacksResult) perStackKiB() float64 {
	if r.stacks < 2 {
		return 0
	}
	return float64(r.rss-r.oneRSS) / float64(r.stacks-1)
}

// runIdleStacks deploys idleStacksTarget stacks of hello (the same binary,
// distinct stack ids), each with one prewarmed instance (PrewarmInstances
// 1), on a mu-runtime child process whose snapshot of hello is ready
// before the second deploy, so every instance but the first starts from
// it, and reads the process's resident memory.
// Two child processes are measured: in one the instances only started
// (prewarmed), in the other each served one request (GET /greet/world
// through Runtime.Invoke) before it went idle, so it holds what a call
// wrote too.
func (s *Suite) runIdleStacks(ctx context.Context) error {
	if s.opts.Quick {
		return nil
	}
	for _, called := range []bool{false, true} {
		r, err := s.idleStacks(ctx, called)
		if err != nil {
			return err
		}
		s.res.idleStacks = append(s.res.idleStacks, r)
		suffix, how := "", "started from hello's snapshot (prewarmed, never called)"
		if called {
			suffix, how = "_called", "started from hello's snapshot that served one request (Runtime.Invoke GET /greet/world) before it idled"
		}
		note := fmt.Sprintf("mu-runtime child process, --prewarm-instances 1, %d hello stacks deployed (same binary, distinct ids), each with one idle instance %s", r.stacks, how)
		if r.timedOut {
			note += fmt.Sprintf(" (stopped at the step's time limit of %s, short of %d)", idleStacksTimeLimit, idleStacksTarget)
		}
		name, rssName := "idle_stacks_pss_mib", "idle_stacks_rss_mib"
		if r.stacks == idleStacksTarget {
			name, rssName = "idle_stacks_pss_mib_10000", "idle_stacks_rss_mib_10000"
		}
		s.res.add(name+suffix, kbToMiB(r.pss), "MiB", note+"; Pss (smaps_rollup): every page the process holds counted once, as its memory cgroup charges it")
		s.res.add(rssName+suffix, kbToMiB(r.rss), "MiB", note+"; VmRSS, which counts a shared page once per mapping of it: each instance's mapping of the snapshot's memory image counts the image pages it read")
		s.res.add("idle_stacks_pss_written_mib"+suffix, kbToMiB(r.pssAnon), "MiB", "Pss_Anon: pages written (the instances' own, the Go heap, compiled code relocations)")
		s.res.add("idle_stacks_instance_kib"+suffix, r.held/1024/float64(max(r.warm, 1)), "KiB", "what the pool counts per idle instance against idle_memory_budget (mu_runtime_idle_instance_bytes ÷ idle instances): its written linear memory pages and tables")
		s.res.add("idle_stacks_pss_images_mib"+suffix, kbToMiB(r.pssShmem), "MiB", "Pss_Shmem: the memory images (memfd) the instances share")
		s.res.add("idle_stacks_deployed"+suffix, float64(r.stacks), "stacks", "stacks deployed")
		s.res.add("idle_stacks_warm_instances"+suffix, float64(r.warm), "instances", fmt.Sprintf("idle instances the runtime keeps (Status), idle_memory_budget %d MiB", r.budget>>20))
		s.res.add("idle_stacks_per_stack_kib"+suffix, r.perStackKiB(), "KiB", "(VmRSS with all stacks − with the first and its snapshot) ÷ (stacks − 1): what one more idle stack with its warm instance costs")
		s.res.add("idle_stacks_peak_rss_mib"+suffix, kbToMiB(r.hwm), "MiB", "VmHWM")
		s.res.add("idle_stacks_mappings"+suffix, float64(r.mappings), "mappings", "lines of /proc/<pid>/maps (vm.max_map_count bounds them)")
		s.res.add("idle_stacks_deploy_ms"+suffix, ms(r.deployTime)/float64(max(r.stacks-1, 1)), "ms", "wall time per deploy (and its request), two in flight, over gRPC to the child")
	}
	return nil
}

func (s *Suite) idleStacks(ctx context.Context, called bool) (*idleStacksResult, error) {
	h, err := s.helloWasm(ctx)
	if err != nil {
		return nil, err
	}
	yml, err := h.manifest.Marshal()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "mubench-idle-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	budget := runtime.DefaultConfig().IdleMemoryBudget
	if called {
		// One call leaves ≈ 0.2 MiB written per instance: give 10,000
		// room, to measure them rather than the budget's eviction.
		budget = idleStacksCalledBudget
	}
	s.logf("idlestacks: mu-runtime child process, --prewarm-instances 1, idle_memory_budget %d MiB, %d stacks, each called: %v", budget>>20, idleStacksTarget, called)
	reg, err := region.Start(ctx, region.Options{
		Mode:    region.Processes,
		DataDir: filepath.Join(tmp, "data"),
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) {
			c.NodeName = "idlestacks"
			c.PrewarmInstances = 1
			c.SnapshotStart = true
			c.IdleMemoryBudget = budget
		}},
		Process: region.ProcessOptions{RepoDir: s.repo},
	})
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	rt := reg.Runtime()
	pid := rt.Process().Pid()
	status := fmt.Sprintf("/proc/%d/status", pid)
	client := rt.Client()
	r := &idleStacksResult{called: called, budget: budget, baseRSS: procStatusField(status, "VmRSS")}

	deploy := func(withBinary bool) error {
		id, err := newStackID()
		if err != nil {
			return err
		}
		req := &runtimev1.DeployRequest{Stack: &runtimev1.Stack{Id: id.Bytes(), Revision: 1, Manifest: yml}}
		if withBinary {
			req.Binaries = []*runtimev1.FunctionBinary{{BinaryId: h.binaryID, Wasm: h.wasm}}
		}
		if _, err = client.Deploy(ctx, req); err != nil || !called {
			return err
		}
		resp, err := client.Invoke(ctx, &runtimev1.InvokeRequest{StackId: id.Bytes(), Function: "hello.greet_user",
			Request: &typesv1.HttpRequest{Method: "GET", PathParams: map[string]string{"name": "world"}}})
		if err == nil && resp.GetError() != nil {
			err = fmt.Errorf("invoke: %s", resp.GetError().GetMessage())
		}
		return err
	}
	if err := deploy(true); err != nil {
		return nil, fmt.Errorf("idlestacks: first deploy: %w", err)
	}
	if err := waitSnapshotBuilt(ctx, "http://"+rt.AdminAddr()+"/metrics"); err != nil {
		return nil, fmt.Errorf("idlestacks: %w", err)
	}
	r.oneRSS = procStatusField(status, "VmRSS")
	r.stacks = 1

	start := time.Now()
	deadline := start.Add(idleStacksTimeLimit)
	checkpoint := 1000
	var next, done atomic.Int64
	next.Store(1)
	done.Store(1)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		mu       sync.Mutex
		stopped  atomic.Bool
	)
	for range 2 { // two deploys in flight, one per core
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() && next.Add(1) <= idleStacksTarget {
				if time.Now().After(deadline) {
					stopped.Store(true)
					return
				}
				if err := deploy(false); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("idlestacks: deploy %d: %w", done.Load()+1, err); cancel() })
					return
				}
				if n := int(done.Add(1)); n%checkpoint == 0 {
					rss := procStatusField(status, "VmRSS")
					mu.Lock()
					r.curve = append(r.curve, idleStacksPoint{stacks: n, rss: rss})
					mu.Unlock()
					s.logf("idlestacks: %d stacks, VmRSS %.0f MiB", n, kbToMiB(rss))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.deployTime = time.Since(start)
	r.timedOut = stopped.Load()
	r.stacks = int(done.Load())
	st, err := client.Status(ctx, &runtimev1.StatusRequest{})
	if err != nil {
		return nil, err
	}
	if len(st.GetStacks()) != r.stacks {
		return nil, fmt.Errorf("idlestacks: runtime reports %d stacks, want %d", len(st.GetStacks()), r.stacks)
	}
	for _, ss := range st.GetStacks() {
		for _, f := range ss.GetFunctions() {
			r.warm += int(f.GetWarmInstances())
		}
	}
	time.Sleep(2 * time.Second) // let the runtime settle (GC, released pages)
	r.rss = procStatusField(status, "VmRSS")
	r.hwm = procStatusField(status, "VmHWM")
	rollup := fmt.Sprintf("/proc/%d/smaps_rollup", pid)
	r.pss, r.pssAnon, r.pssShmem = procStatusField(rollup, "Pss"), procStatusField(rollup, "Pss_Anon"), procStatusField(rollup, "Pss_Shmem")
	r.threads = procStatusField(status, "Threads")
	r.mappings = countLines(fmt.Sprintf("/proc/%d/maps", pid))
	m, err := scrapeMetrics(ctx, "http://"+rt.AdminAddr()+"/metrics")
	if err != nil {
		return nil, err
	}
	r.held = m["mu_runtime_idle_instance_bytes"]
	s.logf("idlestacks: the pool counts %.0f MiB for the idle instances (%.1f KiB each)", r.held/(1<<20), r.held/1024/float64(max(r.warm, 1)))
	s.logf("idlestacks: %d stacks (%d warm instances): VmRSS %.0f MiB at start, %.0f MiB with 1 stack and its snapshot, %.0f MiB with all (peak %.0f MiB), %.1f KiB per extra stack; Pss %.0f MiB (written %.0f MiB, shared images %.0f MiB); %d threads, %d mappings; deploys took %v",
		r.stacks, r.warm, kbToMiB(r.baseRSS), kbToMiB(r.oneRSS), kbToMiB(r.rss), kbToMiB(r.hwm), r.perStackKiB(), kbToMiB(r.pss), kbToMiB(r.pssAnon), kbToMiB(r.pssShmem), r.threads, r.mappings, r.deployTime.Round(time.Millisecond))
	return r, nil
}

// waitSnapshotBuilt polls the runtime's metrics until a snapshot is built
// and none is pending (the child process's Server.WaitSnapshots).
func waitSnapshotBuilt(ctx context.Context, url string) error {
	for {
		m, err := scrapeMetrics(ctx, url)
		if err != nil {
			return err
		}
		if m[`mu_runtime_snapshots_total{result="built"}`] >= 1 && m["mu_runtime_snapshot_builds_pending"] == 0 {
			return nil
		}
		if m[`mu_runtime_snapshots_total{result="refused"}`]+m[`mu_runtime_snapshots_total{result="failed"}`] > 0 {
			return fmt.Errorf("hello's snapshot was refused or failed (the runtime's log says why)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scrapeMetrics reads a Prometheus text page into series → value.
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}
