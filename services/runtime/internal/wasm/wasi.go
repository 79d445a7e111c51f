package wasm

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

const wasiModule = "wasi_snapshot_preview1"

// WASI errno values used by the shadowed imports.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
)

// newLinker defines WASI preview 1 and shadows the imports through which a
// function talks to the host or waits:
//   - fd_read and fd_write on stdin/stdout/stderr carry the protocol and logs
//     without touching files (WasiConfig only takes file paths for stdio);
//   - poll_oneoff sleeps on the host clock but gives up at the call's
//     deadline, since epoch interruption cannot stop a blocked host call;
//   - random_get is charged fuel per byte (RandomBytesPerFuel), since
//     filling a large buffer with randomness is real work for one operator.
//
// Each of them checks the call's wall-clock deadline and charges fuel for
// the bytes it moves (chargeHost), so a guest looping over host calls gets
// neither more time nor more work than its budgets allow.
//
// The linker is shared by every instance of the engine; each callback finds
// its instance through the store's data. Callbacks run on the goroutine that
// is inside the guest: the caller of Call in reactor mode, the instance's
// own goroutine in command mode (see mode).
//
// A taped linker (taped true, for instances with InstanceConfig.Tape) also
// shadows clock_time_get and answers random_get through the tape
// (tape.go), so that the values the guest reads are recorded or replayed.
func newLinker(engine *wasmtime.Engine, taped bool) (*wasmtime.Linker, error) {
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
		{"random_get", func(c *wasmtime.Caller, buf, n int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).randomGet(c, buf, n)
		}},
	}
	if taped {
		defs[3].fn = func(c *wasmtime.Caller, buf, n int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).randomGetTaped(c, buf, n)
		}
		defs = append(defs, struct {
			name string
			fn   any
		}{"clock_time_get", func(c *wasmtime.Caller, id int32, precision int64, out int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).clockTimeGet(c, id, precision, out)
		}})
	}
	for _, d := range defs {
		if err := l.FuncWrap(wasiModule, d.name, d.fn); err != nil {
			return nil, fmt.Errorf("wasm: shadow %s: %w", d.name, err)
		}
	}
	return l, nil
}

func instanceOf(c *wasmtime.Caller) *Instance { return c.Data().(*Instance) }

func (i *Instance) memory(caller *wasmtime.Caller) []byte {
	if i.mem == nil {
		if ex := caller.GetExport("memory"); ex != nil {
			i.mem = ex.Memory()
		}
		if i.mem == nil {
			return nil
		}
	}
	return i.mem.UnsafeData(caller)
}

// iovecs calls fn for each (ptr, len) of a WASI iovec array, checking bounds.
func iovecs(mem []byte, iovs, n int32, fn func(buf []byte) bool) bool {
	if iovs < 0 || n < 0 || int64(iovs)+int64(n)*8 > int64(len(mem)) {
		return false
	}
	for k := int32(0); k < n; k++ {
		off := int(iovs) + int(k)*8
		p := binary.LittleEndian.Uint32(mem[off:])
		l := binary.LittleEndian.Uint32(mem[off+4:])
		if uint64(p)+uint64(l) > uint64(len(mem)) {
			return false
		}
		if !fn(mem[p : p+l]) {
			break
		}
	}
	return true
}

func putU32(mem []byte, ptr int32, v uint32) bool {
	if ptr < 0 || int(ptr)+4 > len(mem) {
		return false
	}
	binary.LittleEndian.PutUint32(mem[ptr:], v)
	return true
}

// fdRead implements WASI fd_read on stdin: the guest reads the current
// call's request frame, then the host's replies to its requests. A read
// past all of that while the request is not ended (no FunctionResult or
// FatalError yet) is a protocol error: nothing would ever answer it.
// Otherwise the mode decides what the read gets (refill): end of file for
// a reactor; for a parked command, the end of the call or of the start-up,
// then the next request (or end of file once the instance is closed).
func (i *Instance) fdRead(caller *wasmtime.Caller, fd, iovs, iovsLen, nread int32) (int32, *wasmtime.Trap) {
	if fd != 0 {
		return errnoBadf, nil
	}
	if i.cur != nil && !i.cur.done {
		if trap := i.checkDeadline("fd_read"); trap != nil {
			return 0, trap
		}
	}
	for i.inOff == len(i.in) {
		if i.cur != nil && !i.cur.done {
			return 0, i.fail(KindProtocol, "function read stdin while no reply was pending (did it send a request the host does not answer?)")
		}
		if !i.mode.refill() {
			if !putU32(i.memory(caller), nread, 0) {
				return errnoFault, nil
			}
			return errnoSuccess, nil // EOF
		}
	}
	mem := i.memory(caller)
	total := 0
	if !iovecs(mem, iovs, iovsLen, func(buf []byte) bool {
		n := copy(buf, i.in[i.inOff:])
		i.inOff += n
		total += n
		return i.inOff < len(i.in)
	}) {
		return errnoFault, nil
	}
	if !putU32(mem, nread, uint32(total)) {
		return errnoFault, nil
	}
	if trap := i.chargeHost(i.bytesFuel(uint64(total))); trap != nil {
		return 0, trap
	}
	return errnoSuccess, nil
}

// fdWrite implements WASI fd_write: stdout carries protocol frames
// (protocol.go), stderr log lines (log.go).
func (i *Instance) fdWrite(caller *wasmtime.Caller, fd, iovs, iovsLen, nwritten int32) (int32, *wasmtime.Trap) {
	if fd != 1 && fd != 2 {
		return errnoBadf, nil
	}
	if trap := i.checkDeadline("fd_write"); trap != nil {
		return 0, trap
	}
	mem := i.memory(caller)
	// Bytes are taken in pieces of at most one frame, each parsed before the
	// next is appended, so the buffers stay bounded whatever the guest writes.
	piece := i.e.cfg.MaxFrameSize
	if fd == 2 {
		piece = i.e.cfg.MaxStderrLine
	}
	total := 0
	var trap *wasmtime.Trap
	if !iovecs(mem, iovs, iovsLen, func(buf []byte) bool {
		total += len(buf)
		for len(buf) > 0 && trap == nil {
			n := min(len(buf), piece)
			if trap = i.chargeHost(i.bytesFuel(uint64(n))); trap != nil {
				break
			}
			if fd == 2 {
				i.stderr = append(i.stderr, buf[:n]...)
				i.drainStderr(false)
			} else {
				i.out = append(i.out, buf[:n]...)
				trap = i.drainFrames()
			}
			buf = buf[n:]
		}
		return trap == nil
	}) {
		return errnoFault, nil
	}
	if trap != nil {
		return 0, trap
	}
	if !putU32(mem, nwritten, uint32(total)) {
		return errnoFault, nil
	}
	return errnoSuccess, nil
}

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
	if trap := i.checkDeadline("poll_oneoff"); trap != nil {
		return 0, trap
	}
	if trap := i.chargeHost(i.bytesFuel(uint64(nsubs) * (subscriptionSize + eventSize))); trap != nil {
		return 0, trap
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

// sleep waits d, or fails the call at its deadline (setBudget) or when the
// instance is closed.
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

// randomGet implements WASI random_get from the host's cryptographic
// source, charging RandomBytesPerFuel before it fills the buffer.
func (i *Instance) randomGet(caller *wasmtime.Caller, buf, n int32) (int32, *wasmtime.Trap) {
	mem := i.memory(caller)
	if buf < 0 || n < 0 || int64(buf)+int64(n) > int64(len(mem)) {
		return errnoFault, nil
	}
	if trap := i.checkDeadline("random_get"); trap != nil {
		return 0, trap
	}
	if trap := i.chargeHost(uint64(n) / uint64(i.e.cfg.RandomBytesPerFuel)); trap != nil {
		return 0, trap
	}
	_, _ = rand.Read(mem[buf : buf+n]) // never fails (crypto/rand)
	return errnoSuccess, nil
}
