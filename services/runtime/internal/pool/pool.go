// Package pool keeps warm instances of functions so that most calls reuse an
// instance instead of starting one (starting a Go guest costs milliseconds
// and hundreds of thousands of fuel; a reused one answers in microseconds).
//
// Each function has a cap on concurrent instances (further calls wait for
// one to come back) and a cap on idle ones, sized to its concurrency: it
// keeps as many idle instances as it had calls running at once within the
// last IdleTimeout (at least MaxIdlePerFunction), so a steady load starts
// no instances. Across all functions, the
// memory idle instances hold (the linear memory pages each wrote, and its
// tables: wasm.Instance.ResidentBytes) is kept under a budget: when it is exceeded, the function whose warm set is least valuable loses its idle
// instances, chosen by the GDSF policy of package evict with cost = the
// function's start-up time and size = its idle memory, touched on every
// call. Idle instances also expire after IdleTimeout.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muprotocol/mu/services/runtime/internal/evict"
	"github.com/muprotocol/mu/services/runtime/internal/wasm"
)

// Config bounds the pool.
type Config struct {
	// MaxIdlePerFunction is the least number of idle instances one
	// function may keep; it keeps more, up to the most instances it had in
	// use at once within the last IdleTimeout, so that a steady load finds
	// an idle instance for every call.
	MaxIdlePerFunction int
	// MaxActivePerFunction caps concurrent instances of one function; more
	// concurrent calls wait for an instance to be returned.
	MaxActivePerFunction int
	// IdleMemoryBudget caps the memory all idle instances hold, in bytes:
	// what each holds of its own (wasm.Instance.ResidentBytes: the pages of
	// linear memory it wrote, and its tables), not its declared memory,
	// most of which an instance started from a snapshot shares with the
	// others or never touches. Each instance counts its MemorySize (an
	// upper bound) until the budget would be exceeded, then is measured.
	IdleMemoryBudget int64
	// IdleTimeout closes instances idle for longer.
	IdleTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxIdlePerFunction:   4,       // warm instances kept per function
		MaxActivePerFunction: 64,      // concurrent instances per function
		IdleMemoryBudget:     1 << 30, // 1 GiB held by idle instances across functions
		IdleTimeout:          5 * time.Minute,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.MaxIdlePerFunction < 0:
		return fmt.Errorf("pool: max_idle_per_function must not be negative, got %d", c.MaxIdlePerFunction)
	case c.MaxActivePerFunction < 1:
		return fmt.Errorf("pool: max_active_per_function must be at least 1, got %d", c.MaxActivePerFunction)
	case c.IdleMemoryBudget < 0:
		return fmt.Errorf("pool: idle_memory_budget must not be negative, got %d", c.IdleMemoryBudget)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("pool: idle_timeout must be positive, got %s", c.IdleTimeout)
	}
	return nil
}

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("pool: closed")

// ErrRemoved is returned by Get for a key that was removed (or never
// added): a stale key can never bring a function back to life.
var ErrRemoved = errors.New("pool: function removed")

// Factory starts a new instance of a function.
type Factory func(ctx context.Context) (*wasm.Instance, error)

// Pool is safe for concurrent use.
type Pool struct {
	cfg Config

	mu        sync.Mutex
	fns       map[string]*function
	policy    *evict.Policy[string]
	idleBytes int64
	// unmeasured is how many idle instances count their memory size,
	// not yet what they hold (measureLocked).
	unmeasured int
	closed     bool

	stop chan struct{}
	wg   sync.WaitGroup
}

type function struct {
	key       string
	sem       chan struct{}
	removed   chan struct{}               // closed by Remove: wakes Gets waiting on sem
	active    map[*wasm.Instance]struct{} // handed out by Get, not yet Put
	idle      []idle
	idleBytes int64
	startup   time.Duration
	gone      bool
	// peak is the most instances in use at once since window began, and
	// prevPeak the same over the window before: the idle cap (idleCap)
	// follows them, so it tracks the function's concurrency over the last
	// IdleTimeout.
	peak, prevPeak int
	window         time.Time
}

// idleCapLocked is how many idle instances f may keep.
func (p *Pool) idleCapLocked(f *function) int {
	return max(p.cfg.MaxIdlePerFunction, f.peak, f.prevPeak)
}

// inUseLocked records that f has one more instance in use.
func (f *function) inUseLocked() {
	f.peak = max(f.peak, len(f.active))
}

type idle struct {
	inst  *wasm.Instance
	since time.Time
	// bytes is what inst counts against IdleMemoryBudget: MemorySize
	// until measured, then ResidentBytes.
	bytes    int64
	measured bool
}

// New returns an empty pool and starts its idle reaper.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, fns: make(map[string]*function), policy: evict.New[string](), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.reap()
	return p, nil
}

// addLocked registers key (if it is not already) and returns its function.
func (p *Pool) addLocked(key string) *function {
	f := p.fns[key]
	if f == nil {
		f = &function{key: key, sem: make(chan struct{}, p.cfg.MaxActivePerFunction), removed: make(chan struct{}), active: map[*wasm.Instance]struct{}{}, window: time.Now()}
		p.fns[key] = f
	}
	return f
}

// Add registers the function key so that Get serves it. Adding a key that
// is registered does nothing; adding a removed key registers it afresh.
// Prewarm adds its key too.
func (p *Pool) Add(key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.addLocked(key)
	return nil
}

// Get returns an instance of the function key: the most recently used idle
// one, or a new one from factory. It waits (bounded by ctx) while the
// function is at MaxActivePerFunction. Every instance from Get must go back
// through Put. A key that is not registered (never added, or removed: see
// Remove) gets ErrRemoved, also when it is removed while Get waits.
func (p *Pool) Get(ctx context.Context, key string, factory Factory) (*wasm.Instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	f := p.fns[key]
	p.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("%w: %s", ErrRemoved, key)
	}
	select {
	case f.sem <- struct{}{}:
	case <-f.removed:
		return nil, fmt.Errorf("%w: %s", ErrRemoved, key)
	case <-ctx.Done():
		return nil, fmt.Errorf("pool: all %d instances of %s are busy: %w", p.cfg.MaxActivePerFunction, key, ctx.Err())
	}
	p.mu.Lock()
	if f.gone || p.closed {
		p.mu.Unlock()
		<-f.sem
		if f.gone {
			return nil, fmt.Errorf("%w: %s", ErrRemoved, key)
		}
		return nil, ErrClosed
	}
	for len(f.idle) > 0 {
		it := f.idle[len(f.idle)-1]
		f.idle = f.idle[:len(f.idle)-1]
		p.leaveLocked(f, it)
		if it.inst.Alive() {
			p.touch(f)
			f.active[it.inst] = struct{}{}
			f.inUseLocked()
			p.mu.Unlock()
			return it.inst, nil
		}
		go it.inst.Close()
	}
	p.mu.Unlock()
	start := time.Now()
	inst, err := factory(ctx)
	if err != nil {
		<-f.sem
		return nil, err
	}
	p.mu.Lock()
	f.startup = time.Since(start)
	if !f.gone {
		p.touch(f)
	}
	f.active[inst] = struct{}{}
	f.inUseLocked()
	p.mu.Unlock()
	return inst, nil
}

func (p *Pool) touch(f *function) {
	ms := float64(f.startup) / float64(time.Millisecond)
	p.policy.Touch(f.key, max(ms, 0.1), max(f.idleBytes, 1))
}

// Put returns an instance taken with Get. A dead instance, one over the
// idle cap (see MaxIdlePerFunction), or one of a removed function is
// closed.
func (p *Pool) Put(key string, inst *wasm.Instance) {
	p.mu.Lock()
	f := p.fns[key]
	if !f.handedOutLocked(inst) {
		// Removed since Get (perhaps added again since: inst belongs to
		// the function that was removed, not to the one registered now).
		p.mu.Unlock()
		go inst.Close()
		return
	}
	delete(f.active, inst)
	<-f.sem
	if p.closed || f.gone || !inst.Alive() || len(f.idle) >= p.idleCapLocked(f) {
		p.mu.Unlock()
		go inst.Close()
		return
	}
	// An idle instance counts what it holds: its memory size is the
	// bound (cheap, known), and only when that bound would take the pool
	// over its budget are its pages counted (ResidentBytes reads the page
	// tables), so a node with room pays nothing on the call path.
	it := idle{inst: inst, since: time.Now(), bytes: int64(inst.MemorySize())}
	if p.idleBytes+it.bytes > p.cfg.IdleMemoryBudget {
		it.bytes, it.measured = int64(inst.ResidentBytes()), true
	} else {
		p.unmeasured++
	}
	f.idle = append(f.idle, it)
	f.idleBytes += it.bytes
	p.idleBytes += it.bytes
	if p.policy.Contains(key) {
		p.policy.Resize(key, max(f.idleBytes, 1))
	}
	victims := p.evictLocked()
	p.mu.Unlock()
	closeAll(victims)
}

// Prewarm adds key (as Add does, so it belongs where a function is
// deployed, never on the call path) and starts instances of it until it
// has n idle ones (bounded by the idle cap), so the first calls do not pay
// start-up.
func (p *Pool) Prewarm(ctx context.Context, key string, factory Factory, n int) error {
	if err := p.Add(key); err != nil {
		return err
	}
	n = min(n, p.cfg.MaxIdlePerFunction)
	var insts []*wasm.Instance
	defer func() {
		for _, inst := range insts {
			p.Put(key, inst)
		}
	}()
	for range n {
		p.mu.Lock()
		have := len(insts)
		if f := p.fns[key]; f != nil {
			have += len(f.idle)
		}
		p.mu.Unlock()
		if have >= n {
			return nil
		}
		inst, err := p.Get(ctx, key, factory)
		if err != nil {
			return err
		}
		insts = append(insts, inst)
	}
	return nil
}

func (p *Pool) evictLocked() []*wasm.Instance {
	var out []*wasm.Instance
	for p.idleBytes > p.cfg.IdleMemoryBudget {
		if p.measureLocked() {
			continue
		}
		key, ok := p.policy.Victim()
		if !ok {
			break
		}
		f := p.fns[key]
		if f == nil {
			continue
		}
		out = append(out, f.drainLocked(p)...)
	}
	return out
}

// measureLocked replaces the memory size of every idle instance counted by
// it with what the instance holds (ResidentBytes), and reports whether
// there was any: the pool measures before it evicts.
func (p *Pool) measureLocked() bool {
	if p.unmeasured == 0 {
		return false
	}
	for _, f := range p.fns {
		for k := range f.idle {
			it := &f.idle[k]
			if it.measured {
				continue
			}
			b := int64(it.inst.ResidentBytes())
			f.idleBytes += b - it.bytes
			p.idleBytes += b - it.bytes
			it.bytes, it.measured = b, true
		}
		if p.policy.Contains(f.key) {
			p.policy.Resize(f.key, max(f.idleBytes, 1))
		}
	}
	p.unmeasured = 0
	return true
}

// handedOutLocked reports whether inst was handed out by f (nil: no) and
// not yet returned.
func (f *function) handedOutLocked(inst *wasm.Instance) bool {
	if f == nil {
		return false
	}
	_, ok := f.active[inst]
	return ok
}

func (f *function) drainLocked(p *Pool) []*wasm.Instance {
	out := make([]*wasm.Instance, 0, len(f.idle))
	for _, it := range f.idle {
		out = append(out, it.inst)
		p.leaveLocked(f, it)
	}
	f.idle = nil
	return out
}

// leaveLocked takes it, which has left f's idle list, off the idle counts.
func (p *Pool) leaveLocked(f *function, it idle) {
	f.idleBytes -= it.bytes
	p.idleBytes -= it.bytes
	if !it.measured {
		p.unmeasured--
	}
}

func closeAll(insts []*wasm.Instance) {
	for _, inst := range insts {
		go inst.Close()
	}
}

// Remove closes the idle instances of key and unregisters it for good:
// instances in use are closed when they are returned, Gets waiting for an
// instance fail, and later Gets fail with ErrRemoved until key is added
// again (Add). Removing an unknown key does nothing.
func (p *Pool) Remove(key string) {
	p.mu.Lock()
	f := p.fns[key]
	var victims []*wasm.Instance
	if f != nil {
		victims = f.drainLocked(p)
		f.gone = true
		close(f.removed)
		delete(p.fns, key)
		p.policy.Remove(key)
	}
	p.mu.Unlock()
	closeAll(victims)
}

// Stats reports a function's idle and in-use instances.
func (p *Pool) Stats(key string) (idleCount, active int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fns[key]
	if f == nil {
		return 0, 0
	}
	return len(f.idle), len(f.sem)
}

// IdleBytes is the memory counted for idle instances against
// IdleMemoryBudget: each one's MemorySize, or what it holds
// (ResidentBytes) once the pool has measured it.
func (p *Pool) IdleBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idleBytes
}

func (p *Pool) reap() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.expire(now)
		}
	}
}

func (p *Pool) expire(now time.Time) {
	var victims []*wasm.Instance
	p.mu.Lock()
	for _, f := range p.fns {
		if now.Sub(f.window) >= p.cfg.IdleTimeout {
			f.prevPeak, f.peak, f.window = f.peak, len(f.active), now
		}
		kept := f.idle[:0]
		for _, it := range f.idle {
			if now.Sub(it.since) > p.cfg.IdleTimeout || !it.inst.Alive() {
				victims = append(victims, it.inst)
				p.leaveLocked(f, it)
				continue
			}
			kept = append(kept, it)
		}
		clear(f.idle[len(kept):])
		f.idle = kept
	}
	p.mu.Unlock()
	closeAll(victims)
}

// Close closes every idle instance and stops the reaper; instances in use
// are closed when they are returned. Safe to call twice.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var victims []*wasm.Instance
	for _, f := range p.fns {
		victims = append(victims, f.drainLocked(p)...)
	}
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	var wg sync.WaitGroup
	for _, inst := range victims {
		wg.Add(1)
		go func() { defer wg.Done(); inst.Close() }()
	}
	wg.Wait()
}
