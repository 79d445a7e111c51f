package solana

import (
	"context"

	sol "github.com/gagliardetto/solana-go"
	ata "github.com/gagliardetto/solana-go/programs/associated-token-account"
	"github.com/gagliardetto/solana-go/programs/system"
	"github.com/gagliardetto/solana-go/programs/token"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// The instructions the writes send. The marketplace program's come from
// package marketplace; SPL token, associated token account and system
// instructions from solana-go's programs.

// ixCreateATA creates owner's wallet for mint if it does not exist
// (CreateIdempotent), paid by the fee payer.
func (l *Ledger) ixCreateATA(owner, mint sol.PublicKey) sol.Instruction {
	in := ata.NewCreateInstruction(solKey(l.payer.Pubkey()), owner, mint).Build()
	// solana-go v1.14 builds Create (no data); CreateIdempotent is the
	// same accounts with instruction data [1].
	return sol.NewInstruction(in.ProgramID(), in.Accounts(), []byte{1})
}

func (l *Ledger) ixMintTo(mint, to, authority sol.PublicKey, amount uint64) sol.Instruction {
	return token.NewMintToInstruction(amount, mint, to, authority, nil).Build()
}

func (l *Ledger) ixTransfer(from, to, owner sol.PublicKey, amount uint64) sol.Instruction {
	return token.NewTransferInstruction(amount, from, to, owner, nil).Build()
}

// fundRent adds a transfer of the rent of accounts of the given sizes
// from the fee payer to payer, the key the program makes pay for them (the
// instruction's authority: the developer for a stack or escrow, the usage
// signer for every usage record), less the rent of grown bytes (what the
// account already has: 0 for a new one). So the fee payer, the region's
// operator, pays every SOL cost of a write, and the authorities need no
// SOL of their own.
func (l *Ledger) fundRent(ctx context.Context, t *txn, payer sol.PublicKey, grown int, sizes ...int) error {
	if payer == solKey(l.payer.Pubkey()) {
		return nil
	}
	var need uint64
	for _, size := range sizes {
		r, err := l.rent(ctx, t.op, size)
		if err != nil {
			return err
		}
		need += r
	}
	if grown > 0 {
		r, err := l.rent(ctx, t.op, grown)
		if err != nil {
			return err
		}
		if r >= need {
			return nil
		}
		need -= r
	}
	if need > 0 {
		t.add(kindSystem, system.NewTransferInstruction(need, solKey(l.payer.Pubkey()), payer).Build())
	}
	return nil
}

// rent is the rent-exempt minimum of an account of size bytes (cached).
func (l *Ledger) rent(ctx context.Context, op string, size int) (uint64, error) {
	if v, ok := l.rents.Load(size); ok {
		return v.(uint64), nil
	}
	var lamports uint64
	if err := l.send.call(ctx, op+": rent", func(ctx context.Context) (err error) {
		lamports, err = l.rpc.GetMinimumBalanceForRentExemption(ctx, uint64(size), l.commitment)
		return err
	}); err != nil {
		return 0, readErr(op, err)
	}
	l.rents.Store(size, lamports)
	return lamports, nil
}

func (l *Ledger) ixCreateMint(mint sol.PublicKey, lamports uint64) sol.Instruction {
	return system.NewCreateAccountInstruction(lamports, mintSize, sol.TokenProgramID, solKey(l.payer.Pubkey()), mint).Build()
}

func (l *Ledger) ixInitializeMint(mint, authority sol.PublicKey) sol.Instruction {
	return token.NewInitializeMint2InstructionBuilder().SetDecimals(uint8(l.cfg.MintDecimals)).
		SetMintAuthority(authority).SetMintAccount(mint).Build()
}

func (l *Ledger) ixInitialize(authority, mint sol.PublicKey, micros uint32, deposit uint64) sol.Instruction {
	return l.prog.Initialize(marketplace.InitializeAccounts{State: l.statePDA, Mint: mint, DepositToken: l.depositPDA,
		CommissionToken: l.commissionPDA, Authority: authority},
		marketplace.InitializeArgs{CommissionRateMicros: micros, ProviderDeposit: deposit})
}

func (l *Ledger) ixCreateProviderAuthorizer(authority, authorizer sol.PublicKey) sol.Instruction {
	return l.prog.CreateProviderAuthorizer(marketplace.CreateProviderAuthorizerAccounts{State: l.statePDA,
		ProviderAuthorizer: l.authorizerPDA(authorizer), Authority: authority, Authorizer: authorizer})
}

func (l *Ledger) ixUpdateProviderDeposit(authority sol.PublicKey, amount uint64) sol.Instruction {
	return l.prog.UpdateProviderDeposit(marketplace.UpdateProviderDepositAccounts{State: l.statePDA, Authority: authority},
		marketplace.UpdateProviderDepositArgs{ProviderDeposit: amount})
}

func (l *Ledger) ixCreateProvider(owner, ownerToken sol.PublicKey, name string) sol.Instruction {
	return l.prog.CreateProvider(marketplace.CreateProviderAccounts{State: l.statePDA, Provider: l.providerPDA(owner),
		DepositToken: l.depositPDA, Owner: owner, OwnerToken: ownerToken}, marketplace.CreateProviderArgs{Name: name})
}

func (l *Ledger) ixAuthorizeProvider(authorizer, provider, owner sol.PublicKey) sol.Instruction {
	return l.prog.AuthorizeProvider(marketplace.AuthorizeProviderAccounts{ProviderAuthorizer: l.authorizerPDA(authorizer),
		Authorizer: authorizer, Provider: provider, Owner: owner})
}

func (l *Ledger) ixCreateRegion(owner, provider sol.PublicKey, number uint32, cfg ledger.RegionConfig) sol.Instruction {
	region, _ := l.prog.Region(owner, number)
	return l.prog.CreateRegion(marketplace.CreateRegionAccounts{Provider: provider, Region: region, Owner: owner},
		marketplace.CreateRegionArgs{RegionNum: number, Name: cfg.Name, BaseURL: cfg.BaseURL, Rates: programRates(cfg.Rates),
			MinEscrowBalance: cfg.MinEscrowBalance, MaxGigaInstructionsPerCall: uint32(cfg.MaxGigaInstructionsPerCall)})
}

func (l *Ledger) ixCreateUsageSigner(owner, provider, region, signer, tokenAccount sol.PublicKey) sol.Instruction {
	return l.prog.CreateAuthorizedUsageSigner(marketplace.CreateAuthorizedUsageSignerAccounts{Provider: provider, Region: region,
		AuthorizedSigner: l.signerPDA(region), Owner: owner},
		marketplace.CreateAuthorizedUsageSignerArgs{Signer: signer, TokenAccount: tokenAccount})
}

func (l *Ledger) ixCreateEscrow(user, provider, mint sol.PublicKey) sol.Instruction {
	return l.prog.CreateProviderEscrowAccount(marketplace.CreateProviderEscrowAccountAccounts{State: l.statePDA, Mint: mint,
		EscrowAccount: l.escrowPDA(user, provider), Provider: provider, User: user})
}

func (l *Ledger) ixWithdraw(user, provider, to sol.PublicKey, amount uint64) sol.Instruction {
	return l.prog.WithdrawEscrowBalance(marketplace.WithdrawEscrowBalanceAccounts{State: l.statePDA,
		EscrowAccount: l.escrowPDA(user, provider), WithdrawTo: to, Provider: provider, User: user},
		marketplace.WithdrawEscrowBalanceArgs{Amount: amount})
}

// The stack's name in the program's account: mu names stacks in the
// manifest, so the program's name field is left empty (fewer bytes in a
// transaction that must fit 1232).
const stackName = ""

func (l *Ledger) ixCreateStack(user, provider, region sol.PublicKey, seed uint64, manifest []byte) sol.Instruction {
	stack, _ := l.prog.Stack(user, region, seed)
	return l.prog.CreateStack(marketplace.CreateStackAccounts{Provider: provider, Region: region, Stack: stack, User: user},
		marketplace.StackArgs{StackSeed: seed, StackData: manifest, Name: stackName})
}

func (l *Ledger) ixUpdateStack(user, region, stack sol.PublicKey, seed uint64, manifest []byte) sol.Instruction {
	return l.prog.UpdateStack(marketplace.UpdateStackAccounts{Region: region, Stack: stack, User: user},
		marketplace.StackArgs{StackSeed: seed, StackData: manifest, Name: stackName})
}

func (l *Ledger) ixDeleteStack(user, region, stack sol.PublicKey, seed uint64) sol.Instruction {
	return l.prog.DeleteStack(marketplace.DeleteStackAccounts{Region: region, Stack: stack, User: user},
		marketplace.DeleteStackArgs{StackSeed: seed})
}

func (l *Ledger) ixUpdateUsage(signer, region, stack, escrow sol.PublicKey, escrowBump uint8, tokenAccount, commission sol.PublicKey,
	seed ledger.Uint128, u marketplace.ServiceUsage) sol.Instruction {
	update, _ := l.prog.Update(stack, region, seed)
	return l.prog.UpdateUsage(marketplace.UpdateUsageAccounts{State: l.statePDA, CommissionToken: commission,
		AuthorizedSigner: l.signerPDA(region), Region: region, TokenAccount: tokenAccount, UsageUpdate: update,
		EscrowAccount: escrow, Stack: stack, Signer: signer},
		marketplace.UpdateUsageArgs{UpdateSeed: seed, EscrowBump: escrowBump, Usage: u})
}
