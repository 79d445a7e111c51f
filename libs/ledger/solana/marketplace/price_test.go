package marketplace

import (
	"math/big"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
)

func TestPrice_TruncatesEachUnitSeparately(t *testing.T) {
	rates := ServiceRates{
		FunctionMBTeraInstructions: 3, DBGigabyteMonths: 5, MillionDBReads: 7,
		MillionDBWrites: 11, MillionGatewayRequests: 13, GigabytesGatewayTraffic: 17,
	}
	usage := ServiceUsage{
		FunctionMBInstructions: ledger.U128(1_000_000_000_000*2 + 999_999_999_999), // 3×2.999… = 8.99… → 8
		DBBytesSeconds:         ledger.U128(1073741824 * 2592000),                  // one GiB-month → 5
		DBReads:                142_858,                                            // 7×0.142858 = 1.000006 → 1
		DBWrites:               90_909,                                             // 11×0.090909 = 0.999999 → 0
		GatewayRequests:        1_000_000,                                          // 13
		GatewayTrafficBytes:    1073741824/17*2 + 1,                                // 17×… just under 2 → 1
	}
	c := Price(rates, usage, 250_000)
	if want := (Charge{Total: 8 + 5 + 1 + 0 + 13 + 1, Commission: 7, Provider: 21}); c != want {
		t.Errorf("Price = %+v, want %+v", c, want)
	}
}

func TestPrice_CommissionIsTruncatedAndTheProviderGetsTheRest(t *testing.T) {
	rates := ServiceRates{MillionGatewayRequests: 1}
	for _, c := range []struct {
		requests, micros  uint64
		total, commission uint64
	}{
		{9_000_000, 100_000, 9, 0},      // 0.9 → 0
		{10_000_000, 100_000, 10, 1},    // 1
		{10_000_000, 1_000_000, 10, 10}, // all of it
		{10_000_000, 0, 10, 0},
	} {
		got := Price(rates, ServiceUsage{GatewayRequests: c.requests}, uint32(c.micros))
		if got.Total != c.total || got.Commission != c.commission || got.Provider != c.total-c.commission || got.Wrapped {
			t.Errorf("%d requests at %d micros: %+v", c.requests, c.micros, got)
		}
	}
}

func TestPrice_ReportsWhereTheProgramsArithmeticWraps(t *testing.T) {
	big := ledger.Uint128{Hi: 1 << 63}
	for name, c := range map[string]struct {
		rates ServiceRates
		usage ServiceUsage
	}{
		"u64 reads product": {ServiceRates{MillionDBReads: 1 << 40}, ServiceUsage{DBReads: 1 << 40}},
		"u128 product":      {ServiceRates{FunctionMBTeraInstructions: 2}, ServiceUsage{FunctionMBInstructions: big}},
		"u128 to u64 cast":  {ServiceRates{FunctionMBTeraInstructions: 1}, ServiceUsage{FunctionMBInstructions: ledger.Uint128{Hi: 1 << 50}}},
		"sum": {ServiceRates{MillionGatewayRequests: 1 << 63, GigabytesGatewayTraffic: 1 << 63},
			ServiceUsage{GatewayRequests: 2_000_000, GatewayTrafficBytes: 2 * GiBUnit}},
	} {
		if got := Price(c.rates, c.usage, 0); !got.Wrapped {
			t.Errorf("%s: not reported wrapped: %+v", name, got)
		}
	}
	// The commission's product wraps too: total × micros in u64.
	if got := Price(ServiceRates{MillionGatewayRequests: 1 << 50}, ServiceUsage{GatewayRequests: 1_000_000}, 1_000_000); !got.Wrapped {
		t.Errorf("commission product: not reported wrapped: %+v", got)
	}
	// The wrapped amounts are the program's: (2^40·2^40 mod 2^64)/10^6.
	got := Price(ServiceRates{MillionDBReads: 1 << 40}, ServiceUsage{DBReads: 1 << 40}, 0)
	if got.Total != 0 {
		t.Errorf("2^80 mod 2^64 / 10^6 = %d, want 0", got.Total)
	}
}

// FuzzPrice checks Price against the program's arithmetic written with
// big integers: products reduced modulo 2^128 (function, database storage)
// or 2^64 (the rest), quotients cut to 64 bits, sums and the commission
// modulo 2^64; Wrapped exactly when a reduction changed a value.
func FuzzPrice(f *testing.F) {
	f.Add(uint64(3), uint64(5), uint64(7), uint64(11), uint64(13), uint64(17),
		uint64(0), uint64(2_999_999_999_999), uint64(0), uint64(2_782_480_697_344_000),
		uint64(142_858), uint64(90_909), uint64(1_000_000), uint64(126_322_567), uint32(250_000))
	f.Add(uint64(1<<63), uint64(2), uint64(1<<40), uint64(1), uint64(1<<63), uint64(1<<63),
		uint64(1<<63), uint64(0), uint64(1<<50), uint64(5),
		uint64(1<<40), uint64(1), uint64(2_000_000), uint64(2<<30), uint32(1_000_000))
	f.Fuzz(func(t *testing.T, rf, rdb, rr, rw, rq, rt, fHi, fLo, dHi, dLo, reads, writes, reqs, traffic uint64, micros uint32) {
		rates := ServiceRates{rf, rdb, rr, rw, rq, rt}
		usage := ServiceUsage{ledger.Uint128{Hi: fHi, Lo: fLo}, ledger.Uint128{Hi: dHi, Lo: dLo}, reads, writes, reqs, traffic}
		got := Price(rates, usage, micros)

		two64 := new(big.Int).Lsh(big.NewInt(1), 64)
		two128 := new(big.Int).Lsh(big.NewInt(1), 128)
		wrapped := false
		mod := func(x, m *big.Int) *big.Int {
			if x.Cmp(m) >= 0 {
				wrapped = true
				return new(big.Int).Mod(x, m)
			}
			return x
		}
		term := func(rate uint64, n *big.Int, width *big.Int, unit uint64) *big.Int {
			p := mod(new(big.Int).Mul(new(big.Int).SetUint64(rate), n), width)
			return mod(p.Quo(p, new(big.Int).SetUint64(unit)), two64)
		}
		u := func(x uint64) *big.Int { return new(big.Int).SetUint64(x) }
		total := new(big.Int)
		for _, x := range []*big.Int{
			term(rf, usage.FunctionMBInstructions.Big(), two128, FunctionInstructionsUnit),
			term(rdb, usage.DBBytesSeconds.Big(), two128, DBByteSecondsUnit),
			term(rr, u(reads), two64, MillionUnit),
			term(rw, u(writes), two64, MillionUnit),
			term(rq, u(reqs), two64, MillionUnit),
			term(rt, u(traffic), two64, GiBUnit),
		} {
			total = mod(total.Add(total, x), two64)
		}
		commission := term(total.Uint64(), u(uint64(micros)), two64, CommissionUnit)
		provider := new(big.Int).Sub(total, commission)
		if provider.Sign() < 0 {
			wrapped = true
			provider.Add(provider, two64)
		}
		want := Charge{Total: total.Uint64(), Commission: commission.Uint64(), Provider: provider.Uint64(), Wrapped: wrapped}
		if got != want {
			t.Fatalf("Price(%+v, %+v, %d) = %+v, want %+v", rates, usage, micros, got, want)
		}
	})
}
