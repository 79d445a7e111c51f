package ledger

import (
	"fmt"
	"math/big"
	"math/bits"
)

// Uint128 is an unsigned 128-bit integer, Hi*2^64 + Lo, for usage amounts
// and charges that may exceed 64 bits.
type Uint128 struct{ Hi, Lo uint64 }

// U128 widens x.
func U128(x uint64) Uint128 { return Uint128{Lo: x} }

// IsZero reports x == 0.
func (x Uint128) IsZero() bool { return x.Hi == 0 && x.Lo == 0 }

// Cmp compares: -1, 0 or +1.
func (x Uint128) Cmp(y Uint128) int {
	switch {
	case x.Hi < y.Hi:
		return -1
	case x.Hi > y.Hi:
		return 1
	case x.Lo < y.Lo:
		return -1
	case x.Lo > y.Lo:
		return 1
	}
	return 0
}

// Add returns x+y and whether it overflowed 128 bits.
func (x Uint128) Add(y Uint128) (Uint128, bool) {
	lo, c := bits.Add64(x.Lo, y.Lo, 0)
	hi, c := bits.Add64(x.Hi, y.Hi, c)
	return Uint128{hi, lo}, c != 0
}

// Sub returns x-y and whether it underflowed.
func (x Uint128) Sub(y Uint128) (Uint128, bool) {
	lo, b := bits.Sub64(x.Lo, y.Lo, 0)
	hi, b := bits.Sub64(x.Hi, y.Hi, b)
	return Uint128{hi, lo}, b != 0
}

// Mul64 returns x*y and whether it overflowed 128 bits.
func (x Uint128) Mul64(y uint64) (Uint128, bool) {
	hiLo, lo := bits.Mul64(x.Lo, y)
	hiHi, hi := bits.Mul64(x.Hi, y)
	hi, c := bits.Add64(hi, hiLo, 0)
	return Uint128{hi, lo}, hiHi != 0 || c != 0
}

// DivMod64 returns x/y and x%y; y must not be 0.
func (x Uint128) DivMod64(y uint64) (Uint128, uint64) {
	qHi, r := x.Hi/y, x.Hi%y
	qLo, r := bits.Div64(r, x.Lo, y)
	return Uint128{qHi, qLo}, r
}

// Uint64 returns x and whether it fits 64 bits.
func (x Uint128) Uint64() (uint64, bool) { return x.Lo, x.Hi == 0 }

// Big returns x as a big.Int.
func (x Uint128) Big() *big.Int {
	b := new(big.Int).SetUint64(x.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(x.Lo))
}

// String is the decimal form.
func (x Uint128) String() string { return x.Big().String() }

// MarshalText writes the decimal form.
func (x Uint128) MarshalText() ([]byte, error) { return []byte(x.String()), nil }

// UnmarshalText reads the decimal form.
func (x *Uint128) UnmarshalText(b []byte) error {
	v, ok := new(big.Int).SetString(string(b), 10)
	if !ok || v.Sign() < 0 || v.BitLen() > 128 {
		return fmt.Errorf("%q is not an unsigned 128-bit integer", b)
	}
	x.Lo = new(big.Int).And(v, new(big.Int).SetUint64(^uint64(0))).Uint64()
	x.Hi = new(big.Int).Rsh(v, 64).Uint64()
	return nil
}
