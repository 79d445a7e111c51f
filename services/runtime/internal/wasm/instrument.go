package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Metering of bulk operations (see RATIONALE: "Bulk operations are
// metered by rewriting").
//
// wasmtime charges one unit of fuel per operator, whatever the operator
// touches, so memory.fill of 60 MB costs what i32.add costs. Compile
// therefore rewrites every operator whose work depends on an operand into a
// call to a helper function appended to the module: the helper first burns
// fuel in proportion to the operand (charge), then performs the operator.
// Fuel is burnt by ordinary wasm (a loop and a jump table of instructions
// that cost one unit each and compile to almost nothing), so out of fuel and
// deadlines stop it the usual way, before the operator runs, and the count
// is as deterministic as the rest of the fuel.
//
//	memory.fill, memory.copy, memory.init  n bytes      n >> log2(BulkBytesPerFuel)
//	table.fill, table.copy, table.init     n elements   n
//	memory.grow                            n pages      n*65536 >> log2(BulkBytesPerFuel), once it succeeded
//	table.grow                             n elements   n, once it succeeded
//
// plus a fixed cost per rewritten operator (helperFuel). A refused grow
// (the store limiter said no) adds one to the exported global growRefused,
// which the host reads to tell a memory-limit failure from a crash.
//
// The rewriter is also the module check: it decodes every instruction of
// the features the engine enables (MVP, sign extension, saturating
// conversions, bulk memory, reference types, multi-value, tail calls) and
// refuses anything else, so an operator it does not know can never slip
// through unmetered. It records the module's tables and memory (shape) for
// the memory bound of each instance.

// instrumentVersion changes whenever the rewrite changes; it is part of the
// artifact key.
const instrumentVersion = 2 // 2: exports the mutable globals (snapGlobalExportFmt)

// Names the rewrite exports. A module that exports a name with this prefix
// itself is refused.
const (
	exportPrefix      = "mu:"
	growRefusedExport = "mu:grow_refused"
	tableExportFmt    = "mu:table:%d"
)

// Fixed fuel of the helpers, on top of the proportional part and of the
// one unit the original operator cost: what the tests and RATIONALE quote.
const (
	chargeFixedFuel = 7                   // charge: loop exit test (4) and jump-table entry (3)
	helperFuel      = 9 + chargeFixedFuel // a bulk helper's own operators (9) and its charge
)

// tableShape is one table of a module.
type tableShape struct {
	RefType byte   `json:"ref"`
	Min     uint64 `json:"min"`
	Max     uint64 `json:"max"`
	HasMax  bool   `json:"has_max"`
}

// moduleShape is what the memory bound of an instance needs to know about
// its module.
type moduleShape struct {
	Tables []tableShape `json:"tables"`
	// MemoryMin is the declared initial size of the module's memory, in pages.
	MemoryMin uint64 `json:"memory_min"`
	// TableGrow tells whether any function grows a table (table.grow).
	TableGrow bool `json:"table_grow"`
	// TableWrite tells whether any function changes a table (table.set,
	// table.grow, table.fill, table.copy, table.init, elem.drop): a
	// snapshot cannot capture tables (snapshot.go).
	TableWrite bool `json:"table_write,omitempty"`
	// Rewritten counts the operators turned into helper calls.
	Rewritten int `json:"rewritten"`
}

// errUnsupported marks modules refused by the check (wrapped into
// ErrInvalidModule by Compile).
var errUnsupported = errors.New("unsupported")

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end at offset %d", r.off)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.off+n > len(r.b) {
		r.fail("unexpected end at offset %d", r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

// leb reads an unsigned LEB128 of at most bits bits.
func (r *reader) leb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			r.fail("LEB128 too long at offset %d", r.off)
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if bits < 64 && v>>bits != 0 {
		r.fail("LEB128 out of range at offset %d", r.off)
	}
	return v
}

func (r *reader) u32() uint32 { return uint32(r.leb(32)) }

// sleb skips a signed LEB128 of at most bits bits, returning its value.
func (r *reader) sleb(bits uint) int64 {
	var v int64
	var shift uint
	for {
		if shift >= bits {
			r.fail("LEB128 too long at offset %d", r.off)
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendLEB(b, uint64(len(s)))
	return append(b, s...)
}

// Value and reference types the enabled features allow.
const (
	tI32       = 0x7f
	tI64       = 0x7e
	tF32       = 0x7d
	tF64       = 0x7c
	tFuncref   = 0x70
	tExternref = 0x6f
)

func isValType(c byte) bool {
	switch c {
	case tI32, tI64, tF32, tF64, tFuncref, tExternref:
		return true
	}
	return false
}

func isRefType(c byte) bool { return c == tFuncref || c == tExternref }

// limits reads a limits pair, refusing shared, 64-bit and custom-page forms.
func (r *reader) limits(what string) (min, max uint64, hasMax bool) {
	flags := r.byte()
	switch flags {
	case 0x00:
		return uint64(r.u32()), 0, false
	case 0x01:
		min = uint64(r.u32())
		return min, uint64(r.u32()), true
	}
	r.fail("%w: %s with limits flags 0x%02x (shared, 64-bit and custom-page %ss are not served)", errUnsupported, what, flags, what)
	return 0, 0, false
}

type section struct {
	id   byte
	body []byte
}

// Section ids and their order in a module.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

var sectionRank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

// site is one rewritten operator: which helper replaces it.
type helperKey struct {
	op   uint32 // 0xfc sub-opcode, or 0x40 for memory.grow
	a, b uint32 // its index immediates
}

type rewriter struct {
	shape       moduleShape
	rateShift   uint
	funcImports uint32
	globImports uint32
	defined     uint32 // defined functions
	globals     uint32 // defined globals
	types       uint32
	tables      []tableShape
	helpers     map[helperKey]uint32 // helper function index
	order       []helperKey
	chargeIdx   uint32
	exports     map[string]bool
	mutable     []uint32 // global indices of the mutable defined globals
}

// instrument checks wasm and rewrites its bulk operators (see above).
// bytesPerFuel must be a power of two.
func instrument(wasm []byte, bytesPerFuel int) ([]byte, moduleShape, error) {
	rw := &rewriter{helpers: map[helperKey]uint32{}, exports: map[string]bool{}}
	for bytesPerFuel > 1 {
		rw.rateShift++
		bytesPerFuel >>= 1
	}
	out, err := rw.run(wasm)
	if err != nil {
		return nil, moduleShape{}, err
	}
	rw.shape.Tables = rw.tables
	return out, rw.shape, nil
}

func (rw *rewriter) run(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, errors.New("not a WebAssembly 1.0 module")
	}
	r := &reader{b: wasm, off: 8}
	var secs []section
	last := 0
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		if id != secCustom {
			rank, ok := sectionRank[id]
			if !ok {
				return nil, fmt.Errorf("%w: section id %d", errUnsupported, id)
			}
			if id == secTag {
				return nil, fmt.Errorf("%w: exception handling (tag section)", errUnsupported)
			}
			if rank <= last {
				return nil, fmt.Errorf("section %d out of order", id)
			}
			last = rank
		}
		secs = append(secs, section{id: id, body: body})
	}
	if r.err != nil {
		return nil, r.err
	}
	// First pass: everything the code rewrite depends on.
	for _, s := range secs {
		var err error
		switch s.id {
		case secType:
			err = rw.readTypes(s.body)
		case secImport:
			err = rw.readImports(s.body)
		case secFunction:
			sr := &reader{b: s.body}
			rw.defined = sr.u32()
			err = sr.err
		case secTable:
			err = rw.readTables(s.body)
		case secMemory:
			err = rw.readMemories(s.body)
		case secGlobal:
			err = rw.readGlobals(s.body)
		case secExport:
			err = rw.readExports(s.body)
		}
		if err != nil {
			return nil, err
		}
	}
	var code []byte
	for k, s := range secs {
		if s.id == secCode {
			c, err := rw.rewriteCode(s.body)
			if err != nil {
				return nil, err
			}
			code = c
			secs[k].body = code
		}
	}
	// The growRefused global, the exports and, if anything was rewritten,
	// the helpers' types, declarations and bodies.
	refusedIdx := rw.globImports + rw.globals
	secs = rw.extend(secs, secGlobal, func(b []byte) []byte {
		return append(b, tI32, 0x01, 0x41, 0x00, 0x0b) // (mut i32) (i32.const 0)
	})
	secs = rw.extend(secs, secExport, func(b []byte) []byte {
		b = appendName(b, growRefusedExport)
		b = append(b, 0x03)
		return appendLEB(b, uint64(refusedIdx))
	})
	// Every mutable global, so that a snapshot build can read them
	// (snapshot.go) from the module compiled for normal starts.
	for _, g := range rw.mutable {
		secs = rw.extend(secs, secExport, func(b []byte) []byte {
			b = appendName(b, fmt.Sprintf(snapGlobalExportFmt, g))
			b = append(b, 0x03)
			return appendLEB(b, uint64(g))
		})
	}
	for t := range rw.tables {
		secs = rw.extend(secs, secExport, func(b []byte) []byte {
			b = appendName(b, fmt.Sprintf(tableExportFmt, t))
			b = append(b, 0x01)
			return appendLEB(b, uint64(t))
		})
	}
	if len(rw.order) > 0 {
		types, bodies := rw.helperFuncs(refusedIdx)
		for k := range types {
			secs = rw.extend(secs, secType, func(b []byte) []byte { return append(b, types[k]...) })
			ti := rw.types + uint32(k)
			secs = rw.extend(secs, secFunction, func(b []byte) []byte { return appendLEB(b, uint64(ti)) })
			secs = rw.extend(secs, secCode, func(b []byte) []byte {
				b = appendLEB(b, uint64(len(bodies[k])))
				return append(b, bodies[k]...)
			})
		}
	}
	out := append([]byte(nil), wasm[:8]...)
	for _, s := range secs {
		out = append(out, s.id)
		out = appendLEB(out, uint64(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

// extend appends one entry to the vector section id (creating the section
// at its place if the module has none) and increments its count.
func (rw *rewriter) extend(secs []section, id byte, entry func([]byte) []byte) []section {
	for k, s := range secs {
		if s.id != id {
			continue
		}
		r := &reader{b: s.body}
		n := r.u32()
		body := appendLEB(nil, uint64(n)+1)
		body = append(body, s.body[r.off:]...)
		secs[k].body = entry(body)
		return secs
	}
	ns := section{id: id, body: entry(appendLEB(nil, 1))}
	at := len(secs)
	for k, s := range secs {
		if s.id != secCustom && sectionRank[s.id] > sectionRank[id] {
			at = k
			break
		}
	}
	secs = append(secs, section{})
	copy(secs[at+1:], secs[at:])
	secs[at] = ns
	return secs
}

func (rw *rewriter) readTypes(b []byte) error {
	r := &reader{b: b}
	rw.types = r.u32()
	for k := uint32(0); k < rw.types && r.err == nil; k++ {
		if form := r.byte(); form != 0x60 {
			return fmt.Errorf("%w: type form 0x%02x (GC and function references are not served)", errUnsupported, form)
		}
		for range 2 { // params, results
			n := r.u32()
			for j := uint32(0); j < n && r.err == nil; j++ {
				if c := r.byte(); !isValType(c) {
					return fmt.Errorf("%w: value type 0x%02x in a function type", errUnsupported, c)
				}
			}
		}
	}
	return r.err
}

func (rw *rewriter) readImports(b []byte) error {
	r := &reader{b: b}
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		r.bytes(int(r.u32())) // module
		r.bytes(int(r.u32())) // name
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
			rw.funcImports++
		case 0x03:
			if c := r.byte(); !isValType(c) {
				return fmt.Errorf("%w: global of type 0x%02x", errUnsupported, c)
			}
			r.byte()
			rw.globImports++
		case 0x01, 0x02:
			return fmt.Errorf("%w: the module imports a %s; the runtime provides only WASI functions", errUnsupported, map[byte]string{1: "table", 2: "memory"}[kind])
		default:
			return fmt.Errorf("%w: import kind 0x%02x", errUnsupported, kind)
		}
	}
	return r.err
}

func (rw *rewriter) readGlobals(b []byte) error {
	r := &reader{b: b}
	rw.globals = r.u32()
	for k := uint32(0); k < rw.globals && r.err == nil; k++ {
		if c := r.byte(); !isValType(c) {
			return fmt.Errorf("%w: global of type 0x%02x", errUnsupported, c)
		}
		if r.byte() == 1 {
			rw.mutable = append(rw.mutable, rw.globImports+k)
		}
		r.constExprEnd()
	}
	return r.err
}

func (rw *rewriter) readTables(b []byte) error {
	r := &reader{b: b}
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		rt := r.byte()
		if !isRefType(rt) {
			return fmt.Errorf("%w: table of type 0x%02x", errUnsupported, rt)
		}
		min, max, hasMax := r.limits("table")
		rw.tables = append(rw.tables, tableShape{RefType: rt, Min: min, Max: max, HasMax: hasMax})
	}
	return r.err
}

func (rw *rewriter) readMemories(b []byte) error {
	r := &reader{b: b}
	n := r.u32()
	if n > 1 {
		return fmt.Errorf("%w: %d memories (multi-memory is not served)", errUnsupported, n)
	}
	if n == 1 {
		rw.shape.MemoryMin, _, _ = r.limits("memory")
	}
	return r.err
}

func (rw *rewriter) readExports(b []byte) error {
	r := &reader{b: b}
	n := r.u32()
	for k := uint32(0); k < n && r.err == nil; k++ {
		name := string(r.bytes(int(r.u32())))
		r.byte()
		r.u32()
		if len(name) >= len(exportPrefix) && name[:len(exportPrefix)] == exportPrefix {
			return fmt.Errorf("%w: export %q uses the prefix %q the runtime reserves", errUnsupported, name, exportPrefix)
		}
	}
	return r.err
}

// helper returns the index of the helper function that replaces op.
func (rw *rewriter) helper(k helperKey) uint32 {
	if idx, ok := rw.helpers[k]; ok {
		return idx
	}
	if len(rw.order) == 0 {
		// The charge function comes first.
		rw.chargeIdx = rw.funcImports + rw.defined
		rw.order = append(rw.order, helperKey{})
	}
	idx := rw.funcImports + rw.defined + uint32(len(rw.order))
	rw.helpers[k] = idx
	rw.order = append(rw.order, k)
	return idx
}

func (rw *rewriter) rewriteCode(b []byte) ([]byte, error) {
	r := &reader{b: b}
	n := r.u32()
	if n != rw.defined {
		return nil, fmt.Errorf("code section has %d bodies for %d functions", n, rw.defined)
	}
	out := appendLEB(nil, uint64(n))
	var body []byte
	for k := uint32(0); k < n && r.err == nil; k++ {
		size := r.u32()
		start := r.off
		src := r.bytes(int(size))
		if r.err != nil {
			break
		}
		var err error
		body, err = rw.rewriteBody(body[:0], src)
		if err != nil {
			return nil, fmt.Errorf("function %d (code offset %d): %w", rw.funcImports+k, start, err)
		}
		out = appendLEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.err == nil && r.off != len(b) {
		return nil, errors.New("trailing bytes after the code section")
	}
	return out, r.err
}

// rewriteBody copies one function body to out, replacing bulk operators
// with calls to their helpers, and checks every instruction is one the
// engine's features allow.
func (rw *rewriter) rewriteBody(out, src []byte) ([]byte, error) {
	r := &reader{b: src}
	groups := r.u32()
	for k := uint32(0); k < groups && r.err == nil; k++ {
		r.u32()
		if c := r.byte(); !isValType(c) {
			return nil, fmt.Errorf("%w: local of type 0x%02x", errUnsupported, c)
		}
	}
	copied := 0
	replace := func(at int, k helperKey) {
		out = append(out, src[copied:at]...)
		out = append(out, 0x10)
		out = appendLEB(out, uint64(rw.helper(k)))
		copied = r.off
		rw.shape.Rewritten++
	}
	depth := 0
	for r.err == nil {
		if r.off >= len(src) {
			return nil, errors.New("function body ends without end")
		}
		at := r.off
		op := r.byte()
		switch {
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1:
		case op >= 0x45 && op <= 0xc4:
		case op == 0x02 || op == 0x03 || op == 0x04:
			r.blockType()
			depth++
		case op == 0x0b:
			depth--
			if depth < 0 {
				if r.off != len(src) {
					return nil, errors.New("bytes after the function's end")
				}
				return append(out, src[copied:]...), nil
			}
		case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || (op >= 0x20 && op <= 0x26) || op == 0x3f || op == 0xd2:
			r.u32()
			rw.shape.TableWrite = rw.shape.TableWrite || op == 0x26 // table.set
		case op == 0x11 || op == 0x13:
			r.u32()
			r.u32()
		case op == 0x0e:
			n := r.u32()
			for j := uint32(0); j <= n && r.err == nil; j++ {
				r.u32()
			}
		case op == 0x1c:
			n := r.u32()
			for j := uint32(0); j < n && r.err == nil; j++ {
				if c := r.byte(); !isValType(c) {
					return nil, fmt.Errorf("%w: select of type 0x%02x", errUnsupported, c)
				}
			}
		case op >= 0x28 && op <= 0x3e:
			if align := r.u32(); align&0x40 != 0 {
				r.u32() // memory index (multi-memory: refused by the engine)
			}
			r.u32()
		case op == 0x40:
			m := r.u32()
			replace(at, helperKey{op: 0x40, a: m})
		case op == 0x41:
			r.sleb(32)
		case op == 0x42:
			r.sleb(64)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0:
			if c := r.byte(); !isRefType(c) {
				return nil, fmt.Errorf("%w: ref.null of heap type 0x%02x", errUnsupported, c)
			}
		case op == 0xfc:
			sub := r.u32()
			rw.shape.TableWrite = rw.shape.TableWrite || (sub >= 12 && sub <= 15) || sub == 17
			switch {
			case sub <= 7: // saturating conversions
			case sub == 9 || sub == 13 || sub == 16: // data.drop, elem.drop, table.size
				r.u32()
			case sub == 11 || sub == 15 || sub == 17: // memory.fill, table.grow, table.fill
				a := r.u32()
				if sub != 11 && int(a) >= len(rw.tables) {
					return nil, fmt.Errorf("table index %d out of range", a)
				}
				if sub == 15 {
					rw.shape.TableGrow = true
				}
				replace(at, helperKey{op: sub, a: a})
			case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
				a := r.u32()
				c := r.u32()
				if (sub == 12 && int(c) >= len(rw.tables)) || (sub == 14 && (int(a) >= len(rw.tables) || int(c) >= len(rw.tables))) {
					return nil, errors.New("table index out of range")
				}
				replace(at, helperKey{op: sub, a: a, b: c})
			default:
				return nil, fmt.Errorf("%w: instruction 0xfc %d at body offset %d", errUnsupported, sub, at)
			}
		default:
			return nil, fmt.Errorf("%w: instruction 0x%02x at body offset %d (SIMD, threads, GC, exceptions and typed function references are not served)", errUnsupported, op, at)
		}
	}
	return nil, r.err
}

func (r *reader) blockType() {
	if r.err != nil || r.off >= len(r.b) {
		r.byte()
		return
	}
	c := r.b[r.off]
	if c == 0x40 || isValType(c) {
		r.off++
		return
	}
	if v := r.sleb(33); v < 0 && r.err == nil {
		r.fail("%w: block type 0x%02x", errUnsupported, c)
	}
}

// Pieces of the helper bodies.
const (
	chargeStep = 256 // fuel burnt per iteration of charge's loop
	padUnit    = "\x41\x00\x1a"
)

func pad(b []byte, n int) []byte {
	for range n {
		b = append(b, padUnit...)
	}
	return b
}

// chargeBody is (func (param $k i64)) burning exactly k + chargeFixedFuel
// fuel: a loop of chargeStep units per iteration while k >= chargeStep,
// then a jump into a ladder of one-unit instructions for the rest.
func chargeBody() []byte {
	b := []byte{0x00}                     // no locals
	b = append(b, 0x02, 0x40, 0x03, 0x40) // block loop
	step := appendSLEB([]byte{0x42}, chargeStep)
	b = append(b, 0x20, 0x00)
	b = append(b, step...)
	b = append(b, 0x54, 0x0d, 0x01) // i64.lt_u br_if 1
	b = append(b, 0x20, 0x00)
	b = append(b, step...)
	b = append(b, 0x7d, 0x21, 0x00) // i64.sub local.set 0
	b = pad(b, chargeStep-9)        // the loop's own operators cost 9
	b = append(b, 0x0c, 0x00, 0x0b, 0x0b)
	for range chargeStep {
		b = append(b, 0x02, 0x40)
	}
	b = append(b, 0x20, 0x00, 0xa7, 0x0e) // local.get 0 i32.wrap_i64 br_table
	b = appendLEB(b, chargeStep)
	for r := 0; r < chargeStep; r++ {
		b = appendLEB(b, uint64(chargeStep-1-r)) // to the block after which r units follow
	}
	b = appendLEB(b, chargeStep-1)
	b = append(b, 0x0b)
	for range chargeStep - 1 {
		b = append(b, padUnit...)
		b = append(b, 0x0b)
	}
	return append(b, 0x0b)
}

// helperFuncs returns the types and bodies of the charge function and the
// helpers, in function index order.
func (rw *rewriter) helperFuncs(refused uint32) (types, bodies [][]byte) {
	ft := func(params []byte, results ...byte) []byte {
		b := append([]byte{0x60}, appendLEB(nil, uint64(len(params)))...)
		b = append(b, params...)
		b = appendLEB(b, uint64(len(results)))
		return append(b, results...)
	}
	call := appendLEB([]byte{0x10}, uint64(rw.chargeIdx))
	// chargeBytes charges local 2 (an i32 byte count) at the rate.
	chargeBytes := func(b []byte, local byte) []byte {
		b = append(b, 0x20, local, 0xad) // local.get i64.extend_i32_u
		b = append(b, 0x42)
		b = appendSLEB(b, int64(rw.rateShift))
		b = append(b, 0x88) // i64.shr_u
		return append(b, call...)
	}
	chargeElems := func(b []byte, local byte) []byte {
		b = append(b, 0x20, local, 0xad) // local.get i64.extend_i32_u
		b = append(b, 0x42, 0x00, 0x7c)  // i64.const 0 i64.add: same fuel as chargeBytes
		return append(b, call...)
	}
	fc := func(sub uint32, imms ...uint32) []byte {
		b := appendLEB([]byte{0xfc}, uint64(sub))
		for _, v := range imms {
			b = appendLEB(b, uint64(v))
		}
		return b
	}
	countRefusal := func(b []byte) []byte {
		b = append(b, 0x23)
		b = appendLEB(b, uint64(refused))
		b = append(b, 0x41, 0x01, 0x6a, 0x24) // i32.const 1 i32.add global.set
		return appendLEB(b, uint64(refused))
	}
	for _, k := range rw.order {
		var t, b []byte
		switch k.op {
		case 0: // charge
			t, b = ft([]byte{tI64}), chargeBody()
		case 0x40: // memory.grow: (pages) -> old size or -1
			t = ft([]byte{tI32}, tI32)
			b = []byte{0x01, 0x01, tI32}
			b = append(b, 0x20, 0x00, 0x40)
			b = appendLEB(b, uint64(k.a))
			b = append(b, 0x22, 0x01, 0x41, 0x7f, 0x46, 0x04, 0x40) // local.tee 1 i32.const -1 i32.eq if
			b = countRefusal(b)
			b = append(b, 0x05, 0x20, 0x00, 0xad, 0x42) // else local.get 0 i64.extend_i32_u i64.const
			b = appendSLEB(b, int64(16-rw.rateShift))
			b = append(b, 0x86) // i64.shl
			b = append(b, call...)
			b = append(b, 0x0b, 0x20, 0x01, 0x0b)
		case 15: // table.grow: (ref, n) -> old size or -1
			rt := rw.tables[k.a].RefType
			t = ft([]byte{rt, tI32}, tI32)
			b = []byte{0x01, 0x01, tI32}
			b = append(b, 0x20, 0x00, 0x20, 0x01)
			b = append(b, fc(15, k.a)...)
			b = append(b, 0x22, 0x02, 0x41, 0x7f, 0x46, 0x04, 0x40)
			b = countRefusal(b)
			b = append(b, 0x05)
			b = chargeElems(b, 0x01)
			b = append(b, 0x0b, 0x20, 0x02, 0x0b)
		default: // (dst, src or value, n): charge n, then the operator
			p := []byte{tI32, tI32, tI32}
			if k.op == 17 {
				p[1] = rw.tables[k.a].RefType
			}
			t = ft(p)
			b = []byte{0x00}
			switch k.op {
			case 8, 10, 11:
				b = chargeBytes(b, 0x02)
			default:
				b = chargeElems(b, 0x02)
			}
			b = append(b, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02)
			switch k.op {
			case 11, 15, 17:
				b = append(b, fc(k.op, k.a)...)
			default:
				b = append(b, fc(k.op, k.a, k.b)...)
			}
			b = append(b, 0x0b)
		}
		types = append(types, t)
		bodies = append(bodies, b)
	}
	return types, bodies
}
