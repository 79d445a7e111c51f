package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mr-tron/base58"
)

// Pubkey is a 32-byte ed25519 public key or account address, written in
// base58 as Solana writes them.
type Pubkey [32]byte

// String is the base58 form.
func (p Pubkey) String() string { return base58.Encode(p[:]) }

// IsZero reports the all-zero key, which stands for "none".
func (p Pubkey) IsZero() bool { return p == Pubkey{} }

// Bytes returns a copy of the 32 bytes (the wire form of proto bytes
// fields).
func (p Pubkey) Bytes() []byte { return append([]byte(nil), p[:]...) }

// MarshalText writes the base58 form (so Pubkeys read well in JSON).
func (p Pubkey) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads the base58 form.
func (p *Pubkey) UnmarshalText(b []byte) error {
	k, err := ParsePubkey(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParsePubkey reads the base58 form of a key.
func ParsePubkey(s string) (Pubkey, error) {
	var p Pubkey
	if s == "" {
		return p, errors.New("public key is empty")
	}
	if len(s) > 64 {
		return p, fmt.Errorf("public key %.16q... is %d characters, more than a base58 32-byte key can be", s, len(s))
	}
	b, err := base58.Decode(s)
	if err != nil {
		return p, fmt.Errorf("public key %q is not base58: %v", s, err)
	}
	if len(b) != len(p) {
		return p, fmt.Errorf("public key %q decodes to %d bytes, want 32", s, len(b))
	}
	copy(p[:], b)
	return p, nil
}

// PubkeyFromBytes converts the wire form (proto bytes fields); field names
// the field in the error.
func PubkeyFromBytes(field string, b []byte) (Pubkey, error) {
	var p Pubkey
	if len(b) != len(p) {
		return p, fmt.Errorf("%s is %d bytes, want 32", field, len(b))
	}
	copy(p[:], b)
	return p, nil
}

// Signer is a key that signs ledger writes. Implementations must be safe
// for concurrent use.
type Signer interface {
	// Pubkey is the key's public half.
	Pubkey() Pubkey
	// Sign returns the ed25519 signature of msg.
	Sign(msg []byte) ([]byte, error)
}

// Keypair is an ed25519 key pair held in memory. It implements Signer.
type Keypair struct {
	priv ed25519.PrivateKey
}

// GenerateKeypair makes a new random key pair.
func GenerateKeypair() (*Keypair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	return &Keypair{priv: priv}, nil
}

// KeypairFromPrivateKey wraps an ed25519 private key.
func KeypairFromPrivateKey(priv ed25519.PrivateKey) (*Keypair, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	return &Keypair{priv: append(ed25519.PrivateKey(nil), priv...)}, nil
}

// KeypairFromSeed derives a key pair from a 32-byte seed (deterministic;
// for tests and dev keys).
func KeypairFromSeed(seed []byte) (*Keypair, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return &Keypair{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Pubkey is the public half.
func (k *Keypair) Pubkey() Pubkey {
	var p Pubkey
	copy(p[:], k.priv.Public().(ed25519.PublicKey))
	return p
}

// Sign signs msg.
func (k *Keypair) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }

// PrivateKey returns a copy of the ed25519 private key.
func (k *Keypair) PrivateKey() ed25519.PrivateKey { return append(ed25519.PrivateKey(nil), k.priv...) }

// MarshalJSON writes Solana's keypair file format: a JSON array of the 64
// bytes of the private key (seed then public key).
func (k *Keypair) MarshalJSON() ([]byte, error) {
	ints := make([]int, len(k.priv))
	for i, b := range k.priv {
		ints[i] = int(b)
	}
	return json.Marshal(ints)
}

// UnmarshalJSON reads Solana's keypair file format and checks that the
// public half matches the seed.
func (k *Keypair) UnmarshalJSON(b []byte) error {
	var ints []int
	if err := json.Unmarshal(b, &ints); err != nil {
		return fmt.Errorf("keypair: want a JSON array of 64 byte values: %w", err)
	}
	if len(ints) != ed25519.PrivateKeySize {
		return fmt.Errorf("keypair: %d bytes, want %d", len(ints), ed25519.PrivateKeySize)
	}
	raw := make([]byte, len(ints))
	for i, v := range ints {
		if v < 0 || v > 255 {
			return fmt.Errorf("keypair: byte %d is %d, not 0..255", i, v)
		}
		raw[i] = byte(v)
	}
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if string(priv[ed25519.SeedSize:]) != string(raw[ed25519.SeedSize:]) {
		return errors.New("keypair: the public key does not belong to the private key")
	}
	k.priv = priv
	return nil
}

// LoadKeypair reads a Solana JSON keypair file.
func LoadKeypair(path string) (*Keypair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keypair: %w", err)
	}
	k := new(Keypair)
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveKeypair writes k to path in Solana's JSON keypair format with file
// mode 0600, creating the directory; it refuses to overwrite a file.
func SaveKeypair(path string, k *Keypair) error {
	b, err := k.MarshalJSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keypair: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keypair: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keypair %s: %w", path, err)
	}
	return f.Close()
}

// LoadOrCreateKeypair reads the keypair at path, or makes one and saves
// it there when the file does not exist.
func LoadOrCreateKeypair(path string) (*Keypair, error) {
	k, err := LoadKeypair(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKeypair(); err != nil {
		return nil, err
	}
	if err := SaveKeypair(path, k); err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first
			return LoadKeypair(path)
		}
		return nil, err
	}
	return k, nil
}
