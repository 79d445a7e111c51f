package wasm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

const wasiModule = "wasi_snapshot_preview1"

// newLinker defines WASI preview 1 and shadows the imports through which a
// function talks to the host or waits:
//   - fd_read and fd_write on stdin/stdout/stderr carry the protocol and logs
//     without touching files (WasiConfig only takes file paths for stdio);
//   - poll_oneoff sleeps on the host clock but gives up at the call's
//     deadline, since epoch interruption cannot stop a blocked host call.
//
// The linker is shared by every instance of the engine; each callback finds
// its instance through the store's data.
func newLinker(engine *wasmtime.Engine) (*wasmtime.Linker, error) {
	l := wasmtime.NewLinker(engine)
	if err := l.DefineWasi(); err != nil {
		return nil, fmt.Errorf("wasm: define wasi: %w", err)
	}
	l.AllowShadowing(true)
	defs := []struct {
		name string
		fn   any
	}{
		{"fd_read", func(c *wasmtime.Caller, fd, iovs, n, out int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).fdRead(c, fd, iovs, n, out)
		}},
		{"fd_write", func(c *wasmtime.Caller, fd, iovs, n, out int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).fdWrite(c, fd, iovs, n, out)
		}},
		{"poll_oneoff", func(c *wasmtime.Caller, in, out, nsubs, nevents int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).pollOneoff(c, in, out, nsubs, nevents)
		}},
	}
	for _, d := range defs {
		if err := l.FuncWrap(wasiModule, d.name, d.fn); err != nil {
			return nil, fmt.Errorf("wasm: shadow %s: %w", d.name, err)
		}
	}
	return l, nil
}

func instanceOf(c *wasmtime.Caller) *Instance { return c.Data().(*Instance) }

const (
	subscriptionSize = 48
	eventSize        = 32
	eventClock       = 0
	eventFdRead      = 1
	eventFdWrite     = 2
	clockRealtime    = 0
	subscriptionAbs  = 1
)

// pollOneoff implements WASI poll_oneoff: fd subscriptions are reported ready
// at once (stdio never blocks the guest here: reads are answered by the
// protocol); clock subscriptions sleep until the earliest timeout, bounded by
// the current deadline, after which the call fails as a deadline.
func (i *Instance) pollOneoff(caller *wasmtime.Caller, in, out, nsubs, nevents int32) (int32, *wasmtime.Trap) {
	mem := i.memory(caller)
	if nsubs <= 0 {
		return errnoInval, nil
	}
	if in < 0 || out < 0 || int64(in)+int64(nsubs)*subscriptionSize > int64(len(mem)) ||
		int64(out)+int64(nsubs)*eventSize > int64(len(mem)) || !putU32(mem, nevents, 0) {
		return errnoFault, nil
	}
	events := int32(0)
	writeEvent := func(userdata uint64, typ byte) {
		e := mem[int(out)+int(events)*eventSize:]
		clear(e[:eventSize])
		binary.LittleEndian.PutUint64(e[0:], userdata)
		e[10] = typ
		events++
	}
	var (
		soonest  = time.Duration(-1)
		soonUser []uint64
	)
	for k := int32(0); k < nsubs; k++ {
		s := mem[int(in)+int(k)*subscriptionSize:]
		userdata := binary.LittleEndian.Uint64(s[0:])
		switch tag := s[8]; tag {
		case eventClock:
			id := binary.LittleEndian.Uint32(s[16:])
			timeout := binary.LittleEndian.Uint64(s[24:])
			flags := binary.LittleEndian.Uint16(s[40:])
			d := time.Duration(min(timeout, uint64(1<<63-1)))
			if flags&subscriptionAbs != 0 {
				if id != clockRealtime {
					return errnoNotsup, nil
				}
				d = time.Until(time.Unix(0, int64(min(timeout, uint64(1<<63-1)))))
			}
			d = max(d, 0)
			switch {
			case soonest < 0 || d < soonest:
				soonest, soonUser = d, append(soonUser[:0], userdata)
			case d == soonest:
				soonUser = append(soonUser, userdata)
			}
		case eventFdRead, eventFdWrite:
			writeEvent(userdata, tag)
		default:
			return errnoInval, nil
		}
	}
	if events == 0 && soonest >= 0 {
		if trap := i.sleep(soonest); trap != nil {
			return 0, trap
		}
		mem = i.memory(caller)
		for _, u := range soonUser {
			writeEvent(u, eventClock)
		}
	}
	putU32(mem, nevents, uint32(events))
	return errnoSuccess, nil
}

// sleep waits d, or fails the call at its deadline or when the instance is closed.
func (i *Instance) sleep(d time.Duration) *wasmtime.Trap {
	if d == 0 {
		return nil
	}
	left := time.Until(i.deadline)
	if d > left {
		if left > 0 {
			t := time.NewTimer(left)
			select {
			case <-t.C:
			case <-i.quit:
				t.Stop()
			}
		}
		return i.fail(KindDeadline, "the call ran past its wall-clock deadline while sleeping")
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-i.quit:
		return i.fail(KindUnavailable, "instance closed while sleeping")
	}
}
