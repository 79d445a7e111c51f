package solanatest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/token"
	"github.com/gagliardetto/solana-go/rpc"

	"github.com/muprotocol/mu/libs/ledger"
	mp "github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// These tests drive the marketplace program through the program client's
// builders (what the backend sends) and read its accounts with the client's
// decoders; malformed variants are the builders' instructions with an
// account or flag changed.

var prog = mp.Program{ID: testProgramID}

// changed is ix with account i replaced by key and its flags set.
func changed(ix *solana.GenericInstruction, i int, key solana.PublicKey, writable, signer bool) solana.Instruction {
	metas := make(solana.AccountMetaSlice, len(ix.AccountValues))
	for j, m := range ix.AccountValues {
		c := *m
		metas[j] = &c
	}
	metas[i] = &solana.AccountMeta{PublicKey: key, IsWritable: writable, IsSigner: signer}
	return solana.NewInstruction(ix.ProgID, metas, ix.DataBytes)
}

// flagged is ix with account i's flags set.
func flagged(ix *solana.GenericInstruction, i int, writable, signer bool) solana.Instruction {
	return changed(ix, i, ix.AccountValues[i].PublicKey, writable, signer)
}

// market is a deployed, initialized marketplace with one authorized provider,
// its region and usage signer, and a user with an escrow holding tokens.
type market struct {
	*env
	authority, owner, user, usageSigner          solana.PrivateKey
	mint, state, deposit, commission, authorizer solana.PublicKey
	provider, region, usageSignerPDA, escrow     solana.PublicKey
	ownerATA, userATA                            solana.PublicKey
	escrowBump                                   uint8
	rates                                        mp.ServiceRates
}

const (
	testCommissionMicros = 100_000 // 10%
	testDeposit          = 1000
	testOwnerTokens      = 5000
	testEscrowTokens     = 10_000
)

func newMarket(t testing.TB) *market {
	t.Helper()
	m := &market{env: newEnv(t), authority: newKey(t), owner: newKey(t), user: newKey(t), usageSigner: newKey(t)}
	for _, k := range []solana.PrivateKey{m.authority, m.owner, m.user, m.usageSigner} {
		m.airdrop(k.PublicKey(), sol)
	}
	m.mint = m.newMint(m.authority.PublicKey(), 6)
	m.state, _ = prog.State()
	m.deposit, _ = prog.Deposit()
	m.commission, _ = prog.Commission()
	a := m.authority.PublicKey()
	m.send([]solana.Instruction{m.initializeIx(testCommissionMicros, testDeposit)}, m.authority)
	m.authorizer, _ = prog.Authorizer(a)
	m.send([]solana.Instruction{m.authorizerIx(m.authority)}, m.authority)

	o := m.owner.PublicKey()
	m.ownerATA = m.newATA(o, m.mint)
	m.send([]solana.Instruction{token.NewMintToInstruction(testOwnerTokens, m.mint, m.ownerATA, a, nil).Build()}, m.authority)
	m.provider, _ = prog.Provider(o)
	m.send([]solana.Instruction{m.createProviderIx(m.owner, "prov")}, m.owner)
	m.send([]solana.Instruction{m.authorizeIx(m.authority, o)}, m.authority)

	m.rates = mp.ServiceRates{FunctionMBTeraInstructions: 3, DBGigabyteMonths: 5, MillionDBReads: 7, MillionDBWrites: 11, MillionGatewayRequests: 1_000_000, GigabytesGatewayTraffic: 13}
	m.region, _ = prog.Region(o, 1)
	m.send([]solana.Instruction{m.createRegionIx(m.owner, m.provider, 1)}, m.owner)
	m.usageSignerPDA, _ = prog.AuthorizedSigner(m.region)
	m.send([]solana.Instruction{prog.CreateAuthorizedUsageSigner(mp.CreateAuthorizedUsageSignerAccounts{
		Provider: m.provider, Region: m.region, AuthorizedSigner: m.usageSignerPDA, Owner: o, SystemProgram: solana.SystemProgramID,
	}, mp.CreateAuthorizedUsageSignerArgs{Signer: m.usageSigner.PublicKey(), TokenAccount: m.ownerATA})}, m.owner)

	u := m.user.PublicKey()
	m.userATA = m.newATA(u, m.mint)
	m.escrow, m.escrowBump = prog.Escrow(u, m.provider)
	m.send([]solana.Instruction{prog.CreateProviderEscrowAccount(mp.CreateProviderEscrowAccountAccounts{
		State: m.state, Mint: m.mint, EscrowAccount: m.escrow, Provider: m.provider, User: u,
		SystemProgram: solana.SystemProgramID, TokenProgram: solana.TokenProgramID, Rent: solana.SysVarRentPubkey,
	})}, m.user)
	m.send([]solana.Instruction{token.NewMintToInstruction(testEscrowTokens, m.mint, m.escrow, a, nil).Build()}, m.authority)
	return m
}

func (m *market) initializeIx(micros uint32, deposit uint64) *solana.GenericInstruction {
	return prog.Initialize(mp.InitializeAccounts{
		State: m.state, Mint: m.mint, DepositToken: m.deposit, CommissionToken: m.commission, Authority: m.authority.PublicKey(),
		SystemProgram: solana.SystemProgramID, TokenProgram: solana.TokenProgramID,
	}, mp.InitializeArgs{CommissionRateMicros: micros, ProviderDeposit: deposit})
}

func (m *market) authorizerIx(k solana.PrivateKey) *solana.GenericInstruction {
	pa, _ := prog.Authorizer(k.PublicKey())
	return prog.CreateProviderAuthorizer(mp.CreateProviderAuthorizerAccounts{
		State: m.state, ProviderAuthorizer: pa, Authority: k.PublicKey(), Authorizer: k.PublicKey(), SystemProgram: solana.SystemProgramID,
	})
}

func (m *market) createProviderIx(owner solana.PrivateKey, name string) *solana.GenericInstruction {
	o := owner.PublicKey()
	ata, _, _ := solana.FindAssociatedTokenAddress(o, m.mint)
	provider, _ := prog.Provider(o)
	return prog.CreateProvider(mp.CreateProviderAccounts{
		State: m.state, Provider: provider, DepositToken: m.deposit, Owner: o, OwnerToken: ata,
		SystemProgram: solana.SystemProgramID, TokenProgram: solana.TokenProgramID, Rent: solana.SysVarRentPubkey,
	}, mp.CreateProviderArgs{Name: name})
}

func (m *market) authorizeIx(authorizer solana.PrivateKey, owner solana.PublicKey) *solana.GenericInstruction {
	pa, _ := prog.Authorizer(authorizer.PublicKey())
	provider, _ := prog.Provider(owner)
	return prog.AuthorizeProvider(mp.AuthorizeProviderAccounts{ProviderAuthorizer: pa, Authorizer: authorizer.PublicKey(), Provider: provider, Owner: owner})
}

func (m *market) createRegionIx(owner solana.PrivateKey, provider solana.PublicKey, num uint32) *solana.GenericInstruction {
	region, _ := prog.Region(owner.PublicKey(), num)
	return prog.CreateRegion(mp.CreateRegionAccounts{Provider: provider, Region: region, Owner: owner.PublicKey(), SystemProgram: solana.SystemProgramID},
		mp.CreateRegionArgs{RegionNum: num, Name: "region one", BaseURL: "https://r1.example", Rates: m.rates, MinEscrowBalance: 500, MaxGigaInstructionsPerCall: 7})
}

func (m *market) stackPDA(seed uint64) solana.PublicKey {
	k, _ := prog.Stack(m.user.PublicKey(), m.region, seed)
	return k
}

func (m *market) createStackIx(seed uint64, data []byte, name string) *solana.GenericInstruction {
	return prog.CreateStack(mp.CreateStackAccounts{Provider: m.provider, Region: m.region, Stack: m.stackPDA(seed), User: m.user.PublicKey(), SystemProgram: solana.SystemProgramID},
		mp.StackArgs{StackSeed: seed, StackData: data, Name: name})
}

func (m *market) updateStackIx(seed uint64, data []byte, name string) *solana.GenericInstruction {
	return prog.UpdateStack(mp.UpdateStackAccounts{Region: m.region, Stack: m.stackPDA(seed), User: m.user.PublicKey(), SystemProgram: solana.SystemProgramID},
		mp.StackArgs{StackSeed: seed, StackData: data, Name: name})
}

func (m *market) deleteStackIx(seed uint64) *solana.GenericInstruction {
	return prog.DeleteStack(mp.DeleteStackAccounts{Region: m.region, Stack: m.stackPDA(seed), User: m.user.PublicKey(), SystemProgram: solana.SystemProgramID},
		mp.DeleteStackArgs{StackSeed: seed})
}

func (m *market) updatePDA(stack solana.PublicKey, seed uint64) solana.PublicKey {
	k, _ := prog.Update(stack, m.region, ledger.U128(seed))
	return k
}

func (m *market) usageIx(stack solana.PublicKey, seed uint64, requests uint64, signer solana.PublicKey) *solana.GenericInstruction {
	return prog.UpdateUsage(mp.UpdateUsageAccounts{
		State: m.state, CommissionToken: m.commission, AuthorizedSigner: m.usageSignerPDA, Region: m.region, TokenAccount: m.ownerATA,
		UsageUpdate: m.updatePDA(stack, seed), EscrowAccount: m.escrow, Stack: stack, Signer: signer,
		SystemProgram: solana.SystemProgramID, TokenProgram: solana.TokenProgramID,
	}, mp.UpdateUsageArgs{UpdateSeed: ledger.U128(seed), EscrowBump: m.escrowBump, Usage: mp.ServiceUsage{GatewayRequests: requests}})
}

func (m *market) withdrawIx(user solana.PrivateKey, to solana.PublicKey, amount uint64) *solana.GenericInstruction {
	return prog.WithdrawEscrowBalance(mp.WithdrawEscrowBalanceAccounts{
		State: m.state, EscrowAccount: m.escrow, WithdrawTo: to, Provider: m.provider, User: user.PublicKey(), TokenProgram: solana.TokenProgramID,
	}, mp.WithdrawEscrowBalanceArgs{Amount: amount})
}

// data is the program account at k, checked to be owned by the program and
// of the account type kind.
func (m *market) data(k solana.PublicKey, kind string) []byte {
	m.t.Helper()
	a := m.mustAccount(k)
	if !a.Owner.Equals(testProgramID) || mp.KindOf(a.Data) != kind {
		m.t.Fatalf("%s: owner %s, kind %q, want %s", k, a.Owner, mp.KindOf(a.Data), kind)
	}
	return a.Data
}

func TestMarketplace_FlowMovesTokensAndWritesTheProgramsLayouts(t *testing.T) {
	m := newMarket(t)
	st, err := mp.DecodeMuState(m.data(m.state, mp.AccountMuState))
	if err != nil || !st.Authority.Equals(m.authority.PublicKey()) || !st.Mint.Equals(m.mint) || !st.DepositToken.Equals(m.deposit) ||
		!st.CommissionToken.Equals(m.commission) || st.CommissionRateMicros != testCommissionMicros || st.ProviderDeposit != testDeposit {
		t.Errorf("state %+v %v", st, err)
	}
	if _, b := prog.State(); st.Bump != b {
		t.Errorf("state bump %d, want %d", st.Bump, b)
	}
	if got := len(m.mustAccount(m.state).Data); got != mp.MuStateSpace {
		t.Errorf("state is %d bytes, want %d", got, mp.MuStateSpace)
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
	p, err := mp.DecodeProvider(m.data(m.provider, mp.AccountProvider))
	if err != nil || !p.Authorized || p.Name != "prov" || p.Deposit != testDeposit || !p.Owner.Equals(m.owner.PublicKey()) {
		t.Errorf("provider %+v %v", p, err)
	}
	if got := len(m.mustAccount(m.provider).Data); got != mp.ProviderSpace(4) {
		t.Errorf("provider is %d bytes, want %d", got, mp.ProviderSpace(4))
	}
	g, err := mp.DecodeProviderRegion(m.data(m.region, mp.AccountProviderRegion))
	if err != nil || g.RegionNum != 1 || g.Rates != m.rates || g.MinEscrowBalance != 500 || g.MaxGigaInstructionsPerCall != 7 || g.Name != "region one" || g.BaseURL != "https://r1.example" || !g.Provider.Equals(m.provider) {
		t.Errorf("region %+v %v", g, err)
	}
	us, err := mp.DecodeAuthorizedUsageSigner(m.data(m.usageSignerPDA, mp.AccountAuthorizedUsageSigner))
	if err != nil || !us.Signer.Equals(m.usageSigner.PublicKey()) || !us.TokenAccount.Equals(m.ownerATA) {
		t.Errorf("usage signer %+v %v", us, err)
	}
	esc, _ := DecodeTokenAccount(m.mustAccount(m.escrow).Data)
	if !esc.Owner.Equals(m.state) || !esc.Mint.Equals(m.mint) || esc.Amount != testEscrowTokens {
		t.Errorf("escrow %+v", esc)
	}

	stack := m.stackPDA(42)
	m.send([]solana.Instruction{m.createStackIx(42, []byte{1, 2, 3}, "app")}, m.user)
	sk, err := mp.DecodeStack(m.data(stack, mp.AccountStack))
	if err != nil || !sk.State.Active() || sk.State.Revision != 1 || sk.State.Name != "app" || string(sk.State.StackData) != "\x01\x02\x03" || sk.Seed != 42 || !sk.Region.Equals(m.region) {
		t.Errorf("stack %+v %v", sk, err)
	}
	m.send([]solana.Instruction{m.updateStackIx(42, []byte("longer stack data"), "app2")}, m.user)
	sk, _ = mp.DecodeStack(m.data(stack, mp.AccountStack))
	if sk.State.Revision != 2 || sk.State.Name != "app2" || string(sk.State.StackData) != "longer stack data" {
		t.Errorf("updated stack %+v", sk)
	}
	if got := len(m.mustAccount(stack).Data); got != mp.StackSpace(4, 17) {
		t.Errorf("updated stack is %d bytes, want the realloc'd %d", got, mp.StackSpace(4, 17))
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
	upd, err := mp.DecodeUsageUpdate(m.data(m.updatePDA(stack, 1), mp.AccountUsageUpdate))
	if err != nil || upd.Usage.GatewayRequests != 1500 || !upd.Stack.Equals(stack) || upd.Seed != ledger.U128(1) {
		t.Errorf("usage update %+v %v", upd, err)
	}
	if got := len(m.mustAccount(m.updatePDA(stack, 1)).Data); got != mp.UsageUpdateSpace {
		t.Errorf("usage update is %d bytes, want %d", got, mp.UsageUpdateSpace)
	}

	m.send([]solana.Instruction{m.withdrawIx(m.user, m.userATA, 2500)}, m.user)
	if m.tokenAmount(m.escrow) != "6000" || m.tokenAmount(m.userATA) != "2500" {
		t.Errorf("after withdrawing 2500: escrow %s, user %s", m.tokenAmount(m.escrow), m.tokenAmount(m.userATA))
	}

	m.send([]solana.Instruction{m.deleteStackIx(42)}, m.user)
	sk, _ = mp.DecodeStack(m.data(stack, mp.AccountStack))
	if sk.State.Active() || len(m.mustAccount(stack).Data) != mp.StackDeletedSpace {
		t.Errorf("deleted stack %+v (%d bytes)", sk, len(m.mustAccount(stack).Data))
	}
	// The program lets usage be charged against a deleted stack.
	sig := m.send([]solana.Instruction{m.usageIx(stack, 2, 10, m.usageSigner.PublicKey())}, m.usageSigner)
	logs := m.chain.TransactionLogs(sig)
	if len(logs) < 2 || logs[1] != "Program log: Instruction: UpdateUsage" || logs[len(logs)-1] != "Program "+testProgramID.String()+" success" {
		t.Errorf("logs of update_usage: %q", logs)
	}
}

func TestMarketplace_RefusalsCarryTheProgramsCodes(t *testing.T) {
	m := newMarket(t)
	stack := m.stackPDA(7)
	m.send([]solana.Instruction{m.createStackIx(7, []byte{9}, "s")}, m.user)
	m.send([]solana.Instruction{m.usageIx(stack, 1, 10, m.usageSigner.PublicKey())}, m.usageSigner)
	m.send([]solana.Instruction{m.createStackIx(8, nil, "d")}, m.user)
	m.send([]solana.Instruction{m.deleteStackIx(8)}, m.user)

	stranger := newKey(t)
	m.airdrop(stranger.PublicKey(), sol)
	so := stranger.PublicKey()
	strangerATA := m.newATA(so, m.mint)
	strangerRegion, _ := prog.Region(so, 1)
	ownersRegion2, _ := prog.Region(m.owner.PublicKey(), 2)

	cases := []struct {
		name string
		ix   solana.Instruction
		sign []solana.PrivateKey
		want string
	}{
		{"create_provider without tokens for the deposit", m.createProviderIx(stranger, "x"), []solana.PrivateKey{stranger}, customErrJSON(0, mp.TokenErrorInsufficientFunds)},
		{"create_provider at an address not its PDA", changed(m.createProviderIx(stranger, "x"), 1, newKey(t).PublicKey(), true, false), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintSeeds)},
		{"create_provider twice", m.createProviderIx(m.owner, "again"), []solana.PrivateKey{m.owner}, customErrJSON(0, mp.SystemErrorAccountAlreadyInUse)},
		{"create_provider with another deposit account", changed(m.createProviderIx(stranger, "x"), 2, strangerATA, true, false), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"create_provider with the rent account wrong", changed(m.createProviderIx(stranger, "x"), 7, solana.SystemProgramID, false, false), []solana.PrivateKey{stranger}, customErrJSON(0, anchorAccountSysvarMismatch)},
		{"create_provider with the token program wrong", changed(m.createProviderIx(stranger, "x"), 6, solana.SystemProgramID, false, false), []solana.PrivateKey{stranger}, customErrJSON(0, anchorInvalidProgramID)},
		{"authorizer that is not the state's", m.authorizerIx(stranger), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"authorize by a key with no authorizer account", m.authorizeIx(stranger, m.owner.PublicKey()), []solana.PrivateKey{stranger}, customErrJSON(0, anchorAccountNotInitialized)},
		{"authorize a provider whose owner is not given", changed(m.authorizeIx(m.authority, m.owner.PublicKey()), 3, so, false, false), []solana.PrivateKey{m.authority}, customErrJSON(0, anchorConstraintSeeds)},
		{"region passed as provider", changed(m.createRegionIx(m.owner, m.region, 2), 0, m.region, false, false), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorAccountDiscriminatorMismatch)},
		{"a token account passed as provider", changed(m.createRegionIx(m.owner, m.provider, 2), 0, m.ownerATA, false, false), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorAccountOwnedByWrongProgram)},
		{"region at another number's address", changed(m.createRegionIx(m.owner, m.provider, 3), 1, ownersRegion2, true, false), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorConstraintSeeds)},
		{"region by a stranger for the owner's provider", m.createRegionIx(stranger, m.provider, 1), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"stack under a region of no provider", changed(m.createStackIx(9, nil, "x"), 1, strangerRegion, false, false), []solana.PrivateKey{m.user}, customErrJSON(0, anchorAccountNotInitialized)},
		{"create_stack with the user not signing", flagged(m.createStackIx(9, nil, "x"), 3, true, false), nil, customErrJSON(0, anchorAccountNotSigner)},
		{"update_stack with another seed's address", changed(m.updateStackIx(7, nil, "x"), 1, m.stackPDA(99), true, false), []solana.PrivateKey{m.user}, customErrJSON(0, anchorAccountNotInitialized)},
		{"update_stack by another user", changed(m.updateStackIx(7, nil, "x"), 2, so, true, true), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"update_stack with the wrong seed", changed(m.updateStackIx(8, nil, "x"), 1, stack, true, false), []solana.PrivateKey{m.user}, customErrJSON(0, anchorConstraintSeeds)},
		{"update_stack of a deleted stack", m.updateStackIx(8, nil, "x"), []solana.PrivateKey{m.user}, customErrJSON(0, errCannotOperateOnDeletedStack)},
		{"delete_stack twice", m.deleteStackIx(8), []solana.PrivateKey{m.user}, customErrJSON(0, errCannotOperateOnDeletedStack)},
		{"update_stack with the stack read-only", flagged(m.updateStackIx(7, nil, "x"), 1, false, false), []solana.PrivateKey{m.user}, customErrJSON(0, anchorConstraintMut)},
		{"replayed usage update seed", m.usageIx(stack, 1, 10, m.usageSigner.PublicKey()), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, mp.SystemErrorAccountAlreadyInUse)},
		{"usage signed by another key", m.usageIx(stack, 2, 10, so), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintHasOne)},
		{"usage paid to another token account", changed(m.usageIx(stack, 2, 10, m.usageSigner.PublicKey()), 4, strangerATA, true, false), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, anchorConstraintHasOne)},
		{"usage with another escrow", changed(m.usageIx(stack, 2, 10, m.usageSigner.PublicKey()), 6, strangerATA, true, false), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, anchorConstraintSeeds)},
		{"usage the escrow cannot pay", m.usageIx(stack, 3, 20_000, m.usageSigner.PublicKey()), []solana.PrivateKey{m.usageSigner}, customErrJSON(0, mp.TokenErrorInsufficientFunds)},
		{"withdraw by a stranger", m.withdrawIx(stranger, strangerATA, 1), []solana.PrivateKey{stranger}, customErrJSON(0, anchorConstraintSeeds)},
		{"withdraw more than the escrow", m.withdrawIx(m.user, m.userATA, testEscrowTokens), []solana.PrivateKey{m.user}, customErrJSON(0, mp.TokenErrorInsufficientFunds)},
		{"unknown instruction", solana.NewInstruction(testProgramID, solana.AccountMetaSlice{solana.Meta(m.state)}, []byte("12345678")), nil, customErrJSON(0, anchorInstructionFallbackNotFound)},
		{"short instruction data", solana.NewInstruction(testProgramID, solana.AccountMetaSlice{solana.Meta(m.state)}, []byte{1, 2}), nil, customErrJSON(0, anchorInstructionMissing)},
		{"too few accounts", solana.NewInstruction(testProgramID, m.authorizeIx(m.authority, m.owner.PublicKey()).AccountValues[:1], m.authorizeIx(m.authority, m.owner.PublicKey()).DataBytes), nil, customErrJSON(0, anchorAccountNotEnoughKeys)},
		{"arguments cut short", func() solana.Instruction {
			ix := m.createRegionIx(m.owner, m.provider, 3)
			return solana.NewInstruction(testProgramID, ix.AccountValues, ix.DataBytes[:12])
		}(), []solana.PrivateKey{m.owner}, customErrJSON(0, anchorInstructionDidNotDeserialize)},
	}
	escrowBefore, ownerBefore := m.tokenAmount(m.escrow), m.tokenAmount(m.ownerATA)
	for _, tc := range cases {
		if got := preflightErr(t, m.sendErr([]solana.Instruction{tc.ix}, tc.sign...)); got != tc.want {
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
	prov2, _ := prog.Provider(o2)
	m.send([]solana.Instruction{m.createProviderIx(p2, "second")}, p2)
	if got := preflightErr(t, m.sendErr([]solana.Instruction{m.createRegionIx(p2, prov2, 1)}, p2)); got != customErrJSON(0, errProviderNotAuthorized) {
		t.Errorf("region of an unauthorized provider: %s", got)
	}
	// Once authorized, the region is created; the provider's deposit was moved.
	m.send([]solana.Instruction{m.authorizeIx(m.authority, o2)}, m.authority)
	m.send([]solana.Instruction{m.createRegionIx(p2, prov2, 1)}, p2)
	if got := m.tokenAmount(m.deposit); got != "2000" {
		t.Errorf("deposit account %s after two providers, want 2000", got)
	}
	// A stack naming the second provider under the first one's region fails
	// has_one; under its own region it is created.
	if got := preflightErr(t, m.sendErr([]solana.Instruction{changed(m.createStackIx(9, nil, "x"), 0, prov2, false, false)}, m.user)); got != customErrJSON(0, anchorConstraintHasOne) {
		t.Errorf("stack naming another provider than its region's: %s", got)
	}
	reg2, _ := prog.Region(o2, 1)
	s, _ := prog.Stack(m.user.PublicKey(), reg2, 1)
	m.send([]solana.Instruction{prog.CreateStack(mp.CreateStackAccounts{Provider: prov2, Region: reg2, Stack: s, User: m.user.PublicKey(), SystemProgram: solana.SystemProgramID},
		mp.StackArgs{StackSeed: 1, Name: "x"})}, m.user)
}

func TestMarketplace_CreateStackChecksTheProviderFlag(t *testing.T) {
	m := newMarket(t)
	// Clear the provider's authorized flag directly (no instruction does),
	// keeping its region: create_stack must refuse with ProviderNotAuthorized.
	a := m.mustAccount(m.provider)
	p, _ := mp.DecodeProvider(a.Data)
	p.Authorized = false
	a.Data = p.Encode()
	m.chain.SetAccount(m.provider, a)
	if got := preflightErr(t, m.sendErr([]solana.Instruction{m.createStackIx(1, nil, "x")}, m.user)); got != customErrJSON(0, errProviderNotAuthorized) {
		t.Errorf("stack of an unauthorized provider: %s", got)
	}
}

func TestMarketplace_InitializeRefusesACommissionAboveOne(t *testing.T) {
	e := newEnv(t)
	m := &market{env: e, authority: newKey(t)}
	e.airdrop(m.authority.PublicKey(), sol)
	m.mint = e.newMint(m.authority.PublicKey(), 0)
	m.state, _ = prog.State()
	m.deposit, _ = prog.Deposit()
	m.commission, _ = prog.Commission()
	if got := preflightErr(t, e.sendErr([]solana.Instruction{m.initializeIx(1_000_001, 1)}, m.authority)); got != customErrJSON(0, errCommissionRateOutOfBounds) {
		t.Errorf("commission 1000001 micros: %s", got)
	}
	if _, ok := e.chain.Account(m.state); ok {
		t.Error("a refused initialize left the state account")
	}
	e.send([]solana.Instruction{m.initializeIx(1_000_000, 1)}, m.authority)
	if got := preflightErr(t, e.sendErr([]solana.Instruction{m.initializeIx(0, 1)}, m.authority)); got != customErrJSON(0, mp.SystemErrorAccountAlreadyInUse) {
		t.Errorf("second initialize: %s", got)
	}
}

func TestMarketplace_ProviderDepositAndRequestSigners(t *testing.T) {
	m := newMarket(t)
	a := m.authority.PublicKey()
	// update_provider_deposit: the program checks only that the authority
	// signs, not that it is the state's (the backend keeps that rule).
	stranger := newKey(t)
	m.airdrop(stranger.PublicKey(), sol)
	m.send([]solana.Instruction{prog.UpdateProviderDeposit(mp.UpdateProviderDepositAccounts{State: m.state, Authority: stranger.PublicKey()}, mp.UpdateProviderDepositArgs{ProviderDeposit: 77})}, stranger)
	st, _ := mp.DecodeMuState(m.data(m.state, mp.AccountMuState))
	if st.ProviderDeposit != 77 || !st.Authority.Equals(a) {
		t.Errorf("state after update_provider_deposit %+v", st)
	}

	u, sg := m.user.PublicKey(), newKey(t)
	sk := sg.PublicKey()
	rs, _ := prog.RequestSigner(u, sk, m.region)
	m.send([]solana.Instruction{prog.CreateAPIRequestSigner(mp.CreateAPIRequestSignerAccounts{RequestSigner: rs, User: u, Signer: sk, Region: m.region, SystemProgram: solana.SystemProgramID})}, m.user, sg)
	check := func(active bool) {
		t.Helper()
		r, err := mp.DecodeAPIRequestSigner(m.data(rs, mp.AccountAPIRequestSigner))
		if err != nil || r.Active != active || !r.Signer.Equals(sk) || !r.User.Equals(u) || !r.Region.Equals(m.region) {
			t.Errorf("request signer %+v %v, want active=%v", r, err, active)
		}
	}
	check(true)
	deactivate := func(user solana.PublicKey) *solana.GenericInstruction {
		return prog.DeactivateAPIRequestSigner(mp.DeactivateAPIRequestSignerAccounts{RequestSigner: rs, User: user, Signer: sk, Region: m.region})
	}
	activate := prog.ActivateAPIRequestSigner(mp.ActivateAPIRequestSignerAccounts{RequestSigner: rs, User: u, Signer: sk, Region: m.region})
	// Deactivating needs only the user.
	m.send([]solana.Instruction{deactivate(u)}, m.user)
	check(false)
	// Activating needs the signer's signature too.
	if got := preflightErr(t, m.sendErr([]solana.Instruction{flagged(activate, 2, false, false)}, m.user)); got != customErrJSON(0, anchorAccountNotSigner) {
		t.Errorf("activate without the signer: %s", got)
	}
	m.send([]solana.Instruction{activate}, m.user, sg)
	check(true)
	// Another user cannot deactivate it.
	if got := preflightErr(t, m.sendErr([]solana.Instruction{deactivate(stranger.PublicKey())}, stranger)); got != customErrJSON(0, anchorConstraintHasOne) {
		t.Errorf("deactivate by another user: %s", got)
	}
	check(true)
}

func TestMarketplace_ProgramSubscriptionWithADiscriminatorFilter(t *testing.T) {
	m := newMarket(t)
	cl := m.wsClient()
	sub, err := cl.ProgramSubscribeWithOpts(testProgramID, "", solana.EncodingBase64,
		[]rpc.RPCFilter{{Memcmp: &rpc.RPCFilterMemcmp{Offset: mp.DiscriminatorOffset, Bytes: mp.StackDiscriminator[:]}}})
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
	m.send([]solana.Instruction{m.createStackIx(5, []byte("v1"), "n")}, m.user)
	m.send([]solana.Instruction{m.usageIx(stack, 1, 1, m.usageSigner.PublicKey())}, m.usageSigner)
	m.send([]solana.Instruction{m.updateStackIx(5, []byte("v2"), "n")}, m.user)
	for _, want := range []string{"v1", "v2"} {
		r, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := mp.DecodeStack(r.Value.Account.Data.GetBinary())
		if err != nil || !r.Value.Pubkey.Equals(stack) || string(sk.State.StackData) != want {
			t.Errorf("notification for %s: %+v %v, want the stack with %q", r.Value.Pubkey, sk, err, want)
		}
	}
	// The same through getProgramAccounts: providers by discriminator, stacks
	// by user (base58 memcmp bytes, as solana-go sends them).
	got, err := m.rpc.GetProgramAccountsWithOpts(m.ctx, testProgramID, &rpc.GetProgramAccountsOpts{
		Filters: []rpc.RPCFilter{{Memcmp: &rpc.RPCFilterMemcmp{Offset: mp.DiscriminatorOffset, Bytes: mp.ProviderDiscriminator[:]}}},
	})
	if err != nil || len(got) != 1 || !got[0].Pubkey.Equals(m.provider) {
		t.Errorf("providers by discriminator: %v %v", got, err)
	}
	u := m.user.PublicKey()
	got, err = m.rpc.GetProgramAccountsWithOpts(m.ctx, testProgramID, &rpc.GetProgramAccountsOpts{
		Filters: []rpc.RPCFilter{
			{Memcmp: &rpc.RPCFilterMemcmp{Offset: mp.DiscriminatorOffset, Bytes: mp.StackDiscriminator[:]}},
			{Memcmp: &rpc.RPCFilterMemcmp{Offset: mp.StackUserOffset, Bytes: u[:]}},
		},
	})
	if err != nil || len(got) != 1 || !got[0].Pubkey.Equals(stack) {
		t.Errorf("stacks by user: %v %v", got, err)
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

func TestChargeRent_PayersPayForWhatProgramsCreate(t *testing.T) {
	m := newMarket(t)
	m.chain.ChargeRent(true)
	u := m.user.PublicKey()
	before := m.lamports(u)
	stack := m.stackPDA(3)
	m.send([]solana.Instruction{m.createStackIx(3, []byte("abc"), "n")}, m.user)
	small := RentExemptMinimum(uint64(mp.StackSpace(1, 3)))
	if got := m.lamports(u); got != before-small {
		t.Errorf("user %d after create_stack, want %d (the stack's rent %d)", got, before-small, small)
	}
	if got := m.lamports(stack); got != small {
		t.Errorf("stack holds %d lamports, want %d", got, small)
	}
	m.send([]solana.Instruction{m.updateStackIx(3, make([]byte, 300), "n")}, m.user)
	big := RentExemptMinimum(uint64(mp.StackSpace(1, 300)))
	if got := m.lamports(u); got != before-big {
		t.Errorf("user %d after growing the stack, want %d", got, before-big)
	}
	m.send([]solana.Instruction{m.deleteStackIx(3)}, m.user)
	deleted := RentExemptMinimum(mp.StackDeletedSpace)
	if got := m.lamports(u); got != before-deleted || m.lamports(stack) != deleted {
		t.Errorf("after delete_stack: user %d (want %d), stack %d (want %d)", got, before-deleted, m.lamports(stack), deleted)
	}
	// An associated token account costs its payer too.
	payerBefore := m.lamports(m.payer.PublicKey())
	m.newATA(newKey(t).PublicKey(), m.mint)
	if got, want := m.lamports(m.payer.PublicKey()), payerBefore-RentExemptMinimum(TokenAccountSize)-FeePerSignature; got != want {
		t.Errorf("payer %d after creating an ATA, want %d", got, want)
	}
	// A payer without the rent fails in the system program.
	poor := newKey(t)
	m.airdrop(poor.PublicKey(), 1)
	esc, _ := prog.Escrow(poor.PublicKey(), m.provider)
	ix := prog.CreateProviderEscrowAccount(mp.CreateProviderEscrowAccountAccounts{
		State: m.state, Mint: m.mint, EscrowAccount: esc, Provider: m.provider, User: poor.PublicKey(),
		SystemProgram: solana.SystemProgramID, TokenProgram: solana.TokenProgramID, Rent: solana.SysVarRentPubkey,
	})
	if got := preflightErr(t, m.sendErr([]solana.Instruction{ix}, poor)); got != customErrJSON(0, mp.SystemErrorResultWithNegativeLamports) {
		t.Errorf("escrow by a payer without the rent: %s", got)
	}
}
