package manifest

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. In a manifest it is written as a whole
// number of bytes (1048576) or as a number with a unit: decimal kB (or KB),
// MB, GB, TB (powers of 1000) or binary KiB, MiB, GiB, TiB (powers of 1024),
// for example 256MiB, 1GB or 1.5GiB. See ParseByteSize.
type ByteSize uint64

// Binary size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// maxSizeDigits bounds the length of the number in a size so that parsing
// stays cheap whatever the input; 40 digits are more than any uint64 needs.
const maxSizeDigits = 40

// sizeUnit is one unit accepted by ParseByteSize.
type sizeUnit struct {
	name string
	mult uint64
}

// sizeUnits lists the accepted units. String prefers the earlier of two
// equally short spellings, so binary units come first.
var sizeUnits = []sizeUnit{
	{"TiB", uint64(TiB)}, {"GiB", uint64(GiB)}, {"MiB", uint64(MiB)}, {"KiB", uint64(KiB)},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3},
	{"B", 1},
}

const unitList = "B, kB, KB, MB, GB, TB, KiB, MiB, GiB or TiB"

// ParseByteSize parses a size such as "256MiB", "1GB", "512KiB", "1.5GiB" or
// "1048576" (bytes). Blanks around the number and unit are ignored. Units are
// case-sensitive (Mb would be megabits, so it is refused). A fraction is
// accepted only if the result is a whole number of bytes. Negative sizes,
// sizes above 2^64-1 and unknown units are errors.
func ParseByteSize(s string) (ByteSize, error) {
	fail := func(format string, args ...any) (ByteSize, error) {
		return 0, fmt.Errorf("invalid size %q: %s", s, fmt.Sprintf(format, args...))
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return fail("empty")
	}
	if t[0] == '-' {
		return fail("negative sizes are not allowed")
	}
	i := 0
	for i < len(t) && isDigit(t[i]) {
		i++
	}
	intPart := t[:i]
	fracPart := ""
	if i < len(t) && t[i] == '.' {
		j := i + 1
		for j < len(t) && isDigit(t[j]) {
			j++
		}
		fracPart = t[i+1 : j]
		if fracPart == "" {
			return fail("missing digits after the decimal point")
		}
		i = j
	}
	if intPart == "" {
		return fail("must start with a number")
	}
	if len(intPart)+len(fracPart) > maxSizeDigits {
		return fail("too many digits")
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := uint64(0), false
	if unit == "" {
		mult, ok = 1, true
	}
	for _, u := range sizeUnits {
		if u.name == unit {
			mult, ok = u.mult, true
		}
	}
	if !ok {
		return fail("unknown unit %q (want %s)", unit, unitList)
	}
	n, _ := new(big.Int).SetString(intPart+fracPart, 10) // only digits, cannot fail
	n.Mul(n, new(big.Int).SetUint64(mult))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil)
	q, r := new(big.Int).QuoRem(n, scale, new(big.Int))
	if r.Sign() != 0 {
		return fail("not a whole number of bytes")
	}
	if !q.IsUint64() {
		return fail("too large (the maximum is %d bytes)", uint64(math.MaxUint64))
	}
	return ByteSize(q.Uint64()), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// String returns the shortest exact spelling of b that ParseByteSize reads
// back to b: "256MiB", "1GB", "1000001B", "0B".
func (b ByteSize) String() string {
	best := strconv.FormatUint(uint64(b), 10) + "B"
	if b == 0 {
		return best
	}
	for _, u := range sizeUnits {
		if uint64(b)%u.mult != 0 {
			continue
		}
		if c := strconv.FormatUint(uint64(b)/u.mult, 10) + u.name; len(c) < len(best) {
			best = c
		}
	}
	return best
}

// MiBCeil returns b in mebibytes, rounded up: the memory factor of
// megabyte-instruction billing (design §8).
func (b ByteSize) MiBCeil() uint64 {
	q := uint64(b) / uint64(MiB)
	if uint64(b)%uint64(MiB) != 0 {
		q++
	}
	return q
}

// MarshalText implements encoding.TextMarshaler with String.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	if b == nil {
		return errors.New("manifest: UnmarshalText on nil *ByteSize")
	}
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
