// Package keyspace is muDB's layout of keys and values in TiKV (design
// section 6) and the encodings built on it: value envelopes carrying a TTL,
// the TTL index and scan cursors.
//
//	data key       "mudb/"        + stack id (32) + u8 len(table) + table + user key
//	table registry "mudb-tables/" + stack id (32) + table
//	TTL index      "mudb-ttl/"    + expiry (8, big-endian unix ms) + data key
//
// Table names are length-prefixed, so no table's prefix is a prefix of
// another table's, and every range this package builds lies inside one
// stack and one table: no key, prefix or cursor a caller passes can make a
// range reach another stack's or another table's keys. The three top-level
// prefixes differ at their fifth byte ('/' and '-'), so none contains
// another.
package keyspace

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/muprotocol/mu/libs/ids"
)

// Top-level prefixes of muDB's keys.
const (
	DataPrefix     = "mudb/"
	RegistryPrefix = "mudb-tables/"
	TTLPrefix      = "mudb-ttl/"
)

// MaxTableName is the longest table name the layout can hold: its length
// is one byte.
const MaxTableName = 255

// Table addresses one table of one stack. Its methods build keys and ranges
// that always lie inside that table.
type Table struct {
	Stack ids.StackID
	Name  string
}

// Prefix is the data prefix of the table: every data key of the table
// starts with it and no key of another table or stack does. Name must be
// 1..MaxTableName bytes (callers validate it first).
func (t Table) Prefix() []byte {
	p := make([]byte, 0, len(DataPrefix)+32+1+len(t.Name))
	p = append(p, DataPrefix...)
	p = append(p, t.Stack[:]...)
	p = append(p, byte(len(t.Name)))
	return append(p, t.Name...)
}

// Key is the data key of user key k in the table.
func (t Table) Key(k []byte) []byte {
	p := t.Prefix()
	return append(p[:len(p):len(p)], k...)
}

// UserKey returns the user key of data key dk of the table, and false when
// dk is not a key of the table.
func (t Table) UserKey(dk []byte) ([]byte, bool) {
	p := t.Prefix()
	if !bytes.HasPrefix(dk, p) {
		return nil, false
	}
	return dk[len(p):], true
}

// Range is the half-open range [start, end) of the table's keys that start
// with prefix.
func (t Table) Range(prefix []byte) (start, end []byte) {
	start = t.Key(prefix)
	return start, PrefixEnd(start)
}

// RegistryKey is the table's entry in the table registry.
func (t Table) RegistryKey() []byte {
	return append(StackRegistryPrefix(t.Stack), t.Name...)
}

// StackRegistryPrefix is the registry prefix of one stack's tables.
func StackRegistryPrefix(stack ids.StackID) []byte {
	p := make([]byte, 0, len(RegistryPrefix)+32+MaxTableName)
	p = append(p, RegistryPrefix...)
	return append(p, stack[:]...)
}

// StackDataPrefix is the prefix of every data key of one stack.
func StackDataPrefix(stack ids.StackID) []byte {
	return append([]byte(DataPrefix), stack[:]...)
}

// PrefixEnd is the least key greater than every key starting with p: p
// with its last byte below 0xff incremented and what follows dropped. It
// returns nil (no upper bound) only for an empty or all-0xff p, which the
// prefixes of this package never are.
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// KeyAfter is the least key greater than k.
func KeyAfter(k []byte) []byte {
	return append(bytes.Clone(k), 0)
}

// Envelope format: version, expiry (big-endian unix milliseconds, 0 for
// none), then the user's value.
const (
	envelopeV1     = 1
	EnvelopeHeader = 1 + 8
)

// ErrBadEnvelope reports a stored value that muDB did not write.
var ErrBadEnvelope = errors.New("mudb: stored value has no valid envelope")

// Wrap puts value in an envelope with expiry (unix ms; 0 = never).
func Wrap(value []byte, expiryMs uint64) []byte {
	b := make([]byte, EnvelopeHeader, EnvelopeHeader+len(value))
	b[0] = envelopeV1
	binary.BigEndian.PutUint64(b[1:], expiryMs)
	return append(b, value...)
}

// Unwrap returns the user value and expiry of a stored value. The value
// aliases stored.
func Unwrap(stored []byte) (value []byte, expiryMs uint64, err error) {
	if len(stored) < EnvelopeHeader || stored[0] != envelopeV1 {
		return nil, 0, ErrBadEnvelope
	}
	return stored[EnvelopeHeader:], binary.BigEndian.Uint64(stored[1:]), nil
}

// Live reports whether a value with expiry is visible at nowMs.
func Live(expiryMs, nowMs uint64) bool { return expiryMs == 0 || expiryMs > nowMs }

// TTLKey is the TTL index entry of data key dk expiring at expiryMs.
func TTLKey(expiryMs uint64, dk []byte) []byte {
	b := make([]byte, 0, len(TTLPrefix)+8+len(dk))
	b = append(b, TTLPrefix...)
	b = binary.BigEndian.AppendUint64(b, expiryMs)
	return append(b, dk...)
}

// ParseTTLKey splits a TTL index entry into its expiry and data key.
func ParseTTLKey(k []byte) (expiryMs uint64, dk []byte, ok bool) {
	if !bytes.HasPrefix(k, []byte(TTLPrefix)) || len(k) < len(TTLPrefix)+8 {
		return 0, nil, false
	}
	rest := k[len(TTLPrefix):]
	return binary.BigEndian.Uint64(rest), rest[8:], true
}

// TTLRangeUntil is the range of TTL index entries that expire at or
// before nowMs.
func TTLRangeUntil(nowMs uint64) (start, end []byte) {
	return []byte(TTLPrefix), binary.BigEndian.AppendUint64([]byte(TTLPrefix), nowMs+1)
}

// Cursor format: version, kind (cursorStart: from the beginning of the
// range; cursorAfter: strictly after the user key that follows), the key,
// then a 16-byte binding of all of it to the stack, table and prefix.
const (
	cursorV1     = 1
	cursorStart  = 0
	cursorAfter  = 1
	cursorMAC    = 16
	cursorHeader = 2
)

// ErrBadCursor reports a cursor that this scan did not hand out: corrupt,
// forged, or from another stack, table or prefix.
var ErrBadCursor = errors.New("cursor was not returned by a scan of this stack, table and key_prefix")

// Position is where a scan continues: from the start of its range, or
// strictly after After (a user key).
type Position struct {
	After   []byte
	Started bool // After is set: resume after it
}

// EncodeCursor encodes pos for a scan of t with prefix. The binding is a
// hash, not a secret: it catches a cursor used with another stack, table
// or prefix; isolation does not rest on it, since Decode keeps every
// position inside the scan's own range whatever the bytes.
func EncodeCursor(t Table, prefix []byte, pos Position) []byte {
	b := make([]byte, 0, cursorHeader+len(pos.After)+cursorMAC)
	b = append(b, cursorV1)
	if pos.Started {
		b = append(b, cursorAfter)
		b = append(b, pos.After...)
	} else {
		b = append(b, cursorStart)
	}
	return append(b, cursorBinding(t, prefix, b)...)
}

// DecodeCursor checks a cursor against t and prefix and returns its
// position; an empty cursor is the start. The key of a valid position
// starts with prefix and is at most maxKey bytes.
func DecodeCursor(t Table, prefix, cursor []byte, maxKey int) (Position, error) {
	if len(cursor) == 0 {
		return Position{}, nil
	}
	if len(cursor) < cursorHeader+cursorMAC || cursor[0] != cursorV1 {
		return Position{}, ErrBadCursor
	}
	body, mac := cursor[:len(cursor)-cursorMAC], cursor[len(cursor)-cursorMAC:]
	if !bytes.Equal(mac, cursorBinding(t, prefix, body)) {
		return Position{}, ErrBadCursor
	}
	switch body[1] {
	case cursorStart:
		if len(body) != cursorHeader {
			return Position{}, ErrBadCursor
		}
		return Position{}, nil
	case cursorAfter:
		after := body[cursorHeader:]
		if !bytes.HasPrefix(after, prefix) || len(after) == 0 || len(after) > maxKey {
			return Position{}, ErrBadCursor
		}
		return Position{After: bytes.Clone(after), Started: true}, nil
	}
	return Position{}, ErrBadCursor
}

func cursorBinding(t Table, prefix, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte("mudb cursor v1\x00"))
	h.Write(t.Stack[:])
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(t.Name)))])
	h.Write([]byte(t.Name))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(prefix)))])
	h.Write(prefix)
	h.Write(body)
	return h.Sum(nil)[:cursorMAC]
}

// ScanRange is the range a scan of t with prefix reads from pos on: it
// starts at the prefix (or just after pos.After) and ends at the end of
// the prefix, always inside the table.
func ScanRange(t Table, prefix []byte, pos Position) (start, end []byte, err error) {
	start, end = t.Range(prefix)
	if pos.Started {
		if !bytes.HasPrefix(pos.After, prefix) {
			return nil, nil, fmt.Errorf("%w: position outside key_prefix", ErrBadCursor)
		}
		start = KeyAfter(t.Key(pos.After))
	}
	return start, end, nil
}

// Registry entry values: a live table, or a table being deleted by the
// purge holding Token.
const (
	tableLive     = 1
	tableDeleting = 2
)

// TableState is the value of a registry entry.
type TableState struct {
	// Deleting marks a table hidden from every operation while its keys
	// are removed.
	Deleting bool
	// Token identifies the purge that owns a deleting table; a purge stops
	// when the token is no longer its own (another took over).
	Token uint64
}

// Encode returns the stored form of s.
func (s TableState) Encode() []byte {
	if !s.Deleting {
		return []byte{tableLive}
	}
	return binary.BigEndian.AppendUint64([]byte{tableDeleting}, s.Token)
}

// DecodeTableState parses a registry entry value.
func DecodeTableState(b []byte) (TableState, error) {
	switch {
	case len(b) == 1 && b[0] == tableLive:
		return TableState{}, nil
	case len(b) == 9 && b[0] == tableDeleting:
		return TableState{Deleting: true, Token: binary.BigEndian.Uint64(b[1:])}, nil
	}
	return TableState{}, fmt.Errorf("mudb: registry entry %x is not a table state", b)
}
