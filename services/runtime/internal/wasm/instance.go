package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// WASI errno values used by the shadowed imports.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
)

// ErrRequestTooLarge is returned by Call when the encoded request does not fit in one frame.
var ErrRequestTooLarge = errors.New("wasm: request exceeds the maximum frame size")

// LogSource tells where a log line came from.
type LogSource int

const (
	// SourceLog is a Log message of the protocol.
	SourceLog LogSource = iota + 1
	// SourceStderr is a line the function wrote to stderr.
	SourceStderr
)

// Log is one log line of an instance.
type Log struct {
	Source LogSource
	Level  fnproto.LogLevel
	Body   string
}

// Handler answers the db, storage and HTTP requests a function sends during
// a call. It returns the reply message (DbError or StorageError for failures
// the function should see); a returned error aborts the call (a context error
// as a deadline, anything else as a crash of the host side). It runs on the
// instance's goroutine and must honour ctx.
type Handler func(ctx context.Context, m fnproto.Message) (fnproto.Message, error)

// InstanceConfig describes one instance.
type InstanceConfig struct {
	// MemoryLimit caps the instance's linear memory, in bytes (0 = wasmtime's default).
	MemoryLimit uint64
	// Env is the WASI environment.
	Env map[string]string
	// Args is argv; empty means a single "function".
	Args []string
	// Log receives Log messages and stderr lines. It is called on the
	// instance's goroutine and must not block. Nil drops logs.
	Log func(Log)
}

// Limits bound one call.
type Limits struct {
	// Fuel is the call's fuel budget (wasmtime fuel, about one unit per instruction).
	Fuel uint64
	// Timeout is the call's wall-clock budget.
	Timeout time.Duration
}

// Result is the outcome of a successful call.
type Result struct {
	Response fnproto.Response
	// Fuel is the fuel the call consumed (including the instance's start-up
	// fuel on its first call).
	Fuel uint64
}

// Instance is one running module. It serves one call at a time; Call is
// safe to use from any goroutine but calls are serialised.
type Instance struct {
	e      *Engine
	mod    *Module
	cfg    InstanceConfig
	store  *wasmtime.Store
	mem    *wasmtime.Memory
	module string

	calls   chan *call
	quit    chan struct{}
	exited  chan struct{}
	readyCh chan struct{}

	closeOnce sync.Once
	callMu    sync.Mutex
	dead      atomic.Bool
	served    atomic.Uint64
	memSize   atomic.Uint64

	serve *wasmtime.Func // mu_serve, in reactor mode

	// Start-up measurements, valid once NewInstance returned.
	StartupFuel uint64
	StartupTime time.Duration
	startErr    *CallError

	// Owned by the instance goroutine.
	ready          bool
	cur            *call
	in             []byte
	inOff          int
	out            []byte
	stderr         []byte
	deadline       time.Time
	trapReason     *CallError
	pendingStartup uint64
	created        time.Time
}

type call struct {
	ctx     context.Context
	frame   []byte
	handler Handler
	limits  Limits
	done    bool
	resp    *fnproto.Response
	err     *CallError
	fuel    uint64
	result  chan struct{}
}

// keepFunctionError puts the FatalError the guest sent before it went away
// (if any) in front of ce's message, so its own words are not lost.
func (c *call) keepFunctionError(ce *CallError) {
	if c.err != nil && c.err.Kind == KindFunctionError {
		ce.Message = c.err.Message + " (then: " + ce.Message + ")"
	}
}

// NewInstance instantiates mod and runs its start-up (the guest's own
// initialisation) until it first reads stdin, within the engine's
// StartupFuel and StartupTimeout. It blocks until the instance is ready.
func (e *Engine) NewInstance(ctx context.Context, mod *Module, cfg InstanceConfig) (*Instance, error) {
	i := &Instance{
		e:       e,
		mod:     mod,
		cfg:     cfg,
		calls:   make(chan *call),
		quit:    make(chan struct{}),
		exited:  make(chan struct{}),
		readyCh: make(chan struct{}),
		created: time.Now(),
	}
	i.store = wasmtime.NewStoreWithData(e.engine, i)
	wasi := wasmtime.NewWasiConfig()
	args := cfg.Args
	if len(args) == 0 {
		args = []string{"function"}
	}
	wasi.SetArgv(args)
	if len(cfg.Env) > 0 {
		keys := make([]string, 0, len(cfg.Env))
		vals := make([]string, 0, len(cfg.Env))
		for k, v := range cfg.Env {
			keys = append(keys, k)
			vals = append(vals, v)
		}
		wasi.SetEnv(keys, vals)
	}
	i.store.SetWasi(wasi)
	if cfg.MemoryLimit > 0 {
		i.store.Limiter(int64(cfg.MemoryLimit), -1, -1, -1, -1)
	}
	start := time.Now()
	if mod.reactor {
		i.startReactor()
		i.StartupTime = time.Since(start)
		if i.startErr != nil {
			i.Close()
			return nil, i.startErr
		}
		return i, nil
	}
	go i.run()
	select {
	case <-i.readyCh:
	case <-ctx.Done():
		i.Close()
		return nil, ctx.Err()
	}
	i.StartupTime = time.Since(start)
	if i.startErr != nil {
		i.Close()
		return nil, i.startErr
	}
	return i, nil
}

func (i *Instance) run() {
	defer close(i.exited)
	defer i.dead.Store(true)
	defer func() {
		if p := recover(); p != nil {
			i.finish(&CallError{Kind: KindCrash, Message: fmt.Sprintf("host panic: %v", p)})
		}
		i.store.Close()
	}()
	i.deadline = time.Now().Add(i.e.cfg.StartupTimeout)
	if err := i.store.SetFuel(i.e.cfg.StartupFuel); err != nil {
		i.finish(&CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()})
		return
	}
	i.store.SetEpochDeadline(i.e.deadlineTicks(i.e.cfg.StartupTimeout))
	inst, err := i.e.linker.Instantiate(i.store, i.mod.m)
	if err != nil {
		i.finish(i.classify(err))
		return
	}
	if ex := inst.GetExport(i.store, "memory"); ex != nil {
		i.mem = ex.Memory()
	}
	start := inst.GetFunc(i.store, "_start")
	if start == nil {
		i.finish(&CallError{Kind: KindCrash, Message: "module exports no _start function"})
		return
	}
	_, err = start.Call(i.store)
	select {
	case <-i.quit:
		if i.cur == nil && i.ready {
			return // asked to stop and the guest went away: a clean end
		}
	default:
	}
	i.finish(i.classify(err))
}

// finish ends the instance: the current call (or the start-up) gets ce.
func (i *Instance) finish(ce *CallError) {
	i.flushStderr()
	i.dead.Store(true)
	if i.cur != nil {
		c := i.cur
		i.cur = nil
		remaining, _ := i.store.GetFuel()
		ce.Fuel = i.takeStartupFuel() + sub(c.limits.Fuel, remaining)
		c.keepFunctionError(ce)
		c.err = ce
		close(c.result)
		return
	}
	if !i.ready {
		i.ready = true
		i.startErr = ce
		close(i.readyCh)
	}
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func (i *Instance) takeStartupFuel() uint64 {
	f := i.pendingStartup
	i.pendingStartup = 0
	return f
}

// classify turns what _start returned into a CallError.
func (i *Instance) classify(err error) *CallError {
	if i.trapReason != nil {
		return i.trapReason
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		if code := trap.Code(); code != nil {
			switch *code {
			case trapOutOfFuel:
				return &CallError{Kind: KindFuelExhausted, Message: "the call used its whole fuel budget"}
			case trapInterrupt:
				return &CallError{Kind: KindDeadline, Message: "the call ran past its wall-clock deadline"}
			}
		}
		if ce := i.memoryError(); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: "wasm trap: " + firstLine(trap.Message())}
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok {
			if ce := i.memoryError(); ce != nil {
				return ce
			}
			return &CallError{Kind: KindCrash, Message: fmt.Sprintf("function exited with status %d", status)}
		}
		if ce := i.memoryError(); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: firstLine(werr.Error())}
	}
	if err != nil {
		return &CallError{Kind: KindCrash, Message: firstLine(err.Error())}
	}
	return &CallError{Kind: KindCrash, Message: "function returned from _start"}
}

// Trap codes as numbered by wasmtime's C API (wasmtime/trap.h). The Go
// binding's own constants stop before WASMTIME_TRAP_CODE_ALWAYS_TRAP_ADAPTER,
// so its OutOfFuel is off by one; these follow the header.
const (
	trapInterrupt wasmtime.TrapCode = 10
	trapOutOfFuel wasmtime.TrapCode = 12
)

// growSlack is how close to its limit an instance's memory must be for a
// crash to be reported as the memory limit: one allocation step of the Go
// runtime on wasm (4 MiB arenas) plus a page. wasmtime's C API gives no
// callback for a refused memory.grow, so this is the signal we have.
const growSlack = 4<<20 + 64<<10

func (i *Instance) memoryError() *CallError {
	if i.cfg.MemoryLimit == 0 || i.mem == nil {
		return nil
	}
	size := uint64(i.mem.DataSize(i.store))
	if size+growSlack > i.cfg.MemoryLimit {
		return &CallError{Kind: KindMemoryLimit, Message: fmt.Sprintf("linear memory reached %d bytes of its %d-byte limit (memory_limit)", size, i.cfg.MemoryLimit)}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		return s[:j]
	}
	return s
}

// Call runs function on the instance with req and returns the response and
// the fuel used. A *CallError reports a failed call; unless it is a
// KindFunctionError the instance is dead afterwards (Alive reports false).
// ctx cancellation and lim.Timeout both bound the call.
func (i *Instance) Call(ctx context.Context, function string, req *fnproto.Request, h Handler, lim Limits) (*Result, error) {
	frame, err := fnproto.AppendFrame(nil, &fnproto.ExecuteFunction{Function: function, Request: *req})
	if err != nil {
		return nil, fmt.Errorf("wasm: encode request: %w", err)
	}
	if len(frame)-4 > i.e.cfg.MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRequestTooLarge, len(frame)-4, i.e.cfg.MaxFrameSize)
	}
	if lim.Fuel == 0 || lim.Timeout <= 0 {
		return nil, fmt.Errorf("wasm: call limits must be positive (fuel %d, timeout %s)", lim.Fuel, lim.Timeout)
	}
	i.callMu.Lock()
	defer i.callMu.Unlock()
	if i.dead.Load() {
		return nil, &CallError{Kind: KindUnavailable, Message: "instance is no longer running"}
	}
	cctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	if i.mod.reactor {
		return i.callReactor(cctx, frame, h, lim)
	}
	c := &call{ctx: cctx, frame: frame, handler: h, limits: lim, result: make(chan struct{})}
	select {
	case i.calls <- c:
	case <-i.exited:
		return nil, &CallError{Kind: KindUnavailable, Message: "instance is no longer running"}
	case <-cctx.Done():
		return nil, &CallError{Kind: KindUnavailable, Message: "instance busy until the deadline"}
	}
	// Epoch interruption and the host's own deadline checks end a call in
	// time; this timer only catches a host call that ignored its context.
	grace := time.NewTimer(lim.Timeout + i.e.cfg.StartupTimeout)
	defer grace.Stop()
	select {
	case <-c.result:
	case <-grace.C:
		i.dead.Store(true)
		go i.Close()
		return nil, &CallError{Kind: KindDeadline, Message: "the call ran past its wall-clock deadline and the instance did not stop"}
	}
	i.served.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return &Result{Response: *c.resp, Fuel: c.fuel}, nil
}

// Alive reports whether the instance can take calls.
func (i *Instance) Alive() bool { return !i.dead.Load() }

// Calls is the number of calls the instance has served.
func (i *Instance) Calls() uint64 { return i.served.Load() }

// Module returns the module the instance runs.
func (i *Instance) Module() *Module { return i.mod }

// MemorySize is the current size of the instance's linear memory in bytes,
// as measured at start-up and after each call.
func (i *Instance) MemorySize() uint64 { return i.memSize.Load() }

// Close asks the guest to stop (its stdin reaches EOF) and waits, at most
// the engine's StartupTimeout, for it to end. Safe to call twice and from
// any goroutine; a Close during a call ends that call.
func (i *Instance) Close() {
	if i.mod.reactor {
		i.closeOnce.Do(func() {
			close(i.quit) // wakes a call sleeping in poll_oneoff
			i.callMu.Lock()
			defer i.callMu.Unlock()
			i.dead.Store(true)
			i.flushStderr()
			i.store.Close()
			close(i.exited)
		})
		return
	}
	i.closeOnce.Do(func() { close(i.quit) })
	t := time.NewTimer(i.e.cfg.StartupTimeout + time.Second)
	defer t.Stop()
	select {
	case <-i.exited:
	case <-t.C:
	}
}

// ---- the shadowed WASI imports, running on the instance goroutine ----

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

func (i *Instance) fail(kind ErrorKind, format string, args ...any) *wasmtime.Trap {
	if i.trapReason == nil {
		i.trapReason = &CallError{Kind: kind, Message: fmt.Sprintf(format, args...)}
	}
	return wasmtime.NewTrap(i.trapReason.Message)
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

func (i *Instance) fdRead(caller *wasmtime.Caller, fd, iovs, iovsLen, nread int32) (int32, *wasmtime.Trap) {
	if fd != 0 {
		return errnoBadf, nil
	}
	for i.inOff == len(i.in) {
		if i.cur != nil && !i.cur.done {
			return 0, i.fail(KindProtocol, "function read stdin while no reply was pending (did it send a request the host does not answer?)")
		}
		if i.mod.reactor {
			// Between calls a reactor's stdin is empty: EOF, never a wait.
			if !putU32(i.memory(caller), nread, 0) {
				return errnoFault, nil
			}
			return errnoSuccess, nil
		}
		if i.cur != nil {
			i.complete()
		} else if !i.ready {
			remaining, _ := i.store.GetFuel()
			i.StartupFuel = sub(i.e.cfg.StartupFuel, remaining)
			i.pendingStartup = i.StartupFuel
			i.recordMemory()
			i.ready = true
			close(i.readyCh)
		}
		if !i.next() {
			if !putU32(i.memory(caller), nread, 0) {
				return errnoFault, nil
			}
			return errnoSuccess, nil // EOF: the host is done with this instance
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
	return errnoSuccess, nil
}

// complete hands the finished call back to its caller.
func (i *Instance) complete() {
	c := i.cur
	i.cur = nil
	remaining, _ := i.store.GetFuel()
	c.fuel = i.takeStartupFuel() + sub(c.limits.Fuel, remaining)
	if c.err != nil {
		c.err.Fuel = c.fuel
	}
	i.recordMemory()
	close(c.result)
}

func (i *Instance) recordMemory() {
	if i.mem != nil {
		i.memSize.Store(uint64(i.mem.DataSize(i.store)))
	}
}

// next waits for the next call (true) or for Close (false).
func (i *Instance) next() bool {
	select {
	case c := <-i.calls:
		i.cur = c
		i.in = append(i.in[:0], c.frame...)
		i.inOff = 0
		i.deadline = time.Now().Add(c.limits.Timeout)
		if err := i.store.SetFuel(c.limits.Fuel); err != nil {
			c.err = &CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()}
			c.done = true
		}
		// Compiled code caches the epoch deadline it loaded on function
		// entry and rereads the store's value only when that cached value
		// has passed. Every function entered from here on sees the new
		// deadline; a loop already running in the guest's serving function
		// is bounded by the previous deadline (the last call's, or start-up's),
		// and Call's grace timer is the last resort.
		i.store.SetEpochDeadline(i.e.deadlineTicks(c.limits.Timeout))
		return true
	case <-i.quit:
		// Give a guest that ignores EOF a bounded amount of work before it is stopped.
		i.deadline = time.Now().Add(i.e.cfg.StartupTimeout)
		_ = i.store.SetFuel(i.e.cfg.StartupFuel)
		i.store.SetEpochDeadline(i.e.deadlineTicks(i.e.cfg.StartupTimeout))
		return false
	}
}

func (i *Instance) fdWrite(caller *wasmtime.Caller, fd, iovs, iovsLen, nwritten int32) (int32, *wasmtime.Trap) {
	if fd != 1 && fd != 2 {
		return errnoBadf, nil
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

func (i *Instance) emit(l Log) {
	if i.cfg.Log != nil {
		i.cfg.Log(l)
	}
}

// drainStderr emits complete lines (and, with all, the rest), cutting lines
// longer than MaxStderrLine.
func (i *Instance) drainStderr(all bool) {
	max := i.e.cfg.MaxStderrLine
	for {
		j := bytes.IndexByte(i.stderr, '\n')
		if j < 0 {
			if len(i.stderr) > max {
				j = max
			} else {
				break
			}
		}
		line := i.stderr[:j]
		if len(line) > max {
			line = line[:max]
		}
		i.emit(Log{Source: SourceStderr, Level: fnproto.LogLevelError, Body: string(line)})
		if j < len(i.stderr) && i.stderr[j] == '\n' {
			j++
		}
		i.stderr = i.stderr[j:]
	}
	if all && len(i.stderr) > 0 {
		i.emit(Log{Source: SourceStderr, Level: fnproto.LogLevelError, Body: string(i.stderr)})
		i.stderr = i.stderr[:0]
	}
}

func (i *Instance) flushStderr() { i.drainStderr(true) }

// ---- reactor mode ----
//
// A module that exports _initialize, mu_init and mu_serve (the Go SDK built
// with -buildmode=c-shared) is a reactor: instead of parking _start in
// fd_read on a goroutine of its own, the instance is entered once per call,
// on the caller's goroutine, through mu_serve. The frames on stdin and
// stdout are the same; what goes away are the two hand-offs between
// threads per call (the wasm stack of a parked _start lives on its own
// locked OS thread) and the thread each idle instance holds.

// startReactor instantiates the module and runs _initialize and mu_init
// within the start-up budget, on the calling goroutine.
func (i *Instance) startReactor() {
	defer func() {
		if p := recover(); p != nil {
			i.startErr = &CallError{Kind: KindCrash, Message: fmt.Sprintf("host panic: %v", p)}
		}
		if i.startErr != nil {
			i.dead.Store(true)
			i.flushStderr()
		}
	}()
	i.deadline = time.Now().Add(i.e.cfg.StartupTimeout)
	if err := i.store.SetFuel(i.e.cfg.StartupFuel); err != nil {
		i.startErr = &CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()}
		return
	}
	i.store.SetEpochDeadline(i.e.deadlineTicks(i.e.cfg.StartupTimeout))
	inst, err := i.e.linker.Instantiate(i.store, i.mod.m)
	if err != nil {
		i.startErr = i.classify(err)
		return
	}
	if ex := inst.GetExport(i.store, "memory"); ex != nil {
		i.mem = ex.Memory()
	}
	for _, name := range []string{"_initialize", fnproto.ExportInit} {
		if _, err := inst.GetFunc(i.store, name).Call(i.store); err != nil {
			i.startErr = i.classify(err)
			i.startErr.Message = name + ": " + i.startErr.Message
			return
		}
	}
	i.serve = inst.GetFunc(i.store, fnproto.ExportServe)
	remaining, _ := i.store.GetFuel()
	i.StartupFuel = sub(i.e.cfg.StartupFuel, remaining)
	i.pendingStartup = i.StartupFuel
	i.recordMemory()
	i.ready = true
}

// callReactor runs one call through mu_serve on the calling goroutine. The
// caller holds callMu.
func (i *Instance) callReactor(ctx context.Context, frame []byte, h Handler, lim Limits) (res *Result, err error) {
	c := &call{ctx: ctx, frame: frame, handler: h, limits: lim}
	i.cur = c
	i.in = append(i.in[:0], frame...)
	i.inOff = 0
	i.trapReason = nil
	i.deadline = time.Now().Add(lim.Timeout)
	if err := i.store.SetFuel(lim.Fuel); err != nil {
		i.cur = nil
		return nil, &CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()}
	}
	i.store.SetEpochDeadline(i.e.deadlineTicks(lim.Timeout))

	ret, callErr := i.enterServe()
	remaining, _ := i.store.GetFuel()
	fuel := i.takeStartupFuel() + sub(lim.Fuel, remaining)
	i.cur = nil
	i.served.Add(1)

	var ce *CallError
	switch {
	case callErr != nil:
		ce = i.classify(callErr)
		c.keepFunctionError(ce)
	case ret != 0:
		ce = &CallError{Kind: KindProtocol, Message: "function reported a broken stream (see its stderr)"}
	case i.inOff != len(i.in):
		ce = &CallError{Kind: KindProtocol, Message: fmt.Sprintf("function left %d bytes of the request unread", len(i.in)-i.inOff)}
	case !c.done:
		ce = &CallError{Kind: KindProtocol, Message: fnproto.ExportServe + " returned without ending the request"}
	}
	if ce != nil {
		ce.Fuel = fuel
		i.dead.Store(true)
		i.flushStderr()
		return nil, ce
	}
	i.recordMemory()
	if c.err != nil {
		c.err.Fuel = fuel
		return nil, c.err
	}
	return &Result{Response: *c.resp, Fuel: fuel}, nil
}

// enterServe calls mu_serve, turning a host panic into an error.
func (i *Instance) enterServe() (ret int32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("host panic: %v", p)
		}
	}()
	v, err := i.serve.Call(i.store)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int32)
	return n, nil
}
