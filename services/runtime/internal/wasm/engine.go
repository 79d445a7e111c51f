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
}

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
	}
	return nil
}

// Engine compiles modules and runs instances. It is safe for concurrent use.
type Engine struct {
	cfg         Config
	engine      *wasmtime.Engine
	linker      *wasmtime.Linker
	fingerprint string
	cache       *artifactCache

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
	e := &Engine{
		cfg:         cfg,
		engine:      wasmtime.NewEngineWithConfig(wc),
		fingerprint: fmt.Sprintf("%s;fuel;epoch;stack=%d;opt=%s", EngineVersion, cfg.MaxWasmStack, cfg.OptLevel),
		stop:        make(chan struct{}),
	}
	linker, err := newLinker(e.engine)
	if err != nil {
		return nil, err
	}
	e.linker = linker
	if cfg.CacheDir != "" {
		c, err := openArtifactCache(cfg.CacheDir, cfg.CacheMaxBytes)
		if err != nil {
			return nil, err
		}
		e.cache = c
	}
	e.wg.Add(1)
	go e.tick()
	return e, nil
}

func (e *Engine) tick() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.EpochTick)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.engine.IncrementEpoch()
		}
	}
}

// deadlineTicks converts a wall-clock budget into epoch ticks (at least 1,
// plus one for the partially elapsed current tick).
func (e *Engine) deadlineTicks(d time.Duration) uint64 {
	n := uint64(d / e.cfg.EpochTick)
	if d%e.cfg.EpochTick != 0 {
		n++
	}
	return n + 1
}

// Close stops the epoch ticker. Instances must be closed first. Safe to call twice.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.wg.Wait()
	})
}
