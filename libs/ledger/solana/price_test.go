package solana

import (
	"errors"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

var testRates = marketplace.ServiceRates{FunctionMBTeraInstructions: 1000, DBGigabyteMonths: 50, MillionDBReads: 7,
	MillionDBWrites: 20, MillionGatewayRequests: 300, GigabytesGatewayTraffic: 90}

func TestProgramCharge_PricesWholeUnitsAsTheProgram(t *testing.T) {
	u := ledger.Usage{
		FunctionMBInstructions: ledger.U128(3_000_000_000_000), // 3000
		DBStoredByteSeconds:    ledger.U128(ledger.GiBMonthByteSeconds),
		DBReads:                ledger.U128(2_000_000), // 14
		DBWrites:               ledger.U128(1_000_000), // 20
		GatewayRequests:        ledger.U128(1_000_000), // 300
		GatewayTrafficBytes:    ledger.U128(2 << 30),   // 180
	}
	su, due, commission, err := programCharge("test", testRates, u, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if due != 3564 || commission != 356 {
		t.Fatalf("due %d commission %d, want 3564 and 356", due, commission)
	}
	if su.DBReads != 2_000_000 || su.FunctionMBInstructions != u.FunctionMBInstructions || su.DBBytesSeconds != u.DBStoredByteSeconds {
		t.Fatalf("program usage %+v", su)
	}
	// The program's own arithmetic gives the same price.
	if p := marketplace.Price(testRates, su, 100_000); p.Total != due || p.Commission != commission {
		t.Fatalf("marketplace.Price %+v, programCharge %d/%d", p, due, commission)
	}
}

// tera is n × 10^9 MB-instructions: n tokens at 1000 per 10^12.
func tera(n uint64) ledger.Uint128 {
	x, _ := ledger.U128(n).Mul64(1_000_000_000)
	return x
}

func TestProgramCharge_RefusesWhatTheProgramWouldGetWrong(t *testing.T) {
	max64 := ledger.U128(^uint64(0))
	for _, c := range []struct {
		name   string
		u      ledger.Usage
		micros uint32
		want   error
		names  string
	}{
		{"a fraction of a token", ledger.Usage{DBReads: ledger.U128(1)}, 0, ledger.ErrUnsupported, string(ledger.CapCarries)},
		{"storage usage", ledger.Usage{StorageTrafficBytes: ledger.U128(1)}, 0, ledger.ErrUnsupported, string(ledger.CapStorage)},
		{"reads beyond 64 bits", ledger.Usage{DBReads: ledger.Uint128{Hi: 1}}, 0, ledger.ErrOverflow, "64-bit field"},
		{"reads × rate wrapping u64", ledger.Usage{DBReads: max64}, 0, ledger.ErrOverflow, "64-bit arithmetic"},
		{"function × rate wrapping u128", ledger.Usage{FunctionMBInstructions: ledger.Uint128{Hi: 1 << 60}}, 0, ledger.ErrOverflow, "128-bit"},
		{"a price cut by the u128→u64 cast", ledger.Usage{FunctionMBInstructions: ledger.Uint128{Hi: 1 << 40}}, 0, ledger.ErrOverflow, "64-bit price"},
		{"commission wrapping", ledger.Usage{FunctionMBInstructions: tera(20_000_000_000_000)}, 1_000_000, ledger.ErrOverflow, "commission"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := programCharge("test", testRates, c.u, c.micros)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %v, want %v naming %q", err, c.want, c.names)
			}
		})
	}
}
