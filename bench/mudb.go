package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/bench/load"
	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime"
)

// The muDB step: get and put of the same keys and values three ways, side
// by side in one run, with the load generator in a process of its own
// (see mudbload.go):
//
//   - direct: client-go txnkv on an embedded store opened exactly as muDB
//     opens its own (mock TiKV in a LevelDB directory), inside the load
//     generator process. A get is Begin + Get + Rollback, a put is Begin +
//     Set + Commit: the least a client-go program does for one key, with
//     no network hop at all. That is the fairest "direct client-go call"
//     on one machine: the alternative, a client-go program talking to a
//     TiKV server, needs a TiKV server, and muDB itself runs on the
//     embedded store here;
//   - grpc: MudbService Get/Put from the load generator to the region's
//     muDB node (gRPC over loopback, then muDB's transaction: table check,
//     TTL envelope, metering);
//   - mu: HTTP to the gateway → runtime → the kv function (bench/guests/kv)
//     → its Table.Get/Put host call → muDB gRPC → the store.
//
// The region (gateway, runtime and muDB with its store) runs in this
// process, as `mu run` does.

const (
	mudbTable     = "kv" // the KeyValueTable of bench/guests/kv
	mudbKeys      = 1000 // keys gets read
	mudbValueSize = 128  // bytes of every value; keys are 16 bytes
)

var mudbPaths = []string{"direct", "grpc", "mu"}

// mudbPlan is how long and how often each path is driven.
type mudbPlan struct {
	concurrency []int
	rounds      int // the paths alternate, rounds times each
	duration    time.Duration
	warmup      time.Duration
	kinds       []string // "get", "put"
	paths       []string // of mudbPaths, in the order of the first round
}

func (s *Suite) mudbPlan() mudbPlan {
	if s.opts.Quick {
		// Only what mudb_get_ratio needs.
		return mudbPlan{concurrency: []int{1}, rounds: 1, duration: 600 * time.Millisecond, warmup: 200 * time.Millisecond,
			kinds: []string{"get"}, paths: []string{"direct", "mu"}}
	}
	return mudbPlan{concurrency: []int{1, 8}, rounds: 2, duration: 3 * time.Second, warmup: 500 * time.Millisecond,
		kinds: []string{"get", "put"}, paths: mudbPaths}
}

// mudbRun is one path and kind at one concurrency, rounds merged.
type mudbRun struct {
	kind, path  string
	concurrency int
	res         *load.Result
	// server is the process that holds the store (for direct, the load
	// generator; else this one, the region's); client the load generator.
	server, client procUse
}

func (r *mudbRun) perRequest(u procUse) (cpu time.Duration, syscalls, allocs float64) {
	n := r.res.Requests
	if n == 0 {
		return 0, 0, 0
	}
	return u.CPU / time.Duration(n), float64(u.Syscalls) / float64(n), float64(u.Allocs) / float64(n)
}

type mudbResult struct {
	runs []*mudbRun
}

func (m *mudbResult) get(kind, path string, c int) *mudbRun {
	for _, r := range m.runs {
		if r.kind == kind && r.path == path && r.concurrency == c {
			return r
		}
	}
	return nil
}

func (s *Suite) runMudb(ctx context.Context) error {
	plan := s.mudbPlan()
	tmp, err := os.MkdirTemp("", "mubench-mudb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	m, bins, err := s.kvStack(ctx)
	if err != nil {
		return err
	}
	// The runtime keeps its compiled artifacts across runs (like a
	// deployed node), so the step does not pay a module compile each time.
	artifacts := filepath.Join(filepath.Dir(s.wasmCache), "mubench-mudb-runtime")
	reg, err := region.Start(ctx, region.Options{
		DataDir: filepath.Join(tmp, "region"),
		Mudb:    &region.MudbOptions{},
		Runtime: &region.RuntimeOptions{Config: func(_ int, c *runtime.Config) { c.DataDir = artifacts }},
		Gateway: &region.GatewayOptions{},
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	stack, _, err := ids.NewStackID()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := reg.Deploy(ctx, stack, 1, m, bins); err != nil {
		return err
	}
	s.logf("mudb: kv stack deployed in %s", time.Since(t0).Round(time.Millisecond))
	db := reg.Mudb().Client()
	value := mudbValue(mudbValueSize)
	for from := 0; from < mudbKeys; from += 500 {
		req := &mudbv1.BatchPutRequest{StackId: stack.Bytes()}
		for i := from; i < min(from+500, mudbKeys); i++ {
			req.Items = append(req.Items, &mudbv1.TableKeyValue{Table: mudbTable, Key: mudbKey(i), Value: value})
		}
		if _, err := db.BatchPut(ctx, req); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	base := "http://" + reg.Gateway().Addr() + "/" + stack.String() + "/kv"
	if err := checkKV(ctx, base, value); err != nil {
		return err
	}

	lg, err := s.startLoadChild(ctx, tmp)
	if err != nil {
		return err
	}
	defer lg.close()
	if _, err := lg.call(childCmd{Op: "open", Dir: filepath.Join(tmp, "direct"), Keys: mudbKeys, ValueSize: mudbValueSize}, nil); err != nil {
		return fmt.Errorf("direct store: %w", err)
	}

	res := &mudbResult{}
	for _, c := range plan.concurrency {
		for _, kind := range plan.kinds {
			runs := map[string]*mudbRun{}
			var parts = map[string][]*load.Result{}
			for round := range plan.rounds {
				for i := range plan.paths {
					path := plan.paths[(i+round)%len(plan.paths)]
					cmd := childCmd{Op: "run", Path: path, Kind: kind, Concurrency: c, Duration: plan.duration, Warmup: plan.warmup,
						URL: base, GRPCAddr: reg.Mudb().Addr(), StackID: stack.Bytes(), Table: mudbTable}
					var mark useMark
					msg, err := lg.call(cmd, func() { mark = markUse() })
					if err != nil {
						return fmt.Errorf("%s %s c=%d: %w", path, kind, c, err)
					}
					here := mark.since()
					r := &load.Result{Requests: msg.Requests, Errors: msg.Errors, FirstError: msg.FirstError,
						Elapsed: msg.Elapsed, Concurrency: c, Samples: msg.Samples}
					if r.Errors > 0 {
						return fmt.Errorf("%s %s c=%d: %d errors, first: %s", path, kind, c, r.Errors, r.FirstError)
					}
					s.logf("mudb: %s %s c=%d round %d: %.0f req/s p50 %v p99 %v", kind, path, c, round+1,
						r.RPS(), r.Percentile(0.5), r.Percentile(0.99))
					run := runs[path]
					if run == nil {
						run = &mudbRun{kind: kind, path: path, concurrency: c}
						runs[path] = run
					}
					parts[path] = append(parts[path], r)
					if path == "direct" {
						run.server = run.server.add(msg.Use)
						run.client = run.client.add(here) // the idle region
					} else {
						run.server = run.server.add(here)
						run.client = run.client.add(msg.Use)
					}
				}
			}
			for _, path := range plan.paths {
				runs[path].res = load.Merge(parts[path]...)
				res.runs = append(res.runs, runs[path])
			}
		}
	}
	s.res.mudb = res
	s.addMudbMetrics(res, plan)
	return nil
}

// kvStack builds bench/guests/kv and returns its manifest and binary.
func (s *Suite) kvStack(ctx context.Context) (*manifest.Manifest, map[string][]byte, error) {
	return s.guestStack(ctx, "kv")
}

// guestStack builds the stack bench/guests/<name> (its mu.yaml and main
// package) and returns its manifest, with every function's binary set to
// the module's content id, and the binary.
func (s *Suite) guestStack(ctx context.Context, name string) (*manifest.Manifest, map[string][]byte, error) {
	dir := filepath.Join(s.benchDir(), "guests", name)
	s.logf("building bench/guests/%s to wasm (cached in %s)", name, s.wasmCache)
	path, err := gobuild.Cached(ctx, dir, s.wasmCache, gobuild.Reactor)
	if err != nil {
		return nil, nil, err
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "mu.yaml"))
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("guests/%s/mu.yaml: %w", name, err)
	}
	id := ids.BinaryID(wasm)
	for i := range m.Functions {
		m.Functions[i].Binary = id
	}
	return m, map[string][]byte{id: wasm}, nil
}

// checkKV asks the kv function once for a preloaded key and a missing one.
func checkKV(ctx context.Context, base string, want []byte) error {
	for _, c := range []struct {
		key    []byte
		status int
		body   []byte
	}{{mudbKey(0), http.StatusOK, want}, {[]byte("missing"), http.StatusNotFound, nil}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/get?key="+string(c.key), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != c.status || (c.body != nil && string(body) != string(c.body)) {
			return fmt.Errorf("kv get %q answered %s %q, want %d", c.key, resp.Status, body, c.status)
		}
	}
	return nil
}

// loadChild is the running load generator process.
type loadChild struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	outR  *os.File
	stdin *json.Encoder
}

// startLoadChild starts the load generator: this executable when its main
// called MaybeRunChild, else cmd/mubench built into dir.
func (s *Suite) startLoadChild(ctx context.Context, dir string) (*loadChild, error) {
	exe, err := os.Executable()
	if err != nil || !childCapable {
		exe = filepath.Join(dir, "mubench")
		s.logf("mudb: building cmd/mubench as the load generator")
		build := exec.CommandContext(ctx, "go", "build", "-o", exe, "./bench/cmd/mubench")
		build.Dir = s.repo
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build the load generator: %v\n%s", err, out)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"=mudb")
	cmd.Stderr = os.Stderr
	cmd.Stdout = os.Stderr // nothing is expected there
	cmd.ExtraFiles = []*os.File{w}
	in, err := cmd.StdinPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start the load generator: %w", err)
	}
	w.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	return &loadChild{cmd: cmd, in: in, out: sc, outR: r, stdin: json.NewEncoder(in)}, nil
}

// call sends cmd and waits for its answer; onMeasure runs when the child
// starts its measured phase.
func (l *loadChild) call(cmd childCmd, onMeasure func()) (childMsg, error) {
	return l.callHooks(cmd, onMeasure, nil)
}

// callHooks is call with onEnd run when the child says its measured phase
// is over (ops that say so: "http").
func (l *loadChild) callHooks(cmd childCmd, onMeasure, onEnd func()) (childMsg, error) {
	if err := l.stdin.Encode(cmd); err != nil {
		return childMsg{}, fmt.Errorf("load generator: %w", err)
	}
	for l.out.Scan() {
		var m childMsg
		if err := json.Unmarshal(l.out.Bytes(), &m); err != nil {
			return childMsg{}, fmt.Errorf("load generator said %q: %w", l.out.Text(), err)
		}
		switch m.Event {
		case "measure":
			if onMeasure != nil {
				onMeasure()
			}
			continue
		case "end":
			if onEnd != nil {
				onEnd()
			}
			continue
		case "error":
			return m, errors.New(m.Error)
		}
		return m, nil
	}
	if err := l.out.Err(); err != nil {
		return childMsg{}, fmt.Errorf("load generator: %w", err)
	}
	return childMsg{}, errors.New("load generator exited")
}

func (l *loadChild) close() {
	l.in.Close()
	done := make(chan struct{})
	go func() {
		l.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		l.cmd.Process.Kill()
		<-done
	}
	l.outR.Close()
}

func (s *Suite) addMudbMetrics(res *mudbResult, plan mudbPlan) {
	what := map[string]string{
		"direct": "client-go txnkv on the embedded store in the load generator process",
		"grpc":   "MudbService gRPC from the load generator to the region's muDB",
		"mu":     "HTTP to the gateway → runtime → kv function → muDB gRPC",
	}
	for _, r := range res.runs {
		prefix := fmt.Sprintf("mudb_%s_%s_", r.kind, r.path)
		suffix := fmt.Sprintf("_c%d", r.concurrency)
		note := fmt.Sprintf("%s; %s of 16-byte keys, %d-byte values; closed loop, c=%d, %d×%s", what[r.path], r.kind, mudbValueSize,
			r.concurrency, plan.rounds, plan.duration)
		s.res.add(prefix+"p50_us"+suffix, us(r.res.Percentile(0.5)), "µs", note)
		s.res.add(prefix+"p99_us"+suffix, us(r.res.Percentile(0.99)), "µs", note)
		s.res.add(prefix+"rps"+suffix, r.res.RPS(), "req/s", note)
		holder := "the region process (gateway, runtime, muDB, store)"
		if r.path == "direct" {
			holder = "the load generator process, which holds the store"
		}
		cpu, sys, allocs := r.perRequest(r.server)
		s.res.add(prefix+"cpu_us"+suffix, us(cpu), "µs", "per request, user+system CPU of "+holder)
		s.res.add(prefix+"allocs"+suffix, allocs, "allocs", "per request, Go heap objects allocated by "+holder)
		s.res.add(prefix+"syscalls"+suffix, sys, "syscalls", "per request, /proc/self/io syscr+syscw of "+holder)
		if r.path != "direct" {
			cpu, _, _ := r.perRequest(r.client)
			s.res.add(prefix+"client_cpu_us"+suffix, us(cpu), "µs", "per request, user+system CPU of the load generator process")
		}
	}
	for _, kind := range []string{"get", "put"} {
		d, g, m := res.get(kind, "direct", 1), res.get(kind, "grpc", 1), res.get(kind, "mu", 1)
		if d == nil || m == nil || d.res.Percentile(0.5) == 0 {
			continue
		}
		dp := float64(d.res.Percentile(0.5))
		s.res.add("mudb_"+kind+"_ratio", float64(m.res.Percentile(0.5))/dp, "×",
			fmt.Sprintf("p50 latency of a %s through mu (HTTP → gateway → runtime → function → muDB gRPC → store) ÷ p50 of the direct client-go %s, c=1, side by side", kind, kind))
		if g != nil {
			s.res.add("mudb_"+kind+"_grpc_ratio", float64(g.res.Percentile(0.5))/dp, "×",
				fmt.Sprintf("p50 of the %s over muDB gRPC alone ÷ p50 direct, c=1: the muDB service's share", kind))
		}
		for _, c := range plan.concurrency {
			d, m := res.get(kind, "direct", c), res.get(kind, "mu", c)
			if c == 1 || d == nil || m == nil || m.res.RPS() == 0 {
				continue
			}
			s.res.add(fmt.Sprintf("mudb_%s_rps_ratio_c%d", kind, c), d.res.RPS()/m.res.RPS(), "×",
				fmt.Sprintf("direct client-go req/s ÷ req/s through mu at c=%d (how many times slower)", c))
		}
	}
}

// mudbBound says what the get ratio is made of, from this run's figures.
func (r *Results) mudbBound() string {
	m := r.mudb
	if m == nil {
		return ""
	}
	d, g, f := m.get("get", "direct", 1), m.get("get", "grpc", 1), m.get("get", "mu", 1)
	if d == nil || f == nil {
		return ""
	}
	dp, fp := d.res.Percentile(0.5), f.res.Percentile(0.5)
	if g == nil {
		return fmt.Sprintf("direct get p50 %s (in-process call, no network); through mu %s", dur(dp), dur(fp))
	}
	gp := g.res.Percentile(0.5)
	return fmt.Sprintf("p50 direct %s (an in-process call: no network hop); muDB gRPC adds %s (loopback gRPC, table check, TTL envelope); "+
		"the function path adds %s more (HTTP, gateway → runtime gRPC, wasm call, db host call)", dur(dp), dur(gp-dp), dur(fp-gp))
}
