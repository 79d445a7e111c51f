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

// snapshotFunction gives f a pre-initialized module (wasm.Engine.Snapshot)
// when snapshot_start is on and f's module is a reactor. Functions whose
// instances get the same env and argv share one module (Server.snapshots,
// counted like Server.modules), loaded once at a time: from the artifact
// cache, else built from the binary (inline with the deploy, fetched by
// this deploy's loadModule, or else fetched from storage by content id). A
// start-up that cannot be snapshotted, or a build that fails, leaves
// f.snap nil: f starts normally, and the stack's logs say why. Without
// build only a loaded or cached snapshot is used: a takeover (deploy with
// warmLater) must not wait for a compile the standby pass did not do
// ahead. Sampled calls (receipts.go) always start f.mod normally, since an
// audit replays a normal start.
func (s *Server) snapshotFunction(ctx context.Context, f *function, inline map[string][]byte, build bool) {
	if !s.cfg.SnapshotStart || !f.mod.Reactor() {
		return
	}
	cfg := s.instanceConfig(f, nil)
	key := wasm.SnapshotKey(f.binaryID, cfg.Env, cfg.Args)
	for {
		s.mu.Lock()
		if ref := s.snapshots[key]; ref != nil {
			ref.refs++
			f.snap, f.snapKey = ref.mod, key
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		_, err, _ := s.loading.Do("snapshot/"+key, func() (any, error) {
			return nil, s.loadSnapshot(ctx, f, cfg, key, inline, build)
		})
		if err != nil {
			return
		}
	}
}

// loadSnapshot puts the snapshot of f under key into s.snapshots with no
// references, or returns errNoSnapshot having logged why there is none.
func (s *Server) loadSnapshot(ctx context.Context, f *function, cfg wasm.InstanceConfig, key string, inline map[string][]byte, build bool) error {
	m, ok := s.engine.LoadSnapshot(f.binaryID, cfg)
	result := "cached"
	if !ok {
		if !build {
			return errNoSnapshot
		}
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
// alive). Safe to call twice.
func (s *Server) releaseSnapshotLocked(f *function) {
	if f.snap == nil {
		return
	}
	if ref := s.snapshots[f.snapKey]; ref != nil {
		ref.refs--
		if ref.refs <= 0 {
			delete(s.snapshots, f.snapKey)
			ref.mod.Close()
		}
	}
	f.snap, f.snapKey = nil, ""
}

// forgetFetched drops the bytes loadModule kept for the snapshots of a
// deploy of binaries, once they are built.
func (s *Server) forgetFetched(binaries []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range binaries {
		if ref := s.modules[b]; ref != nil {
			ref.wasm = nil
		}
	}
}
