// Package ids holds the identifiers shared by every service: a stack's id is
// its 32-byte public key, written in base58 (as Solana writes public keys)
// wherever people see it, such as gateway URLs.
package ids

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/mr-tron/base58"
)

// StackID is a stack's 32-byte public key.
type StackID [32]byte

// errZero refuses the all-zero key: no ed25519 key pair has it, so it is
// always a placeholder or a bug, never a stack.
var errZero = errors.New("stack id is all zeroes (not a public key)")

// ParseStackID parses the base58 form of a stack id. The all-zero id is
// refused.
func ParseStackID(s string) (StackID, error) {
	var id StackID
	if s == "" {
		return id, fmt.Errorf("stack id is empty")
	}
	if len(s) > 64 {
		return id, fmt.Errorf("stack id %.16q... is %d characters, more than a base58 32-byte key can be", s, len(s))
	}
	b, err := base58.Decode(s)
	if err != nil {
		return id, fmt.Errorf("stack id %q is not base58: %v", s, err)
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("stack id %q decodes to %d bytes, want 32", s, len(b))
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, errZero
	}
	return id, nil
}

// StackIDFromBytes converts the wire form (proto bytes fields) of a stack
// id. The all-zero id is refused.
func StackIDFromBytes(b []byte) (StackID, error) {
	var id StackID
	if len(b) != len(id) {
		return id, fmt.Errorf("stack_id is %d bytes, want 32", len(b))
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, errZero
	}
	return id, nil
}

// NewStackID makes a fresh random stack id (a new ed25519 public key) and
// returns the private key that owns it.
func NewStackID() (StackID, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return StackID{}, nil, err
	}
	var id StackID
	copy(id[:], pub)
	return id, priv, nil
}

// String is the base58 form.
func (id StackID) String() string { return base58.Encode(id[:]) }

// Bytes is the wire form.
func (id StackID) Bytes() []byte { return append([]byte(nil), id[:]...) }

// IsZero reports whether id is all zeroes (unset).
func (id StackID) IsZero() bool { return id == StackID{} }

// MarshalText implements encoding.TextMarshaler (base58).
func (id StackID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (base58).
func (id *StackID) UnmarshalText(b []byte) error {
	v, err := ParseStackID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// BinaryID is the content id of a function binary: base58 of its SHA-256.
// Manifests name binaries by it, storage keeps them under it and the
// runtime checks every binary it receives against it.
func BinaryID(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return base58.Encode(sum[:])
}
