package solanatest

import (
	"encoding/binary"
	"math/big"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
)

// The marketplace program as deployed (marketplace/programs/marketplace/src/lib.rs
// in muprotocol/mu, Anchor 0.26): every instruction checks its accounts the
// way Anchor's generated try_accounts does (arguments first; then each
// field's type: Signer, Program, Sysvar, Account<T> owned by the program with
// T's discriminator; then every init field: the canonical PDA of its seeds,
// created through the system program, which refuses an account in use; then
// the other fields' constraints in order: mut, has_one, seeds with the stored
// bump, realloc) and then runs the body. Arithmetic wraps as the program's
// release build does (its overflow-checks setting sits in a member crate's
// Cargo.toml, which Cargo ignores in a workspace).

type mpHandler struct {
	name     string // CamelCase, as Anchor logs it
	accounts int
	run      func(a *anchor, r *borshReader) *InstructionError
}

var mpInstructions = map[[8]byte]mpHandler{}

func init() {
	for snake, h := range map[string]mpHandler{
		"initialize":                     {"Initialize", 7, mpInitialize},
		"update_provider_deposit":        {"UpdateProviderDeposit", 2, mpUpdateProviderDeposit},
		"create_provider_authorizer":     {"CreateProviderAuthorizer", 5, mpCreateProviderAuthorizer},
		"create_provider":                {"CreateProvider", 8, mpCreateProvider},
		"authorize_provider":             {"AuthorizeProvider", 4, mpAuthorizeProvider},
		"create_region":                  {"CreateRegion", 4, mpCreateRegion},
		"create_stack":                   {"CreateStack", 5, mpCreateStack},
		"update_stack":                   {"UpdateStack", 4, mpUpdateStack},
		"delete_stack":                   {"DeleteStack", 4, mpDeleteStack},
		"create_api_request_signer":      {"CreateApiRequestSigner", 5, mpCreateRequestSigner},
		"activate_api_request_signer":    {"ActivateApiRequestSigner", 4, mpActivateRequestSigner(true)},
		"deactivate_api_request_signer":  {"DeactivateApiRequestSigner", 4, mpActivateRequestSigner(false)},
		"create_authorized_usage_signer": {"CreateAuthorizedUsageSigner", 5, mpCreateUsageSigner},
		"create_provider_escrow_account": {"CreateProviderEscrowAccount", 8, mpCreateEscrow},
		"withdraw_escrow_balance":        {"WithdrawEscrowBalance", 6, mpWithdrawEscrow},
		"update_usage":                   {"UpdateUsage", 11, mpUpdateUsage},
	} {
		var d [8]byte
		copy(d[:], bin.SighashInstruction(snake))
		mpInstructions[d] = h
	}
}

func execMarketplace(in *instr) *InstructionError {
	a := &anchor{in: in}
	if len(in.data) < 8 {
		return a.fail(anchorInstructionMissing, "")
	}
	var d [8]byte
	copy(d[:], in.data[:8])
	h, ok := mpInstructions[d]
	if !ok {
		return a.fail(anchorInstructionFallbackNotFound, "")
	}
	in.t.log("Program log: Instruction: %s", h.name)
	if ierr := a.need(h.accounts); ierr != nil {
		return ierr
	}
	return h.run(a, newReader(in.data[8:]))
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func le128(v bin.Uint128) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, v.Lo), v.Hi)
}

func (a *anchor) args(r *borshReader) *InstructionError {
	if r.err != nil {
		a.in.t.log("Program log: instruction arguments: %v", r.err)
		return a.fail(anchorInstructionDidNotDeserialize, "")
	}
	return nil
}

// loadState is the state: Account<MuState> field with seeds = [b"state"],
// bump = state.bump.
func (a *anchor) loadState(i int) (solana.PublicKey, mpState, *InstructionError) {
	var s mpState
	k, ierr := a.programAccount(i, "state", discState, func(d []byte) (err error) { s, err = decodeState(d); return })
	return k, s, ierr
}

func (a *anchor) loadProvider(i int, name string) (solana.PublicKey, mpProvider, *InstructionError) {
	var p mpProvider
	k, ierr := a.programAccount(i, name, discProvider, func(d []byte) (err error) { p, err = decodeProvider(d); return })
	return k, p, ierr
}

func (a *anchor) loadRegion(i int) (solana.PublicKey, mpRegion, *InstructionError) {
	var g mpRegion
	k, ierr := a.programAccount(i, "region", discRegion, func(d []byte) (err error) { g, err = decodeRegion(d); return })
	return k, g, ierr
}

func (a *anchor) loadStack(i int) (solana.PublicKey, mpStack, *InstructionError) {
	var s mpStack
	k, ierr := a.programAccount(i, "stack", discStack, func(d []byte) (err error) { s, err = decodeStack(d); return })
	return k, s, ierr
}

// first returns the first non-nil error.
func first(errs ...*InstructionError) *InstructionError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func mpInitialize(a *anchor, r *borshReader) *InstructionError {
	micros, deposit := r.u32(), r.u64()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	mint, ierr := a.mint(1, "mint")
	if ierr != nil {
		return ierr
	}
	authority, ierr := a.signer(4, "authority")
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.program(5, "system_program", solana.SystemProgramID), a.program(6, "token_program", solana.TokenProgramID)); ierr != nil {
		return ierr
	}
	state, deposTok, commTok := a.meta(0).key, a.meta(2).key, a.meta(3).key
	bump, ierr := a.initPDA(0, "state", authority, a.in.program, 8+32+32+32+32+4+8+1, []byte("state"))
	if ierr != nil {
		return ierr
	}
	if ierr := a.initTokenPDA(2, "deposit_token", authority, mint, state, []byte("deposit")); ierr != nil {
		return ierr
	}
	if ierr := a.initTokenPDA(3, "commission_token", authority, mint, authority, []byte("commission")); ierr != nil {
		return ierr
	}
	if ierr := a.mut(4, "authority"); ierr != nil {
		return ierr
	}
	if micros > 1_000_000 {
		return a.programErr(errCommissionRateOutOfBounds)
	}
	return a.write("state", state, encodeState(mpState{
		Authority: authority, Mint: mint, DepositToken: deposTok, CommissionToken: commTok,
		CommissionRateMicros: micros, ProviderDeposit: deposit, Bump: bump,
	}))
}

func mpUpdateProviderDeposit(a *anchor, r *borshReader) *InstructionError {
	deposit := r.u64()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	if _, ierr := a.signer(1, "authority"); ierr != nil {
		return ierr
	}
	if ierr := first(a.mut(0, "state"), a.seedsBump("state", stateKey, state.Bump, []byte("state")), a.mut(1, "authority")); ierr != nil {
		return ierr
	}
	// The program does not check that authority is the state's authority.
	state.ProviderDeposit = deposit
	return a.write("state", stateKey, encodeState(state))
}

func mpCreateProviderAuthorizer(a *anchor, r *borshReader) *InstructionError {
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	authority, ierr := a.signer(2, "authority")
	if ierr != nil {
		return ierr
	}
	authorizer, ierr := a.signer(3, "authorizer")
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(4, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	bump, ierr := a.initPDA(1, "provider_authorizer", authority, a.in.program, 8+32+1, []byte("authorizer"), authorizer[:])
	if ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, []byte("state")),
		a.hasOne("state", state.Authority, authority),
		a.mut(2, "authority"),
	); ierr != nil {
		return ierr
	}
	return a.write("provider_authorizer", a.meta(1).key, encodeAuthorizer(mpAuthorizer{Authorizer: authorizer, Bump: bump}))
}

func mpCreateProvider(a *anchor, r *borshReader) *InstructionError {
	name := r.str()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	depositTok, ierr := a.tokenAccount(2, "deposit_token")
	if ierr != nil {
		return ierr
	}
	owner, ierr := a.signer(3, "owner")
	if ierr != nil {
		return ierr
	}
	ownerTok, ierr := a.tokenAccount(4, "owner_token")
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.program(5, "system_program", solana.SystemProgramID), a.program(6, "token_program", solana.TokenProgramID), a.rentSysvar(7)); ierr != nil {
		return ierr
	}
	provider := a.meta(1).key
	bump, ierr := a.initPDA(1, "provider", owner, a.in.program, uint64(8+32+1+4+len(name)+8+1), []byte("provider"), owner[:])
	if ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, []byte("state")),
		a.hasOne("state", state.DepositToken, depositTok),
		a.mut(2, "deposit_token"),
		a.mut(3, "owner"),
		a.mut(4, "owner_token"),
	); ierr != nil {
		return ierr
	}
	if ierr := a.tokenTransfer(ownerTok, depositTok, owner, state.ProviderDeposit, nil); ierr != nil {
		return ierr
	}
	return a.write("provider", provider, encodeProvider(mpProvider{Owner: owner, Name: name, Deposit: state.ProviderDeposit, Bump: bump}))
}

func mpAuthorizeProvider(a *anchor, r *borshReader) *InstructionError {
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	var pa mpAuthorizer
	paKey, ierr := a.programAccount(0, "provider_authorizer", discAuthorizer, func(d []byte) (err error) { pa, err = decodeAuthorizer(d); return })
	if ierr != nil {
		return ierr
	}
	authorizer, ierr := a.signer(1, "authorizer")
	if ierr != nil {
		return ierr
	}
	providerKey, provider, ierr := a.loadProvider(2, "provider")
	if ierr != nil {
		return ierr
	}
	owner := a.meta(3).key
	if ierr := first(
		a.seedsBump("provider_authorizer", paKey, pa.Bump, []byte("authorizer"), authorizer[:]),
		a.hasOne("provider_authorizer", pa.Authorizer, authorizer),
		a.mut(2, "provider"),
		a.seedsBump("provider", providerKey, provider.Bump, []byte("provider"), owner[:]),
	); ierr != nil {
		return ierr
	}
	provider.Authorized = true
	return a.write("provider", providerKey, encodeProvider(provider))
}

func mpCreateRegion(a *anchor, r *borshReader) *InstructionError {
	num, name, baseURL, rates, minEscrow, maxGiga := r.u32(), r.str(), r.str(), r.rates(), r.u64(), r.u32()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	providerKey, provider, ierr := a.loadProvider(0, "provider")
	if ierr != nil {
		return ierr
	}
	owner, ierr := a.signer(2, "owner")
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(3, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	space := 8 + 32 + 4 + 6*8 + 8 + 4 + 1 + 4 + len(name) + 4 + len(baseURL)
	bump, ierr := a.initPDA(1, "region", owner, a.in.program, uint64(space), []byte("region"), owner[:], le32(num))
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.hasOne("provider", provider.Owner, owner), a.mut(2, "owner")); ierr != nil {
		return ierr
	}
	if !provider.Authorized {
		return a.programErr(errProviderNotAuthorized)
	}
	return a.write("region", a.meta(1).key, encodeRegion(mpRegion{
		Provider: providerKey, RegionNum: num, Rates: rates, MinEscrowBalance: minEscrow,
		MaxGigaInstructionsPerCall: maxGiga, Bump: bump, Name: name, BaseURL: baseURL,
	}))
}

func mpCreateStack(a *anchor, r *borshReader) *InstructionError {
	seed, data, name := r.u64(), r.bytes(), r.str()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	providerKey, provider, ierr := a.loadProvider(0, "provider")
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := a.loadRegion(1)
	if ierr != nil {
		return ierr
	}
	user, ierr := a.signer(3, "user")
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(4, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	space := 8 + 32 + 32 + 8 + 1 + 1 + 4 + 4 + len(name) + 4 + len(data)
	bump, ierr := a.initPDA(2, "stack", user, a.in.program, uint64(space), []byte("stack"), user[:], regionKey[:], le64(seed))
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.hasOne("region", region.Provider, providerKey), a.mut(3, "user")); ierr != nil {
		return ierr
	}
	if !provider.Authorized {
		return a.programErr(errProviderNotAuthorized)
	}
	return a.write("stack", a.meta(2).key, encodeStack(mpStack{
		User: user, Region: regionKey, Seed: seed, Bump: bump, Revision: 1, Name: name, StackData: data,
	}))
}

// stackAccounts checks UpdateStack's and DeleteStack's accounts (region,
// stack, user, system_program) and reallocates the stack to size.
func stackAccounts(a *anchor, seed uint64, size int) (solana.PublicKey, mpStack, *InstructionError) {
	regionKey, _, ierr := a.loadRegion(0)
	if ierr != nil {
		return solana.PublicKey{}, mpStack{}, ierr
	}
	stackKey, stack, ierr := a.loadStack(1)
	if ierr != nil {
		return stackKey, stack, ierr
	}
	user, ierr := a.signer(2, "user")
	if ierr != nil {
		return stackKey, stack, ierr
	}
	if ierr := a.program(3, "system_program", solana.SystemProgramID); ierr != nil {
		return stackKey, stack, ierr
	}
	if ierr := first(
		a.mut(1, "stack"),
		a.hasOne("stack", stack.User, user),
		a.seedsBump("stack", stackKey, stack.Bump, []byte("stack"), user[:], regionKey[:], le64(seed)),
		a.realloc("stack", stackKey, size),
		a.mut(2, "user"),
	); ierr != nil {
		return stackKey, stack, ierr
	}
	return stackKey, stack, nil
}

func mpUpdateStack(a *anchor, r *borshReader) *InstructionError {
	seed, data, name := r.u64(), r.bytes(), r.str()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stackKey, stack, ierr := stackAccounts(a, seed, 8+32+32+8+1+1+4+4+len(name)+4+len(data))
	if ierr != nil {
		return ierr
	}
	if stack.Deleted {
		return a.programErr(errCannotOperateOnDeletedStack)
	}
	stack.Name, stack.StackData = name, data
	stack.Revision++
	return a.write("stack", stackKey, encodeStack(stack))
}

func mpDeleteStack(a *anchor, r *borshReader) *InstructionError {
	seed := r.u64()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stackKey, stack, ierr := stackAccounts(a, seed, 8+32+32+8+1+1)
	if ierr != nil {
		return ierr
	}
	if stack.Deleted {
		return a.programErr(errCannotOperateOnDeletedStack)
	}
	stack.Deleted, stack.Name, stack.StackData, stack.Revision = true, "", nil, 0
	return a.write("stack", stackKey, encodeStack(stack))
}

func mpCreateRequestSigner(a *anchor, r *borshReader) *InstructionError {
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	user, ierr := a.signer(1, "user")
	if ierr != nil {
		return ierr
	}
	signer, ierr := a.signer(2, "signer")
	if ierr != nil {
		return ierr
	}
	regionKey, _, ierr := a.loadRegion(3)
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(4, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	bump, ierr := a.initPDA(0, "request_signer", user, a.in.program, 8+32+32+32+1+1, []byte("request_signer"), user[:], signer[:], regionKey[:])
	if ierr != nil {
		return ierr
	}
	if ierr := a.mut(1, "user"); ierr != nil {
		return ierr
	}
	return a.write("request_signer", a.meta(0).key, encodeRequestSigner(mpRequestSigner{Signer: signer, User: user, Region: regionKey, Bump: bump, Active: true}))
}

func mpActivateRequestSigner(active bool) func(a *anchor, r *borshReader) *InstructionError {
	return func(a *anchor, r *borshReader) *InstructionError {
		if ierr := a.args(r); ierr != nil {
			return ierr
		}
		var rs mpRequestSigner
		rsKey, ierr := a.programAccount(0, "request_signer", discRequestSigner, func(d []byte) (err error) { rs, err = decodeRequestSigner(d); return })
		if ierr != nil {
			return ierr
		}
		user, ierr := a.signer(1, "user")
		if ierr != nil {
			return ierr
		}
		signer := a.meta(2).key
		if active { // deactivating does not need the signer's signature
			if _, ierr := a.signer(2, "signer"); ierr != nil {
				return ierr
			}
		}
		regionKey, _, ierr := a.loadRegion(3)
		if ierr != nil {
			return ierr
		}
		if ierr := first(
			a.mut(0, "request_signer"),
			a.hasOne("request_signer", rs.User, user),
			a.hasOne("request_signer", rs.Signer, signer),
			a.hasOne("request_signer", rs.Region, regionKey),
			a.seedsBump("request_signer", rsKey, rs.Bump, []byte("request_signer"), rs.User[:], rs.Signer[:], rs.Region[:]),
			a.mut(1, "user"),
		); ierr != nil {
			return ierr
		}
		rs.Active = active
		return a.write("request_signer", rsKey, encodeRequestSigner(rs))
	}
}

func mpCreateUsageSigner(a *anchor, r *borshReader) *InstructionError {
	signer, tokenAccount := r.key(), r.key()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	providerKey, provider, ierr := a.loadProvider(0, "provider")
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := a.loadRegion(1)
	if ierr != nil {
		return ierr
	}
	owner, ierr := a.signer(3, "owner")
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(4, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	if _, ierr := a.initPDA(2, "authorized_signer", owner, a.in.program, 8+32+32, []byte("authorized_signer"), regionKey[:]); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.hasOne("provider", provider.Owner, owner),
		a.hasOne("region", region.Provider, providerKey),
		a.mut(3, "owner"),
	); ierr != nil {
		return ierr
	}
	return a.write("authorized_signer", a.meta(2).key, encodeUsageSigner(mpUsageSigner{Signer: signer, TokenAccount: tokenAccount}))
}

func mpCreateEscrow(a *anchor, r *borshReader) *InstructionError {
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	mint, ierr := a.mint(1, "mint")
	if ierr != nil {
		return ierr
	}
	providerKey, _, ierr := a.loadProvider(3, "provider")
	if ierr != nil {
		return ierr
	}
	user, ierr := a.signer(4, "user")
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.program(5, "system_program", solana.SystemProgramID), a.program(6, "token_program", solana.TokenProgramID), a.rentSysvar(7)); ierr != nil {
		return ierr
	}
	if ierr := a.initTokenPDA(2, "escrow_account", user, mint, stateKey, []byte("escrow"), user[:], providerKey[:]); ierr != nil {
		return ierr
	}
	return first(
		a.seedsBump("state", stateKey, state.Bump, []byte("state")),
		a.hasOne("state", state.Mint, mint),
		a.mut(4, "user"),
	)
}

func mpWithdrawEscrow(a *anchor, r *borshReader) *InstructionError {
	amount := r.u64()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	escrow, ierr := a.tokenAccount(1, "escrow_account")
	if ierr != nil {
		return ierr
	}
	to, ierr := a.tokenAccount(2, "withdraw_to")
	if ierr != nil {
		return ierr
	}
	providerKey, _, ierr := a.loadProvider(3, "provider")
	if ierr != nil {
		return ierr
	}
	user, ierr := a.signer(4, "user")
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(5, "token_program", solana.TokenProgramID); ierr != nil {
		return ierr
	}
	if ierr := a.seedsBump("state", stateKey, state.Bump, []byte("state")); ierr != nil {
		return ierr
	}
	if _, ierr := a.seedsFind("escrow_account", escrow, []byte("escrow"), user[:], providerKey[:]); ierr != nil {
		return ierr
	}
	if ierr := first(a.mut(1, "escrow_account"), a.mut(2, "withdraw_to")); ierr != nil {
		return ierr
	}
	return a.tokenTransfer(escrow, to, stateKey, amount, [][]byte{[]byte("state"), {state.Bump}})
}

func mpUpdateUsage(a *anchor, r *borshReader) *InstructionError {
	seed, escrowBump, usage := r.u128(), r.u8(), r.usage()
	if ierr := a.args(r); ierr != nil {
		return ierr
	}
	stateKey, state, ierr := a.loadState(0)
	if ierr != nil {
		return ierr
	}
	commission := a.meta(1).key
	var us mpUsageSigner
	usKey, ierr := a.programAccount(2, "authorized_signer", discUsageSigner, func(d []byte) (err error) { us, err = decodeUsageSigner(d); return })
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := a.loadRegion(3)
	if ierr != nil {
		return ierr
	}
	tokenAccount := a.meta(4).key
	escrow := a.meta(6).key
	stackKey, stack, ierr := a.loadStack(7)
	if ierr != nil {
		return ierr
	}
	signer, ierr := a.signer(8, "signer")
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.program(9, "system_program", solana.SystemProgramID), a.program(10, "token_program", solana.TokenProgramID)); ierr != nil {
		return ierr
	}
	// A replayed seed fails here: the update account exists.
	if _, ierr := a.initPDA(5, "usage_update", signer, a.in.program, 8+32+32+16+(16+16+8+8+8+8), []byte("update"), stackKey[:], regionKey[:], le128(seed)); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, []byte("state")),
		a.hasOne("state", state.CommissionToken, commission),
		a.mut(1, "commission_token"),
		a.hasOne("authorized_signer", us.Signer, signer),
		a.hasOne("authorized_signer", us.TokenAccount, tokenAccount),
	); ierr != nil {
		return ierr
	}
	if _, ierr := a.seedsFind("authorized_signer", usKey, []byte("authorized_signer"), regionKey[:]); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.mut(4, "token_account"),
		a.mut(6, "escrow_account"),
		a.seedsBump("escrow_account", escrow, escrowBump, []byte("escrow"), stack.User[:], region.Provider[:]),
		a.hasOne("stack", stack.Region, regionKey),
		a.mut(8, "signer"),
	); ierr != nil {
		return ierr
	}
	total := calcUsage(region.Rates.array(), usage.array())
	commissionTokens := total * uint64(state.CommissionRateMicros) / 1_000_000
	providerTokens := total - commissionTokens
	a.in.t.log("Program log: Calculated price: %d, commission: %d, provider's share: %d", total, commissionTokens, providerTokens)
	seeds := [][]byte{[]byte("state"), {state.Bump}}
	if ierr := a.tokenTransfer(escrow, tokenAccount, stateKey, providerTokens, seeds); ierr != nil {
		return ierr
	}
	if ierr := a.tokenTransfer(escrow, commission, stateKey, commissionTokens, seeds); ierr != nil {
		return ierr
	}
	return a.write("usage_update", a.meta(5).key, encodeUsageUpdate(mpUsageUpdate{Region: regionKey, Stack: stackKey, Seed: seed, Usage: usage}))
}

func (r mpRates) array() [6]uint64 {
	return [6]uint64{r.FunctionMBTeraInstructions, r.DBGigabyteMonths, r.MillionDBReads, r.MillionDBWrites, r.MillionGatewayRequests, r.GigabytesGatewayTraffic}
}

// usageAmounts is a ServiceUsage: the two u128 counters and the four u64 ones.
type usageAmounts struct {
	FunctionMBInstructions, DBBytesSeconds           *big.Int
	DBReads, DBWrites, GatewayRequests, TrafficBytes uint64
}

func (u mpUsage) array() usageAmounts {
	return usageAmounts{u128Big(u.FunctionMBInstructions), u128Big(u.DBBytesSeconds), u.DBReads, u.DBWrites, u.GatewayRequests, u.GatewayTrafficBytes}
}

func u128Big(v bin.Uint128) *big.Int {
	b := new(big.Int).SetUint64(v.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(v.Lo))
}

var (
	two64  = new(big.Int).Lsh(big.NewInt(1), 64)
	two128 = new(big.Int).Lsh(big.NewInt(1), 128)
	// dbDivisor is 1024^3 * 60*60*24*30 (a GiB-month in byte-seconds).
	dbDivisor = new(big.Int).SetUint64(1024 * 1024 * 1024 * 60 * 60 * 24 * 30)
	tera      = big.NewInt(1_000_000_000_000)
)

// u128Term is (rate as u128 * n / div) as u64, with the u128 product
// wrapping and the cast truncating, as the program's release build computes it.
func u128Term(rate uint64, n *big.Int, div *big.Int) uint64 {
	p := new(big.Int).Mul(new(big.Int).SetUint64(rate), n)
	p.Mod(p, two128)
	p.Quo(p, div)
	return p.Mod(p, two64).Uint64()
}

// calcUsage is the program's calc_usage: the price in token units of usage
// at rates (function_mb_tera_instructions, db_gigabyte_months,
// million_db_reads, million_db_writes, million_gateway_requests,
// gigabytes_gateway_traffic), each unit's cost truncated separately, with the
// program's wrapping arithmetic.
func calcUsage(rates [6]uint64, u usageAmounts) uint64 {
	fn, db := u.FunctionMBInstructions, u.DBBytesSeconds
	if fn == nil {
		fn = new(big.Int)
	}
	if db == nil {
		db = new(big.Int)
	}
	return u128Term(rates[0], fn, tera) +
		u128Term(rates[1], db, dbDivisor) +
		rates[2]*u.DBReads/1_000_000 +
		rates[3]*u.DBWrites/1_000_000 +
		rates[4]*u.GatewayRequests/1_000_000 +
		rates[5]*u.TrafficBytes/(1024*1024*1024)
}
