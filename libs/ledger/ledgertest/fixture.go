// Package ledgertest is the contract suite every ledger.Ledger backend
// passes: Run for the rules, RunPersistence for backends that keep their
// state across a close and reopen.
package ledgertest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
)

// Amounts of the fixture, in token base units.
const (
	providerDeposit  = 1_000
	commissionMicros = 100_000 // 10%
	minEscrow        = 100
	providerFunds    = 5_000
	developerFunds   = 100_000
	initialEscrow    = 1_000
)

// rates are the fixture region's prices.
var rates = ledger.Rates{
	FunctionPerTeraMBInstructions: 1000,
	DBPerMillionReads:             7,
	DBPerMillionWrites:            20,
	DBPerGiBMonthStored:           50,
	GatewayPerMillionRequests:     300,
	GatewayPerGiBTraffic:          90,
	StoragePerGiBMonthStored:      25,
	StoragePerGiBTraffic:          80,
}

// regionConfig is the fixture region's settings as backend l can hold
// them: without storage rates when it lacks CapStorage, without memory
// bounds when it lacks CapMemoryBounds.
func regionConfig(l ledger.Ledger, name string) ledger.RegionConfig {
	c := ledger.RegionConfig{
		Name:                       name,
		BaseURL:                    "https://" + name + ".example.net",
		Rates:                      rates,
		MinEscrowBalance:           minEscrow,
		MaxGigaInstructionsPerCall: 100,
		MinMemoryLimitBytes:        1 << 20,
		MaxMemoryLimitBytes:        1 << 30,
	}
	if ledger.Lacks(l, ledger.CapStorage) {
		c.Rates.StoragePerGiBMonthStored, c.Rates.StoragePerGiBTraffic = 0, 0
	}
	if ledger.Lacks(l, ledger.CapMemoryBounds) {
		c.MinMemoryLimitBytes, c.MaxMemoryLimitBytes = 0, 0
	}
	return c
}

func (w *world) regionConfig(name string) ledger.RegionConfig { return regionConfig(w.l, name) }

// key derives a deterministic key pair from name, so failures reproduce.
func key(name string) *ledger.Keypair {
	seed := sha256.Sum256([]byte("ledgertest/" + name))
	k, err := ledger.KeypairFromSeed(seed[:])
	if err != nil {
		panic(err) // a 32-byte seed always works
	}
	return k
}

// world is a ledger with the fixture's actors: the authority, one
// authorized provider with one region and a usage signer, and one
// developer with an escrow of initialEscrow there.
type world struct {
	t   *testing.T
	ctx context.Context
	l   ledger.Ledger

	auth, prov, dev, usage *ledger.Keypair
	provider               ledger.Provider
	region                 ledger.Region
}

// bare opens a ledger and names the actors without writing anything.
func bare(t *testing.T, open func(t *testing.T) ledger.Ledger) *world {
	t.Helper()
	return &world{
		t: t, ctx: t.Context(), l: open(t),
		auth: key("authority"), prov: key("provider"), dev: key("developer"), usage: key("usage-signer"),
	}
}

// setup opens a ledger and runs the fixture's writes.
func setup(t *testing.T, open func(t *testing.T) ledger.Ledger) *world {
	t.Helper()
	w := bare(t, open)
	w.initialize()
	w.ok(w.l.Mint(w.ctx, w.auth, w.prov.Pubkey(), providerFunds))
	w.ok(w.l.Mint(w.ctx, w.auth, w.dev.Pubkey(), developerFunds))
	w.provider = must(w.l.CreateProvider(w.ctx, w.prov, "acme"))(w)
	w.ok(w.l.AuthorizeProvider(w.ctx, w.auth, w.provider.ID))
	w.provider.Authorized = true
	w.region = must(w.l.CreateRegion(w.ctx, w.prov, 1, w.regionConfig("eu1")))(w)
	w.ok(w.l.CreateUsageSigner(w.ctx, w.prov, w.region.ID, w.usage.Pubkey()))
	w.region.UsageSigner = w.usage.Pubkey()
	must(w.l.CreateEscrow(w.ctx, w.dev, w.provider.ID))(w)
	must(w.l.RechargeEscrow(w.ctx, w.dev, w.provider.ID, initialEscrow))(w)
	w.conserved()
	return w
}

func (w *world) initialize() {
	w.t.Helper()
	w.ok(w.l.Initialize(w.ctx, w.auth, ledger.InitParams{ProviderDeposit: providerDeposit, CommissionMicros: commissionMicros}))
}

// must returns a function that fails the test on err and returns v.
func must[T any](v T, err error) func(w *world) T {
	return func(w *world) T {
		w.t.Helper()
		if err != nil {
			w.t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func (w *world) ok(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("unexpected error: %v", err)
	}
}

// refused checks err matches want and that the ledger is unchanged since
// before (a snapshot taken with w.snapshot()).
func (w *world) refused(err, want error, before snapshot) {
	w.t.Helper()
	if !errors.Is(err, want) {
		w.t.Fatalf("error %v, want %v", err, want)
	}
	if after := w.snapshot(); !before.equal(after) {
		w.t.Fatalf("a refused write changed the ledger:\nbefore %+v\nafter  %+v", before, after)
	}
}

func (w *world) balance(p ledger.Pubkey) uint64 {
	w.t.Helper()
	return must(w.l.Balance(w.ctx, p))(w)
}

func (w *world) escrow() ledger.Escrow {
	w.t.Helper()
	return must(w.l.Escrow(w.ctx, w.dev.Pubkey(), w.provider.ID))(w)
}

func (w *world) state() ledger.State {
	w.t.Helper()
	return must(w.l.State(w.ctx))(w)
}

func (w *world) slot() uint64 {
	w.t.Helper()
	return must(w.l.Slot(w.ctx))(w)
}

// tokenBalance is the balance of the token account address of kind in
// TokenAccounts (0 when absent).
func (w *world) tokenBalance(kind string, address ledger.Pubkey) uint64 {
	w.t.Helper()
	accts, _ := must2(w.l.TokenAccounts(w.ctx))(w)
	for _, a := range accts {
		if a.Kind == kind && a.Address == address {
			return a.Balance
		}
	}
	return 0
}

func must2[A, B any](a A, b B, err error) func(w *world) (A, B) {
	return func(w *world) (A, B) {
		w.t.Helper()
		if err != nil {
			w.t.Fatalf("unexpected error: %v", err)
		}
		return a, b
	}
}

// conserved checks that the token accounts sum to the supply, that none
// is empty, and that no address appears twice with one kind.
func (w *world) conserved() {
	w.t.Helper()
	if err := conservation(w.ctx, w.l); err != nil {
		w.t.Fatal(err)
	}
}

func conservation(ctx context.Context, l ledger.Ledger) error {
	accts, supply, err := l.TokenAccounts(ctx)
	if err != nil {
		return err
	}
	var sum ledger.Uint128
	seen := map[string]bool{}
	for _, a := range accts {
		if a.Balance == 0 {
			return fmt.Errorf("TokenAccounts lists empty account %s (%s)", a.Address, a.Kind)
		}
		k := a.Kind + "/" + a.Address.String()
		if seen[k] {
			return fmt.Errorf("TokenAccounts lists %s twice", k)
		}
		seen[k] = true
		sum, _ = sum.Add(ledger.U128(a.Balance))
	}
	if sum != ledger.U128(supply) {
		return fmt.Errorf("token accounts sum to %s, supply is %d", sum, supply)
	}
	return nil
}

// snapshot is everything a ledger shows, to compare before and after a
// refused write.
type snapshot struct {
	Slot      uint64
	Supply    uint64
	Tokens    map[string]uint64
	State     string
	Providers []ledger.Provider
	Regions   []ledger.Region
	Escrows   []ledger.Escrow
	Stacks    []ledger.Stack
}

func (w *world) snapshot() snapshot {
	w.t.Helper()
	s, err := takeSnapshot(w.ctx, w.l)
	w.ok(err)
	return s
}

func takeSnapshot(ctx context.Context, l ledger.Ledger) (snapshot, error) {
	var s snapshot
	var err error
	if s.Slot, err = l.Slot(ctx); err != nil {
		return s, err
	}
	accts, supply, err := l.TokenAccounts(ctx)
	if err != nil {
		return s, err
	}
	s.Supply = supply
	s.Tokens = map[string]uint64{}
	for _, a := range accts {
		s.Tokens[a.Kind+"/"+a.Address.String()] = a.Balance
	}
	st, err := l.State(ctx)
	switch {
	case errors.Is(err, ledger.ErrNotInitialized):
		s.State = "none"
	case err != nil:
		return s, err
	default:
		s.State = fmt.Sprintf("%+v", st)
	}
	if s.Providers, err = l.Providers(ctx); err != nil {
		return s, err
	}
	if s.Regions, err = l.Regions(ctx); err != nil {
		return s, err
	}
	if s.Escrows, err = l.Escrows(ctx); err != nil {
		return s, err
	}
	s.Stacks, err = l.Stacks(ctx)
	return s, err
}

func (s snapshot) equal(o snapshot) bool {
	return fmt.Sprintf("%+v", s) == fmt.Sprintf("%+v", o)
}

// createStack posts a stack of the developer in the fixture region.
func (w *world) createStack(seed uint64) ledger.Stack {
	w.t.Helper()
	return must(w.l.CreateStack(w.ctx, w.dev, w.region.ID, seed, []byte(fmt.Sprintf("name: app%d\n", seed))))(w)
}

// changesSince returns every change after slot after.
func (w *world) changesSince(after uint64) []ledger.Change {
	w.t.Helper()
	var out []ledger.Change
	for {
		page := must(w.l.Changes(w.ctx, after, 100))(w)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Slot
	}
}

// stackChange finds the last change of stack id in cs.
func stackChange(cs []ledger.Change, id ledger.Pubkey) (ledger.Stack, bool) {
	var s ledger.Stack
	found := false
	for _, c := range cs {
		if c.Stack != nil && c.Stack.ID == id {
			s, found = *c.Stack, true
		}
	}
	return s, found
}

func escrowChange(cs []ledger.Change) (ledger.Escrow, bool) {
	var e ledger.Escrow
	found := false
	for _, c := range cs {
		if c.Escrow != nil {
			e, found = *c.Escrow, true
		}
	}
	return e, found
}

// liar signs with a different key than the one it claims.
type liar struct {
	claims ledger.Pubkey
	signs  *ledger.Keypair
}

func (s liar) Pubkey() ledger.Pubkey           { return s.claims }
func (s liar) Sign(msg []byte) ([]byte, error) { return s.signs.Sign(msg) }

// failing cannot sign.
type failing struct{ key ledger.Pubkey }

func (s failing) Pubkey() ledger.Pubkey       { return s.key }
func (s failing) Sign([]byte) ([]byte, error) { return nil, errors.New("the HSM is offline") }

// garbling signs correctly and then flips a bit.
type garbling struct{ k *ledger.Keypair }

func (s garbling) Pubkey() ledger.Pubkey { return s.k.Pubkey() }
func (s garbling) Sign(msg []byte) ([]byte, error) {
	sig, err := s.k.Sign(msg)
	if err == nil {
		sig[0] ^= 1
	}
	return sig, err
}

// short returns a truncated signature.
type short struct{ k *ledger.Keypair }

func (s short) Pubkey() ledger.Pubkey { return s.k.Pubkey() }
func (s short) Sign(msg []byte) ([]byte, error) {
	sig, err := s.k.Sign(msg)
	return sig[:10], err
}

// fixedUsage is a usage whose every unit costs whole tokens at rates;
// without storage when the backend lacks CapStorage.
func (w *world) fixedUsage() ledger.Usage {
	u := ledger.Usage{
		FunctionMBInstructions:   ledger.U128(3_000_000_000_000), // 3 × 10^12 → 3 × 1000 = 3000
		DBReads:                  ledger.U128(2_000_000),         // 2 × 7 = 14
		DBWrites:                 ledger.U128(1_000_000),         // 20
		GatewayRequests:          ledger.U128(1_000_000),         // 300
		GatewayTrafficBytes:      ledger.U128(2 << 30),           // 2 × 90 = 180
		StorageStoredByteSeconds: ledger.U128(ledger.GiBMonthByteSeconds),
		StorageTrafficBytes:      ledger.U128(1 << 30), // 80
	}
	if w.lacks(ledger.CapStorage) {
		u.StorageStoredByteSeconds, u.StorageTrafficBytes = ledger.Uint128{}, ledger.Uint128{}
	}
	return u
}

// fixedDue is what fixedUsage costs at rates: 3000+14+20+300+180+25+80,
// without the last two when the backend lacks CapStorage.
func (w *world) fixedDue() uint64 {
	if w.lacks(ledger.CapStorage) {
		return 3514
	}
	return 3619
}

// refusedUpdateRegion checks an UpdateRegion refusal: want, or
// ErrUnsupported from a backend lacking CapUpdateRegion.
func (w *world) refusedUpdateRegion(err, want error, before snapshot) {
	w.t.Helper()
	if w.lacks(ledger.CapUpdateRegion) {
		w.unsupported(err, ledger.CapUpdateRegion, before)
		return
	}
	w.refused(err, want, before)
}

// lacks says whether the backend lacks c.
func (w *world) lacks(c ledger.Capability) bool { return ledger.Lacks(w.l, c) }

// unsupported checks that err is the refusal of a backend lacking c
// (ErrUnsupported, naming c) and that the ledger is unchanged, and logs
// that the backend lacks c: the subtest ran as a "lacks" check.
func (w *world) unsupported(err error, c ledger.Capability, before snapshot) {
	w.t.Helper()
	w.refused(err, ledger.ErrUnsupported, before)
	if !strings.Contains(err.Error(), string(c)) {
		w.t.Fatalf("refusal %q does not name the capability %s", err, c)
	}
	w.t.Logf("backend lacks %s: refused with %v", c, err)
}

// renderChanges writes changes with the accounts they point to.
func renderChanges(cs []ledger.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "slot %d: ", c.Slot)
		switch {
		case c.State != nil:
			fmt.Fprintf(&b, "state %+v\n", *c.State)
		case c.Provider != nil:
			fmt.Fprintf(&b, "provider %+v\n", *c.Provider)
		case c.Region != nil:
			fmt.Fprintf(&b, "region %+v\n", *c.Region)
		case c.Escrow != nil:
			fmt.Fprintf(&b, "escrow %+v\n", *c.Escrow)
		case c.Stack != nil:
			fmt.Fprintf(&b, "stack %+v\n", *c.Stack)
		default:
			b.WriteString("nothing\n")
		}
	}
	return b.String()
}
