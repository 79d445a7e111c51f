package wasm

import (
	"context"
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// command serves a module that exports only _start (other SDKs, WAT tests):
// _start runs on a goroutine of its own and loops over requests itself, so
// the instance parks it in fd_read between calls. Each call is handed to
// that goroutine and back, and the call is over when the guest reads stdin
// again after ending the request. The wasm stack of a parked _start lives
// on a locked OS thread (it is inside a cgo callback), which is why Go
// guests are built as reactors instead (see mode_reactor.go).
type command struct {
	i       *Instance
	calls   chan *call
	readyCh chan struct{} // closed when the start-up ended
	exited  chan struct{} // closed when the goroutine ended
}

func newCommand(i *Instance) *command {
	return &command{
		i:       i,
		calls:   make(chan *call),
		readyCh: make(chan struct{}),
		exited:  make(chan struct{}),
	}
}

func (m *command) start(ctx context.Context) error {
	go m.run()
	select {
	case <-m.readyCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the instance's goroutine: the start-up, then _start until it ends.
func (m *command) run() {
	i := m.i
	defer close(m.exited)
	defer i.dead.Store(true)
	defer func() {
		if p := recover(); p != nil {
			m.finish(&CallError{Kind: KindCrash, Message: fmt.Sprintf("host panic: %v", p)})
		}
		i.store.Close()
	}()
	if ce := i.startup(m.enter); ce != nil {
		m.finish(ce)
	}
}

// enter runs _start, which returns only when the instance ends.
func (m *command) enter(inst *wasmtime.Instance) *CallError {
	i := m.i
	start := inst.GetFunc(i.store, "_start")
	if start == nil {
		return &CallError{Kind: KindCrash, Message: "module exports no _start function"}
	}
	_, err := start.Call(i.store)
	select {
	case <-i.quit:
		if i.cur == nil && i.ready {
			return nil // asked to stop and the guest went away: a clean end
		}
	default:
	}
	return i.classify(err)
}

// finish ends the instance: the current call (or the start-up) fails with ce.
func (m *command) finish(ce *CallError) {
	i := m.i
	if c := i.cur; c != nil {
		c.keepFunctionError(ce)
		i.endCall(c, ce)
		close(c.result)
		return
	}
	if !i.ready {
		i.endStartup(ce)
		close(m.readyCh)
		return
	}
	i.dead.Store(true)
	i.flushStderr()
}

// refill ends what the guest was doing when it read stdin again (the current
// call, or the start-up) and waits for the next call.
func (m *command) refill() bool {
	i := m.i
	if c := i.cur; c != nil {
		i.endCall(c, nil)
		close(c.result)
	} else if !i.ready {
		i.endStartup(nil)
		close(m.readyCh)
	}
	return m.next()
}

// next waits for the next call (true) or for Close (false).
func (m *command) next() bool {
	i := m.i
	select {
	case c := <-m.calls:
		if ce := i.begin(c); ce != nil {
			c.err = ce
			c.done = true
		}
		return true
	case <-i.quit:
		// Give a guest that ignores EOF a bounded amount of work before it is stopped.
		_ = i.setBudget(i.e.cfg.StartupFuel, i.e.cfg.StartupTimeout)
		return false
	}
}

func (m *command) call(c *call) (*Result, error) {
	i := m.i
	c.result = make(chan struct{})
	select {
	case m.calls <- c:
	case <-m.exited:
		return nil, &CallError{Kind: KindUnavailable, Message: "instance is no longer running"}
	case <-c.ctx.Done():
		return nil, &CallError{Kind: KindUnavailable, Message: "instance busy until the deadline"}
	}
	// Epoch interruption and the host's own deadline checks end a call in
	// time; this timer only catches a host call that ignored its context, or
	// a loop in _start still bound by an earlier deadline (setBudget).
	grace := time.NewTimer(c.limits.Timeout + i.e.cfg.StartupTimeout)
	defer grace.Stop()
	select {
	case <-c.result:
	case <-grace.C:
		i.dead.Store(true)
		go i.Close()
		// The store belongs to the goroutine still inside the guest, so its
		// count cannot be read: the call is billed its whole budget, and
		// the start-up's fuel if it was the instance's first (c.first).
		fuel := c.limits.Fuel
		if c.first {
			fuel += i.StartupFuel
		}
		return nil, &CallError{Kind: KindDeadline, Message: "the call ran past its wall-clock deadline and the instance did not stop", Fuel: fuel}
	}
	i.served.Add(1)
	return c.outcome()
}

func (m *command) close() {
	t := time.NewTimer(m.i.e.cfg.StartupTimeout + time.Second)
	defer t.Stop()
	select {
	case <-m.exited:
	case <-t.C:
	}
}
