package marketplace

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
)

func u128(hi, lo uint64) ledger.Uint128 { return ledger.Uint128{Hi: hi, Lo: lo} }

// meta is an expected account meta: key, writable, signer.
type meta struct {
	key  solana.PublicKey
	w, s bool
	name string
}

var (
	sysID   = solana.MustPublicKeyFromBase58("11111111111111111111111111111111")
	tokenID = solana.MustPublicKeyFromBase58("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
	rentID  = solana.MustPublicKeyFromBase58("SysvarRent111111111111111111111111111111111")
	progID  = solana.MustPublicKeyFromBase58("H7eDBkyrr5jLcjmNmyTbDo45sS6U6MvHx6fFGiF9AL8r")
)

type instructionCase struct {
	name  string
	ix    *solana.GenericInstruction
	data  []byte
	metas []meta
	args  any // what DecodeInstruction returns
}

func instructionCases(t testing.TB) []instructionCase {
	p := Default
	return []instructionCase{
		{
			name: "initialize",
			ix: p.Initialize(InitializeAccounts{State: k(1), Mint: k(2), DepositToken: k(3), CommissionToken: k(4), Authority: k(5)},
				InitializeArgs{CommissionRateMicros: 1_000_000, ProviderDeposit: 0x0102030405}),
			data: hexBytes(t, sighashHex("global", "initialize"),
				"40420f00",         // commission_rate_micros u32 = 10^6
				"0504030201000000", // provider_deposit u64
			),
			metas: []meta{
				{k(1), true, false, "state"}, {k(2), false, false, "mint"},
				{k(3), true, false, "deposit_token"}, {k(4), true, false, "commission_token"},
				{k(5), true, true, "authority"}, {sysID, false, false, "system_program"}, {tokenID, false, false, "token_program"},
			},
			args: InitializeArgs{CommissionRateMicros: 1_000_000, ProviderDeposit: 0x0102030405},
		},
		{
			name:  "update_provider_deposit",
			ix:    p.UpdateProviderDeposit(UpdateProviderDepositAccounts{State: k(1), Authority: k(5)}, UpdateProviderDepositArgs{ProviderDeposit: 7}),
			data:  hexBytes(t, sighashHex("global", "update_provider_deposit"), "0700000000000000"),
			metas: []meta{{k(1), true, false, "state"}, {k(5), true, true, "authority"}},
			args:  UpdateProviderDepositArgs{ProviderDeposit: 7},
		},
		{
			name: "create_provider_authorizer",
			ix:   p.CreateProviderAuthorizer(CreateProviderAuthorizerAccounts{State: k(1), ProviderAuthorizer: k(6), Authority: k(5), Authorizer: k(7)}),
			data: hexBytes(t, sighashHex("global", "create_provider_authorizer")),
			metas: []meta{
				{k(1), false, false, "state"}, {k(6), true, false, "provider_authorizer"},
				{k(5), true, true, "authority"}, {k(7), false, true, "authorizer"}, {sysID, false, false, "system_program"},
			},
			args: NoArgs{},
		},
		{
			name: "create_provider",
			ix: p.CreateProvider(CreateProviderAccounts{State: k(1), Provider: k(8), DepositToken: k(3), Owner: k(9), OwnerToken: k(10)},
				CreateProviderArgs{Name: "Prov"}),
			data: hexBytes(t, sighashHex("global", "create_provider"), "04000000 50726f76"),
			metas: []meta{
				{k(1), false, false, "state"}, {k(8), true, false, "provider"}, {k(3), true, false, "deposit_token"},
				{k(9), true, true, "owner"}, {k(10), true, false, "owner_token"},
				{sysID, false, false, "system_program"}, {tokenID, false, false, "token_program"}, {rentID, false, false, "rent"},
			},
			args: CreateProviderArgs{Name: "Prov"},
		},
		{
			name: "authorize_provider",
			ix:   p.AuthorizeProvider(AuthorizeProviderAccounts{ProviderAuthorizer: k(6), Authorizer: k(7), Provider: k(8), Owner: k(9)}),
			data: hexBytes(t, sighashHex("global", "authorize_provider")),
			metas: []meta{
				{k(6), false, false, "provider_authorizer"}, {k(7), false, true, "authorizer"},
				{k(8), true, false, "provider"}, {k(9), false, false, "owner"},
			},
			args: NoArgs{},
		},
		{
			name: "create_region",
			ix: p.CreateRegion(CreateRegionAccounts{Provider: k(8), Region: k(11), Owner: k(9)}, CreateRegionArgs{
				RegionNum: 0x0201, Name: "r", BaseURL: "u", Rates: fixedRates, MinEscrowBalance: 0x0a, MaxGigaInstructionsPerCall: 0xffffffff,
			}),
			data: hexBytes(t, sighashHex("global", "create_region"),
				"01020000",    // region_num
				"01000000 72", // name "r"
				"01000000 75", // base_url "u"
				fixedRatesHex,
				"0a00000000000000", // min_escrow_balance
				"ffffffff",         // max_giga_instructions_per_call
			),
			metas: []meta{
				{k(8), false, false, "provider"}, {k(11), true, false, "region"},
				{k(9), true, true, "owner"}, {sysID, false, false, "system_program"},
			},
			args: CreateRegionArgs{RegionNum: 0x0201, Name: "r", BaseURL: "u", Rates: fixedRates, MinEscrowBalance: 0x0a, MaxGigaInstructionsPerCall: 0xffffffff},
		},
		{
			name: "create_stack",
			ix: p.CreateStack(CreateStackAccounts{Provider: k(8), Region: k(11), Stack: k(12), User: k(13)},
				StackArgs{StackSeed: 0x0100000000000002, StackData: []byte{1, 2, 3}, Name: "s"}),
			data: hexBytes(t, sighashHex("global", "create_stack"),
				"0200000000000001", // stack_seed u64
				"03000000 010203",  // stack_data Vec<u8>
				"01000000 73",      // name "s"
			),
			metas: []meta{
				{k(8), false, false, "provider"}, {k(11), false, false, "region"}, {k(12), true, false, "stack"},
				{k(13), true, true, "user"}, {sysID, false, false, "system_program"},
			},
			args: StackArgs{StackSeed: 0x0100000000000002, StackData: []byte{1, 2, 3}, Name: "s"},
		},
		{
			name: "update_stack",
			ix: p.UpdateStack(UpdateStackAccounts{Region: k(11), Stack: k(12), User: k(13)},
				StackArgs{StackSeed: 3, StackData: []byte{}, Name: ""}),
			data: hexBytes(t, sighashHex("global", "update_stack"), "0300000000000000", "00000000", "00000000"),
			metas: []meta{
				{k(11), false, false, "region"}, {k(12), true, false, "stack"},
				{k(13), true, true, "user"}, {sysID, false, false, "system_program"},
			},
			args: StackArgs{StackSeed: 3, StackData: []byte{}, Name: ""},
		},
		{
			name: "delete_stack",
			ix:   p.DeleteStack(DeleteStackAccounts{Region: k(11), Stack: k(12), User: k(13)}, DeleteStackArgs{StackSeed: 0xffffffffffffffff}),
			data: hexBytes(t, sighashHex("global", "delete_stack"), "ffffffffffffffff"),
			metas: []meta{
				{k(11), false, false, "region"}, {k(12), true, false, "stack"},
				{k(13), true, true, "user"}, {sysID, false, false, "system_program"},
			},
			args: DeleteStackArgs{StackSeed: 0xffffffffffffffff},
		},
		{
			name: "create_api_request_signer",
			ix:   p.CreateAPIRequestSigner(CreateAPIRequestSignerAccounts{RequestSigner: k(14), User: k(13), Signer: k(15), Region: k(11)}),
			data: hexBytes(t, sighashHex("global", "create_api_request_signer")),
			metas: []meta{
				{k(14), true, false, "request_signer"}, {k(13), true, true, "user"}, {k(15), false, true, "signer"},
				{k(11), false, false, "region"}, {sysID, false, false, "system_program"},
			},
			args: NoArgs{},
		},
		{
			name: "activate_api_request_signer",
			ix:   p.ActivateAPIRequestSigner(ActivateAPIRequestSignerAccounts{RequestSigner: k(14), User: k(13), Signer: k(15), Region: k(11)}),
			data: hexBytes(t, sighashHex("global", "activate_api_request_signer")),
			metas: []meta{
				{k(14), true, false, "request_signer"}, {k(13), true, true, "user"}, {k(15), false, true, "signer"},
				{k(11), false, false, "region"},
			},
			args: NoArgs{},
		},
		{
			name: "deactivate_api_request_signer",
			ix:   p.DeactivateAPIRequestSigner(DeactivateAPIRequestSignerAccounts{RequestSigner: k(14), User: k(13), Signer: k(15), Region: k(11)}),
			data: hexBytes(t, sighashHex("global", "deactivate_api_request_signer")),
			metas: []meta{
				{k(14), true, false, "request_signer"}, {k(13), true, true, "user"}, {k(15), false, false, "signer"},
				{k(11), false, false, "region"},
			},
			args: NoArgs{},
		},
		{
			name: "create_authorized_usage_signer",
			ix: p.CreateAuthorizedUsageSigner(CreateAuthorizedUsageSignerAccounts{Provider: k(8), Region: k(11), AuthorizedSigner: k(16), Owner: k(9)},
				CreateAuthorizedUsageSignerArgs{Signer: k(17), TokenAccount: k(18)}),
			data: hexBytes(t, sighashHex("global", "create_authorized_usage_signer"), kh(17), kh(18)),
			metas: []meta{
				{k(8), false, false, "provider"}, {k(11), false, false, "region"}, {k(16), true, false, "authorized_signer"},
				{k(9), true, true, "owner"}, {sysID, false, false, "system_program"},
			},
			args: CreateAuthorizedUsageSignerArgs{Signer: k(17), TokenAccount: k(18)},
		},
		{
			name: "create_provider_escrow_account",
			ix:   p.CreateProviderEscrowAccount(CreateProviderEscrowAccountAccounts{State: k(1), Mint: k(2), EscrowAccount: k(19), Provider: k(8), User: k(13)}),
			data: hexBytes(t, sighashHex("global", "create_provider_escrow_account")),
			metas: []meta{
				{k(1), false, false, "state"}, {k(2), false, false, "mint"}, {k(19), true, false, "escrow_account"},
				{k(8), false, false, "provider"}, {k(13), true, true, "user"},
				{sysID, false, false, "system_program"}, {tokenID, false, false, "token_program"}, {rentID, false, false, "rent"},
			},
			args: NoArgs{},
		},
		{
			name: "withdraw_escrow_balance",
			ix: p.WithdrawEscrowBalance(WithdrawEscrowBalanceAccounts{State: k(1), EscrowAccount: k(19), WithdrawTo: k(20), Provider: k(8), User: k(13)},
				WithdrawEscrowBalanceArgs{Amount: 0x2a}),
			data: hexBytes(t, sighashHex("global", "withdraw_escrow_balance"), "2a00000000000000"),
			metas: []meta{
				{k(1), false, false, "state"}, {k(19), true, false, "escrow_account"}, {k(20), true, false, "withdraw_to"},
				{k(8), false, false, "provider"}, {k(13), false, true, "user"}, {tokenID, false, false, "token_program"},
			},
			args: WithdrawEscrowBalanceArgs{Amount: 0x2a},
		},
		{
			name: "update_usage",
			ix: p.UpdateUsage(UpdateUsageAccounts{
				State: k(1), CommissionToken: k(4), AuthorizedSigner: k(16), Region: k(11), TokenAccount: k(18),
				UsageUpdate: k(21), EscrowAccount: k(19), Stack: k(12), Signer: k(17),
			}, UpdateUsageArgs{UpdateSeed: u128(0x0b, 0x0c), EscrowBump: 0xfb, Usage: fixedUsage}),
			data: hexBytes(t, sighashHex("global", "update_usage"),
				"0c00000000000000 0b00000000000000", // update_seed u128, low word first
				"fb",                                // escrow_bump
				fixedUsageHex,
			),
			metas: []meta{
				{k(1), false, false, "state"}, {k(4), true, false, "commission_token"}, {k(16), false, false, "authorized_signer"},
				{k(11), false, false, "region"}, {k(18), true, false, "token_account"}, {k(21), true, false, "usage_update"},
				{k(19), true, false, "escrow_account"}, {k(12), false, false, "stack"}, {k(17), true, true, "signer"},
				{sysID, false, false, "system_program"}, {tokenID, false, false, "token_program"},
			},
			args: UpdateUsageArgs{UpdateSeed: u128(0x0b, 0x0c), EscrowBump: 0xfb, Usage: fixedUsage},
		},
	}
}

// inits are the accounts the program's Accounts structs mark init.
var inits = map[string]bool{
	"initialize.state": true, "initialize.deposit_token": true, "initialize.commission_token": true,
	"create_provider_authorizer.provider_authorizer":   true,
	"create_provider.provider":                         true,
	"create_region.region":                             true,
	"create_stack.stack":                               true,
	"create_api_request_signer.request_signer":         true,
	"create_authorized_usage_signer.authorized_signer": true,
	"create_provider_escrow_account.escrow_account":    true,
	"update_usage.usage_update":                        true,
}

func TestInstructions_BuildTheProgramsBytesAndAccounts(t *testing.T) {
	cases := instructionCases(t)
	if len(cases) != len(InstructionNames()) {
		t.Fatalf("%d golden cases for %d instructions", len(cases), len(InstructionNames()))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.ix.ProgramID() != progID {
				t.Errorf("program id %s, want %s", c.ix.ProgramID(), progID)
			}
			data, _ := c.ix.Data()
			equalBytes(t, "data", data, c.data)
			got := c.ix.Accounts()
			if len(got) != len(c.metas) {
				t.Fatalf("%d accounts, want %d", len(got), len(c.metas))
			}
			specs := InstructionAccounts(c.name)
			for i, m := range c.metas {
				g := got[i]
				if g.PublicKey != m.key || g.IsWritable != m.w || g.IsSigner != m.s {
					t.Errorf("account %d (%s) = %s w=%v s=%v, want %s w=%v s=%v",
						i, m.name, g.PublicKey, g.IsWritable, g.IsSigner, m.key, m.w, m.s)
				}
				if specs[i].Name != m.name || specs[i].Writable != m.w || specs[i].Signer != m.s || specs[i].Init != inits[c.name+"."+m.name] {
					t.Errorf("spec %d = %+v, want %s w=%v s=%v", i, specs[i], m.name, m.w, m.s)
				}
			}
		})
	}
}

func TestDecodeInstruction_ReadsBackEveryBuiltInstruction(t *testing.T) {
	for _, c := range instructionCases(t) {
		data, _ := c.ix.Data()
		name, args, err := DecodeInstruction(data)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if name != c.name || !reflect.DeepEqual(args, c.args) {
			t.Errorf("DecodeInstruction = %s %#v, want %s %#v", name, args, c.name, c.args)
		}
		// Anchor ignores bytes after the arguments.
		if _, _, err := DecodeInstruction(append(append([]byte{}, data...), 0xee)); err != nil {
			t.Errorf("%s with a trailing byte: %v", c.name, err)
		}
		keys := make([]solana.PublicKey, len(c.metas))
		for i, m := range c.metas {
			keys[i] = m.key
		}
		accts, err := ParseAccounts(c.name, append(keys, k(0x99)))
		if err != nil {
			t.Errorf("ParseAccounts(%s): %v", c.name, err)
			continue
		}
		rv := reflect.ValueOf(accts)
		for i, m := range c.metas {
			if rv.Field(i).Interface() != m.key {
				t.Errorf("ParseAccounts(%s) field %d = %v, want %s", c.name, i, rv.Field(i).Interface(), m.key)
			}
		}
		if _, err := ParseAccounts(c.name, keys[:len(keys)-1]); !errors.Is(err, ErrAccountNotEnoughKeys) {
			t.Errorf("ParseAccounts(%s) with one key short: %v, want ErrAccountNotEnoughKeys", c.name, err)
		}
	}
}

func TestDecodeInstruction_RefusesWhatAnchorRefuses(t *testing.T) {
	stack := InstructionDiscriminator("create_stack")
	provider := InstructionDiscriminator("create_provider")
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"short", []byte{1, 2, 3}, ErrInstructionMissing},
		{"unknown discriminator", []byte("notaname"), ErrInstructionFallbackNotFound},
		{"truncated args", append(stack[:], 1, 2, 3), ErrInstructionDidNotDeserialize},
		{"vec longer than data", append(stack[:], 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f), ErrInstructionDidNotDeserialize},
		{"name not UTF-8", append(provider[:], 1, 0, 0, 0, 0xff), ErrInstructionDidNotDeserialize},
	} {
		if _, _, err := DecodeInstruction(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestBuilders_UseTheGivenProgramIDAndFixedAccountsWhenSet(t *testing.T) {
	other := Program{ID: k(0x55)}
	ix := other.CreateStack(CreateStackAccounts{SystemProgram: k(0x56)}, StackArgs{})
	if ix.ProgramID() != k(0x55) {
		t.Errorf("program id %s", ix.ProgramID())
	}
	if got := ix.Accounts()[4].PublicKey; got != k(0x56) {
		t.Errorf("a system program given explicitly was replaced by %s", got)
	}
}

func TestErrorCodes_AreAnchor026s(t *testing.T) {
	for code, want := range map[ErrorCode]string{
		6000: "ProviderNotAuthorized", 6001: "CommissionRateOutOfBounds", 6002: "CannotOperateOnDeletedStack",
		100: "InstructionMissing", 101: "InstructionFallbackNotFound", 102: "InstructionDidNotDeserialize",
		2000: "ConstraintMut", 2001: "ConstraintHasOne", 2002: "ConstraintSigner", 2003: "ConstraintRaw",
		2006: "ConstraintSeeds", 2014: "ConstraintTokenMint", 2015: "ConstraintTokenOwner",
		3001: "AccountDiscriminatorNotFound", 3002: "AccountDiscriminatorMismatch", 3003: "AccountDidNotDeserialize",
		3005: "AccountNotEnoughKeys", 3007: "AccountOwnedByWrongProgram", 3008: "InvalidProgramId",
		3010: "AccountNotSigner", 3012: "AccountNotInitialized", 3014: "AccountNotAssociatedTokenAccount",
	} {
		if code.Name() != want {
			t.Errorf("code %d is %q, want %q", code, code.Name(), want)
		}
	}
	if s := ErrorConstraintSeeds.Error(); s != "marketplace: ConstraintSeeds: A seeds constraint was violated (2006)" {
		t.Errorf("Error() = %q", s)
	}
	if s := ErrorCode(4242).String(); s != "custom program error 4242" {
		t.Errorf("String() of an unknown code = %q", s)
	}
	var err error = ErrorProviderNotAuthorized
	if !errors.Is(fmt.Errorf("wrapped: %w", err), ErrorProviderNotAuthorized) {
		t.Error("a wrapped ErrorCode does not match itself")
	}
}
