package solanatest

import (
	"context"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/token"
	"github.com/gagliardetto/solana-go/rpc"
)

// These tests build the marketplace's instructions by hand from the program
// source (sighash of the snake-case name, Borsh arguments, account metas in
// the Accounts struct's order), independently of the program client.

func pda(t *testing.T, seeds ...[]byte) (solana.PublicKey, uint8) {
	t.Helper()
	k, b, err := solana.FindProgramAddress(seeds, testProgramID)
	if err != nil {
		t.Fatal(err)
	}
	return k, b
}

func ixData(name string, args func(w *borshWriter)) []byte {
	w := newWriter(bin.SighashInstruction(name))
	if args != nil {
		args(w)
	}
	return w.b.Bytes()
}

func mpIx(data []byte, metas ...*solana.AccountMeta) solana.Instruction {
	return solana.NewInstruction(testProgramID, metas, data)
}

func ro(k solana.PublicKey) *solana.AccountMeta  { return solana.Meta(k) }
func w(k solana.PublicKey) *solana.AccountMeta   { return solana.Meta(k).WRITE() }
func s(k solana.PublicKey) *solana.AccountMeta   { return solana.Meta(k).SIGNER() }
func wsg(k solana.PublicKey) *solana.AccountMeta { return solana.Meta(k).WRITE().SIGNER() }

// market is a deployed, initialized marketplace with one authorized provider,
// its region and usage signer, and a user with an escrow holding tokens.
type market struct {
	*env
	authority, owner, user, usageSigner          solana.PrivateKey
	mint, state, deposit, commission, authorizer solana.PublicKey
	provider, region, usageSignerPDA, escrow     solana.PublicKey
	ownerATA, userATA                            solana.PublicKey
	escrowBump                                   uint8
	rates                                        mpRates
}

const (
	testCommissionMicros = 100_000 // 10%
	testDeposit          = 1000
	testOwnerTokens      = 5000
	testEscrowTokens     = 10_000
)

func newMarket(t *testing.T) *market {
	t.Helper()
	m := &market{env: newEnv(t), authority: newKey(t), owner: newKey(t), user: newKey(t), usageSigner: newKey(t)}
	for _, k := range []solana.PrivateKey{m.authority, m.owner, m.user, m.usageSigner} {
		m.airdrop(k.PublicKey(), sol)
	}
	m.mint = m.newMint(m.authority.PublicKey(), 6)
	m.state, _ = pda(t, []byte("state"))
	m.deposit, _ = pda(t, []byte("deposit"))
	m.commission, _ = pda(t, []byte("commission"))
	a := m.authority.PublicKey()
	m.send([]solana.Instruction{m.initializeIx(testCommissionMicros, testDeposit)}, m.authority)
	m.authorizer, _ = pda(t, []byte("authorizer"), a[:])
	m.send([]solana.Instruction{mpIx(ixData("create_provider_authorizer", nil),
		ro(m.state), w(m.authorizer), wsg(a), s(a), ro(solana.SystemProgramID))}, m.authority)

	o := m.owner.PublicKey()
	m.ownerATA = m.newATA(o, m.mint)
	m.send([]solana.Instruction{token.NewMintToInstruction(testOwnerTokens, m.mint, m.ownerATA, a, nil).Build()}, m.authority)
	m.provider, _ = pda(t, []byte("provider"), o[:])
	m.send([]solana.Instruction{m.createProviderIx(m.owner, m.provider, "prov")}, m.owner)
	m.send([]solana.Instruction{m.authorizeIx(m.authority, m.provider, o)}, m.authority)

	m.rates = mpRates{FunctionMBTeraInstructions: 3, DBGigabyteMonths: 5, MillionDBReads: 7, MillionDBWrites: 11, MillionGatewayRequests: 1_000_000, GigabytesGatewayTraffic: 13}
	m.region, _ = pda(t, []byte("region"), o[:], le32(1))
	m.send([]solana.Instruction{m.createRegionIx(m.owner, m.provider, m.region, 1)}, m.owner)
	m.usageSignerPDA, _ = pda(t, []byte("authorized_signer"), m.region[:])
	m.send([]solana.Instruction{mpIx(ixData("create_authorized_usage_signer", func(w *borshWriter) {
		w.key(m.usageSigner.PublicKey())
		w.key(m.ownerATA)
	}), ro(m.provider), ro(m.region), w(m.usageSignerPDA), wsg(o), ro(solana.SystemProgramID))}, m.owner)

	u := m.user.PublicKey()
	m.userATA = m.newATA(u, m.mint)
	m.escrow, m.escrowBump = pda(t, []byte("escrow"), u[:], m.provider[:])
	m.send([]solana.Instruction{mpIx(ixData("create_provider_escrow_account", nil),
		ro(m.state), ro(m.mint), w(m.escrow), ro(m.provider), wsg(u), ro(solana.SystemProgramID), ro(solana.TokenProgramID), ro(solana.SysVarRentPubkey))}, m.user)
	m.send([]solana.Instruction{token.NewMintToInstruction(testEscrowTokens, m.mint, m.escrow, a, nil).Build()}, m.authority)
	return m
}

func (m *market) initializeIx(micros uint32, deposit uint64) solana.Instruction {
	a := m.authority.PublicKey()
	return mpIx(ixData("initialize", func(w *borshWriter) { w.u32(micros); w.u64(deposit) }),
		w(m.state), ro(m.mint), w(m.deposit), w(m.commission), wsg(a), ro(solana.SystemProgramID), ro(solana.TokenProgramID))
}

func (m *market) createProviderIx(owner solana.PrivateKey, provider solana.PublicKey, name string) solana.Instruction {
	o := owner.PublicKey()
	ata, _, _ := solana.FindAssociatedTokenAddress(o, m.mint)
	return mpIx(ixData("create_provider", func(w *borshWriter) { w.str(name) }),
		ro(m.state), w(provider), w(m.deposit), wsg(o), w(ata), ro(solana.SystemProgramID), ro(solana.TokenProgramID), ro(solana.SysVarRentPubkey))
}

func (m *market) authorizeIx(authorizer solana.PrivateKey, provider, owner solana.PublicKey) solana.Instruction {
	a := authorizer.PublicKey()
	paKey, _ := pda(m.t, []byte("authorizer"), a[:])
	return mpIx(ixData("authorize_provider", nil), ro(paKey), s(a), w(provider), ro(owner))
}

func (m *market) createRegionIx(owner solana.PrivateKey, provider, region solana.PublicKey, num uint32) solana.Instruction {
	return mpIx(ixData("create_region", func(w *borshWriter) {
		w.u32(num)
		w.str("region one")
		w.str("https://r1.example")
		w.rates(m.rates)
		w.u64(500)
		w.u32(7)
	}), ro(provider), w(region), wsg(owner.PublicKey()), ro(solana.SystemProgramID))
}

func (m *market) stackPDA(seed uint64) solana.PublicKey {
	u := m.user.PublicKey()
	k, _ := pda(m.t, []byte("stack"), u[:], m.region[:], le64(seed))
	return k
}

func (m *market) stackIx(name string, seed uint64, data []byte, stackName string) solana.Instruction {
	u := m.user.PublicKey()
	args := func(w *borshWriter) { w.u64(seed); w.bytes(data); w.str(stackName) }
	switch name {
	case "create_stack":
		return mpIx(ixData(name, args), ro(m.provider), ro(m.region), w(m.stackPDA(seed)), wsg(u), ro(solana.SystemProgramID))
	case "update_stack":
		return mpIx(ixData(name, args), ro(m.region), w(m.stackPDA(seed)), wsg(u), ro(solana.SystemProgramID))
	default: // delete_stack
		return mpIx(ixData(name, func(w *borshWriter) { w.u64(seed) }), ro(m.region), w(m.stackPDA(seed)), wsg(u), ro(solana.SystemProgramID))
	}
}

func (m *market) updatePDA(stack solana.PublicKey, seed uint64) solana.PublicKey {
	k, _ := pda(m.t, []byte("update"), stack[:], m.region[:], le128(bin.Uint128{Lo: seed}))
	return k
}

func (m *market) usageIx(stack solana.PublicKey, seed uint64, requests uint64, signer solana.PublicKey) solana.Instruction {
	return mpIx(ixData("update_usage", func(w *borshWriter) {
		w.u128(bin.Uint128{Lo: seed})
		w.u8(m.escrowBump)
		w.usage(mpUsage{GatewayRequests: requests})
	}), ro(m.state), w(m.commission), ro(m.usageSignerPDA), ro(m.region), w(m.ownerATA), w(m.updatePDA(stack, seed)),
		w(m.escrow), ro(stack), wsg(signer), ro(solana.SystemProgramID), ro(solana.TokenProgramID))
}

func (m *market) withdrawIx(user solana.PrivateKey, escrow, to solana.PublicKey, amount uint64) solana.Instruction {
	return mpIx(ixData("withdraw_escrow_balance", func(w *borshWriter) { w.u64(amount) }),
		ro(m.state), w(escrow), w(to), ro(m.provider), s(user.PublicKey()), ro(solana.TokenProgramID))
}

func (m *market) decode(k solana.PublicKey, disc []byte) []byte {
	m.t.Helper()
	a := m.mustAccount(k)
	if !a.Owner.Equals(testProgramID) || string(a.Data[:8]) != string(disc) {
		m.t.Fatalf("%s: owner %s, discriminator %x, want %x", k, a.Owner, a.Data[:8], disc)
	}
	return a.Data
}

func TestMarketplace_FlowMovesTokensAndWritesTheProgramsLayouts(t *testing.T) {
	m := newMarket(t)
	st, err := decodeState(m.decode(m.state, discState))
	if err != nil || !st.Authority.Equals(m.authority.PublicKey()) || !st.Mint.Equals(m.mint) || !st.DepositToken.Equals(m.deposit) ||
		!st.CommissionToken.Equals(m.commission) || st.CommissionRateMicros != testCommissionMicros || st.ProviderDeposit != testDeposit {
		t.Errorf("state %+v %v", st, err)
	}
	if _, b := pda(t, []byte("state")); st.Bump != b {
		t.Errorf("state bump %d, want %d", st.Bump, b)
	}
	if got := len(m.mustAccount(m.state).Data); got != 149 {
		t.Errorf("state is %d bytes, want 149", got)
	}
	dep, _ := DecodeTokenAccount(m.mustAccount(m.deposit).Data)
	if !dep.Owner.Equals(m.state) || dep.Amount != testDeposit {
		t.Errorf("deposit token account: owner %s amount %d, want the state PDA and %d", dep.Owner, dep.Amount, testDeposit)
	}
	com, _ := DecodeTokenAccount(m.mustAccount(m.commission).Data)
	if !com.Owner.Equals(m.authority.PublicKey()) {
		t.Errorf("commission token account owner %s, want the authority", com.Owner)
	}
	if got := m.tokenAmount(m.ownerATA); got != "4000" {
		t.Errorf("owner has %s tokens after the deposit, want 4000", got)
	}
	p, err := decodeProvider(m.decode(m.provider, discProvider))
	if err != nil || !p.Authorized || p.Name != "prov" || p.Deposit != testDeposit || !p.Owner.Equals(m.owner.PublicKey()) {
		t.Errorf("provider %+v %v", p, err)
	}
	if got := len(m.mustAccount(m.provider).Data); got != 8+32+1+4+4+8+1 {
		t.Errorf("provider is %d bytes", got)
	}
	g, err := decodeRegion(m.decode(m.region, discRegion))
	if err != nil || g.RegionNum != 1 || g.Rates != m.rates || g.MinEscrowBalance != 500 || g.MaxGigaInstructionsPerCall != 7 || g.Name != "region one" || g.BaseURL != "https://r1.example" || !g.Provider.Equals(m.provider) {
		t.Errorf("region %+v %v", g, err)
	}
	us, err := decodeUsageSigner(m.decode(m.usageSignerPDA, discUsageSigner))
	if err != nil || !us.Signer.Equals(m.usageSigner.PublicKey()) || !us.TokenAccount.Equals(m.ownerATA) {
		t.Errorf("usage signer %+v %v", us, err)
	}
	esc, _ := DecodeTokenAccount(m.mustAccount(m.escrow).Data)
	if !esc.Owner.Equals(m.state) || !esc.Mint.Equals(m.mint) || esc.Amount != testEscrowTokens {
		t.Errorf("escrow %+v", esc)
	}

	stack := m.stackPDA(42)
	m.send([]solana.Instruction{m.stackIx("create_stack", 42, []byte{1, 2, 3}, "app")}, m.user)
	sk, err := decodeStack(m.decode(stack, discStack))
	if err != nil || sk.Deleted || sk.Revision != 1 || sk.Name != "app" || string(sk.StackData) != "\x01\x02\x03" || sk.Seed != 42 || !sk.Region.Equals(m.region) {
		t.Errorf("stack %+v %v", sk, err)
	}
	m.send([]solana.Instruction{m.stackIx("update_stack", 42, []byte("longer stack data"), "app2")}, m.user)
	sk, _ = decodeStack(m.decode(stack, discStack))
	if sk.Revision != 2 || sk.Name != "app2" || string(sk.StackData) != "longer stack data" {
		t.Errorf("updated stack %+v", sk)
	}
	if got := len(m.mustAccount(stack).Data); got != 8+32+32+8+1+1+4+4+4+4+17 {
		t.Errorf("updated stack is %d bytes, want the realloc'd size", got)
	}

	// 1500 requests at 1_000_000 per million: 1500 tokens, 10% commission.
	m.send([]solana.Instruction{m.usageIx(stack, 1, 1500, m.usageSigner.PublicKey())}, m.usageSigner)
	if got := m.tokenAmount(m.escrow); got != "8500" {
		t.Errorf("escrow %s after usage, want 8500", got)
	}
	if got := m.tokenAmount(m.ownerATA); got != "5350" {
		t.Errorf("provider %s after usage, want 4000+1350", got)
	}
	if got := m.tokenAmount(m.commission); got != "150" {
		t.Errorf("commission %s, want 150", got)
	}
	upd := m.decode(m.updatePDA(stack, 1), discUsageUpdate)
	if len(upd) != 152 {
		t.Errorf("usage update is %d bytes, want 152", len(upd))
	}

	m.send([]solana.Instruction{m.withdrawIx(m.user, m.escrow, m.userATA, 2500)}, m.user)
	if m.tokenAmount(m.escrow) != "6000" || m.tokenAmount(m.userATA) != "2500" {
		t.Errorf("after withdrawing 2500: escrow %s, user %s", m.tokenAmount(m.escrow), m.tokenAmount(m.userATA))
	}

	m.send([]solana.Instruction{m.stackIx("delete_stack", 42, nil, "")}, m.user)
	sk, _ = decodeStack(m.decode(stack, discStack))
	if !sk.Deleted || len(m.mustAccount(stack).Data) != 82 {
		t.Errorf("deleted stack %+v (%d bytes)", sk, len(m.mustAccount(stack).Data))
	}
	// The program lets usage be charged against a deleted stack.
	sig := m.send([]solana.Instruction{m.usageIx(stack, 2, 10, m.usageSigner.PublicKey())}, m.usageSigner)
	logs := m.chain.TransactionLogs(sig)
	if len(logs) == 0 || logs[1] != "Program log: Instruction: UpdateUsage" || logs[len(logs)-1] != "Program "+testProgramID.String()+" success" {
		t.Errorf("logs of update_usage: %q", logs)
	}
}

func TestMarketplace_RefusalsCarryTheProgramsCodes(t *testing.T) {
	m := newMarket(t)
	stack := m.stackPDA(7)
	m.send([]solana.Instruction{m.stackIx("create_stack", 7, []byte{9}, "s")}, m.user)
	m.send([]solana.Instruction{m.usageIx(stack, 1, 10, m.usageSigner.PublicKey())}, m.usageSigner)

	m.send([]solana.Instruction{m.stackIx("create_stack", 8, nil, "d")}, m.user)
	m.send([]solana.Instruction{m.stackIx("delete_stack", 8, nil, "")}, m.user)

	stranger := newKey(t)
	m.airdrop(stranger.PublicKey(), sol)
	so := stranger.PublicKey()
	// An unauthorized provider owned by the stranger, with no tokens for a deposit first.
	strangerProvider, _ := pda(t, []byte("provider"), so[:])
	strangerATA := m.newATA(so, m.mint)

	wrongStack := m.stackPDA(99) // seeds of seed 99, used with seed 7
	u := m.user.PublicKey()
	cases := []struct {
		name string
		ix   solana.Instruction
		sign []solana.PrivateKey
		want string
	}{
		{"create_provider without tokens for the deposit", m.createProviderIx(stranger, strangerProvider, "x"), []solana.PrivateKey{stranger}, customErrJSON(0, tokErrInsufficientFunds)},
		{"create_provider at an address not its PDA", m.createProviderIx(stranger, newKey(t).PublicKey(), "x"), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintSeeds)},
		{"create_provider twice", m.createProviderIx(m.owner, m.provider, "again"), []solana.PrivateKey{m.owner}, customErrJSON(0, sysErrAccountAlreadyInUse)},
		{"authorizer that is not the state's", mpIx(ixData("create_provider_authorizer", nil),
			ro(m.state), w(func() solana.PublicKey { k, _ := pda(t, []byte("authorizer"), so[:]); return k }()), wsg(so), s(so), ro(solana.SystemProgramID)),
			[]solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"authorize by a key with no authorizer account", m.authorizeIx(stranger, m.provider, m.owner.PublicKey()), []solana.PrivateKey{stranger}, customErrJSON(0, anchorAccountNotInitialized)},
		{"region passed as provider", m.createRegionIx(m.owner, m.region, func() solana.PublicKey {
			o := m.owner.PublicKey()
			k, _ := pda(t, []byte("region"), o[:], le32(2))
			return k
		}(), 2), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorAccountDiscriminatorMismatch)},
		{"region by a stranger for the owner's provider", m.createRegionIx(stranger, m.provider, func() solana.PublicKey {
			k, _ := pda(t, []byte("region"), so[:], le32(1))
			return k
		}(), 1), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"update_stack with another seed's address", mpIx(ixData("update_stack", func(w *borshWriter) { w.u64(7); w.bytes(nil); w.str("x") }),
			ro(m.region), w(wrongStack), wsg(u), ro(solana.SystemProgramID)), []solana.PrivateKey{m.user}, customErrJSON(0, anchorAccountNotInitialized)},
		{"update_stack by another user", mpIx(ixData("update_stack", func(w *borshWriter) { w.u64(7); w.bytes(nil); w.str("x") }),
			ro(m.region), w(stack), wsg(so), ro(solana.SystemProgramID)), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"update_stack with the wrong seed", mpIx(ixData("update_stack", func(w *borshWriter) { w.u64(8); w.bytes(nil); w.str("x") }),
			ro(m.region), w(stack), wsg(u), ro(solana.SystemProgramID)), []solana.PrivateKey{m.user}, customErrJSON(0, anchorConstraintSeeds)},
		{"update_stack of a deleted stack", m.stackIx("update_stack", 8, nil, "x"), []solana.PrivateKey{m.user}, customErrJSON(0, errCannotOperateOnDeletedStack)},
		{"delete_stack twice", m.stackIx("delete_stack", 8, nil, ""), []solana.PrivateKey{m.user}, customErrJSON(0, errCannotOperateOnDeletedStack)},
		{"update_stack with the stack read-only", mpIx(ixData("update_stack", func(w *borshWriter) { w.u64(7); w.bytes(nil); w.str("x") }),
			ro(m.region), ro(stack), wsg(u), ro(solana.SystemProgramID)), []solana.PrivateKey{m.user}, customErrJSON(0, anchorConstraintMut)},
		{"create_stack with the user not signing", mpIx(ixData("create_stack", func(w *borshWriter) { w.u64(9); w.bytes(nil); w.str("x") }),
			ro(m.provider), ro(m.region), w(m.stackPDA(9)), w(u), ro(solana.SystemProgramID)), nil, customErrJSON(0, anchorAccountNotSigner)},
		{"replayed usage update seed", m.usageIx(stack, 1, 10, m.usageSigner.PublicKey()), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, sysErrAccountAlreadyInUse)},
		{"usage signed by another key", m.usageIx(stack, 2, 10, so), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"usage the escrow cannot pay", m.usageIx(stack, 3, 20_000, m.usageSigner.PublicKey()), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, tokErrInsufficientFunds)},
		{"withdraw by a stranger", m.withdrawIx(stranger, m.escrow, strangerATA, 1), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintSeeds)},
		{"withdraw more than the escrow", m.withdrawIx(m.user, m.escrow, m.userATA, testEscrowTokens), []solana.PrivateKey{m.user}, customErrJSON(0, tokErrInsufficientFunds)},
		{"unknown instruction", mpIx(ixData("no_such_instruction", nil), ro(m.state)), nil, customErrJSON(0, anchorInstructionFallbackNotFound)},
		{"short instruction data", mpIx([]byte{1, 2}, ro(m.state)), nil, customErrJSON(0, anchorInstructionMissing)},
		{"too few accounts", mpIx(ixData("authorize_provider", nil), ro(m.authorizer)), nil, customErrJSON(0, anchorAccountNotEnoughKeys)},
		{"arguments cut short", mpIx(ixData("create_region", func(w *borshWriter) { w.u32(3) }), ro(m.provider), w(m.region), wsg(m.owner.PublicKey()), ro(solana.SystemProgramID)), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorInstructionDidNotDeserialize)},
	}
	escrowBefore, ownerBefore := m.tokenAmount(m.escrow), m.tokenAmount(m.ownerATA)
	for _, tc := range cases {
		re := m.sendErr([]solana.Instruction{tc.ix}, tc.sign...)
		if got := preflightErr(t, re); got != tc.want {
			t.Errorf("%s: err %s, want %s", tc.name, got, tc.want)
		}
	}
	if m.tokenAmount(m.escrow) != escrowBefore || m.tokenAmount(m.ownerATA) != ownerBefore {
		t.Errorf("refusals moved tokens: escrow %s (was %s), owner %s (was %s)", m.tokenAmount(m.escrow), escrowBefore, m.tokenAmount(m.ownerATA), ownerBefore)
	}
	if _, ok := m.chain.Account(m.updatePDA(stack, 3)); ok {
		t.Error("a refused usage update left its update account")
	}
}

func TestMarketplace_UnauthorizedProviderCannotCreateRegionsOrStacks(t *testing.T) {
	m := newMarket(t)
	p2 := newKey(t)
	m.airdrop(p2.PublicKey(), sol)
	o2 := p2.PublicKey()
	ata := m.newATA(o2, m.mint)
	m.send([]solana.Instruction{token.NewMintToInstruction(testDeposit, m.mint, ata, m.authority.PublicKey(), nil).Build()}, m.authority)
	prov2, _ := pda(t, []byte("provider"), o2[:])
	m.send([]solana.Instruction{m.createProviderIx(p2, prov2, "second")}, p2)
	reg2, _ := pda(t, []byte("region"), o2[:], le32(1))
	if got := preflightErr(t, m.sendErr([]solana.Instruction{m.createRegionIx(p2, prov2, reg2, 1)}, p2)); got != customErrJSON(0, errProviderNotAuthorized) {
		t.Errorf("region of an unauthorized provider: %s", got)
	}
	// A stack naming the unauthorized provider with the first provider's region
	// fails has_one; with its own region it cannot exist. The program checks
	// authorization in create_stack too: authorize, create the region, then
	// a stack under it succeeds.
	m.send([]solana.Instruction{m.authorizeIx(m.authority, prov2, o2)}, m.authority)
	m.send([]solana.Instruction{m.createRegionIx(p2, prov2, reg2, 1)}, p2)
	if got := m.tokenAmount(m.deposit); got != "2000" {
		t.Errorf("deposit account %s after two providers, want 2000", got)
	}
}

func TestMarketplace_InitializeRefusesACommissionAboveOne(t *testing.T) {
	e := newEnv(t)
	m := &market{env: e, authority: newKey(t)}
	e.airdrop(m.authority.PublicKey(), sol)
	m.mint = e.newMint(m.authority.PublicKey(), 0)
	m.state, _ = pda(t, []byte("state"))
	m.deposit, _ = pda(t, []byte("deposit"))
	m.commission, _ = pda(t, []byte("commission"))
	if got := preflightErr(t, e.sendErr([]solana.Instruction{m.initializeIx(1_000_001, 1)}, m.authority)); got != customErrJSON(0, errCommissionRateOutOfBounds) {
		t.Errorf("commission 1000001 micros: %s", got)
	}
	if _, ok := e.chain.Account(m.state); ok {
		t.Error("a refused initialize left the state account")
	}
	e.send([]solana.Instruction{m.initializeIx(1_000_000, 1)}, m.authority)
	if got := preflightErr(t, e.sendErr([]solana.Instruction{m.initializeIx(0, 1)}, m.authority)); got != customErrJSON(0, sysErrAccountAlreadyInUse) {
		t.Errorf("second initialize: %s", got)
	}
}

func TestCalcUsage_TruncatesEachUnitAndWraps(t *testing.T) {
	gib := uint64(1 << 30)
	u := usageAmounts{
		FunctionMBInstructions: big.NewInt(1_999_999_999_999), // 1.99 tera at rate 1: 1
		DBBytesSeconds:         new(big.Int).SetUint64(gib * 86400 * 30 * 2),
		DBReads:                999_999, // rate 1: 0
		DBWrites:               2_000_000,
		GatewayRequests:        1_500_000,
		TrafficBytes:           3 * gib,
	}
	if got := calcUsage([6]uint64{1, 1, 1, 1, 1, 1}, u); got != 1+2+0+2+1+3 {
		t.Errorf("calcUsage = %d, want 9", got)
	}
	// A u64 product that overflows wraps (the release build has no overflow checks).
	huge := usageAmounts{DBReads: 1 << 63}
	if got := calcUsage([6]uint64{0, 0, 4, 0, 0, 0}, huge); got != 0 {
		t.Errorf("wrapped product = %d, want 0", got)
	}
}

func TestTransactionError_JSONIsTheValidatorsShape(t *testing.T) {
	for _, tc := range []struct {
		err  *TransactionError
		want string
	}{
		{txErr("BlockhashNotFound"), `"BlockhashNotFound"`},
		{&TransactionError{Index: 2, Instruction: customErr(2006, "")}, `{"InstructionError":[2,{"Custom":2006}]}`},
		{&TransactionError{Index: 0, Instruction: progErr("MissingRequiredSignature", "")}, `{"InstructionError":[0,"MissingRequiredSignature"]}`},
	} {
		b, err := json.Marshal(tc.err)
		if err != nil || string(b) != tc.want {
			t.Errorf("%v marshals as %s (%v), want %s", tc.err, b, err, tc.want)
		}
	}
}

func TestMarketplace_ProviderDepositAndRequestSigners(t *testing.T) {
	m := newMarket(t)
	a := m.authority.PublicKey()
	// update_provider_deposit: the program checks only that the authority
	// signs, not that it is the state's (the backend keeps that rule).
	stranger := newKey(t)
	m.airdrop(stranger.PublicKey(), sol)
	m.send([]solana.Instruction{mpIx(ixData("update_provider_deposit", func(w *borshWriter) { w.u64(77) }), w(m.state), wsg(stranger.PublicKey()))}, stranger)
	st, _ := decodeState(m.decode(m.state, discState))
	if st.ProviderDeposit != 77 || !st.Authority.Equals(a) {
		t.Errorf("state after update_provider_deposit %+v", st)
	}

	u, sg := m.user.PublicKey(), newKey(t)
	sk := sg.PublicKey()
	rs, _ := pda(t, []byte("request_signer"), u[:], sk[:], m.region[:])
	m.send([]solana.Instruction{mpIx(ixData("create_api_request_signer", nil), w(rs), wsg(u), s(sk), ro(m.region), ro(solana.SystemProgramID))}, m.user, sg)
	check := func(active bool) {
		t.Helper()
		r, err := decodeRequestSigner(m.decode(rs, discRequestSigner))
		if err != nil || r.Active != active || !r.Signer.Equals(sk) || !r.User.Equals(u) || !r.Region.Equals(m.region) {
			t.Errorf("request signer %+v %v, want active=%v", r, err, active)
		}
	}
	check(true)
	// Deactivating needs only the user.
	m.send([]solana.Instruction{mpIx(ixData("deactivate_api_request_signer", nil), w(rs), wsg(u), ro(sk), ro(m.region))}, m.user)
	check(false)
	// Activating needs the signer's signature too.
	if got := preflightErr(t, m.sendErr([]solana.Instruction{mpIx(ixData("activate_api_request_signer", nil), w(rs), wsg(u), ro(sk), ro(m.region))}, m.user)); got != customErrJSON(0, anchorAccountNotSigner) {
		t.Errorf("activate without the signer: %s", got)
	}
	m.send([]solana.Instruction{mpIx(ixData("activate_api_request_signer", nil), w(rs), wsg(u), s(sk), ro(m.region))}, m.user, sg)
	check(true)
	// Another user cannot deactivate it.
	if got := preflightErr(t, m.sendErr([]solana.Instruction{mpIx(ixData("deactivate_api_request_signer", nil), w(rs), wsg(stranger.PublicKey()), ro(sk), ro(m.region))}, stranger)); got != customErrJSON(0, anchorConstraintHasOne) {
		t.Errorf("deactivate by another user: %s", got)
	}
	check(true)
}

func TestMarketplace_ProgramSubscriptionWithADiscriminatorFilter(t *testing.T) {
	m := newMarket(t)
	cl := m.wsClient()
	sub, err := cl.ProgramSubscribeWithOpts(testProgramID, "", solana.EncodingBase64,
		[]rpc.RPCFilter{{Memcmp: &rpc.RPCFilterMemcmp{Offset: 0, Bytes: discStack}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	if err := m.chain.WaitSubscriptions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	stack := m.stackPDA(5)
	// The usage update touches program accounts that are not stacks: only the
	// stack's notifications arrive, in slot order.
	m.send([]solana.Instruction{m.stackIx("create_stack", 5, []byte("v1"), "n")}, m.user)
	m.send([]solana.Instruction{m.usageIx(stack, 1, 1, m.usageSigner.PublicKey())}, m.usageSigner)
	m.send([]solana.Instruction{m.stackIx("update_stack", 5, []byte("v2"), "n")}, m.user)
	for _, want := range []string{"v1", "v2"} {
		r, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := decodeStack(r.Value.Account.Data.GetBinary())
		if err != nil || !r.Value.Pubkey.Equals(stack) || string(sk.StackData) != want {
			t.Errorf("notification for %s: %+v %v, want the stack with %q", r.Value.Pubkey, sk, err, want)
		}
	}
	// The same through getProgramAccounts, discriminator in base58.
	got, err := m.rpc.GetProgramAccountsWithOpts(m.ctx, testProgramID, &rpc.GetProgramAccountsOpts{
		Filters: []rpc.RPCFilter{{Memcmp: &rpc.RPCFilterMemcmp{Offset: 0, Bytes: discProvider}}},
	})
	if err != nil || len(got) != 1 || !got[0].Pubkey.Equals(m.provider) {
		t.Errorf("providers by discriminator: %v %v", got, err)
	}
}
