package wasm

import (
	"context"
	"fmt"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/muprotocol/mu/libs/fnproto"
)

// reactor serves a module that exports _initialize, mu_init and mu_serve
// (the Go SDK built with -buildmode=c-shared): the start-up runs on
// NewInstance's goroutine, and each call enters the guest once, through
// mu_serve, on the goroutine that called Call. The frames on stdin and
// stdout are those of command mode; what goes away are the two hand-offs
// between threads per call and the thread each idle instance holds.
type reactor struct {
	i         *Instance
	serve     *wasmtime.Func // mu_serve
	closeOnce sync.Once
}

// start runs the start-up on the calling goroutine; ctx is not consulted,
// the start-up budget bounds it.
func (r *reactor) start(context.Context) error {
	r.i.endStartup(r.startup())
	return nil
}

// startup is Instance.startup, turning a host panic into a crash.
func (r *reactor) startup() (ce *CallError) {
	defer func() {
		if p := recover(); p != nil {
			ce = &CallError{Kind: KindCrash, Message: fmt.Sprintf("host panic: %v", p)}
		}
	}()
	return r.i.startup(r.enter)
}

// enter runs _initialize and mu_init, which return once the guest is ready.
func (r *reactor) enter(inst *wasmtime.Instance) *CallError {
	i := r.i
	entries := []string{"_initialize", fnproto.ExportInit}
	if i.mod.snapshot != nil {
		entries = nil // pre-initialized: its memory and globals hold their outcome
	}
	for _, name := range entries {
		if _, err := inst.GetFunc(i.store, name).Call(i.store); err != nil {
			ce := i.classify(err)
			ce.Message = name + ": " + ce.Message
			return ce
		}
	}
	r.serve = inst.GetFunc(i.store, fnproto.ExportServe)
	return nil
}

// refill: between calls, and once a call's input is read, a reactor's stdin
// is empty: end of file, never a wait.
func (r *reactor) refill() bool { return false }

// call runs c through mu_serve on the calling goroutine.
func (r *reactor) call(c *call) (*Result, error) {
	i := r.i
	if ce := i.begin(c); ce != nil {
		i.cur = nil
		return nil, ce
	}
	ret, err := r.enterServe()
	i.served.Add(1)
	var ce *CallError
	switch {
	case err != nil:
		ce = i.classify(err)
		c.keepFunctionError(ce)
	case ret != 0:
		ce = &CallError{Kind: KindProtocol, Message: "function reported a broken stream (see its stderr)"}
	case i.inOff != len(i.in):
		ce = &CallError{Kind: KindProtocol, Message: fmt.Sprintf("function left %d bytes of the request unread", len(i.in)-i.inOff)}
	case !c.done:
		ce = &CallError{Kind: KindProtocol, Message: fnproto.ExportServe + " returned without ending the request"}
	}
	i.endCall(c, ce)
	return c.outcome()
}

// enterServe calls mu_serve, turning a host panic into an error.
func (r *reactor) enterServe() (ret int32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("host panic: %v", p)
		}
	}()
	v, err := r.serve.Call(r.i.store)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int32)
	return n, nil
}

// close waits for a call in progress (i.quit has woken it if it sleeps) and
// frees the store.
func (r *reactor) close() {
	r.closeOnce.Do(func() {
		i := r.i
		i.callMu.Lock()
		defer i.callMu.Unlock()
		i.dead.Store(true)
		i.flushStderr()
		i.store.Close()
	})
}
