package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/services/gateway/internal/router"
)

// stack is one compiled stack revision. It is immutable once built, so
// requests use it without holding the registry lock.
type stack struct {
	id       ids.StackID
	revision uint64
	gateways map[string]*router.Router
	// responses counts the stack's answers by status class (nil when
	// Config.ResponseHistory is 0). Every revision of a stack shares the
	// ring of the first; RemoveStack drops it with the stack.
	responses *responseRing
	// limits holds the stack's rate and concurrency limit state (nil when
	// the stack has no limits). Shared by every revision like responses,
	// dropped with the stack by RemoveStack.
	limits *stackLimiter
}

// registry holds the stacks a gateway serves. Enabled state is kept apart
// from the manifests so that the order in which the chain-indexer reports a
// stack and its escrow state does not matter.
type registry struct {
	mu       sync.RWMutex
	stacks   map[ids.StackID]*stack
	disabled map[ids.StackID]string // reason
}

func newRegistry() *registry {
	return &registry{stacks: map[ids.StackID]*stack{}, disabled: map[ids.StackID]string{}}
}

// compile builds the route tables of m.
func compile(id ids.StackID, m *manifest.Manifest, revision uint64) (*stack, error) {
	st := &stack{id: id, revision: revision, gateways: make(map[string]*router.Router, len(m.Gateways))}
	for _, g := range m.Gateways {
		if _, dup := st.gateways[g.Name]; dup {
			return nil, fmt.Errorf("gateway %q declared twice", g.Name)
		}
		eps := make([]router.Endpoint, len(g.Endpoints))
		for i, e := range g.Endpoints {
			fn := e.RouteTo
			if e.Assembly != "" && e.Function != "" {
				fn = e.Assembly + "." + e.Function
			}
			eps[i] = router.Endpoint{Method: e.Method, Path: e.Path, Function: fn}
		}
		r, err := router.New(eps)
		if err != nil {
			return nil, fmt.Errorf("gateway %q: %w", g.Name, err)
		}
		st.gateways[g.Name] = r
	}
	return st, nil
}

// ErrNilManifest is returned by PutStack for a nil manifest.
var ErrNilManifest = errors.New("gateway: nil manifest")

// PutStack installs or replaces the routes of a stack from its manifest
// (normally one accepted by manifest.Parse). A revision lower than the one
// installed is ignored, as the ledger's higher revision wins; an equal one
// replaces it. A new revision keeps the stack's response counts and its
// limit state (requests in flight, the token bucket). It returns
// an error, and keeps the installed revision, if the manifest's routes
// cannot be compiled. Safe for concurrent use; requests
// already matched finish on the revision they matched.
func (s *Server) PutStack(id ids.StackID, m *manifest.Manifest, revision uint64) error {
	if m == nil {
		return fmt.Errorf("%w for stack %s", ErrNilManifest, id)
	}
	st, err := compile(id, m, revision)
	if err != nil {
		return fmt.Errorf("gateway: stack %s revision %d: %w", id, revision, err)
	}
	s.stacks.mu.Lock()
	defer s.stacks.mu.Unlock()
	old, ok := s.stacks.stacks[id]
	if ok && old.revision > revision {
		s.log.Debug("ignoring stale stack revision", "stack", id, "revision", revision, "installed", old.revision)
		return nil
	}
	if ok {
		st.responses, st.limits = old.responses, old.limits
	} else {
		st.responses = newResponseRing(s.cfg.ResponseHistory)
		st.limits = newStackLimiter(s.limitFor(id))
	}
	s.stacks.stacks[id] = st
	if s.cluster != nil {
		s.cluster.addStack(id)
	}
	s.log.Info("stack installed", "stack", id, "revision", revision, "endpoints", m.EndpointCount())
	return nil
}

// RemoveStack stops serving a stack: its URLs answer 404 from now on. Its
// enabled state, its response counts (StackStatus.Responses) and its limit
// state (token bucket, requests in flight) are forgotten too: installed
// again, it starts with a full bucket. Safe for concurrent use; removing an unknown stack does
// nothing.
func (s *Server) RemoveStack(id ids.StackID) {
	s.stacks.mu.Lock()
	defer s.stacks.mu.Unlock()
	if _, ok := s.stacks.stacks[id]; ok {
		s.log.Info("stack removed", "stack", id)
	}
	delete(s.stacks.stacks, id)
	delete(s.stacks.disabled, id)
	if s.cluster != nil {
		s.cluster.removeStack(id)
	}
}

// SetStackEnabled enables or disables a stack. A disabled stack's routes
// answer 402 Payment Required with reason in the body (design §3: escrow
// below the region minimum). Stacks are enabled unless disabled here; the
// state may be set before PutStack and survives it. Safe for concurrent use.
func (s *Server) SetStackEnabled(id ids.StackID, enabled bool, reason string) {
	s.stacks.mu.Lock()
	defer s.stacks.mu.Unlock()
	if enabled {
		delete(s.stacks.disabled, id)
	} else {
		s.stacks.disabled[id] = reason
	}
	s.log.Info("stack enabled state", "stack", id, "enabled", enabled, "reason", reason)
}

// lookup returns the installed revision of a stack, and why it is disabled
// ("" with disabled false when it is enabled).
func (r *registry) lookup(id ids.StackID) (st *stack, disabled bool, reason string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st = r.stacks[id]
	reason, disabled = r.disabled[id]
	return st, disabled, reason
}

// has reports whether a stack is installed.
func (r *registry) has(id ids.StackID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.stacks[id]
	return ok
}

// ids lists the installed stacks in id order.
func (r *registry) ids() []ids.StackID {
	r.mu.RLock()
	out := make([]ids.StackID, 0, len(r.stacks))
	for id := range r.stacks {
		out = append(out, id)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, compareStacks)
	return out
}

func (r *registry) counts() (stacks, disabled int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for id := range r.stacks {
		if _, off := r.disabled[id]; off {
			disabled++
		}
	}
	return len(r.stacks), disabled
}

// routeInfo is one endpoint of one gateway, for GatewayService.Routes.
type routeInfo struct {
	gateway string
	router.Endpoint
}

func (st *stack) routes() []routeInfo {
	var out []routeInfo
	for name, r := range st.gateways {
		for _, e := range r.Endpoints() {
			out = append(out, routeInfo{gateway: name, Endpoint: e})
		}
	}
	slices.SortFunc(out, func(a, b routeInfo) int {
		return cmp.Or(cmp.Compare(a.gateway, b.gateway), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method))
	})
	return out
}

// PutStackSpec installs revision 1 of a stack from a manifest file, given
// as "BASE58_ID=PATH" (mu-gateway's --stacks). Errors name the spec.
func (s *Server) PutStackSpec(spec string) error {
	idText, path, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("stacks %q: want BASE58_ID=PATH", spec)
	}
	id, err := ids.ParseStackID(idText)
	if err != nil {
		return fmt.Errorf("stacks: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stacks: %w", err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return fmt.Errorf("stacks %s: %w", path, err)
	}
	return s.PutStack(id, m, 1)
}
