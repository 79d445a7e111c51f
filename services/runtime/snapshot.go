package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/muprotocol/mu/services/runtime/internal/wasm"
	"github.com/muprotocol/mu/services/runtime/logs"
)

// snapshotFunction gives f a pre-initialized module (wasm.Engine.Snapshot)
// when snapshot_start is on and f's module is a reactor: from the artifact
// cache, else built from the binary (inline with the deploy, fetched by
// this deploy's loadModule, or else fetched from storage by content id). A start-up that cannot be snapshotted, or a
// build that fails, leaves f.snap nil: f starts normally, and the stack's
// logs say why. Sampled calls (receipts.go) always start f.mod normally,
// since an audit replays a normal start.
func (s *Server) snapshotFunction(ctx context.Context, f *function, inline map[string][]byte) {
	if !s.cfg.SnapshotStart || !f.mod.Reactor() {
		return
	}
	cfg := s.instanceConfig(f, nil)
	if m, ok := s.engine.LoadSnapshot(f.binaryID, cfg); ok {
		f.snap = m
		s.metrics.snapshots.WithLabelValues("cached").Inc()
		return
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
			s.snapshotFallback(f, "failed", err)
			return
		}
	}
	m, err := s.engine.Snapshot(ctx, bin, f.binaryID, cfg) // Deploy or fetchBinary checked binaryID against bin
	if err != nil {
		result := "failed"
		if errors.Is(err, wasm.ErrSnapshotRefused) {
			result = "refused"
		}
		s.snapshotFallback(f, result, err)
		return
	}
	if cerr := m.CacheError(); cerr != nil {
		s.log.Warn("artifact cache write failed", "binary", f.binaryID, "snapshot", true, "err", cerr)
	}
	f.snap = m
	s.metrics.snapshots.WithLabelValues("built").Inc()
}

func (s *Server) snapshotFallback(f *function, result string, err error) {
	s.metrics.snapshots.WithLabelValues(result).Inc()
	s.log.Info("function starts without a snapshot", "stack", f.stack.String(), "function", f.assembly, "result", result, "err", err)
	s.logs.Publish(logs.Entry{Stack: f.stack, Function: f.assembly, Source: logs.SourceRuntime, Level: levelInfo,
		Body: fmt.Sprintf("function %s starts without a snapshot: %v", f.assembly, err)})
}

// closeSnapshot releases f's pre-initialized module; instances made from
// it keep its code alive. Safe to call twice.
func (f *function) closeSnapshot() {
	if f.snap != nil {
		f.snap.Close()
		f.snap = nil
	}
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
