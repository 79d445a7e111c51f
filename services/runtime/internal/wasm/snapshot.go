package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Snapshots: start instances from a pre-initialized module (see RATIONALE:
// "Instances start from a snapshot of their start-up").
//
// A Go reactor spends almost all of its start-up (about 780k fuel, 2 ms for
// hello) in the Go runtime's own initialisation, and every instance repeats
// it. Snapshot runs the start-up (_initialize, then mu_init) once, in an
// instance given the environment and arguments its instances get, captures
// linear memory and every mutable global, and emits a module whose data
// segments hold that memory (zero pages left out), whose mutable globals
// start at the captured values, whose memory starts at the captured size
// and which has no start function. Its code is the original's, so the
// compiled code, and the fuel of every request, is the same as a normally
// started instance's. Its instances skip _initialize and mu_init (the
// module is marked pre-initialized in Module and in the artifact's
// metadata, never in the wasm, so a user module cannot claim it) and are
// billed, on their first call, the start-up fuel the snapshot build burnt.
//
// What the start-up may read, and what a snapshot does with it:
//   - random_get: allowed. The bytes are baked into the snapshot, so every
//     instance of it starts with the same runtime seeds (map hash seed,
//     the runtime's random generator and what math/rand draws from it).
//     The Go runtime reads randomness at start-up, so refusing it would
//     refuse every Go module; Wizer makes the same choice.
//   - clock_time_get on the monotonic clock: allowed. Instances of the
//     snapshot continue that clock from the last value the start-up read,
//     so it never goes backwards for the runtime that stored it.
//   - clock_time_get on the realtime (or a CPU-time) clock: refused, the
//     value would be the build's, not the instance's.
//   - fd_write (stdout or stderr): refused, the logs (or frames) would be
//     written once at build time instead of by every instance.
//   - fd_read on stdin: allowed, a reactor's stdin is at end of file during
//     start-up, in a snapshot build as in any instance.
//   - environ and args: allowed, the build gets those its instances get
//     (they are part of the snapshot's key).
//
// And what the module may do: it must be a reactor; it may not change a
// table (tables are not captured), have passive data segments (their
// dropped state is not captured) or mutable globals of a reference type.
// Each refusal is a *SnapshotRefusedError naming the reason; the caller
// falls back to the module's normal start.

// snapshotVersion changes whenever the snapshot build changes; it is part
// of the snapshot's artifact key.
const snapshotVersion = 1

// snapGlobalExportFmt names the exports instrument adds so that a build can
// read a module's mutable globals (by global index); the "mu:" prefix is
// reserved.
const snapGlobalExportFmt = "mu:snap:global:%d"

// snapPage is the granularity of the captured memory: runs of pages that
// are not all zero become data segments.
const snapPage = 65536

// ErrSnapshotRefused is wrapped by every *SnapshotRefusedError.
var ErrSnapshotRefused = errors.New("snapshot refused")

// SnapshotRefusedError reports why a module cannot start from a snapshot.
type SnapshotRefusedError struct {
	ID     string // the module's content id
	Reason string // e.g. "the start-up read the realtime clock (clock_time_get)"
}

func (e *SnapshotRefusedError) Error() string {
	return fmt.Sprintf("wasm: no snapshot of %s: %s", short(e.ID), e.Reason)
}

func (e *SnapshotRefusedError) Unwrap() error { return ErrSnapshotRefused }

// snapshotMeta is what a pre-initialized module's instances need to know
// about the build, kept in Module and in the artifact's metadata.
type snapshotMeta struct {
	Version int `json:"version"`
	// StartupFuel is the fuel the build's start-up burnt, billed to the
	// first call of every instance of the snapshot.
	StartupFuel uint64 `json:"startup_fuel"`
	// Monotonic is the last monotonic clock value the start-up read, in
	// nanoseconds: instances continue the clock from it.
	Monotonic uint64 `json:"monotonic_ns"`
	// RandomBytes is how many random bytes the start-up read (baked in).
	RandomBytes int `json:"random_bytes"`
	// MemoryPages is the captured memory size, in 64 KiB pages;
	// DataBytes the bytes of the data segments that hold it.
	MemoryPages uint64 `json:"memory_pages"`
	DataBytes   int    `json:"data_bytes"`
	// inputs are the clock and random values the build's start-up read,
	// in order (kept in memory only: a replay tape of them starts a normal
	// instance in the state the snapshot holds, see snapshot_test.go).
	inputs []TapeEntry
}

// SnapshotInfo describes a pre-initialized module (Module.Snapshot).
type SnapshotInfo struct {
	StartupFuel uint64 // billed to each instance's first call
	RandomBytes int    // random bytes baked in
	MemoryPages uint64 // captured memory size, in 64 KiB pages
	DataBytes   int    // bytes of data segments
}

// Snapshot reports whether m is pre-initialized, and how.
func (m *Module) Snapshot() (SnapshotInfo, bool) {
	s := m.snapshot
	if s == nil {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{StartupFuel: s.StartupFuel, RandomBytes: s.RandomBytes, MemoryPages: s.MemoryPages, DataBytes: s.DataBytes}, true
}

// SnapshotKey names the snapshot of module id for instances started with
// env and args (InstanceConfig.Env, Args): the start-up reads both, so they
// are part of the key. Instances whose configs have the same key can share
// one pre-initialized module.
func SnapshotKey(id string, env map[string]string, args []string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "snapshot/v%d\x00%s\x00", snapshotVersion, id)
	for _, k := range keys {
		fmt.Fprintf(h, "env\x00%d:%s\x00%d:%s\x00", len(k), k, len(env[k]), env[k])
	}
	for _, a := range snapshotArgs(args) {
		fmt.Fprintf(h, "arg\x00%d:%s\x00", len(a), a)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// snapshotArgs is the argv NewInstance gives for args.
func snapshotArgs(args []string) []string {
	if len(args) == 0 {
		return []string{"function"}
	}
	return args
}

// LoadSnapshot returns the pre-initialized module of content id id for
// instances with cfg's Env and Args from the artifact cache, or false when
// the cache (if any) holds none made by an identical engine.
func (e *Engine) LoadSnapshot(id string, cfg InstanceConfig) (*Module, bool) {
	if e.cache == nil {
		return nil, false
	}
	start := time.Now()
	m, meta, ok := e.cache.load(e.engine, artifactKey(SnapshotKey(id, cfg.Env, cfg.Args), e.fingerprint))
	if !ok {
		return nil, false
	}
	if meta.Snapshot == nil || !isReactor(m) {
		m.Close()
		return nil, false
	}
	mod := &Module{ID: id, WasmSize: meta.WasmSize, CompileTime: meta.CompileTime, FromCache: true, m: m, shape: meta.Shape, reactor: true, snapshot: meta.Snapshot}
	mod.LoadTime = time.Since(start)
	return mod, true
}

// SnapshotChecked reports whether the artifact cache holds the
// pre-initialized module of content id id for cfg's Env and Args and has
// checked its file since the engine started, so that LoadSnapshot maps it
// without reading it (see artifactCache).
func (e *Engine) SnapshotChecked(id string, cfg InstanceConfig) bool {
	return e.cache != nil && e.cache.checked(artifactKey(SnapshotKey(id, cfg.Env, cfg.Args), e.fingerprint))
}

// Snapshot returns the pre-initialized module of mod, the compiled module
// of wasm (content id mod.ID, verified by the caller), for instances
// started with cfg's Env, Args and MemoryLimit: from the artifact cache, or
// built by running mod's start-up once (within the engine's StartupFuel
// and StartupTimeout) and cached. A module that cannot be snapshotted gets
// a *SnapshotRefusedError (errors.Is ErrSnapshotRefused) saying why; a
// start-up that fails gets its *CallError. It blocks for the start-up and
// the compile of the snapshot module (the build runs mod itself: Compile
// exports every mutable global for it).
func (e *Engine) Snapshot(ctx context.Context, mod *Module, wasm []byte, cfg InstanceConfig) (*Module, error) {
	if cfg.Tape != nil {
		return nil, errors.New("wasm: a snapshot is built without a tape")
	}
	if mod.snapshot != nil {
		return nil, errors.New("wasm: the module is a snapshot already")
	}
	id := mod.ID
	if m, ok := e.LoadSnapshot(id, cfg); ok {
		return m, nil
	}
	snap, meta, err := e.buildSnapshot(ctx, mod, wasm, cfg)
	if err != nil {
		return nil, err
	}
	return e.compile(snap, id, artifactKey(SnapshotKey(id, cfg.Env, cfg.Args), e.fingerprint), meta)
}

// buildSnapshot runs the start-up of mod and returns the pre-initialized
// module's bytes (wasm rewritten) and metadata.
func (e *Engine) buildSnapshot(ctx context.Context, mod *Module, wasm []byte, cfg InstanceConfig) ([]byte, *snapshotMeta, error) {
	id := mod.ID
	refuse := func(format string, args ...any) error {
		return &SnapshotRefusedError{ID: id, Reason: fmt.Sprintf(format, args...)}
	}
	if !mod.reactor {
		return nil, nil, refuse("only reactor modules (_initialize, mu_init, mu_serve) start from a snapshot; a command's start-up ends inside _start")
	}
	layout, err := readSnapLayout(wasm)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %s: %v", ErrInvalidModule, short(id), err)
	}
	if layout.reason != "" {
		return nil, nil, refuse("%s", layout.reason)
	}
	if mod.shape.TableWrite {
		return nil, nil, refuse("the module changes a table (table.set, table.grow, table.fill, table.copy, table.init or elem.drop) and tables are not captured")
	}
	// The build is an instance like any other, with a recorder (snapRun)
	// watching what its start-up reads and writes.
	inst, err := e.newRecordedInstance(ctx, mod, cfg)
	if err != nil {
		return nil, nil, err
	}
	defer inst.Close()
	if inst.run.refused != "" {
		return nil, nil, refuse("%s", inst.run.refused)
	}
	globals := make(map[uint32][]byte, len(layout.mutable))
	for _, g := range layout.mutable {
		ex := inst.wi.GetExport(inst.store, fmt.Sprintf(snapGlobalExportFmt, g))
		if ex == nil || ex.Global() == nil {
			return nil, nil, fmt.Errorf("wasm: snapshot of %s: global %d is not exported (is the module compiled from these bytes?)", short(id), g)
		}
		c, ok := constExpr(ex.Global().Get(inst.store))
		if !ok {
			return nil, nil, refuse("global %d holds a reference, which cannot be captured", g)
		}
		globals[g] = c
	}
	var mem []byte
	if inst.mem != nil {
		mem = inst.mem.UnsafeData(inst.store)
	}
	segs, dataBytes := memorySegments(mem)
	pages := uint64(len(mem)) / snapPage
	out, err := emitSnapshot(wasm, layout, globals, pages, segs)
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: snapshot of %s: %w", short(id), err)
	}
	return out, &snapshotMeta{
		Version:     snapshotVersion,
		StartupFuel: inst.StartupFuel,
		Monotonic:   inst.run.monotonic,
		RandomBytes: inst.run.randomBytes,
		MemoryPages: pages,
		DataBytes:   dataBytes,
		inputs:      inst.run.inputs,
	}, nil
}

// newRecordedInstance starts mod with a recorder: NewInstance, with run set
// before the start-up.
func (e *Engine) newRecordedInstance(ctx context.Context, mod *Module, cfg InstanceConfig) (*Instance, error) {
	cfg.Log = nil // a build that writes is refused; nothing reaches a log
	return e.newInstance(ctx, mod, cfg, &snapRun{})
}

// snapRun records what a snapshot build's start-up reads and writes. It is
// used by the goroutine inside the guest only.
type snapRun struct {
	refused     string // the first reason the snapshot is refused
	monotonic   uint64 // the last monotonic clock value given
	randomBytes int
	inputs      []TapeEntry // every clock and random value given, in order
}

func (r *snapRun) refuse(reason string) {
	if r.refused == "" {
		r.refused = reason
	}
}

// snapClock is an instance's monotonic clock when it needs one of its own:
// a pre-initialized instance continues the clock from the snapshot's last
// reading (base), a snapshot build starts it at zero.
type snapClock struct {
	base  uint64
	since time.Time
}

func (c *snapClock) start(s *snapshotMeta) {
	c.since = time.Now()
	if s != nil {
		c.base = s.Monotonic
	}
}

// now is the monotonic clock: base plus the time since start, plus one
// (never zero).
func (c *snapClock) now() uint64 { return c.base + uint64(time.Since(c.since)) + 1 }

// newSnapshotLinker is the linker of snapshot builds and pre-initialized
// instances without a tape: the engine's linker, plus clock_time_get on
// the instance's own clock (snapClock), and a recorder of the start-up's
// clock reads, random reads and writes in a build (snapRun).
func newSnapshotLinker(engine *wasmtime.Engine) (*wasmtime.Linker, error) {
	l, err := newLinker(engine, false)
	if err != nil {
		return nil, err
	}
	defs := []struct {
		name string
		fn   any
	}{
		{"clock_time_get", func(c *wasmtime.Caller, id int32, precision int64, out int32) (int32, *wasmtime.Trap) {
			return instanceOf(c).snapClockTimeGet(c, id, out)
		}},
		{"random_get", func(c *wasmtime.Caller, buf, n int32) (int32, *wasmtime.Trap) {
			i := instanceOf(c)
			errno, trap := i.randomGet(c, buf, n)
			if i.run != nil && !i.ready && errno == errnoSuccess && trap == nil {
				i.run.randomBytes += int(n)
				i.run.inputs = append(i.run.inputs, TapeEntry{IsRandom: true, Random: append([]byte(nil), i.memory(c)[buf:buf+n]...)})
			}
			return errno, trap
		}},
		{"fd_write", func(c *wasmtime.Caller, fd, iovs, n, out int32) (int32, *wasmtime.Trap) {
			i := instanceOf(c)
			if i.run != nil && !i.ready {
				what := map[int32]string{1: "stdout", 2: "stderr"}[fd]
				if what == "" {
					what = fmt.Sprintf("fd %d", fd)
				}
				i.run.refuse("the start-up wrote to " + what + " (fd_write); its instances would not")
			}
			return i.fdWrite(c, fd, iovs, n, out)
		}},
	}
	for _, d := range defs {
		if err := l.FuncWrap(wasiModule, d.name, d.fn); err != nil {
			return nil, fmt.Errorf("wasm: shadow %s: %w", d.name, err)
		}
	}
	return l, nil
}

// snapClockTimeGet is WASI clock_time_get: the realtime clock is the host's,
// the monotonic clock the instance's (snapClock); a build refuses a
// start-up that reads any clock but the monotonic one.
func (i *Instance) snapClockTimeGet(caller *wasmtime.Caller, id int32, out int32) (int32, *wasmtime.Trap) {
	mem := i.memory(caller)
	if out < 0 || int64(out)+8 > int64(len(mem)) {
		return errnoFault, nil
	}
	building := i.run != nil && !i.ready
	var v uint64
	switch id {
	case clockRealtime:
		if building {
			i.run.refuse("the start-up read the realtime clock (clock_time_get); its instances would see the build's time")
		}
		v = uint64(time.Now().UnixNano())
	case clockMonotonic:
		v = i.clock.now()
		if building {
			i.run.monotonic = v
		}
	default:
		return errnoBadf, nil
	}
	if building {
		i.run.inputs = append(i.run.inputs, TapeEntry{Clock: v})
	}
	binary.LittleEndian.PutUint64(mem[out:], v)
	return errnoSuccess, nil
}

// snapLayout is what the build needs to know about the original module.
type snapLayout struct {
	globImports uint32
	globals     []snapGlobal // the defined globals, in order
	mutable     []uint32     // global indices of the mutable defined globals
	reason      string       // why the module cannot be snapshotted, if it cannot
}

type snapGlobal struct {
	typ     byte
	mutable bool
	init    []byte // the constant expression, with its end
}

// splitSections cuts a module into its sections (checked by the caller
// with ModuleValidate).
func splitSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, errors.New("not a WebAssembly 1.0 module")
	}
	r := &reader{b: wasm, off: 8}
	var secs []section
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		secs = append(secs, section{id: id, body: body})
	}
	return secs, r.err
}

func joinSections(secs []section) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range secs {
		out = append(out, s.id)
		out = appendLEB(out, uint64(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}

// constExprEnd skips a constant expression, returning false for an
// operator a constant expression cannot hold.
func (r *reader) constExprEnd() bool {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b:
			return true
		case 0x41:
			r.sleb(32)
		case 0x42:
			r.sleb(64)
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.u32()
		case 0xd0: // ref.null
			r.byte()
		default:
			r.fail("operator 0x%02x in a constant expression", op)
		}
	}
	return false
}

func readSnapLayout(wasm []byte) (*snapLayout, error) {
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, err
	}
	l := &snapLayout{}
	for _, s := range secs {
		r := &reader{b: s.body}
		switch s.id {
		case secImport:
			n := r.u32()
			for k := uint32(0); k < n && r.err == nil; k++ {
				r.bytes(int(r.u32()))
				r.bytes(int(r.u32()))
				switch kind := r.byte(); kind {
				case 0x00:
					r.u32()
				case 0x01:
					r.byte()
					r.limits("table")
				case 0x02:
					r.limits("memory")
				case 0x03:
					r.byte()
					if r.byte() != 0 && l.reason == "" {
						l.reason = "the module imports a mutable global"
					}
					l.globImports++
				}
			}
		case secGlobal:
			n := r.u32()
			for k := uint32(0); k < n && r.err == nil; k++ {
				g := snapGlobal{typ: r.byte(), mutable: r.byte() == 1}
				at := r.off
				r.constExprEnd()
				g.init = r.b[at:r.off]
				idx := l.globImports + k
				if g.mutable {
					if isRefType(g.typ) && l.reason == "" {
						l.reason = fmt.Sprintf("global %d is a mutable reference, which cannot be captured", idx)
					}
					l.mutable = append(l.mutable, idx)
				}
				l.globals = append(l.globals, g)
			}
		case secData:
			n := r.u32()
			for k := uint32(0); k < n && r.err == nil; k++ {
				switch flag := r.u32(); flag {
				case 0:
				case 2:
					r.u32()
				case 1:
					if l.reason == "" {
						l.reason = fmt.Sprintf("data segment %d is passive (memory.init, data.drop), and what the start-up dropped is not captured", k)
					}
					r.bytes(int(r.u32()))
					continue
				default:
					r.fail("data segment %d with flags %d", k, flag)
				}
				r.constExprEnd()
				r.bytes(int(r.u32()))
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, r.err)
		}
	}
	return l, nil
}

// constExpr is the constant expression of a captured value, false for a
// reference.
func constExpr(v wasmtime.Val) ([]byte, bool) {
	var b []byte
	switch v.Kind() {
	case wasmtime.KindI32:
		b = appendSLEB([]byte{0x41}, int64(v.I32()))
	case wasmtime.KindI64:
		b = appendSLEB([]byte{0x42}, v.I64())
	case wasmtime.KindF32:
		b = binary.LittleEndian.AppendUint32([]byte{0x43}, math.Float32bits(v.F32()))
	case wasmtime.KindF64:
		b = binary.LittleEndian.AppendUint64([]byte{0x44}, math.Float64bits(v.F64()))
	default:
		return nil, false
	}
	return append(b, 0x0b), true
}

// dataSegment is captured memory at an offset.
type dataSegment struct {
	offset uint32
	data   []byte
}

// memorySegments turns captured memory into data segments: each run of
// 64 KiB pages that are not all zero, trimmed of its leading and trailing
// zero bytes. It returns them with their total size.
func memorySegments(mem []byte) ([]dataSegment, int) {
	var segs []dataSegment
	total := 0
	zero := func(p int) bool {
		for _, c := range mem[p*snapPage : min((p+1)*snapPage, len(mem))] {
			if c != 0 {
				return false
			}
		}
		return true
	}
	pages := (len(mem) + snapPage - 1) / snapPage
	for p := 0; p < pages; {
		if zero(p) {
			p++
			continue
		}
		q := p + 1
		for q < pages && !zero(q) {
			q++
		}
		lo, hi := p*snapPage, min(q*snapPage, len(mem))
		for mem[lo] == 0 {
			lo++
		}
		for mem[hi-1] == 0 {
			hi--
		}
		segs = append(segs, dataSegment{offset: uint32(lo), data: mem[lo:hi]})
		total += hi - lo
		p = q
	}
	return segs, total
}

// emitSnapshot writes the pre-initialized module: wasm with its mutable
// globals initialised to globals, its memory's minimum set to pages, its
// data segments replaced by segs and no start function.
func emitSnapshot(wasm []byte, l *snapLayout, globals map[uint32][]byte, pages uint64, segs []dataSegment) ([]byte, error) {
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, err
	}
	data := appendLEB(nil, uint64(len(segs)))
	for _, s := range segs {
		data = append(data, 0x00, 0x41)
		data = appendSLEB(data, int64(int32(s.offset)))
		data = append(data, 0x0b)
		data = appendLEB(data, uint64(len(s.data)))
		data = append(data, s.data...)
	}
	var out []section
	hasData := false
	for _, s := range secs {
		switch s.id {
		case secStart:
			continue // the start function ran in the build
		case secGlobal:
			b := appendLEB(nil, uint64(len(l.globals)))
			for k, g := range l.globals {
				b = append(b, g.typ, map[bool]byte{false: 0, true: 1}[g.mutable])
				if c, ok := globals[l.globImports+uint32(k)]; ok {
					b = append(b, c...)
				} else {
					b = append(b, g.init...)
				}
			}
			s.body = b
		case secMemory:
			r := &reader{b: s.body}
			if r.u32() != 1 {
				return nil, errors.New("the module has no memory section with one memory")
			}
			_, maxPages, hasMax := r.limits("memory")
			if r.err != nil {
				return nil, r.err
			}
			if hasMax && pages > maxPages {
				return nil, fmt.Errorf("captured %d pages, more than the memory's maximum %d", pages, maxPages)
			}
			b := appendLEB(nil, 1)
			if hasMax {
				b = appendLEB(appendLEB(append(b, 0x01), pages), maxPages)
			} else {
				b = appendLEB(append(b, 0x00), pages)
			}
			s.body = b
		case secDataCount:
			s.body = appendLEB(nil, uint64(len(segs)))
		case secData:
			s.body = data
			hasData = true
		}
		out = append(out, s)
	}
	if !hasData && len(segs) > 0 {
		at := len(out)
		for k, s := range out {
			if s.id != secCustom && sectionRank[s.id] > sectionRank[secData] {
				at = k
				break
			}
		}
		// The data section comes last of the known sections: after the
		// code section (custom sections that follow it stay after it).
		for k := len(out) - 1; k >= 0; k-- {
			if out[k].id == secCode {
				at = k + 1
				break
			}
		}
		out = append(out[:at], append([]section{{id: secData, body: data}}, out[at:]...)...)
	}
	return joinSections(out), nil
}
