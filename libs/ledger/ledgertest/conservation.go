package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/muprotocol/mu/libs/ledger"
)

// testConservation runs random sequences of instructions by random actors,
// valid and invalid, against a fresh ledger per sequence. After every
// instruction the token accounts must sum to the supply; a refused one
// must leave everything unchanged (and return a ledger sentinel); an
// applied one must move exactly the tokens it names and take one slot.
func testConservation(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	rapid.Check(t, func(rt *rapid.T) {
		l := open(t)
		defer l.Close()
		m := &machine{rt: rt, ctx: t.Context(), l: l, auth: key("authority")}
		for i := range 4 {
			m.actors = append(m.actors, key(fmt.Sprintf("actor-%d", i)))
		}
		m.run()
	})
}

// sentinels are the errors a refused write may match.
var sentinels = []error{
	ledger.ErrNotInitialized, ledger.ErrAlreadyInitialized, ledger.ErrNotFound, ledger.ErrAlreadyExists,
	ledger.ErrUnknownRegion, ledger.ErrUnauthorizedProvider, ledger.ErrBadSigner, ledger.ErrReplayedSeed,
	ledger.ErrInsufficientFunds, ledger.ErrInsufficientEscrow, ledger.ErrBelowMinimum, ledger.ErrStackDeleted,
	ledger.ErrInvalidArgument, ledger.ErrOverflow,
}

type machine struct {
	rt     *rapid.T
	ctx    context.Context
	l      ledger.Ledger
	auth   *ledger.Keypair
	actors []*ledger.Keypair
}

func (m *machine) snap() snapshot {
	s, err := takeSnapshot(m.ctx, m.l)
	if err != nil {
		m.rt.Fatalf("snapshot: %v", err)
	}
	return s
}

// signer draws who signs: the authority or an actor, sometimes a liar.
func (m *machine) signer(label string) ledger.Signer {
	all := append([]*ledger.Keypair{m.auth}, m.actors...)
	k := rapid.SampledFrom(all).Draw(m.rt, label)
	if rapid.IntRange(0, 9).Draw(m.rt, label+" lies") == 0 {
		return liar{claims: k.Pubkey(), signs: key("mallory")}
	}
	return k
}

func (m *machine) pubkey(label string) ledger.Pubkey {
	all := append([]*ledger.Keypair{m.auth}, m.actors...)
	return rapid.SampledFrom(all).Draw(m.rt, label).Pubkey()
}

func (m *machine) amount(label string) uint64 {
	switch rapid.IntRange(0, 9).Draw(m.rt, label+" size") {
	case 0:
		return 0
	case 1:
		return rapid.Uint64().Draw(m.rt, label)
	}
	return rapid.Uint64Range(1, 2_000).Draw(m.rt, label)
}

// pick draws one of ids or, sometimes or when there are none, an unknown
// id.
func (m *machine) pick(label string, ids []ledger.Pubkey) ledger.Pubkey {
	if len(ids) == 0 || rapid.IntRange(0, 9).Draw(m.rt, label+" unknown") == 0 {
		return key("unknown-" + label).Pubkey()
	}
	return rapid.SampledFrom(ids).Draw(m.rt, label)
}

// usage draws an amount per unit; for a backend without CapCarries mostly
// whole quantities (whole tokens at any rate), without CapStorage mostly
// no storage, so most updates apply and some exercise the refusal.
func (m *machine) usage() ledger.Usage {
	var u ledger.Usage
	whole := ledger.Lacks(m.l, ledger.CapCarries) && rapid.IntRange(0, 9).Draw(m.rt, "exact") > 0
	noStorage := ledger.Lacks(m.l, ledger.CapStorage) && rapid.IntRange(0, 9).Draw(m.rt, "no storage") > 0
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		a := ledger.U128(rapid.Uint64Range(0, 3*ledger.Quantity(unit)).Draw(m.rt, unit.String()))
		if whole {
			a = ledger.U128(ledger.Quantity(unit) * rapid.Uint64Range(0, 3).Draw(m.rt, unit.String()+" quantities"))
		}
		if noStorage && (unit == ledger.UnitStorageStoredByteSeconds || unit == ledger.UnitStorageTrafficBytes) {
			a = ledger.Uint128{}
		}
		if rapid.IntRange(0, 49).Draw(m.rt, unit.String()+" huge") == 0 {
			a = ledger.Uint128{Hi: rapid.Uint64().Draw(m.rt, unit.String()+" hi"), Lo: a.Lo}
		}
		setAmount(&u, unit, a)
	}
	return u
}

func (m *machine) run() {
	ctx, l := m.ctx, m.l
	before := m.snap()
	m.step("initialize", before, func() (moves, error) {
		micros := uint32(rapid.IntRange(0, 1_100_000).Draw(m.rt, "commission"))
		return nil, l.Initialize(ctx, m.signer("signer"), ledger.InitParams{
			ProviderDeposit: rapid.Uint64Range(0, 500).Draw(m.rt, "deposit"), CommissionMicros: micros})
	})
	steps := rapid.IntRange(1, 40).Draw(m.rt, "steps")
	for range steps {
		before := m.snap()
		var (
			provs, regions, stacks []ledger.Pubkey
		)
		for _, p := range before.Providers {
			provs = append(provs, p.ID)
		}
		for _, g := range before.Regions {
			regions = append(regions, g.ID)
		}
		for _, s := range before.Stacks {
			stacks = append(stacks, s.ID)
		}
		switch op := rapid.IntRange(0, 15).Draw(m.rt, "op"); op {
		case 0:
			m.step("mint", before, func() (moves, error) {
				to, a := m.pubkey("to"), m.amount("amount")
				return moves{{walletK(to), plus(a)}, {"supply", plus(a)}}, l.Mint(ctx, m.signer("signer"), to, a)
			})
		case 1:
			m.step("transfer", before, func() (moves, error) {
				from, to, a := m.signer("from"), m.pubkey("to"), m.amount("amount")
				return moves{{walletK(pk(from)), minus(a)}, {walletK(to), plus(a)}}, l.Transfer(ctx, from, to, a)
			})
		case 2:
			m.step("create provider", before, func() (moves, error) {
				_, err := l.CreateProvider(ctx, m.signer("owner"), rapid.SampledFrom([]string{"p", "", "acme"}).Draw(m.rt, "name"))
				return nil, err // the deposit's move is checked by conservation
			})
		case 3:
			m.step("authorize provider", before, func() (moves, error) {
				return moves{}, l.AuthorizeProvider(ctx, m.signer("signer"), m.pick("provider", provs))
			})
		case 4:
			m.step("update provider deposit", before, func() (moves, error) {
				return moves{}, l.UpdateProviderDeposit(ctx, m.signer("signer"), rapid.Uint64Range(0, 500).Draw(m.rt, "deposit"))
			})
		case 5:
			m.step("create region", before, func() (moves, error) {
				cfg := regionConfig(l, "r")
				cfg.MinEscrowBalance = rapid.Uint64Range(0, 300).Draw(m.rt, "min")
				_, err := l.CreateRegion(ctx, m.signer("owner"), uint32(rapid.IntRange(0, 2).Draw(m.rt, "number")), cfg)
				return moves{}, err
			})
		case 6:
			m.step("update region", before, func() (moves, error) {
				cfg := regionConfig(l, "r")
				cfg.MinEscrowBalance = rapid.Uint64Range(0, 300).Draw(m.rt, "min")
				cfg.Rates.DBPerMillionWrites = rapid.Uint64Range(0, 1_000_000).Draw(m.rt, "rate")
				_, err := l.UpdateRegion(ctx, m.signer("owner"), m.pick("region", regions), cfg)
				return moves{}, err
			})
		case 7:
			m.step("create usage signer", before, func() (moves, error) {
				return moves{}, l.CreateUsageSigner(ctx, m.signer("owner"), m.pick("region", regions), m.pubkey("usage signer"))
			})
		case 8:
			m.step("create escrow", before, func() (moves, error) {
				_, err := l.CreateEscrow(ctx, m.signer("developer"), m.pick("provider", provs))
				return moves{}, err
			})
		case 9:
			m.step("recharge escrow", before, func() (moves, error) {
				dev, p, a := m.signer("developer"), m.pick("provider", provs), m.amount("amount")
				_, err := l.RechargeEscrow(ctx, dev, p, a)
				return moves{{walletK(pk(dev)), minus(a)}, {escrowK(pk(dev), p), plus(a)}}, err
			})
		case 10:
			m.step("withdraw escrow", before, func() (moves, error) {
				dev, p, a := m.signer("developer"), m.pick("provider", provs), m.amount("amount")
				_, err := l.WithdrawEscrow(ctx, dev, p, a)
				return moves{{walletK(pk(dev)), plus(a)}, {escrowK(pk(dev), p), minus(a)}}, err
			})
		case 11:
			m.step("create stack", before, func() (moves, error) {
				manifest := []byte("m")
				if rapid.IntRange(0, 9).Draw(m.rt, "empty manifest") == 0 {
					manifest = nil
				}
				_, err := l.CreateStack(ctx, m.signer("owner"), m.pick("region", regions), uint64(rapid.IntRange(0, 3).Draw(m.rt, "seed")), manifest)
				return moves{}, err
			})
		case 12:
			m.step("update stack", before, func() (moves, error) {
				_, err := l.UpdateStack(ctx, m.signer("owner"), m.pick("stack", stacks), []byte("m2"))
				return moves{}, err
			})
		case 13:
			m.step("delete stack", before, func() (moves, error) {
				_, err := l.DeleteStack(ctx, m.signer("owner"), m.pick("stack", stacks))
				return moves{}, err
			})
		default:
			m.step("update usage", before, func() (moves, error) {
				id := m.pick("stack", stacks)
				res, err := l.UpdateUsage(ctx, m.signer("signer"), id, ledger.U128(uint64(rapid.IntRange(0, 5).Draw(m.rt, "seed"))), m.usage())
				if err != nil {
					return nil, err
				}
				return m.usageMoves(before, id, res), nil
			})
		}
	}
}

// move is one expected change of a token balance, keyed as tokenDeltas
// keys them.
type move struct {
	key   string
	delta *big.Int
}

type moves []move

func plus(x uint64) *big.Int  { return new(big.Int).SetUint64(x) }
func minus(x uint64) *big.Int { return new(big.Int).Neg(plus(x)) }

func walletK(p ledger.Pubkey) string         { return "wallet/" + p.String() }
func escrowK(dev, prov ledger.Pubkey) string { return "escrow/" + dev.String() + "/" + prov.String() }

func pk(s ledger.Signer) ledger.Pubkey {
	if s == nil {
		return ledger.Pubkey{}
	}
	return s.Pubkey()
}

// usageMoves are the moves of an applied usage charge: escrow to the
// commission account and the provider owner's wallet.
func (m *machine) usageMoves(before snapshot, stack ledger.Pubkey, res ledger.UsageResult) moves {
	var owner, region, provider, provOwner ledger.Pubkey
	for _, s := range before.Stacks {
		if s.ID == stack {
			owner, region = s.Owner, s.Region
		}
	}
	for _, g := range before.Regions {
		if g.ID == region {
			provider = g.Provider
		}
	}
	for _, p := range before.Providers {
		if p.ID == provider {
			provOwner = p.Owner
		}
	}
	return moves{
		{escrowK(owner, provider), minus(res.Charged)},
		{"commission", plus(res.Commission)},
		{walletK(provOwner), plus(res.Charged - res.Commission)},
	}
}

// step runs one instruction and checks the ledger after it against before:
// refused → unchanged and a sentinel; applied → one slot more, exactly the
// expected token moves (when want is non-nil), and conservation always.
func (m *machine) step(name string, before snapshot, do func() (moves, error)) {
	want, err := do()
	after := m.snap()
	if cerr := conservation(m.ctx, m.l); cerr != nil {
		m.rt.Fatalf("after %s (err %v): %v", name, err, cerr)
	}
	if err != nil {
		known := false
		for _, s := range sentinels {
			known = known || errors.Is(err, s)
		}
		// A backend lacking a capability refuses what needs it.
		if l, ok := m.l.(ledger.Lacking); ok && len(l.Lacks()) > 0 {
			known = known || errors.Is(err, ledger.ErrUnsupported)
		}
		if !known {
			m.rt.Fatalf("%s failed with %v, which matches no ledger sentinel", name, err)
		}
		if !before.equal(after) {
			m.rt.Fatalf("refused %s (%v) changed the ledger:\nbefore %+v\nafter  %+v", name, err, before, after)
		}
		return
	}
	switch {
	case before.Slot == 0:
		// A ledger's first write takes the slot the chain is at then: a
		// chain counts its slots from its genesis, not from the
		// marketplace's first write.
		if after.Slot == 0 {
			m.rt.Fatalf("%s left the slot at 0", name)
		}
	case after.Slot != before.Slot+1:
		m.rt.Fatalf("%s moved the slot from %d to %d, want one", name, before.Slot, after.Slot)
	}
	if want == nil {
		return
	}
	exp := map[string]*big.Int{}
	for _, mv := range want {
		if exp[mv.key] == nil {
			exp[mv.key] = new(big.Int)
		}
		exp[mv.key].Add(exp[mv.key], mv.delta)
	}
	if got, exp := render(tokenDeltas(before, after)), render(exp); got != exp {
		m.rt.Fatalf("%s moved tokens %s, want %s", name, got, exp)
	}
}

// render lists the non-zero deltas in key order.
func render(d map[string]*big.Int) string {
	keys := make([]string, 0, len(d))
	for k, v := range d {
		if v.Sign() != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%s ", k, d[k])
	}
	return b.String()
}

// tokenDeltas are the changed balances between two snapshots: wallets by
// owner, escrows by (developer, provider), and the commission account,
// the deposit vault and the supply by name.
func tokenDeltas(before, after snapshot) map[string]*big.Int {
	out := map[string]*big.Int{}
	add := func(k string, v uint64, sign int) {
		if out[k] == nil {
			out[k] = new(big.Int)
		}
		x := plus(v)
		if sign < 0 {
			x.Neg(x)
		}
		out[k].Add(out[k], x)
	}
	for sign, s := range map[int]snapshot{1: after, -1: before} {
		add("supply", s.Supply, sign)
		for k, v := range s.Tokens {
			kind, _, _ := strings.Cut(k, "/")
			switch kind {
			case "wallet":
				add(k, v, sign)
			case "commission", "deposit_vault":
				add(kind, v, sign)
			}
		}
		for _, e := range s.Escrows {
			add(escrowK(e.Developer, e.Provider), e.Balance, sign)
		}
	}
	return out
}
