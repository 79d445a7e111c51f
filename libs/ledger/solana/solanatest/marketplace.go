package solanatest

import (
	"errors"
	"strings"

	"github.com/gagliardetto/solana-go"

	mp "github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// The marketplace program as deployed (marketplace/programs/marketplace/src/lib.rs
// in muprotocol/mu, Anchor 0.26), executed with the program client's types
// (package marketplace: layouts, instruction decoding, seeds, the price rule):
// every instruction checks its accounts the way Anchor's generated
// try_accounts does (arguments first; then each field's type: Signer,
// Program, Sysvar, Account<T> owned by the program with T's discriminator;
// then every init field: the canonical PDA of its seeds, created through the
// system program, which refuses an account in use; then the other fields'
// constraints in order: mut, has_one, seeds with the stored bump, realloc)
// and then runs the body. Arithmetic wraps as the program's release build
// computes it (marketplace.Price).

type mpHandler func(a *anchor, args any) *InstructionError

var mpInstructions map[string]mpHandler

func init() {
	mpInstructions = map[string]mpHandler{
		mp.InstructionInitialize:                  mpInitialize,
		mp.InstructionUpdateProviderDeposit:       mpUpdateProviderDeposit,
		mp.InstructionCreateProviderAuthorizer:    mpCreateProviderAuthorizer,
		mp.InstructionCreateProvider:              mpCreateProvider,
		mp.InstructionAuthorizeProvider:           mpAuthorizeProvider,
		mp.InstructionCreateRegion:                mpCreateRegion,
		mp.InstructionCreateStack:                 mpCreateStack,
		mp.InstructionUpdateStack:                 mpUpdateStack,
		mp.InstructionDeleteStack:                 mpDeleteStack,
		mp.InstructionCreateAPIRequestSigner:      mpCreateRequestSigner,
		mp.InstructionActivateAPIRequestSigner:    mpActivateRequestSigner(true),
		mp.InstructionDeactivateAPIRequestSigner:  mpActivateRequestSigner(false),
		mp.InstructionCreateAuthorizedUsageSigner: mpCreateUsageSigner,
		mp.InstructionCreateProviderEscrowAccount: mpCreateEscrow,
		mp.InstructionWithdrawEscrowBalance:       mpWithdrawEscrow,
		mp.InstructionUpdateUsage:                 mpUpdateUsage,
	}
}

// camel is a snake_case name in CamelCase, as Anchor logs instructions.
func camel(snake string) string {
	var b strings.Builder
	for _, part := range strings.Split(snake, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func execMarketplace(in *instr) *InstructionError {
	a := &anchor{in: in}
	name, args, err := mp.DecodeInstruction(in.data)
	switch {
	case errors.Is(err, mp.ErrInstructionMissing):
		return a.fail(anchorInstructionMissing, "")
	case errors.Is(err, mp.ErrInstructionFallbackNotFound):
		return a.fail(anchorInstructionFallbackNotFound, "")
	}
	in.t.log("Program log: Instruction: %s", camel(name))
	if err != nil {
		in.t.log("Program log: %v", err)
		return a.fail(anchorInstructionDidNotDeserialize, "")
	}
	h, ok := mpInstructions[name]
	if !ok {
		return a.fail(anchorInstructionFallbackNotFound, "")
	}
	if ierr := a.need(len(mp.InstructionAccounts(name))); ierr != nil {
		return ierr
	}
	return h(a, args)
}

// decoded maps a program-client decode error to Anchor's code.
func decodeCode(err error) uint32 {
	switch {
	case errors.Is(err, mp.ErrDiscriminatorNotFound):
		return anchorAccountDiscriminatorNotFound
	case errors.Is(err, mp.ErrDiscriminatorMismatch):
		return anchorAccountDiscriminatorMismatch
	}
	return anchorAccountDidNotDeserialize
}

// load is an Account<'info, T> field of the marketplace program, decoded with
// decode (one of the program client's Decode functions).
func load[T any](a *anchor, i int, name string, decode func([]byte) (T, error)) (solana.PublicKey, T, *InstructionError) {
	var v T
	k, data, ierr := a.owned(i, name, a.in.program)
	if ierr != nil {
		return k, v, ierr
	}
	v, err := decode(data)
	if err != nil {
		a.in.t.log("Program log: %s: %v", name, err)
		return k, v, a.fail(decodeCode(err), name)
	}
	return k, v, nil
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

func mpInitialize(a *anchor, args any) *InstructionError {
	x := args.(mp.InitializeArgs)
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
	bump, ierr := a.initPDA(0, "state", authority, a.in.program, mp.MuStateSpace, mp.StateSeeds()...)
	if ierr != nil {
		return ierr
	}
	if ierr := a.initTokenPDA(2, "deposit_token", authority, mint, state, mp.DepositSeeds()...); ierr != nil {
		return ierr
	}
	if ierr := a.initTokenPDA(3, "commission_token", authority, mint, authority, mp.CommissionSeeds()...); ierr != nil {
		return ierr
	}
	if ierr := a.mut(4, "authority"); ierr != nil {
		return ierr
	}
	if x.CommissionRateMicros > mp.CommissionUnit {
		return a.programErr(errCommissionRateOutOfBounds)
	}
	return a.write("state", state, mp.MuState{
		Authority: authority, Mint: mint, DepositToken: deposTok, CommissionToken: commTok,
		CommissionRateMicros: x.CommissionRateMicros, ProviderDeposit: x.ProviderDeposit, Bump: bump,
	}.Encode())
}

func mpUpdateProviderDeposit(a *anchor, args any) *InstructionError {
	x := args.(mp.UpdateProviderDepositArgs)
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
	if ierr != nil {
		return ierr
	}
	if _, ierr := a.signer(1, "authority"); ierr != nil {
		return ierr
	}
	if ierr := first(a.mut(0, "state"), a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...), a.mut(1, "authority")); ierr != nil {
		return ierr
	}
	// The program does not check that authority is the state's authority.
	state.ProviderDeposit = x.ProviderDeposit
	return a.write("state", stateKey, state.Encode())
}

func mpCreateProviderAuthorizer(a *anchor, _ any) *InstructionError {
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
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
	bump, ierr := a.initPDA(1, "provider_authorizer", authority, a.in.program, mp.ProviderAuthorizerSpace, mp.AuthorizerSeeds(authorizer)...)
	if ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...),
		a.hasOne("state", state.Authority, authority),
		a.mut(2, "authority"),
	); ierr != nil {
		return ierr
	}
	return a.write("provider_authorizer", a.meta(1).key, mp.ProviderAuthorizer{Authorizer: authorizer, Bump: bump}.Encode())
}

func mpCreateProvider(a *anchor, args any) *InstructionError {
	x := args.(mp.CreateProviderArgs)
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
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
	bump, ierr := a.initPDA(1, "provider", owner, a.in.program, uint64(mp.ProviderSpace(len(x.Name))), mp.ProviderSeeds(owner)...)
	if ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...),
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
	return a.write("provider", provider, mp.Provider{Owner: owner, Name: x.Name, Deposit: state.ProviderDeposit, Bump: bump}.Encode())
}

func mpAuthorizeProvider(a *anchor, _ any) *InstructionError {
	paKey, pa, ierr := load(a, 0, "provider_authorizer", mp.DecodeProviderAuthorizer)
	if ierr != nil {
		return ierr
	}
	authorizer, ierr := a.signer(1, "authorizer")
	if ierr != nil {
		return ierr
	}
	providerKey, provider, ierr := load(a, 2, "provider", mp.DecodeProvider)
	if ierr != nil {
		return ierr
	}
	owner := a.meta(3).key
	if ierr := first(
		a.seedsBump("provider_authorizer", paKey, pa.Bump, mp.AuthorizerSeeds(authorizer)...),
		a.hasOne("provider_authorizer", pa.Authorizer, authorizer),
		a.mut(2, "provider"),
		a.seedsBump("provider", providerKey, provider.Bump, mp.ProviderSeeds(owner)...),
	); ierr != nil {
		return ierr
	}
	provider.Authorized = true
	return a.write("provider", providerKey, provider.Encode())
}

func mpCreateRegion(a *anchor, args any) *InstructionError {
	x := args.(mp.CreateRegionArgs)
	providerKey, provider, ierr := load(a, 0, "provider", mp.DecodeProvider)
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
	space := mp.RegionSpace(len(x.Name), len(x.BaseURL))
	bump, ierr := a.initPDA(1, "region", owner, a.in.program, uint64(space), mp.RegionSeeds(owner, x.RegionNum)...)
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.hasOne("provider", provider.Owner, owner), a.mut(2, "owner")); ierr != nil {
		return ierr
	}
	if !provider.Authorized {
		return a.programErr(errProviderNotAuthorized)
	}
	return a.write("region", a.meta(1).key, mp.ProviderRegion{
		Provider: providerKey, RegionNum: x.RegionNum, Rates: x.Rates, MinEscrowBalance: x.MinEscrowBalance,
		MaxGigaInstructionsPerCall: x.MaxGigaInstructionsPerCall, Bump: bump, Name: x.Name, BaseURL: x.BaseURL,
	}.Encode())
}

func mpCreateStack(a *anchor, args any) *InstructionError {
	x := args.(mp.StackArgs)
	providerKey, provider, ierr := load(a, 0, "provider", mp.DecodeProvider)
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := load(a, 1, "region", mp.DecodeProviderRegion)
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
	space := mp.StackSpace(len(x.Name), len(x.StackData))
	bump, ierr := a.initPDA(2, "stack", user, a.in.program, uint64(space), mp.StackSeeds(user, regionKey, x.StackSeed)...)
	if ierr != nil {
		return ierr
	}
	if ierr := first(a.hasOne("region", region.Provider, providerKey), a.mut(3, "user")); ierr != nil {
		return ierr
	}
	if !provider.Authorized {
		return a.programErr(errProviderNotAuthorized)
	}
	return a.write("stack", a.meta(2).key, mp.Stack{
		User: user, Region: regionKey, Seed: x.StackSeed, Bump: bump,
		State: mp.StackState{Kind: mp.StackActive, Revision: 1, Name: x.Name, StackData: x.StackData},
	}.Encode())
}

// stackAccounts checks UpdateStack's and DeleteStack's accounts (region,
// stack, user, system_program) and reallocates the stack to size.
func stackAccounts(a *anchor, seed uint64, size int) (solana.PublicKey, mp.Stack, *InstructionError) {
	regionKey, _, ierr := load(a, 0, "region", mp.DecodeProviderRegion)
	if ierr != nil {
		return solana.PublicKey{}, mp.Stack{}, ierr
	}
	stackKey, stack, ierr := load(a, 1, "stack", mp.DecodeStack)
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
		a.seedsBump("stack", stackKey, stack.Bump, mp.StackSeeds(user, regionKey, seed)...),
		a.realloc("stack", stackKey, user, size),
		a.mut(2, "user"),
	); ierr != nil {
		return stackKey, stack, ierr
	}
	return stackKey, stack, nil
}

func mpUpdateStack(a *anchor, args any) *InstructionError {
	x := args.(mp.StackArgs)
	stackKey, stack, ierr := stackAccounts(a, x.StackSeed, mp.StackSpace(len(x.Name), len(x.StackData)))
	if ierr != nil {
		return ierr
	}
	if !stack.State.Active() {
		return a.programErr(errCannotOperateOnDeletedStack)
	}
	stack.State.Name, stack.State.StackData = x.Name, x.StackData
	stack.State.Revision++
	return a.write("stack", stackKey, stack.Encode())
}

func mpDeleteStack(a *anchor, args any) *InstructionError {
	x := args.(mp.DeleteStackArgs)
	stackKey, stack, ierr := stackAccounts(a, x.StackSeed, mp.StackDeletedSpace)
	if ierr != nil {
		return ierr
	}
	if !stack.State.Active() {
		return a.programErr(errCannotOperateOnDeletedStack)
	}
	stack.State = mp.StackState{Kind: mp.StackDeleted}
	return a.write("stack", stackKey, stack.Encode())
}

func mpCreateRequestSigner(a *anchor, _ any) *InstructionError {
	user, ierr := a.signer(1, "user")
	if ierr != nil {
		return ierr
	}
	signer, ierr := a.signer(2, "signer")
	if ierr != nil {
		return ierr
	}
	regionKey, _, ierr := load(a, 3, "region", mp.DecodeProviderRegion)
	if ierr != nil {
		return ierr
	}
	if ierr := a.program(4, "system_program", solana.SystemProgramID); ierr != nil {
		return ierr
	}
	bump, ierr := a.initPDA(0, "request_signer", user, a.in.program, mp.APIRequestSignerSpace, mp.RequestSignerSeeds(user, signer, regionKey)...)
	if ierr != nil {
		return ierr
	}
	if ierr := a.mut(1, "user"); ierr != nil {
		return ierr
	}
	return a.write("request_signer", a.meta(0).key, mp.APIRequestSigner{Signer: signer, User: user, Region: regionKey, Bump: bump, Active: true}.Encode())
}

func mpActivateRequestSigner(active bool) mpHandler {
	return func(a *anchor, _ any) *InstructionError {
		rsKey, rs, ierr := load(a, 0, "request_signer", mp.DecodeAPIRequestSigner)
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
		regionKey, _, ierr := load(a, 3, "region", mp.DecodeProviderRegion)
		if ierr != nil {
			return ierr
		}
		if ierr := first(
			a.mut(0, "request_signer"),
			a.hasOne("request_signer", rs.User, user),
			a.hasOne("request_signer", rs.Signer, signer),
			a.hasOne("request_signer", rs.Region, regionKey),
			a.seedsBump("request_signer", rsKey, rs.Bump, mp.RequestSignerSeeds(rs.User, rs.Signer, rs.Region)...),
			a.mut(1, "user"),
		); ierr != nil {
			return ierr
		}
		rs.Active = active
		return a.write("request_signer", rsKey, rs.Encode())
	}
}

func mpCreateUsageSigner(a *anchor, args any) *InstructionError {
	x := args.(mp.CreateAuthorizedUsageSignerArgs)
	providerKey, provider, ierr := load(a, 0, "provider", mp.DecodeProvider)
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := load(a, 1, "region", mp.DecodeProviderRegion)
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
	if _, ierr := a.initPDA(2, "authorized_signer", owner, a.in.program, mp.AuthorizedUsageSignerSpace, mp.AuthorizedSignerSeeds(regionKey)...); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.hasOne("provider", provider.Owner, owner),
		a.hasOne("region", region.Provider, providerKey),
		a.mut(3, "owner"),
	); ierr != nil {
		return ierr
	}
	return a.write("authorized_signer", a.meta(2).key, mp.AuthorizedUsageSigner{Signer: x.Signer, TokenAccount: x.TokenAccount}.Encode())
}

func mpCreateEscrow(a *anchor, _ any) *InstructionError {
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
	if ierr != nil {
		return ierr
	}
	mint, ierr := a.mint(1, "mint")
	if ierr != nil {
		return ierr
	}
	providerKey, _, ierr := load(a, 3, "provider", mp.DecodeProvider)
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
	if ierr := a.initTokenPDA(2, "escrow_account", user, mint, stateKey, mp.EscrowSeeds(user, providerKey)...); ierr != nil {
		return ierr
	}
	return first(
		a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...),
		a.hasOne("state", state.Mint, mint),
		a.mut(4, "user"),
	)
}

func stateSignerSeeds(bump uint8) [][]byte { return append(mp.StateSeeds(), []byte{bump}) }

func mpWithdrawEscrow(a *anchor, args any) *InstructionError {
	x := args.(mp.WithdrawEscrowBalanceArgs)
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
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
	providerKey, _, ierr := load(a, 3, "provider", mp.DecodeProvider)
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
	if ierr := a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...); ierr != nil {
		return ierr
	}
	if _, ierr := a.seedsFind("escrow_account", escrow, mp.EscrowSeeds(user, providerKey)...); ierr != nil {
		return ierr
	}
	if ierr := first(a.mut(1, "escrow_account"), a.mut(2, "withdraw_to")); ierr != nil {
		return ierr
	}
	return a.tokenTransfer(escrow, to, stateKey, x.Amount, stateSignerSeeds(state.Bump))
}

func mpUpdateUsage(a *anchor, args any) *InstructionError {
	x := args.(mp.UpdateUsageArgs)
	stateKey, state, ierr := load(a, 0, "state", mp.DecodeMuState)
	if ierr != nil {
		return ierr
	}
	commission := a.meta(1).key
	usKey, us, ierr := load(a, 2, "authorized_signer", mp.DecodeAuthorizedUsageSigner)
	if ierr != nil {
		return ierr
	}
	regionKey, region, ierr := load(a, 3, "region", mp.DecodeProviderRegion)
	if ierr != nil {
		return ierr
	}
	tokenAccount := a.meta(4).key
	escrow := a.meta(6).key
	stackKey, stack, ierr := load(a, 7, "stack", mp.DecodeStack)
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
	if _, ierr := a.initPDA(5, "usage_update", signer, a.in.program, mp.UsageUpdateSpace, mp.UpdateSeeds(stackKey, regionKey, x.UpdateSeed)...); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.seedsBump("state", stateKey, state.Bump, mp.StateSeeds()...),
		a.hasOne("state", state.CommissionToken, commission),
		a.mut(1, "commission_token"),
		a.hasOne("authorized_signer", us.Signer, signer),
		a.hasOne("authorized_signer", us.TokenAccount, tokenAccount),
	); ierr != nil {
		return ierr
	}
	if _, ierr := a.seedsFind("authorized_signer", usKey, mp.AuthorizedSignerSeeds(regionKey)...); ierr != nil {
		return ierr
	}
	if ierr := first(
		a.mut(4, "token_account"),
		a.mut(6, "escrow_account"),
		a.seedsBump("escrow_account", escrow, x.EscrowBump, mp.EscrowSeeds(stack.User, region.Provider)...),
		a.hasOne("stack", stack.Region, regionKey),
		a.mut(8, "signer"),
	); ierr != nil {
		return ierr
	}
	c := mp.Price(region.Rates, x.Usage, state.CommissionRateMicros)
	a.in.t.log("Program log: Calculated price: %d, commission: %d, provider's share: %d", c.Total, c.Commission, c.Provider)
	seeds := stateSignerSeeds(state.Bump)
	if ierr := a.tokenTransfer(escrow, tokenAccount, stateKey, c.Provider, seeds); ierr != nil {
		return ierr
	}
	if ierr := a.tokenTransfer(escrow, commission, stateKey, c.Commission, seeds); ierr != nil {
		return ierr
	}
	return a.write("usage_update", a.meta(5).key, mp.UsageUpdate{Region: regionKey, Stack: stackKey, Seed: x.UpdateSeed, Usage: x.Usage}.Encode())
}
