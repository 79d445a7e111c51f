package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/services/runtime/internal/evict"
)

// ErrInvalidModule is wrapped by Compile errors caused by the module itself
// (not wasm, not a WASI command) rather than by the host.
var ErrInvalidModule = errors.New("invalid wasm module")

// Module is a compiled module, ready to instantiate any number of times.
type Module struct {
	// ID is the hex SHA-256 of the wasm bytes (the content id).
	ID string
	// WasmSize is the size of the wasm bytes.
	WasmSize int
	// CompileTime is how long Cranelift took (measured when the artifact was made).
	CompileTime time.Duration
	// LoadTime is how long this Compile call took: compile or deserialize.
	LoadTime time.Duration
	// FromCache tells whether the module was deserialized from the artifact cache.
	FromCache bool

	m        *wasmtime.Module
	shape    moduleShape
	cacheErr error
	// reactor is set for modules that export _initialize, mu_init and
	// mu_serve (see Instance): each call then runs on the caller's goroutine.
	reactor bool
	// snapshot is set for a pre-initialized module (snapshot.go): its
	// instances skip _initialize and mu_init.
	snapshot *snapshotMeta
}

// Reactor reports whether the module is served in reactor mode.
func (m *Module) Reactor() bool { return m.reactor }

// ContentID returns the content id of wasm bytes: hex SHA-256.
func ContentID(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// Compile turns wasm bytes into a Module. With a cache directory configured
// it first looks for a serialized artifact made by an identical engine
// (keyed by content id and engine settings), so a restarted node does not
// recompile; a fresh compile is written back to the cache.
func (e *Engine) Compile(wasm []byte) (*Module, error) {
	return e.CompileWithID(wasm, ContentID(wasm))
}

// CompileWithID is Compile for a caller that has already verified the
// content id of wasm (any string that names exactly these bytes, such as
// the runtime's base58 binary id), so the bytes are not hashed again.
func (e *Engine) CompileWithID(wasm []byte, id string) (*Module, error) {
	return e.compile(wasm, id, artifactKey(id, e.fingerprint), nil)
}

// compile is CompileWithID for the artifact key key; snap, if not nil,
// marks the module pre-initialized (snapshot.go) and is kept in the
// artifact's metadata.
func (e *Engine) compile(wasm []byte, id, key string, snap *snapshotMeta) (*Module, error) {
	start := time.Now()
	if e.cache != nil {
		if m, meta, ok := e.cache.load(e.engine, key); ok {
			mod := &Module{ID: id, WasmSize: len(wasm), CompileTime: meta.CompileTime, FromCache: true, m: m, shape: meta.Shape, reactor: isReactor(m), snapshot: meta.Snapshot}
			mod.LoadTime = time.Since(start)
			return mod, nil
		}
	}
	// Validate the module as written first: after the rewrite, indices
	// past its own (the helpers, the growRefused global) become valid, and
	// a module must not reach them.
	if err := wasmtime.ModuleValidate(e.engine, wasm); err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidModule, short(id), trapCause(err.Error()))
	}
	metered, shape, err := instrument(wasm, e.cfg.BulkBytesPerFuel)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidModule, short(id), err)
	}
	if len(shape.Tables) > e.cfg.MaxTables {
		return nil, fmt.Errorf("%w %s: %d tables, at most %d are served (max_tables)", ErrInvalidModule, short(id), len(shape.Tables), e.cfg.MaxTables)
	}
	m, err := wasmtime.NewModule(e.engine, metered)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidModule, short(id), trapCause(err.Error()))
	}
	if err := checkCommand(m); err != nil {
		m.Close()
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidModule, short(id), err)
	}
	mod := &Module{ID: id, WasmSize: len(wasm), CompileTime: time.Since(start), m: m, shape: shape, reactor: isReactor(m), snapshot: snap}
	if e.cache != nil {
		if err := e.cache.store(key, m, artifactMeta{CompileTime: mod.CompileTime, WasmSize: len(wasm), Shape: shape, Snapshot: snap}); err != nil {
			// A cache that cannot be written costs a recompile later, never a failed deploy.
			mod.cacheErr = err
		}
	}
	mod.LoadTime = time.Since(start)
	return mod, nil
}

// LoadCached returns the module of content id id from the artifact cache
// without its wasm bytes, or false when the cache (if any) holds no valid
// artifact for id made by an identical engine. Artifacts are only ever
// written by CompileWithID, whose caller verified id against the bytes, so
// a hit needs neither the bytes nor a hash.
func (e *Engine) LoadCached(id string) (*Module, bool) {
	if e.cache == nil {
		return nil, false
	}
	start := time.Now()
	m, meta, ok := e.cache.load(e.engine, artifactKey(id, e.fingerprint))
	if !ok {
		return nil, false
	}
	mod := &Module{ID: id, WasmSize: meta.WasmSize, CompileTime: meta.CompileTime, FromCache: true, m: m, shape: meta.Shape, reactor: isReactor(m)}
	mod.LoadTime = time.Since(start)
	return mod, true
}

// HasCached reports whether the artifact cache holds an artifact of
// content id id made by an identical engine (without loading or verifying
// it; LoadCached does both).
func (e *Engine) HasCached(id string) bool {
	if e.cache == nil {
		return false
	}
	key := artifactKey(id, e.fingerprint)
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	_, ok := e.cache.meta[key]
	return ok
}

// HasCache reports whether the engine has an artifact cache.
func (e *Engine) HasCache() bool { return e.cache != nil }

// reactorExports are what a module exports to be served in reactor mode.
var reactorExports = []string{"_initialize", fnproto.ExportInit, fnproto.ExportServe}

func exportedFuncs(m *wasmtime.Module) map[string]bool {
	out := map[string]bool{}
	for _, ex := range m.Exports() {
		if ex.Type().FuncType() != nil {
			out[ex.Name()] = true
		}
	}
	return out
}

func isReactor(m *wasmtime.Module) bool {
	fs := exportedFuncs(m)
	for _, name := range reactorExports {
		if !fs[name] {
			return false
		}
	}
	return true
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkCommand verifies the module can be served: a WASI command (_start)
// or a mu reactor (_initialize, mu_init, mu_serve), with a memory.
func checkCommand(m *wasmtime.Module) error {
	var hasMemory bool
	for _, ex := range m.Exports() {
		if ex.Name() == "memory" && ex.Type().MemoryType() != nil {
			hasMemory = true
		}
	}
	if !exportedFuncs(m)["_start"] && !isReactor(m) {
		return errors.New("module exports neither _start nor " + fnproto.ExportInit + " and " + fnproto.ExportServe + "; build it with the mu SDK for GOOS=wasip1 GOARCH=wasm")
	}
	if !hasMemory {
		return errors.New("module exports no memory named \"memory\"")
	}
	return nil
}

// Close releases the compiled code. Instances made from it keep it alive.
func (m *Module) Close() {
	if m.m != nil {
		m.m.Close()
	}
}

// CacheError reports a failure to write the artifact cache, if any.
func (m *Module) CacheError() error { return m.cacheErr }

func artifactKey(id, fingerprint string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + fingerprint))
	return hex.EncodeToString(sum[:16])
}

type artifactMeta struct {
	CompileTime time.Duration `json:"compile_time_ns"`
	WasmSize    int           `json:"wasm_size"`
	// Shape is what instrument learnt about the module (its tables and
	// memory), which the compiled artifact does not tell.
	Shape moduleShape `json:"shape"`
	// Snapshot is set for the artifact of a pre-initialized module.
	Snapshot *snapshotMeta `json:"snapshot,omitempty"`
	// Size and CRC32C of the artifact: checked before every load, because
	// wasmtime trusts serialized code and a torn or corrupted file must be
	// recompiled, never executed.
	Size  int64  `json:"size"`
	CRC32 uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// artifactCache keeps serialized modules in a directory under a disk budget.
// Files are written to a temporary name and renamed, so a crash never leaves
// a half-written artifact under a real key. Eviction uses the GDSF policy of
// package evict with cost = compile time (ms) and size = artifact bytes: an
// artifact that took long to compile, is small and is loaded often stays.
type artifactCache struct {
	dir    string
	budget int64

	mu     sync.Mutex
	policy *evict.Policy[string]
	meta   map[string]artifactMeta
}

const (
	artifactExt = ".cwasm"
	metaExt     = ".json"
)

func openArtifactCache(dir string, budget int64) (*artifactCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wasm: artifact cache %s: %w", dir, err)
	}
	c := &artifactCache{dir: dir, budget: budget, policy: evict.New[string](), meta: make(map[string]artifactMeta)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wasm: artifact cache %s: %w", dir, err)
	}
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name)) // left by a crash mid-write
			continue
		}
		key, ok := strings.CutSuffix(name, artifactExt)
		if !ok {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		var meta artifactMeta
		b, err := os.ReadFile(filepath.Join(dir, key+metaExt))
		if err == nil {
			err = json.Unmarshal(b, &meta)
		}
		if err != nil || meta.Size != info.Size() {
			// No usable metadata: the artifact cannot be verified, so it goes.
			_ = os.Remove(filepath.Join(dir, name))
			_ = os.Remove(filepath.Join(dir, key+metaExt))
			continue
		}
		c.meta[key] = meta
		c.policy.Touch(key, costOf(meta), info.Size())
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func costOf(m artifactMeta) float64 {
	ms := float64(m.CompileTime) / float64(time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	return ms
}

func (c *artifactCache) path(key string) string { return filepath.Join(c.dir, key+artifactExt) }

func (c *artifactCache) load(engine *wasmtime.Engine, key string) (*wasmtime.Module, artifactMeta, bool) {
	c.mu.Lock()
	meta, known := c.meta[key]
	c.mu.Unlock()
	if !known {
		return nil, artifactMeta{}, false
	}
	if !c.verify(key, meta) {
		c.remove(key)
		return nil, artifactMeta{}, false
	}
	// Deserializing from the file maps it instead of copying it. Files are
	// only ever replaced by rename and removed by unlink, so a mapping never
	// sees its file change underneath it.
	m, err := wasmtime.NewModuleDeserializeFile(engine, c.path(key))
	if err != nil {
		// Not loadable by this engine: drop it and recompile.
		c.remove(key)
		return nil, artifactMeta{}, false
	}
	c.mu.Lock()
	c.policy.Touch(key, costOf(meta), meta.Size)
	c.mu.Unlock()
	return m, meta, true
}

// verify checks an artifact's size and CRC32C, reading it in 1 MiB blocks.
func (c *artifactCache) verify(key string, meta artifactMeta) bool {
	f, err := os.Open(c.path(key))
	if err != nil {
		return false
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	return err == nil && n == meta.Size && h.Sum32() == meta.CRC32
}

func (c *artifactCache) store(key string, m *wasmtime.Module, meta artifactMeta) error {
	b, err := m.Serialize()
	if err != nil {
		return fmt.Errorf("wasm: serialize artifact: %w", err)
	}
	if int64(len(b)) > c.budget {
		return fmt.Errorf("wasm: artifact of %d bytes exceeds the cache budget of %d bytes", len(b), c.budget)
	}
	meta.Size = int64(len(b))
	meta.CRC32 = crc32.Checksum(b, castagnoli)
	mb, _ := json.Marshal(meta)
	if err := writeAtomic(c.dir, key+metaExt, mb); err != nil {
		return err
	}
	if err := writeAtomic(c.dir, key+artifactExt, b); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.meta[key] = meta
	c.policy.Touch(key, costOf(meta), int64(len(b)))
	c.evictLocked()
	return nil
}

func (c *artifactCache) evictLocked() {
	for c.policy.Size() > c.budget {
		key, ok := c.policy.Victim()
		if !ok {
			return
		}
		delete(c.meta, key)
		_ = os.Remove(c.path(key))
		_ = os.Remove(filepath.Join(c.dir, key+metaExt))
	}
}

func (c *artifactCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.policy.Remove(key)
	delete(c.meta, key)
	_ = os.Remove(c.path(key))
	_ = os.Remove(filepath.Join(c.dir, key+metaExt))
}

// size is the bytes currently held by the cache.
func (c *artifactCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policy.Size()
}

func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("wasm: artifact cache: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(dir, name))
	}
	if werr != nil {
		_ = os.Remove(tmp)
		if errors.Is(werr, fs.ErrNotExist) {
			return fmt.Errorf("wasm: artifact cache directory vanished: %w", werr)
		}
		return fmt.Errorf("wasm: artifact cache: %w", werr)
	}
	return nil
}
