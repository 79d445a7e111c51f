package ledger

import (
	"errors"
	"math/big"
	"testing"
)

func TestQuantity_MatchesDesignUnits(t *testing.T) {
	want := map[Unit]uint64{
		UnitFunctionMBInstructions:   1_000_000_000_000,
		UnitDBReads:                  1_000_000,
		UnitDBWrites:                 1_000_000,
		UnitDBStoredByteSeconds:      1 << 30 * 2_592_000,
		UnitGatewayRequests:          1_000_000,
		UnitGatewayTrafficBytes:      1 << 30,
		UnitStorageStoredByteSeconds: 1 << 30 * 2_592_000,
		UnitStorageTrafficBytes:      1 << 30,
	}
	for u := Unit(0); u < NumUnits; u++ {
		if got := Quantity(u); got != want[u] {
			t.Errorf("Quantity(%s) = %d, want %d", u, got, want[u])
		}
		if Quantities()[u] != Quantity(u) {
			t.Errorf("Quantities()[%s] disagrees with Quantity", u)
		}
	}
	if Quantity(NumUnits) != 0 || Quantity(-1) != 0 {
		t.Error("an unknown unit has a quantity")
	}
}

func TestRatesAndUsage_IndexEveryField(t *testing.T) {
	r := Rates{1, 2, 3, 4, 5, 6, 7, 8}
	u := Usage{U128(11), U128(12), U128(13), U128(14), U128(15), U128(16), U128(17), U128(18)}
	for unit := Unit(0); unit < NumUnits; unit++ {
		if got := r.Rate(unit); got != uint64(unit)+1 {
			t.Errorf("Rate(%s) = %d, want %d", unit, got, unit+1)
		}
		if got := u.Amount(unit); got != U128(uint64(unit)+11) {
			t.Errorf("Amount(%s) = %s, want %d", unit, got, unit+11)
		}
	}
	if r.Rate(NumUnits) != 0 || !u.Amount(NumUnits).IsZero() {
		t.Error("an unknown unit has a rate or amount")
	}
}

func TestCharge_ExactPerUnit(t *testing.T) {
	r := Rates{
		FunctionPerTeraMBInstructions: 1000,
		DBPerMillionReads:             7,
		DBPerMillionWrites:            20,
		DBPerGiBMonthStored:           50,
		GatewayPerMillionRequests:     300,
		GatewayPerGiBTraffic:          90,
		StoragePerGiBMonthStored:      25,
		StoragePerGiBTraffic:          80,
	}
	cases := []struct {
		name      string
		usage     Usage
		carry     Carry
		due       uint64
		nextCarry Carry
	}{
		{"nothing", Usage{}, Carry{}, 0, Carry{}},
		{"whole units", Usage{DBReads: U128(3_000_000), GatewayTrafficBytes: U128(2 << 30)}, Carry{}, 21 + 180, Carry{}},
		{"remainder carried", Usage{DBReads: U128(1_500_000)}, Carry{}, 10, Carry{UnitDBReads: 500_000}},
		{"carry completes a unit", Usage{DBReads: U128(1)}, Carry{UnitDBReads: 999_995}, 1, Carry{UnitDBReads: 2}},
		{"carry alone is not charged", Usage{}, Carry{UnitDBWrites: 999_999}, 0, Carry{UnitDBWrites: 999_999}},
		{"GiB-month", Usage{StorageStoredByteSeconds: U128(GiBMonthByteSeconds + 1)}, Carry{}, 25, Carry{UnitStorageStoredByteSeconds: 25}},
		{"above 64 bits", Usage{FunctionMBInstructions: Uint128{Hi: 1}}, Carry{}, 18446744073, Carry{UnitFunctionMBInstructions: 709_551_616_000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			due, next, err := Charge(r, c.usage, c.carry)
			if err != nil {
				t.Fatal(err)
			}
			if due != U128(c.due) || next != c.nextCarry {
				t.Fatalf("Charge = %s, carry %v; want %d, carry %v", due, next, c.due, c.nextCarry)
			}
		})
	}
}

// TestCharge_ManySmallUpdatesChargeWhatOneBigDoes: with carries, the sum of
// the dues of n updates equals the due of their sum, for every unit.
func TestCharge_ManySmallUpdatesChargeWhatOneBigDoes(t *testing.T) {
	r := Rates{3, 7, 11, 13, 17, 19, 23, 29}
	small := Usage{
		FunctionMBInstructions:   U128(987_654_321),
		DBReads:                  U128(12_345),
		DBWrites:                 U128(999),
		DBStoredByteSeconds:      U128(1 << 41),
		GatewayRequests:          U128(3),
		GatewayTrafficBytes:      U128(12_345_678),
		StorageStoredByteSeconds: U128(1 << 43),
		StorageTrafficBytes:      U128(7_777_777),
	}
	const n = 10_000
	var carry Carry
	var total Uint128
	for range n {
		due, next, err := Charge(r, small, carry)
		if err != nil {
			t.Fatal(err)
		}
		total, _ = total.Add(due)
		carry = next
	}
	var big Usage
	var want big128
	for u := Unit(0); u < NumUnits; u++ {
		a, _ := small.Amount(u).Mul64(n)
		setUnit(&big, u, a)
		want.addFloor(a, r.Rate(u), Quantity(u))
	}
	due, bigCarry, err := Charge(r, big, Carry{})
	if err != nil {
		t.Fatal(err)
	}
	if due != total || due.Big().Cmp(want.Int) != 0 {
		t.Fatalf("%d small updates charge %s, one big one %s, exact %s", n, total, due, want.Int)
	}
	if bigCarry != carry {
		t.Fatalf("carries differ: small %v, big %v", carry, bigCarry)
	}
	if total.IsZero() {
		t.Fatal("the usage costs nothing; the test would prove nothing")
	}
}

// big128 sums floor(a × rate / q) in math/big, independently of Uint128.
type big128 struct{ *big.Int }

func (b *big128) addFloor(a Uint128, rate, q uint64) {
	if b.Int == nil {
		b.Int = new(big.Int)
	}
	x := new(big.Int).Mul(a.Big(), new(big.Int).SetUint64(rate))
	b.Add(b.Int, x.Div(x, new(big.Int).SetUint64(q)))
}

func setUnit(x *Usage, u Unit, a Uint128) {
	switch u {
	case UnitFunctionMBInstructions:
		x.FunctionMBInstructions = a
	case UnitDBReads:
		x.DBReads = a
	case UnitDBWrites:
		x.DBWrites = a
	case UnitDBStoredByteSeconds:
		x.DBStoredByteSeconds = a
	case UnitGatewayRequests:
		x.GatewayRequests = a
	case UnitGatewayTrafficBytes:
		x.GatewayTrafficBytes = a
	case UnitStorageStoredByteSeconds:
		x.StorageStoredByteSeconds = a
	case UnitStorageTrafficBytes:
		x.StorageTrafficBytes = a
	}
}

func TestCharge_RefusesOverflowAndForeignCarry(t *testing.T) {
	max := Uint128{Hi: ^uint64(0), Lo: ^uint64(0)}
	cases := []struct {
		name  string
		rates Rates
		usage Usage
		carry Carry
		want  error
	}{
		{"product past 128 bits", Rates{DBPerMillionReads: 2}, Usage{DBReads: Uint128{Hi: 1 << 63}}, Carry{}, ErrOverflow},
		{"carry pushes past 128 bits", Rates{DBPerMillionReads: 1}, Usage{DBReads: max}, Carry{UnitDBReads: 1}, ErrOverflow},
		{"carry not below its quantity", Rates{}, Usage{}, Carry{UnitDBWrites: 1_000_000}, ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, next, err := Charge(c.rates, c.usage, c.carry)
			if !errors.Is(err, c.want) {
				t.Fatalf("Charge error %v, want %v", err, c.want)
			}
			if next != (Carry{}) {
				t.Fatalf("carry %v on error, want zero", next)
			}
		})
	}
	// The largest amount at rate 1 fits: no false overflow.
	due, _, err := Charge(Rates{DBPerMillionReads: 1}, Usage{DBReads: max}, Carry{})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := max.DivMod64(1_000_000); due != want {
		t.Fatalf("due %s, want %s", due, want)
	}
}

func TestCommission_FloorsAndConserves(t *testing.T) {
	cases := []struct {
		charged uint64
		micros  uint32
		want    uint64
	}{
		{0, 100_000, 0},
		{9, 100_000, 0},
		{10, 100_000, 1},
		{3619, 100_000, 361},
		{1000, 0, 0},
		{1000, 1_000_000, 1000},
		{1000, 2_000_000, 1000}, // capped at all of it
		{^uint64(0), 1_000_000, ^uint64(0)},
		{^uint64(0), 999_999, 18446725626965477905},
	}
	for _, c := range cases {
		if got := Commission(c.charged, c.micros); got != c.want {
			t.Errorf("Commission(%d, %d) = %d, want %d", c.charged, c.micros, got, c.want)
		}
		if got := Commission(c.charged, c.micros); got > c.charged {
			t.Errorf("Commission(%d, %d) = %d exceeds the charge", c.charged, c.micros, got)
		}
	}
}

func TestUnitOf_RoundTripsEveryUnit(t *testing.T) {
	for u := Unit(0); u < NumUnits; u++ {
		k := u.Kind()
		back, ok := UnitOf(k)
		if !ok || back != u {
			t.Fatalf("%s: kind %v maps back to %v %v", u, k, back, ok)
		}
		var x Usage
		x.Set(u, U128(7))
		if x.Amount(u) != U128(7) || x.IsZero() {
			t.Fatalf("%s: Set/Amount disagree", u)
		}
	}
	if _, ok := UnitOf(0); ok {
		t.Fatal("UNSPECIFIED has a unit")
	}
}

func TestWholeTokenUsage_SendsTheLargestWholeTokenAmountPerUnit(t *testing.T) {
	r := Rates{
		FunctionPerTeraMBInstructions: 1000,      // step 10^9
		DBPerMillionReads:             7,         // step 10^6
		DBPerMillionWrites:            20,        // step 50,000
		DBPerGiBMonthStored:           50,        // step GiB-month / 50
		GatewayPerMillionRequests:     2_000_000, // a multiple of the quantity: step 1
		GatewayPerGiBTraffic:          90,        // step 2^29
		StoragePerGiBMonthStored:      0,         // free: everything is sent
		StoragePerGiBTraffic:          1,         // step GiB
	}
	const dbStoredStep = GiBMonthByteSeconds / 50 // 55,662,776,156,160
	u := Usage{
		FunctionMBInstructions:   Uint128{Hi: 1, Lo: 7}, // 2^64 + 7
		DBReads:                  U128(2_500_000),
		DBWrites:                 U128(123_456),
		DBStoredByteSeconds:      U128(5*dbStoredStep + 12_345),
		GatewayRequests:          U128(3),
		GatewayTrafficBytes:      U128(GiB + 5),
		StorageStoredByteSeconds: U128(12_345),
		StorageTrafficBytes:      U128(GiB - 1),
	}
	wantSend := Usage{
		FunctionMBInstructions:   U128(18_446_744_073_000_000_000),
		DBReads:                  U128(2_000_000),
		DBWrites:                 U128(100_000),
		DBStoredByteSeconds:      U128(5 * dbStoredStep),
		GatewayRequests:          U128(3),
		GatewayTrafficBytes:      U128(GiB),
		StorageStoredByteSeconds: U128(12_345),
		StorageTrafficBytes:      U128(0),
	}
	wantCarry := Usage{
		FunctionMBInstructions: U128(709_551_623),
		DBReads:                U128(500_000),
		DBWrites:               U128(23_456),
		DBStoredByteSeconds:    U128(12_345),
		GatewayTrafficBytes:    U128(5),
		StorageTrafficBytes:    U128(GiB - 1),
	}
	send, carry := WholeTokenUsage(r, u)
	for unit := Unit(0); unit < NumUnits; unit++ {
		if send.Amount(unit) != wantSend.Amount(unit) || carry.Amount(unit) != wantCarry.Amount(unit) {
			t.Errorf("%s: send %s carry %s, want send %s carry %s", unit,
				send.Amount(unit), carry.Amount(unit), wantSend.Amount(unit), wantCarry.Amount(unit))
		}
	}
	// Each unit's send is priced in whole tokens: a truncating backend
	// drops nothing.
	_, next, err := Charge(r, send, Carry{})
	if err != nil {
		t.Fatal(err)
	}
	if next != (Carry{}) {
		t.Fatalf("the sent usage leaves sub-token remainders %v", next)
	}
	// 100,000 writes at 20 per million cost 2 tokens; 5 steps of a
	// GiB-month / 50 at 50 per GiB-month cost 5.
	var writes, stored Usage
	writes.DBWrites, stored.DBStoredByteSeconds = send.DBWrites, send.DBStoredByteSeconds
	if due, _, _ := Charge(r, writes, Carry{}); due != U128(2) {
		t.Errorf("100,000 writes at 20 per million cost %s, want 2", due)
	}
	if due, _, _ := Charge(r, stored, Carry{}); due != U128(5) {
		t.Errorf("5 × GiB-month/50 byte-seconds at 50 per GiB-month cost %s, want 5", due)
	}
}

func TestWholeTokenUsage_NothingBelowOneStepIsSent(t *testing.T) {
	r := Rates{DBPerMillionReads: 7}
	send, carry := WholeTokenUsage(r, Usage{DBReads: U128(999_999)})
	if !send.IsZero() || carry.DBReads != U128(999_999) {
		t.Fatalf("send %+v carry %+v, want nothing sent and all carried", send, carry)
	}
	send, carry = WholeTokenUsage(r, Usage{})
	if !send.IsZero() || !carry.IsZero() {
		t.Fatal("no usage splits into something")
	}
}

// TestWholeTokenUsage_TruncatedSendsPlusCarryChargeWhatCarriesDo: billing
// against a truncating backend (each update priced per unit with no
// remainder kept) sends WholeTokenUsage's send and adds the carry to the
// next round's usage. Over many rounds the truncated prices of the sends
// plus the price (with carries) of the final carry equal Charge with
// carries over the whole usage, and each round's send + carry is exactly
// the usage it split.
func TestWholeTokenUsage_TruncatedSendsPlusCarryChargeWhatCarriesDo(t *testing.T) {
	r := Rates{3, 7, 20, 50, 17, 90, 0, 29}
	round := Usage{
		FunctionMBInstructions:   U128(987_654_321),
		DBReads:                  U128(12_345),
		DBWrites:                 U128(999),
		DBStoredByteSeconds:      U128(1 << 41),
		GatewayRequests:          U128(3),
		GatewayTrafficBytes:      U128(12_345_678),
		StorageStoredByteSeconds: U128(1 << 43),
		StorageTrafficBytes:      U128(7_777_777),
	}
	const n = 5_000
	var (
		carry     Usage // billing's carried usage
		truncated Uint128
		ledgerC   Carry // what a carrying backend keeps
		carried   Uint128
	)
	for i := range n {
		var u Usage
		for unit := Unit(0); unit < NumUnits; unit++ {
			// Vary the rounds a little so remainders move.
			a, _ := round.Amount(unit).Add(U128(uint64(i % 7)))
			a, _ = a.Add(carry.Amount(unit))
			u.Set(unit, a)
		}
		send, next := WholeTokenUsage(r, u)
		for unit := Unit(0); unit < NumUnits; unit++ {
			if sum, _ := send.Amount(unit).Add(next.Amount(unit)); sum != u.Amount(unit) {
				t.Fatalf("round %d %s: send %s + carry %s != usage %s", i, unit, send.Amount(unit), next.Amount(unit), u.Amount(unit))
			}
			if next.Amount(unit).Cmp(U128(WholeTokenStep(r.Rate(unit), Quantity(unit)))) >= 0 {
				t.Fatalf("round %d %s: carry %s is a whole step or more", i, unit, next.Amount(unit))
			}
		}
		// The truncating backend: every unit priced separately, no carry.
		due, rem, err := Charge(r, send, Carry{})
		if err != nil {
			t.Fatal(err)
		}
		if rem != (Carry{}) {
			t.Fatalf("round %d: the send truncates %v", i, rem)
		}
		truncated, _ = truncated.Add(due)
		carry = next

		// The carrying backend gets each round's fresh usage whole.
		var fresh Usage
		for unit := Unit(0); unit < NumUnits; unit++ {
			a, _ := round.Amount(unit).Add(U128(uint64(i % 7)))
			fresh.Set(unit, a)
		}
		due, ledgerC, err = Charge(r, fresh, ledgerC)
		if err != nil {
			t.Fatal(err)
		}
		carried, _ = carried.Add(due)
	}
	// price(sends) + price_with_carry(final carry) == price(all usage).
	rest, restCarry, err := Charge(r, carry, Carry{})
	if err != nil {
		t.Fatal(err)
	}
	total, _ := truncated.Add(rest)
	if total != carried || restCarry != ledgerC {
		t.Fatalf("sends %s + final carry %s (remainder %v) != carried charges %s (remainder %v)", truncated, rest, restCarry, carried, ledgerC)
	}
	if truncated.IsZero() || carry.IsZero() {
		t.Fatal("nothing was sent or nothing carried: the test would prove nothing")
	}
}

func TestWholeTokenStep(t *testing.T) {
	cases := []struct{ rate, q, want uint64 }{
		{0, 1_000_000, 1},
		{1, 1_000_000, 1_000_000},
		{7, 1_000_000, 1_000_000},
		{20, 1_000_000, 50_000},
		{1_000_000, 1_000_000, 1},
		{3_000_000, 1_000_000, 1},
		{1_500_000, 1_000_000, 2},
		{^uint64(0), GiB, GiB},
		{1 << 63, GiB, 1},
		{50, GiBMonthByteSeconds, GiBMonthByteSeconds / 50},
		{5, 0, 1},
	}
	for _, c := range cases {
		if got := WholeTokenStep(c.rate, c.q); got != c.want {
			t.Errorf("WholeTokenStep(%d, %d) = %d, want %d", c.rate, c.q, got, c.want)
		}
	}
}
