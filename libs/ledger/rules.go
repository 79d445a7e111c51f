package ledger

import (
	"fmt"
	"math/bits"
)

// Unit is one of the eight billed units of design section 8, in the order
// of the fields of Rates, Usage and Carry.
type Unit int

// The billed units.
const (
	UnitFunctionMBInstructions Unit = iota
	UnitDBReads
	UnitDBWrites
	UnitDBStoredByteSeconds
	UnitGatewayRequests
	UnitGatewayTrafficBytes
	UnitStorageStoredByteSeconds
	UnitStorageTrafficBytes
	// NumUnits is the number of units.
	NumUnits
)

// Sizes of the stated quantities.
const (
	// GiB is 2^30 bytes.
	GiB = 1 << 30
	// MonthSeconds is the 30-day month of the GiB-month rates.
	MonthSeconds = 30 * 24 * 60 * 60 // 2,592,000
	// GiBMonthByteSeconds is one GiB stored for one month, in byte-seconds
	// (about 2.8e15, within 64 bits).
	GiBMonthByteSeconds = GiB * MonthSeconds
)

var unitNames = [NumUnits]string{
	"function_mb_instructions",
	"db_reads",
	"db_writes",
	"db_stored_byte_seconds",
	"gateway_requests",
	"gateway_traffic_bytes",
	"storage_stored_byte_seconds",
	"storage_traffic_bytes",
}

var quantities = [NumUnits]uint64{
	1_000_000_000_000,   // function: per 10^12 MB-instructions
	1_000_000,           // db: per million reads
	1_000_000,           // db: per million writes
	GiBMonthByteSeconds, // db: per GiB-month stored
	1_000_000,           // gateway: per million requests
	GiB,                 // gateway: per GiB of traffic
	GiBMonthByteSeconds, // storage: per GiB-month stored
	GiB,                 // storage: per GiB of traffic
}

// String is the unit's snake_case name (that of its Usage field).
func (u Unit) String() string {
	if u < 0 || u >= NumUnits {
		return fmt.Sprintf("unit(%d)", int(u))
	}
	return unitNames[u]
}

// Quantity is how many of unit u one rate prices: a region's rate for u is
// token base units per Quantity(u) of u. It is 0 for an unknown unit.
func Quantity(u Unit) uint64 {
	if u < 0 || u >= NumUnits {
		return 0
	}
	return quantities[u]
}

// Quantities returns Quantity of every unit, indexed by Unit.
func Quantities() [NumUnits]uint64 { return quantities }

// Rate returns the rate of unit u (0 for an unknown unit).
func (r Rates) Rate(u Unit) uint64 {
	switch u {
	case UnitFunctionMBInstructions:
		return r.FunctionPerTeraMBInstructions
	case UnitDBReads:
		return r.DBPerMillionReads
	case UnitDBWrites:
		return r.DBPerMillionWrites
	case UnitDBStoredByteSeconds:
		return r.DBPerGiBMonthStored
	case UnitGatewayRequests:
		return r.GatewayPerMillionRequests
	case UnitGatewayTrafficBytes:
		return r.GatewayPerGiBTraffic
	case UnitStorageStoredByteSeconds:
		return r.StoragePerGiBMonthStored
	case UnitStorageTrafficBytes:
		return r.StoragePerGiBTraffic
	}
	return 0
}

// Amount returns the amount of unit u (0 for an unknown unit).
func (x Usage) Amount(u Unit) Uint128 {
	switch u {
	case UnitFunctionMBInstructions:
		return x.FunctionMBInstructions
	case UnitDBReads:
		return x.DBReads
	case UnitDBWrites:
		return x.DBWrites
	case UnitDBStoredByteSeconds:
		return x.DBStoredByteSeconds
	case UnitGatewayRequests:
		return x.GatewayRequests
	case UnitGatewayTrafficBytes:
		return x.GatewayTrafficBytes
	case UnitStorageStoredByteSeconds:
		return x.StorageStoredByteSeconds
	case UnitStorageTrafficBytes:
		return x.StorageTrafficBytes
	}
	return Uint128{}
}

// Carry holds, per unit (indexed by Unit), the sub-unit remainder an
// earlier charge left: a numerator in rate × amount space, always below
// Quantity of its unit. The zero value is a stack's carry before its first
// update.
type Carry [NumUnits]uint64

// Charge prices one usage update, the rule every ledger backend applies.
// Per unit: total = amount × rate + carry; the unit's due is
// total / Quantity and the next carry total % Quantity. due is the sum of
// the units' dues. All arithmetic is exact in 128 bits: a product or sum
// that would not fit fails with ErrOverflow (never wraps), and a carry not
// below its unit's quantity (not one Charge produced) fails with
// ErrInvalidArgument. On error next is the zero Carry.
func Charge(r Rates, u Usage, carry Carry) (due Uint128, next Carry, err error) {
	for unit := Unit(0); unit < NumUnits; unit++ {
		q := quantities[unit]
		if carry[unit] >= q {
			return Uint128{}, Carry{}, fmt.Errorf("%w: %s carry %d is not below its quantity %d", ErrInvalidArgument, unit, carry[unit], q)
		}
		amount, rate := u.Amount(unit), r.Rate(unit)
		total, over := amount.Mul64(rate)
		if over {
			return Uint128{}, Carry{}, fmt.Errorf("%w: %s amount %s × rate %d exceeds 128 bits", ErrOverflow, unit, amount, rate)
		}
		if total, over = total.Add(U128(carry[unit])); over {
			return Uint128{}, Carry{}, fmt.Errorf("%w: %s amount %s × rate %d + carry %d exceeds 128 bits", ErrOverflow, unit, amount, rate, carry[unit])
		}
		d, rem := total.DivMod64(q)
		next[unit] = rem
		if due, over = due.Add(d); over {
			return Uint128{}, Carry{}, fmt.Errorf("%w: the sum of the units' dues exceeds 128 bits", ErrOverflow)
		}
	}
	return due, next, nil
}

// Commission is the marketplace's share of charged at micros millionths,
// rounded down (the provider gets charged - Commission, so no token is
// lost). micros above 1,000,000 count as 1,000,000.
func Commission(charged uint64, micros uint32) uint64 {
	if micros > 1_000_000 {
		micros = 1_000_000
	}
	hi, lo := bits.Mul64(charged, uint64(micros))
	q, _ := bits.Div64(hi, lo, 1_000_000) // hi < 10^6 since micros ≤ 10^6
	return q
}

// WholeTokenUsage splits u into what a backend that truncates each unit's
// price separately (one without CapCarries) can be sent without losing a
// sub-token remainder, and what must wait for the next update. Per unit,
// send is the largest amount not above u whose price under r is a whole
// number of tokens: a multiple of Quantity / gcd(rate, Quantity), so
// send × rate / Quantity has no remainder. carry = u - send is below that
// step; the caller adds it to the unit's next usage. A unit priced 0 costs
// nothing whatever is sent, so all of it is sent (carrying it would only
// keep usage unsettled that no update can ever charge).
//
// The sum of the whole-token prices of the sends then equals what Charge
// (with carries) charges for the same usage, up to the final carry: no
// token is lost to truncation and none is charged twice.
func WholeTokenUsage(r Rates, u Usage) (send, carry Usage) {
	for unit := Unit(0); unit < NumUnits; unit++ {
		step := WholeTokenStep(r.Rate(unit), quantities[unit])
		_, rem := u.Amount(unit).DivMod64(step)
		s, _ := u.Amount(unit).Sub(U128(rem))
		send.Set(unit, s)
		carry.Set(unit, U128(rem))
	}
	return send, carry
}

// WholeTokenStep is the least positive amount of a unit of the given
// quantity whose price at rate is a whole number of tokens: quantity /
// gcd(rate, quantity), 1 for rate 0 (and for a quantity of 0). Every
// whole-token amount is a multiple of it.
func WholeTokenStep(rate, quantity uint64) uint64 {
	if rate == 0 || quantity == 0 {
		return 1
	}
	a, b := rate, quantity
	for b != 0 {
		a, b = b, a%b
	}
	return quantity / a
}
