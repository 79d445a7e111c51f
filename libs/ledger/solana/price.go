package solana

import (
	"fmt"
	"math/bits"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// programCharge is what update_usage charges for u at a region's rates,
// computed as the program computes it (calc_usage): each unit's price
// truncated separately (function: rate × mbi / 10^12 and db stored: rate ×
// byte-seconds / GiB-month in 128 bits, cast to u64; reads, writes,
// requests and traffic in 64 bits), the commission as price × micros /
// 10^6 in 64 bits, the provider the rest.
//
// The program is built without overflow checks, so where its arithmetic
// would wrap (or its u128 → u64 cast would cut) programCharge refuses with
// ErrOverflow instead: the backend never sends such an update. It refuses
// with ErrUnsupported storage amounts (CapStorage) and a unit whose price
// is not whole tokens (CapCarries: the program would drop the remainder),
// and with ErrOverflow amounts the program's 64-bit fields cannot hold.
func programCharge(op string, r marketplace.ServiceRates, u ledger.Usage, micros uint32) (marketplace.ServiceUsage, uint64, uint64, error) {
	var su marketplace.ServiceUsage
	if !u.StorageStoredByteSeconds.IsZero() || !u.StorageTrafficBytes.IsZero() {
		return su, 0, 0, fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapStorage,
			fmt.Sprintf("storage usage (%s byte-seconds stored, %s bytes of traffic) has no field in the program's usage update",
				u.StorageStoredByteSeconds, u.StorageTrafficBytes)))
	}
	narrow := func(unit ledger.Unit) (uint64, error) {
		v, ok := u.Amount(unit).Uint64()
		if !ok {
			return 0, fail(op, ledger.ErrOverflow, "%s %s exceeds the program's 64-bit field", unit, u.Amount(unit))
		}
		return v, nil
	}
	var err error
	su.FunctionMBInstructions = u.FunctionMBInstructions
	su.DBBytesSeconds = u.DBStoredByteSeconds
	if su.DBReads, err = narrow(ledger.UnitDBReads); err != nil {
		return su, 0, 0, err
	}
	if su.DBWrites, err = narrow(ledger.UnitDBWrites); err != nil {
		return su, 0, 0, err
	}
	if su.GatewayRequests, err = narrow(ledger.UnitGatewayRequests); err != nil {
		return su, 0, 0, err
	}
	if su.GatewayTrafficBytes, err = narrow(ledger.UnitGatewayTrafficBytes); err != nil {
		return su, 0, 0, err
	}
	rates := publicRates(r)
	var total uint64
	for _, unit := range []ledger.Unit{ledger.UnitFunctionMBInstructions, ledger.UnitDBStoredByteSeconds,
		ledger.UnitDBReads, ledger.UnitDBWrites, ledger.UnitGatewayRequests, ledger.UnitGatewayTrafficBytes} {
		rate, amount, q := rates.Rate(unit), u.Amount(unit), ledger.Quantity(unit)
		product, over := amount.Mul64(rate)
		wide := unit == ledger.UnitFunctionMBInstructions || unit == ledger.UnitDBStoredByteSeconds
		if over || (!wide && product.Hi != 0) {
			width := 64
			if wide {
				width = 128
			}
			return su, 0, 0, fail(op, ledger.ErrOverflow, "%s %s × rate %d exceeds the program's %d-bit arithmetic", unit, amount, rate, width)
		}
		price, rem := product.DivMod64(q)
		p, ok := price.Uint64()
		if !ok {
			return su, 0, 0, fail(op, ledger.ErrOverflow, "%s costs %s tokens, more than the program's 64-bit price", unit, price)
		}
		if rem != 0 {
			return su, 0, 0, fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapCarries,
				fmt.Sprintf("%s %s at rate %d per %d costs %d and %d/%d tokens; the program would drop the fraction (send whole-token amounts, ledger.WholeTokenUsage)",
					unit, amount, rate, q, p, rem, q)))
		}
		var c uint64
		if total, c = bits.Add64(total, p, 0); c != 0 {
			return su, 0, 0, fail(op, ledger.ErrOverflow, "the units' prices sum past 2^64-1")
		}
	}
	hi, lo := bits.Mul64(total, uint64(micros))
	if hi != 0 {
		return su, 0, 0, fail(op, ledger.ErrOverflow, "price %d × commission %d micros exceeds the program's 64-bit arithmetic", total, micros)
	}
	return su, total, lo / 1_000_000, nil
}
