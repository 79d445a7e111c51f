package marketplace

import (
	"math/bits"

	"github.com/muprotocol/mu/libs/ledger"
)

// The divisors of the program's price rule (calc_usage).
const (
	// FunctionInstructionsUnit: function rates are per 10^12
	// MB-instructions.
	FunctionInstructionsUnit = 1_000_000_000_000
	// DBByteSecondsUnit: database storage rates are per GiB-month, a month
	// being 30 days: 2^30 × 2 592 000 byte-seconds.
	DBByteSecondsUnit = 1024 * 1024 * 1024 * 60 * 60 * 24 * 30
	// MillionUnit: read, write and request rates are per million.
	MillionUnit = 1_000_000
	// GiBUnit: traffic rates are per GiB.
	GiBUnit = 1024 * 1024 * 1024
	// CommissionUnit: the commission rate is in millionths of the price.
	CommissionUnit = 1_000_000
)

// Charge is what update_usage moves for one usage report: Total leaves the
// escrow, Commission goes to the commission account and Provider (Total −
// Commission) to the provider's token account.
//
// Wrapped reports that a step of the computation left its integer type.
// The program is built without overflow checks (its Cargo.toml sets
// overflow-checks in a member crate's profile, which cargo ignores in a
// workspace), so on chain such a step wraps silently and the amounts
// above are the wrapped ones the program moves. A caller must not send a
// report whose charge wraps; it can send the usage in smaller parts.
type Charge struct {
	Total      uint64
	Commission uint64
	Provider   uint64
	Wrapped    bool
}

// Price computes update_usage's charge of usage at rates with a commission
// of commissionMicros, exactly as the program does: each unit's cost is
// truncated separately (function and database storage in 128 bits, then
// cut to 64; reads, writes, requests and traffic in 64 bits), the costs
// are summed, and the commission is truncated from the total.
func Price(rates ServiceRates, usage ServiceUsage, commissionMicros uint32) Charge {
	var c Charge
	wide := func(rate uint64, n ledger.Uint128, unit uint64) uint64 {
		p, over := n.Mul64(rate)
		q, _ := p.DivMod64(unit)
		if over || q.Hi != 0 {
			c.Wrapped = true
		}
		return q.Lo // `as u64` keeps the low 64 bits
	}
	narrow := func(rate, n, unit uint64) uint64 {
		hi, lo := bits.Mul64(rate, n)
		if hi != 0 {
			c.Wrapped = true
		}
		return lo / unit
	}
	terms := [...]uint64{
		wide(rates.FunctionMBTeraInstructions, usage.FunctionMBInstructions, FunctionInstructionsUnit),
		wide(rates.DBGigabyteMonths, usage.DBBytesSeconds, DBByteSecondsUnit),
		narrow(rates.MillionDBReads, usage.DBReads, MillionUnit),
		narrow(rates.MillionDBWrites, usage.DBWrites, MillionUnit),
		narrow(rates.MillionGatewayRequests, usage.GatewayRequests, MillionUnit),
		narrow(rates.GigabytesGatewayTraffic, usage.GatewayTrafficBytes, GiBUnit),
	}
	for _, t := range terms {
		var carry uint64
		c.Total, carry = bits.Add64(c.Total, t, 0)
		if carry != 0 {
			c.Wrapped = true
		}
	}
	c.Commission = narrow(c.Total, uint64(commissionMicros), CommissionUnit)
	var borrow uint64
	c.Provider, borrow = bits.Sub64(c.Total, c.Commission, 0)
	if borrow != 0 {
		c.Wrapped = true
	}
	return c
}
