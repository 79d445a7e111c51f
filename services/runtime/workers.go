package runtime

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// callWorkers runs the wasm part of calls (taking an instance, the guest
// call with its host calls, putting the instance back) on a bounded set of
// long-lived goroutines, so that a call finds a stack that is already
// grown and caches that are warm instead of starting on the fresh
// goroutine gRPC gives each request. The most recently idle worker takes
// the next call (LIFO), the one whose stack and instance are most likely
// still in cache.
//
// Neighbours keep their time: a call that finds no worker free waits for
// one, in order, but once it has waited wait (call_worker_wait) while
// every worker has been in its current call for longer than wait, it runs
// on its own goroutine instead (calls that only queue behind short ones
// under load keep waiting: more goroutines running wasm than cores buys
// nothing); and
// while a worker is inside a db or storage host call, which may block for
// long, a call that finds no worker free runs on its own goroutine at once
// (the calls waiting when the worker entered it are released; see
// enterHost). So a stack whose calls spin until their deadline on every
// worker delays other stacks' calls by at most wait, and one whose calls
// block in host calls delays them not at all.
//
// Safe for concurrent use.
type callWorkers struct {
	size int
	wait time.Duration
	m    workerMetrics

	all []*callWorker

	mu      sync.Mutex
	idle    []*callWorker // the most recently idle last
	waiters []*waiter     // calls waiting for a worker, the longest-waiting first
	closed  bool
	nwait   atomic.Int32 // len(waiters), read without mu by enterHost
	blocked atomic.Int32 // workers inside a host call that may block
}

// workerMetrics are the workers' counters, resolved once.
type workerMetrics struct {
	busy             prometheus.Gauge
	waited           prometheus.Counter
	overflowWait     prometheus.Counter
	overflowHostCall prometheus.Counter
	overflowClosed   prometheus.Counter
}

type callWorker struct {
	w    *callWorkers
	jobs chan *invocation // capacity 1: a call is handed over without waiting
	// since is when the worker's current call began (Unix nanoseconds; 0
	// while idle), read by stuck.
	since atomic.Int64
}

// waiter is a call waiting for a worker. ch receives the worker handed to
// it, or nil: run on your own goroutine.
type waiter struct {
	ch     chan *callWorker
	closed bool // set before nil is sent by stop
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan *callWorker, 1)} }}

// newCallWorkers starts size workers.
func newCallWorkers(size int, wait time.Duration, m workerMetrics) *callWorkers {
	w := &callWorkers{size: size, wait: wait, m: m, idle: make([]*callWorker, 0, size)}
	for range size {
		wk := &callWorker{w: w, jobs: make(chan *invocation, 1)}
		w.idle = append(w.idle, wk)
		w.all = append(w.all, wk)
		go wk.loop()
	}
	return w
}

// do runs inv.run on a worker, or on the calling goroutine when no worker
// became free within wait (or the workers are stopped), and returns once
// it has run. If ctx ends while the call waits for a worker, inv does not
// run and do returns the error of a call that ran out of time waiting for
// capacity (as when it waits for an instance slot). A panic of inv.run is
// raised again on the calling goroutine, where gRPC's recovery sees it.
func (w *callWorkers) do(ctx context.Context, inv *invocation) error {
	wk, err := w.acquire(ctx)
	if err != nil {
		return err
	}
	if wk == nil {
		inv.run()
		return nil
	}
	inv.worker = wk
	wk.jobs <- inv
	<-inv.done
	inv.worker = nil
	if p := inv.panicked; p != nil {
		inv.panicked = nil
		panic(p)
	}
	return nil
}

// acquire returns a worker that is now the caller's, or nil when the call
// is to run on the caller's goroutine.
func (w *callWorkers) acquire(ctx context.Context) (*callWorker, error) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		w.m.busy.Inc()
		return wk, nil
	}
	if w.closed || w.wait <= 0 {
		w.mu.Unlock()
		w.overflow(w.closed)
		return nil, nil
	}
	if w.blocked.Load() > 0 {
		w.mu.Unlock()
		w.m.overflowHostCall.Inc()
		return nil, nil
	}
	wt := waiterPool.Get().(*waiter)
	w.waiters = append(w.waiters, wt)
	w.nwait.Add(1)
	w.mu.Unlock()
	w.m.waited.Inc()

	t := time.NewTimer(w.wait)
	defer t.Stop()
	for waiting := true; waiting; {
		select {
		case wk := <-wt.ch:
			w.turned(wt, wk)
			return wk, nil
		case <-t.C:
			if waiting = !w.stuck(); waiting {
				t.Reset(w.wait)
			}
		case <-ctx.Done():
			waiting = false
		}
	}
	w.mu.Lock()
	queued := w.removeWaiterLocked(wt)
	w.mu.Unlock()
	if !queued {
		// Handed a worker (or a turn) while giving up.
		wk := <-wt.ch
		w.turned(wt, wk)
		if ctx.Err() == nil {
			return wk, nil
		}
		if wk != nil && !wk.release() {
			close(wk.jobs) // stopped meanwhile: wk waits for a call that will not come
		}
	} else {
		waiterPool.Put(wt)
	}
	if err := ctx.Err(); err != nil {
		return nil, poolStatus(fmt.Errorf("runtime: all %d call workers stayed busy while the call waited: %w", w.size, err))
	}
	w.m.overflowWait.Inc()
	return nil, nil
}

// stuck reports whether every worker has been in its current call for
// longer than wait: none has taken a call since, so waiting on is waiting
// for long calls to end.
func (w *callWorkers) stuck() bool {
	now := time.Now().UnixNano()
	for _, wk := range w.all {
		if s := wk.since.Load(); s == 0 || now-s < int64(w.wait) {
			return false
		}
	}
	return true
}

// turned counts what waiter wt was handed (a worker, or nil: run on your
// own goroutine) and returns wt to its pool.
func (w *callWorkers) turned(wt *waiter, wk *callWorker) {
	if wt.closed {
		w.m.overflowClosed.Inc()
	} else if wk == nil {
		w.m.overflowHostCall.Inc()
	}
	*wt = waiter{ch: wt.ch}
	waiterPool.Put(wt)
}

func (w *callWorkers) overflow(closed bool) {
	if closed {
		w.m.overflowClosed.Inc()
	} else {
		w.m.overflowWait.Inc()
	}
}

// removeWaiterLocked takes wt out of the queue and reports whether it was
// still there.
func (w *callWorkers) removeWaiterLocked(wt *waiter) bool {
	for k, q := range w.waiters {
		if q == wt {
			copy(w.waiters[k:], w.waiters[k+1:])
			w.waiters[len(w.waiters)-1] = nil
			w.waiters = w.waiters[:len(w.waiters)-1]
			w.nwait.Add(-1)
			return true
		}
	}
	return false
}

// popWaiterLocked takes the longest-waiting call out of the queue.
func (w *callWorkers) popWaiterLocked() *waiter {
	if len(w.waiters) == 0 {
		return nil
	}
	wt := w.waiters[0]
	copy(w.waiters, w.waiters[1:])
	w.waiters[len(w.waiters)-1] = nil
	w.waiters = w.waiters[:len(w.waiters)-1]
	w.nwait.Add(-1)
	return wt
}

// enterHost is called by a worker's call entering a host call that may
// block (db, storage): until leaveHost, calls that find no worker free run
// on their own goroutines, and those waiting now do so at once.
func (w *callWorkers) enterHost() {
	w.blocked.Add(1)
	if w.nwait.Load() == 0 {
		return
	}
	w.mu.Lock()
	var waiters []*waiter
	for wt := w.popWaiterLocked(); wt != nil; wt = w.popWaiterLocked() {
		waiters = append(waiters, wt)
	}
	w.mu.Unlock()
	for _, wt := range waiters {
		wt.ch <- nil
	}
}

// leaveHost ends what enterHost began.
func (w *callWorkers) leaveHost() { w.blocked.Add(-1) }

// stop ends the workers: idle ones at once, busy ones when their call is
// over; calls waiting for a worker, and later calls, run on their own
// goroutines. It does not wait for calls in progress (Close drains them
// before). Safe to call twice.
func (w *callWorkers) stop() {
	w.mu.Lock()
	w.closed = true
	idle := w.idle
	w.idle = nil
	var waiters []*waiter
	for wt := w.popWaiterLocked(); wt != nil; wt = w.popWaiterLocked() {
		waiters = append(waiters, wt)
	}
	w.mu.Unlock()
	for _, wk := range idle {
		close(wk.jobs)
	}
	for _, wt := range waiters {
		wt.closed = true
		wt.ch <- nil
	}
}

// release makes wk free again: handed to the longest-waiting call, or
// idle. It reports false once the workers are stopped (wk must end).
func (wk *callWorker) release() bool {
	w := wk.w
	w.mu.Lock()
	if wt := w.popWaiterLocked(); wt != nil {
		w.mu.Unlock()
		wt.ch <- wk // still busy, now with the waiter's call
		return true
	}
	if w.closed {
		w.mu.Unlock()
		w.m.busy.Dec()
		return false
	}
	w.idle = append(w.idle, wk)
	w.mu.Unlock()
	w.m.busy.Dec()
	return true
}

// loop serves the calls handed to wk until the workers stop.
func (wk *callWorker) loop() {
	for inv := range wk.jobs {
		wk.since.Store(time.Now().UnixNano())
		inv.runCaught()
		wk.since.Store(0)
		// wk is free before its caller resumes, so the caller's next call
		// can find it (its caches are the warmest).
		keep := wk.release()
		inv.done <- struct{}{}
		if !keep {
			return
		}
	}
}
