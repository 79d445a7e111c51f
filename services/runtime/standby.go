package runtime

import (
	"context"
	"slices"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/placement"
)

// standby keeps the artifact cache holding the compiled binaries of the
// stacks for which this node is the next candidate after the owner: the
// node that takes a stack over when its owner dies, and the one gateways
// retry on meanwhile. A takeover then loads an artifact (milliseconds)
// instead of compiling the binary (seconds for a Go module), so the
// region is back to full service once the death is known. Only the disk
// cache holds them; no module stays open and no instance starts. It runs
// one pass per kick (a membership change, a stack placed), passes never
// overlap, and a kick during a pass makes one more.
type standby struct {
	s    *Server
	kick chan struct{}
}

func newStandby(s *Server) *standby { return &standby{s: s, kick: make(chan struct{}, 1)} }

// poke asks for a pass; it never blocks.
func (b *standby) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run makes passes until ctx ends.
func (b *standby) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		b.pass(ctx)
	}
}

// pass compiles what the standby set lacks.
func (b *standby) pass(ctx context.Context) {
	s := b.s
	stacks := s.cluster.standbyStacks()
	if len(stacks) == 0 {
		return
	}
	want := s.follow.binariesOf(stacks)
	for _, bin := range want {
		if ctx.Err() != nil {
			return
		}
		// The same single flight as deploys: a deploy that needs the
		// binary meanwhile waits for this compile and loads its artifact.
		_, err, _ := s.loading.Do(bin, func() (any, error) {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.ChainDeployTimeout)
			defer cancel()
			return nil, b.compile(cctx, bin)
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("standby: a binary could not be compiled ahead; it is compiled at takeover instead", "binary", bin, "err", err)
		}
	}
}

// compile puts binary bin into the artifact cache unless it is there or
// open already.
func (b *standby) compile(ctx context.Context, bin string) error {
	s := b.s
	s.mu.RLock()
	_, open := s.modules[bin]
	s.mu.RUnlock()
	if open || s.engine.HasCached(bin) {
		return nil
	}
	raw, err := s.fetchBinary(ctx, bin)
	if err != nil {
		return err
	}
	mod, err := s.engine.CompileWithID(raw, bin)
	if err != nil {
		return err
	}
	defer mod.Close()
	if cerr := mod.CacheError(); cerr != nil {
		s.log.Warn("standby: artifact cache write failed", "binary", bin, "err", cerr)
		return nil // a deploy waiting on this compile loads the binary itself
	}
	s.metrics.compileSeconds.WithLabelValues("false").Observe(mod.LoadTime.Seconds())
	s.metrics.standbyCompiles.Inc()
	s.log.Debug("standby: binary compiled into the artifact cache", "binary", bin, "took", mod.LoadTime)
	return nil
}

// standbyStacks lists the placed stacks whose next candidate after the
// owner is this node.
func (c *cluster) standbyStacks() []ids.StackID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self.Name == "" || c.table.Ring().Len() < 2 {
		return nil
	}
	ring := c.table.Ring()
	var out []ids.StackID
	var buf [2]placement.Node
	c.table.Each(func(stack placement.Key, owner placement.Node) bool {
		if owner.ID == c.self.ID {
			return true
		}
		if cand := ring.Candidates(stack, 2, buf[:0]); len(cand) == 2 && cand[1].ID == c.self.ID {
			out = append(out, ids.StackID(stack))
		}
		return true
	})
	return out
}

// binariesOf lists, once each and sorted, the binary ids of the active
// stacks among stacks.
func (f *chainFollow) binariesOf(stacks []ids.StackID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, id := range stacks {
		w := f.want[id]
		if w == nil {
			continue
		}
		for _, b := range w.binaries {
			if !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	slices.Sort(out)
	return out
}
