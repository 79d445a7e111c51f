// Package wasm hosts WebAssembly (WASI preview 1) functions on wasmtime.
//
// An Engine compiles modules (through an on-disk artifact cache), starts
// Instances and ticks the epoch clock that enforces wall-clock deadlines.
// An Instance runs one module and speaks the function protocol
// (libs/fnproto) with it over stdin/stdout: the host shadows WASI fd_read
// and fd_write, so request and reply bytes never touch a file. A reactor
// module (mu_init, mu_serve) is entered once per call on the caller's
// goroutine; a command module's _start runs on a goroutine of its own,
// parked in fd_read between calls. One instance serves calls one after
// another; fuel is reset at each request boundary so every call is metered
// exactly.
package wasm

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// EngineVersion names the wasmtime build; it is part of every artifact key
// because serialized modules only load into the engine that produced them.
const EngineVersion = "wasmtime-go/v39.0.1"

// Config holds the engine's settings. Every field has a default in
// DefaultConfig; zero values are replaced by the defaults in NewEngine.
type Config struct {
	// CacheDir is where compiled modules are stored as serialized artifacts.
	// Empty disables the disk cache (every module is compiled).
	CacheDir string
	// CacheMaxBytes is the disk budget of the artifact cache; the least
	// valuable artifacts (evict package) are removed beyond it.
	CacheMaxBytes int64
	// EpochTick is the resolution of wall-clock deadlines.
	EpochTick time.Duration
	// MaxFrameSize bounds every protocol frame in both directions, in bytes.
	MaxFrameSize int
	// MaxStderrLine bounds one line of a function's stderr kept for logs, in bytes.
	MaxStderrLine int
	// StartupFuel is the fuel an instance may burn before it is ready for
	// its first request (the guest's own initialisation).
	StartupFuel uint64
	// StartupTimeout bounds the wall-clock time of that initialisation.
	StartupTimeout time.Duration
	// MaxWasmStack is the wasm stack limit per instance, in bytes.
	MaxWasmStack int
	// OptLevel chooses Cranelift's optimisation level: "speed" or "none".
	OptLevel string
	// BulkBytesPerFuel is the price of bulk memory operations
	// (memory.fill, memory.copy, memory.init, memory.grow) and of the bytes
	// the host moves for a guest (fd_read, fd_write, poll_oneoff): one unit
	// of fuel per this many bytes. A power of two, at most 65536. Table
	// operations cost one unit per element. See instrument.go.
	BulkBytesPerFuel int
	// RandomBytesPerFuel is the price of random_get: one unit of fuel per
	// this many bytes (generating randomness costs more than copying).
	RandomBytesPerFuel int
	// DefaultMemoryLimit bounds an instance whose InstanceConfig.MemoryLimit is 0, in bytes.
	DefaultMemoryLimit uint64
	// MaxTableElements caps the elements of each table of an instance; each
	// element counts TableElementBytes against the instance's memory limit.
	MaxTableElements uint64
	// MaxTables caps the tables of a module; Compile refuses more.
	MaxTables int
	// MaxTrapFrames is how many wasm backtrace frames a trap's message keeps.
	MaxTrapFrames int
}

// TableElementBytes is what one table element costs against an instance's
// memory limit: wasmtime stores a funcref or externref element in one
// pointer-sized slot.
const TableElementBytes = 8

// DefaultConfig returns the defaults, each documented with its unit.
func DefaultConfig() Config {
	return Config{
		CacheDir:       "",                   // no disk cache unless configured
		CacheMaxBytes:  2 << 30,              // 2 GiB of compiled artifacts on disk
		EpochTick:      5 * time.Millisecond, // deadline resolution
		MaxFrameSize:   8 << 20,              // 8 MiB per protocol frame
		MaxStderrLine:  16 << 10,             // 16 KiB per stderr log line
		StartupFuel:    500_000_000,          // 0.5 G instructions for guest start-up
		StartupTimeout: 10 * time.Second,     // wall-clock bound on guest start-up
		MaxWasmStack:   1 << 20,              // 1 MiB wasm stack
		OptLevel:       "speed",

		BulkBytesPerFuel:   8,         // one fuel per 8 bytes filled, copied, grown or moved by the host
		RandomBytesPerFuel: 1,         // one fuel per random byte
		DefaultMemoryLimit: 256 << 20, // 256 MiB when an instance names no limit
		MaxTableElements:   1 << 20,   // 1 Mi elements (8 MiB) per table
		MaxTables:          4,         // tables per module
		MaxTrapFrames:      8,         // backtrace frames kept in a trap's message
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.CacheMaxBytes < 0:
		return fmt.Errorf("wasm: cache_max_bytes must not be negative, got %d", c.CacheMaxBytes)
	case c.EpochTick <= 0:
		return fmt.Errorf("wasm: epoch_tick must be positive, got %s", c.EpochTick)
	case c.MaxFrameSize < 64:
		return fmt.Errorf("wasm: max_frame_size must be at least 64 bytes, got %d", c.MaxFrameSize)
	case c.MaxStderrLine < 1:
		return fmt.Errorf("wasm: max_stderr_line must be positive, got %d", c.MaxStderrLine)
	case c.StartupFuel == 0:
		return errors.New("wasm: startup_fuel must be positive")
	case c.StartupTimeout <= 0:
		return fmt.Errorf("wasm: startup_timeout must be positive, got %s", c.StartupTimeout)
	case c.MaxWasmStack < 64<<10:
		return fmt.Errorf("wasm: max_wasm_stack must be at least 64 KiB, got %d", c.MaxWasmStack)
	case c.OptLevel != "speed" && c.OptLevel != "none":
		return fmt.Errorf("wasm: opt_level must be \"speed\" or \"none\", got %q", c.OptLevel)
	case c.BulkBytesPerFuel < 1 || c.BulkBytesPerFuel > 1<<16 || c.BulkBytesPerFuel&(c.BulkBytesPerFuel-1) != 0:
		return fmt.Errorf("wasm: bulk_bytes_per_fuel must be a power of two in [1, 65536], got %d", c.BulkBytesPerFuel)
	case c.RandomBytesPerFuel < 1:
		return fmt.Errorf("wasm: random_bytes_per_fuel must be positive, got %d", c.RandomBytesPerFuel)
	case c.DefaultMemoryLimit < 64<<10:
		return fmt.Errorf("wasm: default_memory_limit must be at least one page (64 KiB), got %d", c.DefaultMemoryLimit)
	case c.MaxTableElements < 1 || c.MaxTableElements > 1<<32:
		return fmt.Errorf("wasm: max_table_elements must be in [1, 2^32], got %d", c.MaxTableElements)
	case c.MaxTables < 1:
		return fmt.Errorf("wasm: max_tables must be at least 1, got %d", c.MaxTables)
	case c.MaxTrapFrames < 0:
		return fmt.Errorf("wasm: max_trap_frames must not be negative, got %d", c.MaxTrapFrames)
	}
	return nil
}

// Engine compiles modules and runs instances. It is safe for concurrent use.
type Engine struct {
	cfg         Config
	engine      *wasmtime.Engine
	linker      *wasmtime.Linker
	tapeLinker  *wasmtime.Linker // for instances with a Tape (tape.go)
	snapLinker  *wasmtime.Linker // for snapshot builds and pre-initialized instances (snapshot.go)
	fingerprint string
	cache       *artifactCache

	// The epoch clock: epoch is how many times the ticker has incremented
	// wasmtime's epoch since start, always time.Since(start)/EpochTick once
	// the ticker has caught up. epochMu orders increments (write) against
	// the deadlines computed from them (read).
	start   time.Time
	epochMu sync.RWMutex
	epoch   uint64

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewEngine builds a wasmtime engine with fuel metering and epoch
// interruption on, and starts its epoch ticker.
func NewEngine(cfg Config) (*Engine, error) {
	def := DefaultConfig()
	if cfg.CacheMaxBytes == 0 {
		cfg.CacheMaxBytes = def.CacheMaxBytes
	}
	if cfg.EpochTick == 0 {
		cfg.EpochTick = def.EpochTick
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = def.MaxFrameSize
	}
	if cfg.MaxStderrLine == 0 {
		cfg.MaxStderrLine = def.MaxStderrLine
	}
	if cfg.StartupFuel == 0 {
		cfg.StartupFuel = def.StartupFuel
	}
	if cfg.StartupTimeout == 0 {
		cfg.StartupTimeout = def.StartupTimeout
	}
	if cfg.MaxWasmStack == 0 {
		cfg.MaxWasmStack = def.MaxWasmStack
	}
	if cfg.OptLevel == "" {
		cfg.OptLevel = def.OptLevel
	}
	if cfg.BulkBytesPerFuel == 0 {
		cfg.BulkBytesPerFuel = def.BulkBytesPerFuel
	}
	if cfg.RandomBytesPerFuel == 0 {
		cfg.RandomBytesPerFuel = def.RandomBytesPerFuel
	}
	if cfg.DefaultMemoryLimit == 0 {
		cfg.DefaultMemoryLimit = def.DefaultMemoryLimit
	}
	if cfg.MaxTableElements == 0 {
		cfg.MaxTableElements = def.MaxTableElements
	}
	if cfg.MaxTables == 0 {
		cfg.MaxTables = def.MaxTables
	}
	if cfg.MaxTrapFrames == 0 {
		cfg.MaxTrapFrames = def.MaxTrapFrames
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wc := wasmtime.NewConfig()
	wc.SetConsumeFuel(true)
	wc.SetEpochInterruption(true)
	wc.SetMaxWasmStack(cfg.MaxWasmStack)
	opt := wasmtime.OptLevelSpeed
	if cfg.OptLevel == "none" {
		opt = wasmtime.OptLevelNone
	}
	wc.SetCraneliftOptLevel(opt)
	// Only the features instrument decodes (and Go's wasip1 output needs:
	// bulk memory; reference types and multi-value come with today's
	// LLVM-built modules). Off: multi-memory and memory64 (memory_limit
	// bounds one 32-bit memory), threads (a shared memory's atomic wait
	// blocks a thread beyond fuel and epochs), SIMD, GC, typed function
	// references, wide arithmetic (operators instrument does not know).
	wc.SetWasmBulkMemory(true)
	wc.SetWasmReferenceTypes(true)
	wc.SetWasmMultiValue(true)
	wc.SetWasmTailCall(true)
	wc.SetWasmMultiMemory(false)
	wc.SetWasmMemory64(false)
	wc.SetWasmThreads(false)
	wc.SetWasmSIMD(false)
	wc.SetWasmRelaxedSIMD(false)
	wc.SetWasmGC(false)
	wc.SetWasmFunctionReferences(false)
	wc.SetWasmWideArithmetic(false)
	e := &Engine{
		cfg:    cfg,
		engine: wasmtime.NewEngineWithConfig(wc),
		fingerprint: fmt.Sprintf("%s;fuel;epoch;stack=%d;opt=%s;features=mvp+bulk+ref+mv+tail;instrument=%d;bulk=%d",
			EngineVersion, cfg.MaxWasmStack, cfg.OptLevel, instrumentVersion, cfg.BulkBytesPerFuel),
		stop:  make(chan struct{}),
		start: time.Now(),
	}
	linker, err := newLinker(e.engine, false)
	if err != nil {
		return nil, err
	}
	e.linker = linker
	if e.tapeLinker, err = newLinker(e.engine, true); err != nil {
		return nil, err
	}
	if e.snapLinker, err = newSnapshotLinker(e.engine); err != nil {
		return nil, err
	}
	if cfg.CacheDir != "" {
		c, err := openArtifactCache(cfg.CacheDir, cfg.CacheMaxBytes)
		if err != nil {
			return nil, err
		}
		e.cache = c
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			c.verifyAll(e.stop)
		}()
	}
	e.wg.Add(1)
	go e.tick()
	return e, nil
}

// Fingerprint names the engine settings that decide how compiled code
// burns fuel (wasmtime version, fuel and epoch metering, wasm stack, opt
// level, features, the instrumentation and its bulk price). It is computed
// once, in NewEngine.
func (e *Engine) Fingerprint() string { return e.fingerprint }

// tick keeps wasmtime's epoch at time.Since(start)/EpochTick. The ticker
// only wakes it: the epoch is read off the monotonic clock, so ticks the
// ticker dropped or delivered late (a loaded machine) are caught up at the
// next wake instead of stretching every deadline.
func (e *Engine) tick() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.EpochTick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.advanceEpoch()
		}
	}
}

func (e *Engine) advanceEpoch() {
	target := uint64(time.Since(e.start) / e.cfg.EpochTick)
	e.epochMu.Lock()
	for e.epoch < target {
		e.engine.IncrementEpoch()
		e.epoch++
	}
	e.epochMu.Unlock()
}

// setEpochDeadline makes store trap once the epoch clock reaches now +
// timeout: at the first tick at or after that instant, never before it.
func (e *Engine) setEpochDeadline(store *wasmtime.Store, timeout time.Duration) {
	e.epochMu.RLock()
	defer e.epochMu.RUnlock()
	at := time.Since(e.start) + timeout
	ticks := uint64(at / e.cfg.EpochTick)
	if at%e.cfg.EpochTick != 0 {
		ticks++
	}
	// wasmtime sets the deadline relative to its current epoch, which is
	// e.epoch while the read lock holds increments off.
	store.SetEpochDeadline(max(ticks-min(ticks, e.epoch), 1))
}

// Close stops the epoch ticker. Instances must be closed first. Safe to call twice.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.wg.Wait()
	})
}

// bounds is how an instance's memory limit is split among what it can hold.
type bounds struct {
	limit         uint64 // the instance's memory limit
	memory        uint64 // what its linear memory may grow to
	tableElements uint64 // what each table may grow to (store limiter)
	tableStatic   uint64 // bytes of tables that cannot grow
}

// bounds splits limit (0: DefaultMemoryLimit) between the module's tables
// and its linear memory so that together they never hold more. The store
// limiter wasmtime offers bounds each memory and each table on its own, so
// the tables are given their largest possible size up front: their
// declared initial size if no function grows a table, else up to
// MaxTableElements each (or their declared maximum), at TableElementBytes
// per element; the linear memory gets the rest. Multi-memory is off, so a
// module has one memory at most, and the limiter allows one instance and
// one memory per store. An instance that cannot fit fails with
// KindMemoryLimit before anything runs.
func (e *Engine) bounds(sh moduleShape, limit uint64) (bounds, *CallError) {
	if limit == 0 {
		limit = e.cfg.DefaultMemoryLimit
	}
	b := bounds{limit: limit, tableElements: e.cfg.MaxTableElements}
	var reserve uint64
	for k, t := range sh.Tables {
		if t.Min > e.cfg.MaxTableElements {
			return b, &CallError{Kind: KindMemoryLimit, Message: fmt.Sprintf(
				"table %d starts with %d elements, more than max_table_elements (%d)", k, t.Min, e.cfg.MaxTableElements)}
		}
		n := t.Min
		if sh.TableGrow {
			n = e.cfg.MaxTableElements
			if t.HasMax && t.Max < n {
				n = max(t.Max, t.Min)
			}
			reserve += n * TableElementBytes
			continue
		}
		reserve += n * TableElementBytes
		b.tableStatic += n * TableElementBytes
	}
	if reserve >= limit || sh.MemoryMin*65536 > limit-reserve {
		return b, &CallError{Kind: KindMemoryLimit, Message: fmt.Sprintf(
			"the module needs %d bytes of tables and %d bytes of initial linear memory, more than its %d-byte memory_limit",
			reserve, sh.MemoryMin*65536, limit)}
	}
	b.memory = limit - reserve
	return b, nil
}
