package wasm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
)

// Handler answers the db, storage and HTTP requests a function sends during
// a call. It returns the reply message (DbError or StorageError for failures
// the function should see); a returned error aborts the call (a context error
// as a deadline, anything else as a crash of the host side). It runs on the
// goroutine that is inside the guest (the caller of Call in reactor mode, the
// instance's own goroutine in command mode) and must honour ctx.
type Handler func(ctx context.Context, m fnproto.Message) (fnproto.Message, error)

// InstanceConfig describes one instance.
type InstanceConfig struct {
	// MemoryLimit bounds all the memory the instance can hold, in bytes: its
	// linear memory and its tables (TableElementBytes per element); 0 means
	// the engine's DefaultMemoryLimit. See Engine.bounds.
	MemoryLimit uint64
	// Env is the WASI environment.
	Env map[string]string
	// Args is argv; empty means a single "function".
	Args []string
	// CallTimeout is the longest wall-clock budget a call of the instance
	// gets (0: unknown). A command module's start-up deadline is capped at
	// it: code running in the parked _start keeps the epoch deadline it
	// loaded at start-up, so a longer one would let a loop in _start
	// outlast a call's deadline.
	CallTimeout time.Duration
	// Log receives Log messages and stderr lines. It is called on the
	// goroutine that is inside the guest (see Handler), or on Close's for
	// stderr left unterminated at the end, never concurrently, and must not
	// block. Nil drops logs.
	Log func(Log)
	// Tape, if not nil, records or replays the values the instance reads
	// from WASI clock_time_get and random_get from its instantiation on
	// (tape.go). Nil: the host's clock and randomness, unrecorded.
	Tape *Tape
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
//
// How the guest is entered depends on the module (Module.Reactor):
//   - reactor mode (mode_reactor.go): a module exporting _initialize,
//     mu_init and mu_serve is started on NewInstance's goroutine and entered
//     once per call, through mu_serve, on the goroutine that called Call;
//   - command mode (mode_command.go): a module exporting only _start runs it
//     on a goroutine of its own, parked in fd_read between calls.
//
// Both modes share the start-up (startup), the budgets and fuel accounting
// (metering.go), the shadowed WASI calls (wasi.go), the protocol
// (protocol.go), logging (log.go) and the classification of failures
// (classify.go).
type Instance struct {
	e     *Engine
	mod   *Module
	cfg   InstanceConfig
	store *wasmtime.Store
	mem   *wasmtime.Memory
	mode  mode

	quit chan struct{}           // closed by Close
	exec fnproto.ExecuteFunction // the request being encoded by Call (under callMu)

	closeOnce sync.Once
	callMu    sync.Mutex
	dead      atomic.Bool
	served    atomic.Uint64
	memSize   atomic.Uint64
	memBase   atomic.Uintptr // where the linear memory starts and its size, recorded with memSize
	memLinear atomic.Uint64

	// The memory bound (Engine.bounds) and what measures it.
	memLimit    uint64            // memory_limit: linear memory and tables
	tableStatic uint64            // bytes of tables that cannot grow
	tables      []*wasmtime.Table // tables that can grow (exported by instrument)
	refused     *wasmtime.Global  // instrument's count of refused grows

	// Start-up measurements, valid once NewInstance returned.
	StartupFuel uint64
	StartupTime time.Duration
	startErr    *CallError

	// Owned by the goroutine that is inside the guest (see mode), one at a time.
	ready          bool // start-up is over
	cur            *call
	logCtx         context.Context // cur's context, until its last log line is out (endCall)
	in             []byte
	inOff          int
	out            []byte
	stderr         []byte
	deadline       time.Time
	budget         uint64 // fuel given to the store by the last setBudget
	lost           bool   // the store's count was lost: bill budget (classify)
	hostFuel       uint64 // fuel charged by the host, not yet taken from the store
	refusedAtStart int32  // refusals() when the current call began
	trapReason     *CallError
	pendingStartup uint64

	// Snapshots (snapshot.go): run records the start-up of a snapshot
	// build; clock continues the monotonic clock of a pre-initialized
	// module; wi is the wasmtime instance, read by the snapshot build.
	run   *snapRun
	clock snapClock
	wi    *wasmtime.Instance
}

// mode is how an instance enters its guest: reactor (mode_reactor.go) or
// command (mode_command.go). Everything else is shared.
type mode interface {
	// start runs the start-up (Instance.startup) and returns once it ended,
	// with i.startErr set if it failed. Its error is only ever ctx's.
	start(ctx context.Context) error
	// call runs c on the guest and returns its outcome. The caller holds
	// callMu and found the instance alive.
	call(c *call) (*Result, error)
	// refill is fd_read's answer to a guest that has read all its input
	// while no reply is pending: true once i.in holds more input (the next
	// request), false for end of file.
	refill() bool
	// close ends the instance after i.quit was closed. It is called by
	// every Close and must be safe to call many times.
	close()
}

type call struct {
	ctx     context.Context
	frame   []byte
	handler Handler
	limits  Limits
	done    bool // the function sent FunctionResult or FatalError
	resp    *fnproto.Response
	err     *CallError
	fuel    uint64
	first   bool          // the instance's first call, which is billed its start-up
	result  chan struct{} // command mode: closed when the call is over
}

// keepFunctionError puts the FatalError the guest sent before it went away
// (if any) in front of ce's message, so its own words are not lost.
func (c *call) keepFunctionError(ce *CallError) {
	if c.err != nil && c.err.Kind == KindFunctionError {
		ce.Message = c.err.Message + " (then: " + ce.Message + ")"
	}
}

// outcome is what Call returns for c once it has ended (endCall).
func (c *call) outcome() (*Result, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &Result{Response: *c.resp, Fuel: c.fuel}, nil
}

// NewInstance instantiates mod and runs its start-up (the guest's own
// initialisation: _initialize and mu_init in reactor mode, _start until it
// first reads stdin in command mode) within the engine's StartupFuel and
// StartupTimeout. It blocks until the instance is ready.
func (e *Engine) NewInstance(ctx context.Context, mod *Module, cfg InstanceConfig) (*Instance, error) {
	return e.newInstance(ctx, mod, cfg, nil)
}

// newInstance is NewInstance; run, if not nil, records the start-up of a
// snapshot build (snapshot.go).
func (e *Engine) newInstance(ctx context.Context, mod *Module, cfg InstanceConfig, run *snapRun) (*Instance, error) {
	i := &Instance{
		e:    e,
		mod:  mod,
		cfg:  cfg,
		quit: make(chan struct{}),
		run:  run,
	}
	if mod.reactor {
		i.mode = &reactor{i: i}
	} else {
		i.mode = newCommand(i)
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
	b, ce := e.bounds(mod.shape, cfg.MemoryLimit)
	if ce != nil {
		i.store.Close()
		return nil, ce
	}
	i.memLimit, i.tableStatic = b.limit, b.tableStatic
	i.store.Limiter(int64(b.memory), int64(b.tableElements), 1, int64(e.cfg.MaxTables), 1)
	start := time.Now()
	if err := i.mode.start(ctx); err != nil {
		i.Close()
		return nil, err
	}
	i.StartupTime = time.Since(start)
	if i.startErr != nil {
		i.Close()
		return nil, i.startErr
	}
	return i, nil
}

// startup is the start-up of both modes, run on the goroutine that enters
// the guest: it gives the store the start-up budget, instantiates the module
// and enters it through the mode's entry points (enter). The mode calls
// endStartup when the guest is ready: a reactor once mu_init has returned, a
// command at its first read of stdin, inside _start, which returns only when
// the instance ends. startup returns the error that ended the start-up (or,
// in command mode, the instance), nil for a reactor that started and a
// command that ended cleanly.
func (i *Instance) startup(enter func(*wasmtime.Instance) *CallError) *CallError {
	timeout := i.e.cfg.StartupTimeout
	if !i.mod.reactor && i.cfg.CallTimeout > 0 {
		timeout = min(timeout, i.cfg.CallTimeout)
	}
	if ce := i.setBudget(i.e.cfg.StartupFuel, timeout); ce != nil {
		return ce
	}
	linker := i.e.linker
	if i.cfg.Tape != nil {
		linker = i.e.tapeLinker
	} else if i.run != nil || i.mod.snapshot != nil {
		linker = i.e.snapLinker
	}
	i.clock.start(i.mod.snapshot)
	inst, err := linker.Instantiate(i.store, i.mod.m)
	if err != nil {
		return i.classify(err)
	}
	i.wi = inst
	if ex := inst.GetExport(i.store, "memory"); ex != nil {
		i.mem = ex.Memory()
	}
	if ex := inst.GetExport(i.store, growRefusedExport); ex != nil {
		i.refused = ex.Global()
	}
	if i.mod.shape.TableGrow {
		for t := range i.mod.shape.Tables {
			if ex := inst.GetExport(i.store, fmt.Sprintf(tableExportFmt, t)); ex != nil {
				i.tables = append(i.tables, ex.Table())
			}
		}
	}
	return enter(inst)
}

// endStartup ends the start-up: with ce nil the guest is ready for its first
// request and the fuel it burnt is kept for that call's bill; with ce the
// instance is dead and NewInstance returns ce, carrying the fuel the
// start-up burnt so that the call it was started for is billed for it.
func (i *Instance) endStartup(ce *CallError) {
	i.ready = true
	if ce != nil {
		ce.Fuel = i.fuelUsed()
		i.startErr = ce
		i.dead.Store(true)
		i.flushStderr()
		return
	}
	i.StartupFuel = i.fuelUsed()
	if s := i.mod.snapshot; s != nil {
		// Billed what the start-up burnt when the snapshot was taken (see
		// RATIONALE: "Snapshots bill the start-up they skip").
		i.StartupFuel = s.StartupFuel
	}
	i.pendingStartup = i.StartupFuel
	i.recordMemory()
}

// Call runs function on the instance with req and returns the response and
// the fuel used. A *CallError reports a failed call; unless it is a
// KindFunctionError the instance is dead afterwards (Alive reports false).
// ctx cancellation and lim.Timeout both bound the call.
func (i *Instance) Call(ctx context.Context, function string, req *fnproto.Request, h Handler, lim Limits) (*Result, error) {
	if lim.Fuel == 0 || lim.Timeout <= 0 {
		return nil, fmt.Errorf("wasm: call limits must be positive (fuel %d, timeout %s)", lim.Fuel, lim.Timeout)
	}
	i.callMu.Lock()
	defer i.callMu.Unlock()
	// The request is encoded into a buffer of its exact size, through a
	// message kept in the instance (callMu serialises its use).
	i.exec = fnproto.ExecuteFunction{Function: function, Request: *req}
	frame, err := fnproto.AppendFrame(make([]byte, 0, executeFrameLen(function, req)), &i.exec)
	i.exec = fnproto.ExecuteFunction{}
	if err != nil {
		return nil, fmt.Errorf("wasm: encode request: %w", err)
	}
	if len(frame)-4 > i.e.cfg.MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRequestTooLarge, len(frame)-4, i.e.cfg.MaxFrameSize)
	}
	if i.dead.Load() {
		return nil, &CallError{Kind: KindUnavailable, Message: "instance is no longer running"}
	}
	cctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	return i.mode.call(&call{ctx: cctx, frame: frame, handler: h, limits: lim, first: i.served.Load() == 0})
}

// executeFrameLen is the length of the ExecuteFunction frame of function
// and req: the frame header (u32 length, u16 kind), then Borsh strings and
// byte arrays as u32 length + bytes, maps and lists as u32 count + entries.
func executeFrameLen(function string, req *fnproto.Request) int {
	n := 4 + 2 + 4 + len(function) + 4 + len(req.Method) + 4 + 4 + 4 + 4 + len(req.Body)
	for k, v := range req.PathParams {
		n += 8 + len(k) + len(v)
	}
	for k, v := range req.QueryParams {
		n += 8 + len(k) + len(v)
	}
	for _, h := range req.Headers {
		n += 8 + len(h.Name) + len(h.Value)
	}
	return n
}

// begin makes c the current call: its request frame becomes the guest's
// stdin and its limits the store's budget. It runs on the goroutine that is
// inside the guest, before the guest reads the request.
func (i *Instance) begin(c *call) *CallError {
	i.cur = c
	i.logCtx = c.ctx
	i.in = append(i.in[:0], c.frame...)
	i.inOff = 0
	i.trapReason = nil
	i.refusedAtStart = i.refusals()
	return i.setBudget(c.limits.Fuel, c.limits.Timeout)
}

// endCall ends the current call c: it is billed its fuel (callFuel) and,
// when ce is set, fails with ce and takes the instance with it.
func (i *Instance) endCall(c *call, ce *CallError) {
	i.cur = nil
	c.fuel = i.callFuel()
	i.recordMemory()
	if ce != nil {
		c.err = ce
		i.dead.Store(true)
		i.flushStderr()
	}
	i.logCtx = nil
	if c.err != nil {
		c.err.Fuel = c.fuel
	}
}

func (i *Instance) recordMemory() {
	lin := i.linearSize()
	i.memLinear.Store(lin)
	i.memSize.Store(lin + i.tableBytes())
	if i.mem != nil {
		i.memBase.Store(uintptr(i.mem.Data(i.store)))
	}
}

// linearSize is the size of the instance's linear memory, in bytes.
func (i *Instance) linearSize() uint64 {
	if i.mem == nil {
		return 0
	}
	return uint64(i.mem.DataSize(i.store))
}

// tableBytes is what the instance's tables hold, at TableElementBytes per element.
func (i *Instance) tableBytes() uint64 {
	n := i.tableStatic
	for _, t := range i.tables {
		n += t.Size(i.store) * TableElementBytes
	}
	return n
}

// Alive reports whether the instance can take calls.
func (i *Instance) Alive() bool { return !i.dead.Load() }

// Calls is the number of calls the instance has served.
func (i *Instance) Calls() uint64 { return i.served.Load() }

// Module returns the module the instance runs.
func (i *Instance) Module() *Module { return i.mod }

// MemorySize is the memory the instance holds, in bytes: its linear memory
// and its tables (TableElementBytes per element), as measured at start-up
// and after each call. It is what counts against its memory limit.
func (i *Instance) MemorySize() uint64 { return i.memSize.Load() }

// ResidentBytes is the memory the instance holds of its own, in bytes:
// the pages of its linear memory that are resident (or swapped out) and
// private to it, which are the pages it has written since it started (the
// pages of its module's memory image, a snapshot's, that it has only read
// are shared by every instance of the module, and pages it never touched
// hold nothing), read from the kernel's page tables (/proc/self/pagemap),
// plus its tables. It is at most what MemorySize counts, and is
// MemorySize where the page tables cannot be read. It reads the state
// recorded at the end of the last call: call it on an idle instance (the
// pool does), since a running call changes it. Its cost is one read of 8
// bytes per page of linear memory.
func (i *Instance) ResidentBytes() uint64 {
	size, lin := i.memSize.Load(), i.memLinear.Load()
	lin = min(lin, size)
	b, ok := privatePages(i.memBase.Load(), lin)
	if !ok {
		return size
	}
	return min(b, lin) + size - lin
}

// Close ends the instance: a guest asleep in poll_oneoff wakes and fails; in
// reactor mode Close waits for a call in progress and frees the store; in
// command mode the parked _start reads end of file and Close waits, at most
// the engine's StartupTimeout and a second, for it to end. Safe to call twice
// and from any goroutine; a Close during a call ends that call.
func (i *Instance) Close() {
	i.closeOnce.Do(func() { close(i.quit) })
	i.mode.close()
}
