// Package bench is mu's benchmark suite (`make bench`, `make bench-quick`).
//
// It measures, each time side by side in the same run because the machines
// it runs on are noisy:
//
//  1. throughput and latency of the Go hello function two ways — the
//     gateway calling the runtime in process, as `mu run` serves, and over
//     loopback gRPC — against a native net/http handler returning the same
//     bytes, at concurrency 1, 8 and 64, driven by a load generator in a
//     process of its own (package load; wrk too when installed), with the
//     servers' CPU, allocations and syscalls per request over exactly the
//     measured phase and the instances started in steady state;
//  2. cold start: the first request after deploy with an empty and with a
//     warm artifact cache, and the cost of starting one instance;
//  3. fuel overhead: CPU-bound guests and real SDK handlers (hello, a
//     small JSON handler, served through mu_serve) with wasmtime fuel
//     metering on and off;
//  4. muDB: get and put through a function (gateway → runtime → muDB gRPC
//     → TiKV), over muDB gRPC alone and as direct client-go calls on the
//     same kind of embedded store, the load generator in its own process;
//  5. storage64: put and get of a 64 MiB object through a function
//     (gateway → runtime → Box streams → storage node → S3) against
//     minio-go straight to the same S3 server (versitygw);
//  6. density: resident memory of one runtime process with 1,000 idle stacks;
//  7. deadlines under load: how far past CallTimeout 8 concurrent calls of
//     a spinning function end, against one alone;
//  8. placement: package placement's ring and table in this process with
//     10,000 nodes and 1,000,000 stacks (build, Owner and Candidates
//     lookups, stacks moved and re-placement time per join and leave).
//
// Run writes results.json and results.md; the figures are compared with the
// targets of the benchmark issues, and results.md says what bounds each. A
// run of some parts (Options.Only) merges its figures into the files
// already there (merge.go).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/project"
)

// Options configure a run.
type Options struct {
	// Out is the directory for results.json, results.md and profiles/.
	Out string
	// Quick measures only the key figures, in well under a minute.
	Quick bool
	// Repo is the repository root (the directory with go.work); empty
	// finds it from the working directory upwards.
	Repo string
	// Only, if not empty, runs just these parts: throughput, wrk, profile,
	// coldstart, fuel, mudb, storage64, ledger, deadline, density,
	// placement. The figures and results.md sections of the other parts
	// are kept from the results.json and results.md already in Out.
	Only map[string]bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Suite is one run of the benchmarks.
type Suite struct {
	opts      Options
	repo      string
	wasmCache string
	res       *Results

	hello *helloBuild
}

// helloBuild is examples/hello built to wasm.
type helloBuild struct {
	manifest *manifest.Manifest
	wasm     []byte
	binaryID string
}

// Run runs the suite and writes its results under opts.Out.
func Run(ctx context.Context, opts Options) (*Results, error) {
	if opts.Out == "" {
		opts.Out = "bench"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	repo := opts.Repo
	if repo == "" {
		var err error
		if repo, err = findRepo(); err != nil {
			return nil, err
		}
	}
	s := &Suite{
		opts:      opts,
		repo:      repo,
		wasmCache: gobuild.TestCacheDir(),
		res:       &Results{Quick: opts.Quick, Started: time.Now().UTC().Truncate(time.Second), ran: map[string]bool{}, only: opts.Only},
	}
	s.res.Machine = probeMachine(ctx)
	start := time.Now()

	steps := []suiteStep{
		{"fuel", s.runFuel},
		{"coldstart", s.runColdStart},
		{"instancestart", s.runInstanceStart},
		{"throughput", s.runThroughput},
		{"mudb", s.runMudb},
		{"storage64", s.runStorage64},
		{"ledger", s.runLedger},
		{"deadline", s.runDeadline},
		{"density", s.runDensity},
		{"idlestacks", s.runIdleStacks},
		{"placement", s.runPlacement},
	}
	for _, st := range steps {
		if !s.want(st.name) {
			continue
		}
		t0 := time.Now()
		s.res.step = st.name
		s.res.ran[st.name] = true
		s.logf("== %s", st.name)
		if err := st.run(ctx); err != nil {
			return s.res, fmt.Errorf("bench: %s: %w", st.name, err)
		}
		s.logf("== %s done in %s", st.name, time.Since(t0).Round(100*time.Millisecond))
	}
	s.res.Duration = time.Since(start)
	s.res.step = ""
	s.annotate()
	if !opts.Quick && len(opts.Only) > 0 {
		// A partial run keeps the other steps' figures and sections.
		if err := s.res.mergeEarlier(opts.Out, stepNames(steps)); err != nil {
			return s.res, err
		}
	}
	if !opts.Quick {
		if err := s.res.WriteJSON(filepath.Join(opts.Out, "results.json")); err != nil {
			return s.res, err
		}
		if err := s.res.WriteMarkdown(filepath.Join(opts.Out, "results.md")); err != nil {
			return s.res, err
		}
	}
	return s.res, nil
}

// suiteStep is one part of the suite.
type suiteStep struct {
	name string
	run  func(context.Context) error
}

func stepNames(steps []suiteStep) []string {
	names := make([]string, len(steps))
	for i, st := range steps {
		names[i] = st.name
	}
	return names
}

// want tells whether the part name is to be run.
func (s *Suite) want(name string) bool {
	// storage64 moves 512 MiB through a real S3 server: well over the
	// few seconds quick mode may spend on it.
	if s.opts.Quick && (name == "density" || name == "storage64") {
		return false
	}
	if len(s.opts.Only) == 0 {
		return true
	}
	if s.opts.Only[name] {
		return true
	}
	// The throughput step runs wrk and the profile as well.
	return name == "throughput" && (s.opts.Only["wrk"] || s.opts.Only["profile"])
}

func (s *Suite) logf(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.0")}, args...)...)
}

// benchDir is this package's directory in the repository.
func (s *Suite) benchDir() string { return filepath.Join(s.repo, "bench") }

func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "examples", "hello")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: run from inside the mu repository (no go.work with examples/hello above the working directory)")
		}
		dir = parent
	}
}

// helloWasm builds examples/hello (cached by source content) and returns
// its manifest with the binary id filled in.
func (s *Suite) helloWasm(ctx context.Context) (*helloBuild, error) {
	if s.hello != nil {
		return s.hello, nil
	}
	dir := filepath.Join(s.repo, "examples", "hello")
	p, err := project.Load(dir)
	if err != nil {
		return nil, err
	}
	s.logf("building examples/hello to wasm (cached in %s)", s.wasmCache)
	path, err := gobuild.Cached(ctx, dir, s.wasmCache, gobuild.Reactor)
	if err != nil {
		return nil, err
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := *p.Manifest
	m.Functions = append([]manifest.Function(nil), p.Manifest.Functions...)
	id := ids.BinaryID(wasm)
	for i := range m.Functions {
		m.Functions[i].Binary = id
	}
	s.hello = &helloBuild{manifest: &m, wasm: wasm, binaryID: id}
	return s.hello, nil
}

func (h *helloBuild) binaries() map[string][]byte { return map[string][]byte{h.binaryID: h.wasm} }

func newStackID() (ids.StackID, error) {
	id, _, err := ids.NewStackID()
	return id, err
}
