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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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

// CacheChecked is closed once the artifact cache's check at start (every
// artifact's CRC32C, in the background) is over, or at once without a
// cache. Loads never wait for it: one that comes first checks its own
// artifact.
func (e *Engine) CacheChecked() <-chan struct{} {
	if e.cache == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return e.cache.allChecked
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
	// Size and CRC32C of the artifact: checked before an artifact is first
	// loaded (and again whenever its file changes), because wasmtime trusts
	// serialized code and a torn or corrupted file must be recompiled, never
	// executed.
	Size  int64  `json:"size"`
	CRC32 uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// artifactCache keeps serialized modules in a directory under a disk budget.
// Files are written to a temporary name and renamed, so a crash never leaves
// a half-written artifact under a real key. Eviction uses the GDSF policy of
// package evict with cost = compile time (ms) and size = artifact bytes: an
// artifact that took long to compile, is small and is loaded often stays.
//
// An artifact's CRC32C is checked once per file, not once per load: the
// cache remembers the files it has checked (or written) since it was
// opened, by identity (device and inode, size, modification time), and
// checks a file again only when that identity changes. At open it checks
// every artifact in the background (verifyAll), so a deploy on a node
// that has just started maps its artifact instead of reading all of it
// (a CRC32C runs at about 10 GB/s here: 1.4 ms for hello's 14 MiB). A load
// that comes before the background check has reached its artifact checks
// it itself (or waits for the check in progress).
type artifactCache struct {
	dir    string
	budget int64

	mu     sync.Mutex
	policy *evict.Policy[string]
	meta   map[string]artifactMeta
	// verified holds, for each artifact checked or written since open,
	// the file that was checked; checking marks the keys being checked.
	verified map[string]os.FileInfo
	checking map[string]chan struct{}
	// allChecked is closed when verifyAll is over; reads counts the
	// artifacts read to be checked (for tests).
	allChecked chan struct{}
	reads      atomic.Int64
}

const (
	artifactExt = ".cwasm"
	metaExt     = ".json"
)

func openArtifactCache(dir string, budget int64) (*artifactCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wasm: artifact cache %s: %w", dir, err)
	}
	c := &artifactCache{dir: dir, budget: budget, policy: evict.New[string](), meta: make(map[string]artifactMeta),
		verified: make(map[string]os.FileInfo), checking: make(map[string]chan struct{}), allChecked: make(chan struct{})}
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
	if !c.check(key, meta) {
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

// check reports whether the artifact of key has meta's size and CRC32C:
// at once if this cache has checked (or written) the very file now under
// its name, else by reading it (verify). Concurrent checks of one key
// read it once.
func (c *artifactCache) check(key string, meta artifactMeta) bool {
	c.mu.Lock()
	for {
		ch, busy := c.checking[key]
		if !busy {
			break
		}
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	seen := c.verified[key]
	ch := make(chan struct{})
	c.checking[key] = ch
	c.mu.Unlock()
	var ok bool
	var checked os.FileInfo
	defer func() {
		c.mu.Lock()
		if ok {
			c.verified[key] = checked
		} else {
			delete(c.verified, key)
		}
		delete(c.checking, key)
		c.mu.Unlock()
		close(ch)
	}()
	if seen != nil {
		if cur, err := os.Stat(c.path(key)); err == nil && sameFile(seen, cur) && cur.Size() == meta.Size {
			ok, checked = true, seen
			return true
		}
	}
	checked, ok = c.verify(key, meta)
	return ok
}

// checked reports whether the artifact of key has been checked since
// open and its file is unchanged, without reading it.
func (c *artifactCache) checked(key string) bool {
	c.mu.Lock()
	seen := c.verified[key]
	c.mu.Unlock()
	if seen == nil {
		return false
	}
	cur, err := os.Stat(c.path(key))
	return err == nil && sameFile(seen, cur)
}

// sameFile reports whether a and b describe the same file, unmodified.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// verify checks an artifact's size and CRC32C, reading it in 1 MiB blocks,
// and returns the file it read.
func (c *artifactCache) verify(key string, meta artifactMeta) (os.FileInfo, bool) {
	f, err := os.Open(c.path(key))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	c.reads.Add(1)
	info, err := f.Stat()
	if err != nil {
		return nil, false
	}
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	return info, err == nil && n == meta.Size && h.Sum32() == meta.CRC32
}

// verifyAll checks every artifact the cache held at open that no load has
// checked yet, the most recently written first, until stop is closed;
// one that fails is removed (it would be recompiled by its next load).
func (c *artifactCache) verifyAll(stop <-chan struct{}) {
	defer close(c.allChecked)
	c.mu.Lock()
	keys := make([]string, 0, len(c.meta))
	for k := range c.meta {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	mtime := make(map[string]time.Time, len(keys))
	for _, k := range keys {
		if info, err := os.Stat(c.path(k)); err == nil {
			mtime[k] = info.ModTime()
		}
	}
	sort.Slice(keys, func(i, j int) bool { return mtime[keys[i]].After(mtime[keys[j]]) })
	for _, k := range keys {
		select {
		case <-stop:
			return
		default:
		}
		c.mu.Lock()
		meta, known := c.meta[k]
		c.mu.Unlock()
		if !known || c.checked(k) {
			continue
		}
		if !c.check(k, meta) {
			c.removeIf(k, meta)
		}
	}
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
	written, err := os.Stat(c.path(key))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil { // the CRC32C above is of these very bytes
		c.verified[key] = written
	}
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
		delete(c.verified, key)
		_ = os.Remove(c.path(key))
		_ = os.Remove(filepath.Join(c.dir, key+metaExt))
	}
}

func (c *artifactCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.policy.Remove(key)
	delete(c.meta, key)
	delete(c.verified, key)
	_ = os.Remove(c.path(key))
	_ = os.Remove(filepath.Join(c.dir, key+metaExt))
}

// removeIf removes the artifact of key if its metadata is still meta (not
// replaced by a store since it was read).
func (c *artifactCache) removeIf(key string, meta artifactMeta) {
	c.mu.Lock()
	cur, ok := c.meta[key]
	c.mu.Unlock()
	if ok && cur.CRC32 == meta.CRC32 && cur.Size == meta.Size {
		c.remove(key)
	}
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
