package wasm

import (
	"context"
	"errors"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// The function protocol on the host side: frames the guest writes on stdout
// are parsed as they complete and answered into its stdin (see fdRead).

// drainFrames handles every complete frame in i.out and keeps the rest.
func (i *Instance) drainFrames() *wasmtime.Trap {
	off := 0
	defer func() {
		if off > 0 {
			n := copy(i.out, i.out[off:])
			i.out = i.out[:n]
		}
	}()
	for off < len(i.out) {
		m, n, err := fnproto.ParseFrame(fnproto.FromFunction, i.out[off:], i.e.cfg.MaxFrameSize)
		if err != nil {
			return i.fail(KindProtocol, "function wrote an invalid frame on stdout: %v", err)
		}
		if m == nil {
			return nil
		}
		off += n
		if trap := i.handle(m); trap != nil {
			return trap
		}
	}
	return nil
}

// handle acts on one message of the guest: a Log is emitted, FunctionResult
// and FatalError end the request, anything else goes to the call's Handler
// and its reply is queued on stdin.
func (i *Instance) handle(m fnproto.Message) *wasmtime.Trap {
	if l, ok := m.(*fnproto.Log); ok {
		i.emit(Log{Source: SourceLog, Level: l.Level, Body: l.Body})
		return nil
	}
	c := i.cur
	if c == nil || c.done {
		return i.fail(KindProtocol, "function sent %s outside a request", fnproto.KindName(fnproto.FromFunction, m.Kind()))
	}
	switch m := m.(type) {
	case *fnproto.FunctionResult:
		c.resp = &m.Response
		c.done = true
		return nil
	case *fnproto.FatalError:
		c.err = &CallError{Kind: KindFunctionError, Message: m.Error}
		c.done = true
		return nil
	}
	if c.handler == nil {
		return i.fail(KindProtocol, "function sent %s but this call serves no host requests", fnproto.KindName(fnproto.FromFunction, m.Kind()))
	}
	if trap := i.checkDeadline(fnproto.KindName(fnproto.FromFunction, m.Kind())); trap != nil {
		return trap
	}
	reply, err := c.handler(c.ctx, m)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return i.fail(KindDeadline, "the call ran past its wall-clock deadline during %s", fnproto.KindName(fnproto.FromFunction, m.Kind()))
		}
		return i.fail(KindCrash, "host failed to serve %s: %v", fnproto.KindName(fnproto.FromFunction, m.Kind()), err)
	}
	if i.inOff == len(i.in) {
		i.in = i.in[:0]
		i.inOff = 0
	}
	i.in, err = fnproto.AppendFrame(i.in, reply)
	if err != nil {
		return i.fail(KindCrash, "host reply to %s: %v", fnproto.KindName(fnproto.FromFunction, m.Kind()), err)
	}
	return nil
}
