package marketplace

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
)

// The Borsh primitives the program's types use, over gagliardetto/binary's
// encoder and decoder. Reading is as strict as borsh-rs 0.9 (which the
// program decodes with): a bool is 0 or 1, a string is valid UTF-8, an enum
// index names a variant; anything else is an error, as it would fail
// AccountDidNotDeserialize / InstructionDidNotDeserialize on chain.

// writer writes Borsh to an encoder, keeping the first error.
type writer struct {
	enc *bin.Encoder
	err error
}

func (w *writer) keep(err error) {
	if w.err == nil {
		w.err = err
	}
}

// encode runs body on a writer over a fresh buffer of capacity size and
// returns the bytes. Writes to a bytes.Buffer cannot fail (it panics when
// out of memory), so no error is returned.
func encode(size int, body func(w *writer)) []byte {
	var buf bytes.Buffer
	buf.Grow(size)
	w := &writer{enc: bin.NewBorshEncoder(&buf)}
	body(w)
	return buf.Bytes()
}

func (w *writer) raw(b []byte)              { w.keep(w.enc.WriteBytes(b, false)) }
func (w *writer) u8(v uint8)                { w.keep(w.enc.WriteUint8(v)) }
func (w *writer) boolean(v bool)            { w.keep(w.enc.WriteBool(v)) }
func (w *writer) u32(v uint32)              { w.keep(w.enc.WriteUint32(v, binary.LittleEndian)) }
func (w *writer) u64(v uint64)              { w.keep(w.enc.WriteUint64(v, binary.LittleEndian)) }
func (w *writer) pubkey(k solana.PublicKey) { w.keep(w.enc.WriteBytes(k[:], false)) }

// u128 writes the 16 little-endian bytes of v: the low word first.
func (w *writer) u128(v ledger.Uint128) {
	w.keep(w.enc.WriteUint128(bin.Uint128{Lo: v.Lo, Hi: v.Hi}, binary.LittleEndian))
}

// str writes a u32 LE byte length and the bytes.
func (w *writer) str(s string) { w.keep(w.enc.WriteString(s)) }

// vec writes a Vec<u8>: a u32 LE length and the bytes.
func (w *writer) vec(b []byte) { w.keep(w.enc.WriteBytes(b, true)) }

// reader reads Borsh from a decoder, keeping the first error, which names
// what was being read ("Provider.name: ...").
type reader struct {
	dec  *bin.Decoder
	what string // the type being read, for errors
	err  error
}

func newReader(dec *bin.Decoder, what string) *reader { return &reader{dec: dec, what: what} }

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%s.%s: %w", r.what, field, err)
	}
}

func (r *reader) need(field string, n int) bool {
	if r.err != nil {
		return false
	}
	if rem := r.dec.Remaining(); rem < n {
		r.fail(field, fmt.Errorf("need %d bytes, %d left", n, rem))
		return false
	}
	return true
}

func (r *reader) u8(field string) uint8 {
	if !r.need(field, 1) {
		return 0
	}
	v, err := r.dec.ReadUint8()
	if err != nil {
		r.fail(field, err)
	}
	return v
}

func (r *reader) boolean(field string) bool {
	if !r.need(field, 1) {
		return false
	}
	v, err := r.dec.ReadUint8()
	switch {
	case err != nil:
		r.fail(field, err)
	case v > 1:
		r.fail(field, fmt.Errorf("invalid bool byte %d (want 0 or 1)", v))
	}
	return v == 1
}

func (r *reader) u32(field string) uint32 {
	if !r.need(field, 4) {
		return 0
	}
	v, err := r.dec.ReadUint32(binary.LittleEndian)
	if err != nil {
		r.fail(field, err)
	}
	return v
}

func (r *reader) u64(field string) uint64 {
	if !r.need(field, 8) {
		return 0
	}
	v, err := r.dec.ReadUint64(binary.LittleEndian)
	if err != nil {
		r.fail(field, err)
	}
	return v
}

func (r *reader) u128(field string) ledger.Uint128 {
	if !r.need(field, 16) {
		return ledger.Uint128{}
	}
	v, err := r.dec.ReadUint128(binary.LittleEndian)
	if err != nil {
		r.fail(field, err)
	}
	return ledger.Uint128{Hi: v.Hi, Lo: v.Lo}
}

func (r *reader) pubkey(field string) solana.PublicKey {
	var k solana.PublicKey
	if !r.need(field, 32) {
		return k
	}
	b, err := r.dec.ReadNBytes(32)
	if err != nil {
		r.fail(field, err)
		return k
	}
	copy(k[:], b)
	return k
}

// vec reads a u32 LE length and that many bytes (copied: the result never
// aliases the input). The length is checked against what is left before
// anything is allocated.
func (r *reader) vec(field string) []byte {
	if !r.need(field, 4) {
		return nil
	}
	n, err := r.dec.ReadUint32(binary.LittleEndian)
	if err != nil {
		r.fail(field, err)
		return nil
	}
	if rem := r.dec.Remaining(); uint64(n) > uint64(rem) {
		r.fail(field, fmt.Errorf("length %d, only %d bytes left", n, rem))
		return nil
	}
	b, err := r.dec.ReadNBytes(int(n))
	if err != nil {
		r.fail(field, err)
		return nil
	}
	return append([]byte{}, b...)
}

func (r *reader) str(field string) string {
	b := r.vec(field)
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.fail(field, fmt.Errorf("string is not valid UTF-8"))
		return ""
	}
	return string(b)
}
