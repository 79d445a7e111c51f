package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// errNoSnapshot ends a snapshot load that leaves the function on its
// normal start (the reason is logged by the load).
var errNoSnapshot = errors.New("no snapshot")

// queueSnapshots gives the reactor functions of d, a deployment that has
// just been published, their pre-initialized modules (wasm.Engine.Snapshot)
// in the background when snapshot_start is on: the deploy has completed on
// the normal compiled modules, exactly as without snapshots, and instances
// started once a function's snapshot is ready start from it (factory);
// those started before keep running, and both are billed their own
// start-up exactly (the snapshot's first call the fuel its build burnt).
// At most snapshot_build_concurrency deployments build at a time, the
// others wait their turn in deploy order (semaphore.Weighted is FIFO); a
// deployment retired (redeployed, undeployed) before its turn skips its
// builds, and Close cancels the waiting ones and waits for the running
// one (building). A takeover (deploy with warmLater) queues its build like
// any deploy: it never waits for a compile, its calls start normally
// until the snapshot is ready. binaries are the ones d acquired; the
// bytes loadModule kept of them are dropped once d's builds are done.
func (s *Server) queueSnapshots(d *deployment, inline map[string][]byte, binaries []string) {
	var fs []*function
	if s.cfg.SnapshotStart {
		for _, f := range d.functions {
			if f.mod.Reactor() && f.snap.Load() == nil { // not taken by the deploy (takeReadySnapshot)
				fs = append(fs, f)
			}
		}
	}
	if len(fs) == 0 {
		s.forgetFetched(binaries)
		return
	}
	s.snapshotsPending(len(fs))
	s.building.Add(1)
	go func() {
		defer s.building.Done()
		left := len(fs)
		defer func() { s.snapshotsPending(-left) }()
		if err := s.snapBuilds.Acquire(s.bg, 1); err != nil {
			return // the node is closing
		}
		defer s.snapBuilds.Release(1)
		for _, f := range fs {
			if s.bg.Err() != nil {
				return
			}
			s.snapshotFunction(s.bg, d, f, inline)
			left--
			s.snapshotsPending(-1)
		}
		s.forgetFetched(binaries)
	}()
}

// takeReadySnapshot gives f, a function of a deployment not yet
// published, its pre-initialized module when that costs no build and no
// read of an artifact: the one another deployment of the same binary, env
// and argv holds (Server.snapshots), or one whose artifact the cache has
// already checked (wasm.Engine.SnapshotChecked), which is mapped. So a
// deploy of a binary the node knows starts its first instances from the
// snapshot; otherwise f waits for queueSnapshots like any function. The
// deploy's release drops the reference if the deploy fails. It reads
// neither f.mod nor f.start, which the deploy sets meanwhile: a
// pre-initialized module exists only for a reactor (LoadSnapshot checks
// that), so a snapshot found is one f.mod can be started as.
func (s *Server) takeReadySnapshot(f *function) {
	if !s.cfg.SnapshotStart {
		return
	}
	cfg := s.instanceConfig(f, nil)
	key := wasm.SnapshotKey(f.binaryID, cfg.Env, cfg.Args)
	s.mu.Lock()
	if ref := s.snapshots[key]; ref != nil {
		ref.refs++
		f.snapKey = key
		f.snap.Store(ref.mod)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if !s.engine.SnapshotChecked(f.binaryID, cfg) {
		return
	}
	m, ok := s.engine.LoadSnapshot(f.binaryID, cfg)
	if !ok {
		return // queueSnapshots builds it
	}
	s.metrics.snapshots.WithLabelValues("cached").Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.snapshots[key]
	if ref != nil { // loaded meanwhile by another deploy or a build
		m.Close()
	} else {
		ref = &moduleRef{mod: m}
		s.snapshots[key] = ref
	}
	ref.refs++
	f.snapKey = key
	f.snap.Store(ref.mod)
}

// snapshotsPending adds n to the functions whose snapshot is queued or
// being built (mu_runtime_snapshot_builds_pending), and wakes
// WaitSnapshots when none is left.
func (s *Server) snapshotsPending(n int) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if s.snapPending == 0 && n > 0 {
		s.snapIdle = make(chan struct{})
	}
	s.snapPending += n
	s.metrics.snapshotBuildsPending.Set(float64(s.snapPending))
	if s.snapPending == 0 && n < 0 {
		close(s.snapIdle)
	}
}

// WaitSnapshots blocks until no snapshot build is queued or running on the
// node (every function deployed before it has its snapshot, or starts
// normally for a reason its stack's logs give), or ctx ends. Instances
// started after it returns use the snapshots. For tests and benchmarks:
// a deploy does not wait for its snapshots.
func (s *Server) WaitSnapshots(ctx context.Context) error {
	s.snapMu.Lock()
	idle := s.snapIdle
	s.snapMu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snapshotFunction gives f of d its pre-initialized module. Functions whose
// instances get the same env and argv share one module (Server.snapshots,
// counted like Server.modules), loaded once at a time: from the artifact
// cache, else built from the binary (inline with the deploy, fetched by
// the deploy's loadModule, or else fetched from storage by content id). A
// start-up that cannot be snapshotted, or a build that fails, leaves f on
// its normal start, and the stack's logs say why. A deployment retired
// meanwhile takes no reference (finalizeLocked has released or will
// release what it holds), and a module it loaded that no function holds is
// closed. Sampled calls (receipts.go) always start f.mod normally, since an
// audit replays a normal start.
func (s *Server) snapshotFunction(ctx context.Context, d *deployment, f *function, inline map[string][]byte) {
	cfg := s.instanceConfig(f, nil)
	key := wasm.SnapshotKey(f.binaryID, cfg.Env, cfg.Args)
	for {
		s.mu.Lock()
		ref := s.snapshots[key]
		if d.retired.Load() {
			if ref != nil && ref.refs <= 0 {
				delete(s.snapshots, key)
				ref.mod.Close()
			}
			s.mu.Unlock()
			return
		}
		if ref != nil {
			ref.refs++
			f.snapKey = key
			f.snap.Store(ref.mod)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		_, err, _ := s.loading.Do("snapshot/"+key, func() (any, error) {
			return nil, s.loadSnapshot(ctx, f, cfg, key, inline)
		})
		if err != nil {
			return
		}
	}
}

// loadSnapshot puts the snapshot of f under key into s.snapshots with no
// references, or returns errNoSnapshot having logged why there is none.
func (s *Server) loadSnapshot(ctx context.Context, f *function, cfg wasm.InstanceConfig, key string, inline map[string][]byte) error {
	m, ok := s.engine.LoadSnapshot(f.binaryID, cfg)
	result := "cached"
	if !ok {
		bin, ok := inline[f.binaryID]
		if !ok {
			s.mu.RLock()
			if ref := s.modules[f.binaryID]; ref != nil {
				bin = ref.wasm // fetched by this deploy (loadModule)
			}
			s.mu.RUnlock()
		}
		if bin == nil {
			var err error
			if bin, err = s.fetchBinary(ctx, f.binaryID); err != nil {
				return s.snapshotFallback(f, "failed", err)
			}
		}
		var err error
		if m, err = s.engine.Snapshot(ctx, f.mod, bin, cfg); err != nil { // Deploy or fetchBinary checked binaryID against bin, the bytes of f.mod
			if errors.Is(err, wasm.ErrSnapshotRefused) {
				return s.snapshotFallback(f, "refused", err)
			}
			return s.snapshotFallback(f, "failed", err)
		}
		if cerr := m.CacheError(); cerr != nil {
			s.log.Warn("artifact cache write failed", "binary", f.binaryID, "snapshot", true, "err", cerr)
		}
		result = "built"
	}
	s.metrics.snapshots.WithLabelValues(result).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snapshots[key] != nil {
		m.Close()
		return nil
	}
	s.snapshots[key] = &moduleRef{mod: m}
	return nil
}

func (s *Server) snapshotFallback(f *function, result string, err error) error {
	s.metrics.snapshots.WithLabelValues(result).Inc()
	s.log.Info("function starts without a snapshot", "stack", f.stack.String(), "function", f.assembly, "result", result, "err", err)
	s.logs.Publish(logs.Entry{Stack: f.stack, Function: f.assembly, Source: logs.SourceRuntime, Level: levelInfo,
		Body: fmt.Sprintf("function %s starts without a snapshot: %v", f.assembly, err)})
	return errNoSnapshot
}

// releaseSnapshotLocked drops f's reference to its pre-initialized module,
// closing it with the last one (instances made from it keep its code
// alive). Safe to call twice. The caller holds s.mu and no call holds f's
// deployment (finalizeLocked), so no factory is starting an instance of it.
func (s *Server) releaseSnapshotLocked(f *function) {
	if f.snap.Load() == nil {
		return
	}
	if ref := s.snapshots[f.snapKey]; ref != nil {
		ref.refs--
		if ref.refs <= 0 {
			delete(s.snapshots, f.snapKey)
			ref.mod.Close()
		}
	}
	f.snap.Store(nil)
	f.snapKey = ""
}

// forgetFetched drops the bytes loadModule kept for the snapshots of a
// deploy of binaries, once they are built (queueSnapshots).
func (s *Server) forgetFetched(binaries []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range binaries {
		if ref := s.modules[b]; ref != nil {
			ref.wasm = nil
		}
	}
}
