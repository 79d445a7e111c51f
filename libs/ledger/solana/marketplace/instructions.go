package marketplace

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
)

// InstructionDiscriminator is Anchor's discriminator of the instruction
// whose handler is named name (snake case): sha256("global:" + name)[:8].
func InstructionDiscriminator(name string) Discriminator {
	return Discriminator(bin.Sighash(bin.SIGHASH_GLOBAL_NAMESPACE, name))
}

// The program's instruction names (its handlers' names).
const (
	InstructionInitialize                  = "initialize"
	InstructionUpdateProviderDeposit       = "update_provider_deposit"
	InstructionCreateProviderAuthorizer    = "create_provider_authorizer"
	InstructionCreateProvider              = "create_provider"
	InstructionAuthorizeProvider           = "authorize_provider"
	InstructionCreateRegion                = "create_region"
	InstructionCreateStack                 = "create_stack"
	InstructionUpdateStack                 = "update_stack"
	InstructionDeleteStack                 = "delete_stack"
	InstructionCreateAPIRequestSigner      = "create_api_request_signer"
	InstructionActivateAPIRequestSigner    = "activate_api_request_signer"
	InstructionDeactivateAPIRequestSigner  = "deactivate_api_request_signer"
	InstructionCreateAuthorizedUsageSigner = "create_authorized_usage_signer"
	InstructionCreateProviderEscrowAccount = "create_provider_escrow_account"
	InstructionWithdrawEscrowBalance       = "withdraw_escrow_balance"
	InstructionUpdateUsage                 = "update_usage"
)

// Errors of the instruction decoders, matched with errors.Is. They are the
// cases Anchor reports as InstructionMissing (100),
// InstructionFallbackNotFound (101), InstructionDidNotDeserialize (102) and
// AccountNotEnoughKeys (3005).
var (
	ErrInstructionMissing           = errors.New("instruction data shorter than the 8-byte discriminator")
	ErrInstructionFallbackNotFound  = errors.New("no instruction has this discriminator")
	ErrInstructionDidNotDeserialize = errors.New("instruction arguments do not decode")
	ErrAccountNotEnoughKeys         = errors.New("not enough account keys for the instruction")
)

// AccountSpec is one account of an instruction, in the program's order:
// its name in the Accounts struct, whether the program needs it writable
// (mut, init, or a payer) and a signer (Signer<'info>), whether the
// instruction creates it (init: it must not exist yet, and its address is
// the PDA of its seeds with the canonical bump), and for a program or
// sysvar account the id it must be (zero otherwise).
type AccountSpec struct {
	Name     string
	Writable bool
	Signer   bool
	Init     bool
	Fixed    solana.PublicKey
}

// The accounts of each instruction are a struct whose fields are the
// program's Accounts struct in order; each field's tag gives the program's
// name and its flags ("mut", "init", "signer"), or "program" for a program or
// sysvar account, which the builders fill in when left zero.

// InitializeAccounts are initialize's accounts.
type InitializeAccounts struct {
	State           solana.PublicKey `marketplace:"state,init"`
	Mint            solana.PublicKey `marketplace:"mint"`
	DepositToken    solana.PublicKey `marketplace:"deposit_token,init"`
	CommissionToken solana.PublicKey `marketplace:"commission_token,init"`
	Authority       solana.PublicKey `marketplace:"authority,mut,signer"`
	SystemProgram   solana.PublicKey `marketplace:"system_program,program"`
	TokenProgram    solana.PublicKey `marketplace:"token_program,program"`
}

// UpdateProviderDepositAccounts are update_provider_deposit's accounts. The
// program does not check that Authority is the state's authority.
type UpdateProviderDepositAccounts struct {
	State     solana.PublicKey `marketplace:"state,mut"`
	Authority solana.PublicKey `marketplace:"authority,mut,signer"`
}

// CreateProviderAuthorizerAccounts are create_provider_authorizer's
// accounts.
type CreateProviderAuthorizerAccounts struct {
	State              solana.PublicKey `marketplace:"state"`
	ProviderAuthorizer solana.PublicKey `marketplace:"provider_authorizer,init"`
	Authority          solana.PublicKey `marketplace:"authority,mut,signer"`
	Authorizer         solana.PublicKey `marketplace:"authorizer,signer"`
	SystemProgram      solana.PublicKey `marketplace:"system_program,program"`
}

// CreateProviderAccounts are create_provider's accounts; OwnerToken is the
// token account the deposit is moved from.
type CreateProviderAccounts struct {
	State         solana.PublicKey `marketplace:"state"`
	Provider      solana.PublicKey `marketplace:"provider,init"`
	DepositToken  solana.PublicKey `marketplace:"deposit_token,mut"`
	Owner         solana.PublicKey `marketplace:"owner,mut,signer"`
	OwnerToken    solana.PublicKey `marketplace:"owner_token,mut"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
	TokenProgram  solana.PublicKey `marketplace:"token_program,program"`
	Rent          solana.PublicKey `marketplace:"rent,program"`
}

// AuthorizeProviderAccounts are authorize_provider's accounts; Owner is the
// provider's wallet.
type AuthorizeProviderAccounts struct {
	ProviderAuthorizer solana.PublicKey `marketplace:"provider_authorizer"`
	Authorizer         solana.PublicKey `marketplace:"authorizer,signer"`
	Provider           solana.PublicKey `marketplace:"provider,mut"`
	Owner              solana.PublicKey `marketplace:"owner"`
}

// CreateRegionAccounts are create_region's accounts.
type CreateRegionAccounts struct {
	Provider      solana.PublicKey `marketplace:"provider"`
	Region        solana.PublicKey `marketplace:"region,init"`
	Owner         solana.PublicKey `marketplace:"owner,mut,signer"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
}

// CreateStackAccounts are create_stack's accounts.
type CreateStackAccounts struct {
	Provider      solana.PublicKey `marketplace:"provider"`
	Region        solana.PublicKey `marketplace:"region"`
	Stack         solana.PublicKey `marketplace:"stack,init"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
}

// UpdateStackAccounts are update_stack's accounts.
type UpdateStackAccounts struct {
	Region        solana.PublicKey `marketplace:"region"`
	Stack         solana.PublicKey `marketplace:"stack,mut"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
}

// DeleteStackAccounts are delete_stack's accounts.
type DeleteStackAccounts struct {
	Region        solana.PublicKey `marketplace:"region"`
	Stack         solana.PublicKey `marketplace:"stack,mut"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
}

// CreateAPIRequestSignerAccounts are create_api_request_signer's accounts.
type CreateAPIRequestSignerAccounts struct {
	RequestSigner solana.PublicKey `marketplace:"request_signer,init"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	Signer        solana.PublicKey `marketplace:"signer,signer"`
	Region        solana.PublicKey `marketplace:"region"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
}

// ActivateAPIRequestSignerAccounts are activate_api_request_signer's
// accounts.
type ActivateAPIRequestSignerAccounts struct {
	RequestSigner solana.PublicKey `marketplace:"request_signer,mut"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	Signer        solana.PublicKey `marketplace:"signer,signer"`
	Region        solana.PublicKey `marketplace:"region"`
}

// DeactivateAPIRequestSignerAccounts are deactivate_api_request_signer's
// accounts; the signer need not sign (a lost key can be deactivated).
type DeactivateAPIRequestSignerAccounts struct {
	RequestSigner solana.PublicKey `marketplace:"request_signer,mut"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	Signer        solana.PublicKey `marketplace:"signer"`
	Region        solana.PublicKey `marketplace:"region"`
}

// CreateAuthorizedUsageSignerAccounts are create_authorized_usage_signer's
// accounts.
type CreateAuthorizedUsageSignerAccounts struct {
	Provider         solana.PublicKey `marketplace:"provider"`
	Region           solana.PublicKey `marketplace:"region"`
	AuthorizedSigner solana.PublicKey `marketplace:"authorized_signer,init"`
	Owner            solana.PublicKey `marketplace:"owner,mut,signer"`
	SystemProgram    solana.PublicKey `marketplace:"system_program,program"`
}

// CreateProviderEscrowAccountAccounts are create_provider_escrow_account's
// accounts.
type CreateProviderEscrowAccountAccounts struct {
	State         solana.PublicKey `marketplace:"state"`
	Mint          solana.PublicKey `marketplace:"mint"`
	EscrowAccount solana.PublicKey `marketplace:"escrow_account,init"`
	Provider      solana.PublicKey `marketplace:"provider"`
	User          solana.PublicKey `marketplace:"user,mut,signer"`
	SystemProgram solana.PublicKey `marketplace:"system_program,program"`
	TokenProgram  solana.PublicKey `marketplace:"token_program,program"`
	Rent          solana.PublicKey `marketplace:"rent,program"`
}

// WithdrawEscrowBalanceAccounts are withdraw_escrow_balance's accounts.
type WithdrawEscrowBalanceAccounts struct {
	State         solana.PublicKey `marketplace:"state"`
	EscrowAccount solana.PublicKey `marketplace:"escrow_account,mut"`
	WithdrawTo    solana.PublicKey `marketplace:"withdraw_to,mut"`
	Provider      solana.PublicKey `marketplace:"provider"`
	User          solana.PublicKey `marketplace:"user,signer"`
	TokenProgram  solana.PublicKey `marketplace:"token_program,program"`
}

// UpdateUsageAccounts are update_usage's accounts; TokenAccount is the
// provider's token account (the authorized signer's token_account) and
// Signer the region's authorized usage signer, who pays for the update
// account.
type UpdateUsageAccounts struct {
	State            solana.PublicKey `marketplace:"state"`
	CommissionToken  solana.PublicKey `marketplace:"commission_token,mut"`
	AuthorizedSigner solana.PublicKey `marketplace:"authorized_signer"`
	Region           solana.PublicKey `marketplace:"region"`
	TokenAccount     solana.PublicKey `marketplace:"token_account,mut"`
	UsageUpdate      solana.PublicKey `marketplace:"usage_update,init"`
	EscrowAccount    solana.PublicKey `marketplace:"escrow_account,mut"`
	Stack            solana.PublicKey `marketplace:"stack"`
	Signer           solana.PublicKey `marketplace:"signer,mut,signer"`
	SystemProgram    solana.PublicKey `marketplace:"system_program,program"`
	TokenProgram     solana.PublicKey `marketplace:"token_program,program"`
}

// fixedAccounts are the ids of the program and sysvar accounts by name.
var fixedAccounts = map[string]solana.PublicKey{
	"system_program": solana.SystemProgramID,
	"token_program":  solana.TokenProgramID,
	"rent":           solana.SysVarRentPubkey,
}

// specsOf reads the account specs off an Accounts struct type's tags.
func specsOf(t reflect.Type) []AccountSpec {
	specs := make([]AccountSpec, t.NumField())
	for i := range specs {
		parts := strings.Split(t.Field(i).Tag.Get("marketplace"), ",")
		s := AccountSpec{Name: parts[0]}
		for _, flag := range parts[1:] {
			switch flag {
			case "mut":
				s.Writable = true
			case "init":
				s.Writable, s.Init = true, true
			case "signer":
				s.Signer = true
			case "program":
				s.Fixed = fixedAccounts[s.Name]
			}
		}
		specs[i] = s
	}
	return specs
}

// InitializeArgs are initialize's arguments.
type InitializeArgs struct {
	CommissionRateMicros uint32
	ProviderDeposit      uint64
}

func (a InitializeArgs) write(w *writer) {
	w.u32(a.CommissionRateMicros)
	w.u64(a.ProviderDeposit)
}

func (a *InitializeArgs) read(rd *reader) {
	a.CommissionRateMicros = rd.u32("commission_rate_micros")
	a.ProviderDeposit = rd.u64("provider_deposit")
}

// UpdateProviderDepositArgs are update_provider_deposit's arguments.
type UpdateProviderDepositArgs struct {
	ProviderDeposit uint64
}

func (a UpdateProviderDepositArgs) write(w *writer) { w.u64(a.ProviderDeposit) }
func (a *UpdateProviderDepositArgs) read(rd *reader) {
	a.ProviderDeposit = rd.u64("provider_deposit")
}

// NoArgs are the arguments of an instruction that takes none.
type NoArgs struct{}

func (NoArgs) write(*writer) {}
func (*NoArgs) read(*reader) {}

// CreateProviderArgs are create_provider's arguments.
type CreateProviderArgs struct {
	Name string
}

func (a CreateProviderArgs) write(w *writer)  { w.str(a.Name) }
func (a *CreateProviderArgs) read(rd *reader) { a.Name = rd.str("name") }

// CreateRegionArgs are create_region's arguments.
type CreateRegionArgs struct {
	RegionNum                  uint32
	Name                       string
	BaseURL                    string
	Rates                      ServiceRates
	MinEscrowBalance           uint64
	MaxGigaInstructionsPerCall uint32
}

func (a CreateRegionArgs) write(w *writer) {
	w.u32(a.RegionNum)
	w.str(a.Name)
	w.str(a.BaseURL)
	a.Rates.write(w)
	w.u64(a.MinEscrowBalance)
	w.u32(a.MaxGigaInstructionsPerCall)
}

func (a *CreateRegionArgs) read(rd *reader) {
	a.RegionNum = rd.u32("region_num")
	a.Name = rd.str("name")
	a.BaseURL = rd.str("base_url")
	a.Rates.read(rd, "rates")
	a.MinEscrowBalance = rd.u64("min_escrow_balance")
	a.MaxGigaInstructionsPerCall = rd.u32("max_giga_instructions_per_call")
}

// StackArgs are the arguments of create_stack and update_stack: the stack
// seed, the stack data (the manifest bytes) and the stack's name, in that
// order. update_stack ignores the seed except in the stack's address.
type StackArgs struct {
	StackSeed uint64
	StackData []byte
	Name      string
}

func (a StackArgs) write(w *writer) {
	w.u64(a.StackSeed)
	w.vec(a.StackData)
	w.str(a.Name)
}

func (a *StackArgs) read(rd *reader) {
	a.StackSeed = rd.u64("stack_seed")
	a.StackData = rd.vec("stack_data")
	a.Name = rd.str("name")
}

// DeleteStackArgs are delete_stack's arguments.
type DeleteStackArgs struct {
	StackSeed uint64
}

func (a DeleteStackArgs) write(w *writer)  { w.u64(a.StackSeed) }
func (a *DeleteStackArgs) read(rd *reader) { a.StackSeed = rd.u64("stack_seed") }

// CreateAuthorizedUsageSignerArgs are create_authorized_usage_signer's
// arguments: the signer's key and the provider's token account it pays.
type CreateAuthorizedUsageSignerArgs struct {
	Signer       solana.PublicKey
	TokenAccount solana.PublicKey
}

func (a CreateAuthorizedUsageSignerArgs) write(w *writer) {
	w.pubkey(a.Signer)
	w.pubkey(a.TokenAccount)
}

func (a *CreateAuthorizedUsageSignerArgs) read(rd *reader) {
	a.Signer = rd.pubkey("signer")
	a.TokenAccount = rd.pubkey("token_account")
}

// WithdrawEscrowBalanceArgs are withdraw_escrow_balance's arguments.
type WithdrawEscrowBalanceArgs struct {
	Amount uint64
}

func (a WithdrawEscrowBalanceArgs) write(w *writer)  { w.u64(a.Amount) }
func (a *WithdrawEscrowBalanceArgs) read(rd *reader) { a.Amount = rd.u64("amount") }

// UpdateUsageArgs are update_usage's arguments: the update seed (unique
// per stack and region), the escrow account's bump, and the usage.
type UpdateUsageArgs struct {
	UpdateSeed ledger.Uint128
	EscrowBump uint8
	Usage      ServiceUsage
}

func (a UpdateUsageArgs) write(w *writer) {
	w.u128(a.UpdateSeed)
	w.u8(a.EscrowBump)
	a.Usage.write(w)
}

func (a *UpdateUsageArgs) read(rd *reader) {
	a.UpdateSeed = rd.u128("update_seed")
	a.EscrowBump = rd.u8("escrow_bump")
	a.Usage.read(rd, "usage")
}

// argsPtr is a pointer to an Args value.
type argsPtr interface{ read(rd *reader) }

// instruction describes one of the program's instructions.
type instruction struct {
	name     string
	disc     Discriminator
	accounts reflect.Type
	specs    []AccountSpec
	newArgs  func() argsPtr
}

func def[A any, P interface {
	*A
	argsPtr
}](name string, accounts any) *instruction {
	t := reflect.TypeOf(accounts)
	return &instruction{
		name:     name,
		disc:     InstructionDiscriminator(name),
		accounts: t,
		specs:    specsOf(t),
		newArgs:  func() argsPtr { return P(new(A)) },
	}
}

var instructions = []*instruction{
	def[InitializeArgs](InstructionInitialize, InitializeAccounts{}),
	def[UpdateProviderDepositArgs](InstructionUpdateProviderDeposit, UpdateProviderDepositAccounts{}),
	def[NoArgs](InstructionCreateProviderAuthorizer, CreateProviderAuthorizerAccounts{}),
	def[CreateProviderArgs](InstructionCreateProvider, CreateProviderAccounts{}),
	def[NoArgs](InstructionAuthorizeProvider, AuthorizeProviderAccounts{}),
	def[CreateRegionArgs](InstructionCreateRegion, CreateRegionAccounts{}),
	def[StackArgs](InstructionCreateStack, CreateStackAccounts{}),
	def[StackArgs](InstructionUpdateStack, UpdateStackAccounts{}),
	def[DeleteStackArgs](InstructionDeleteStack, DeleteStackAccounts{}),
	def[NoArgs](InstructionCreateAPIRequestSigner, CreateAPIRequestSignerAccounts{}),
	def[NoArgs](InstructionActivateAPIRequestSigner, ActivateAPIRequestSignerAccounts{}),
	def[NoArgs](InstructionDeactivateAPIRequestSigner, DeactivateAPIRequestSignerAccounts{}),
	def[CreateAuthorizedUsageSignerArgs](InstructionCreateAuthorizedUsageSigner, CreateAuthorizedUsageSignerAccounts{}),
	def[NoArgs](InstructionCreateProviderEscrowAccount, CreateProviderEscrowAccountAccounts{}),
	def[WithdrawEscrowBalanceArgs](InstructionWithdrawEscrowBalance, WithdrawEscrowBalanceAccounts{}),
	def[UpdateUsageArgs](InstructionUpdateUsage, UpdateUsageAccounts{}),
}

var (
	instructionsByName = map[string]*instruction{}
	instructionsByDisc = map[Discriminator]*instruction{}
)

func init() {
	for _, in := range instructions {
		instructionsByName[in.name] = in
		instructionsByDisc[in.disc] = in
	}
}

// InstructionNames lists the program's instructions in the order of its
// source.
func InstructionNames() []string {
	names := make([]string, len(instructions))
	for i, in := range instructions {
		names[i] = in.name
	}
	return names
}

// InstructionAccounts returns the accounts the named instruction takes, in
// the program's order, or nil for an unknown name.
func InstructionAccounts(name string) []AccountSpec {
	in := instructionsByName[name]
	if in == nil {
		return nil
	}
	return append([]AccountSpec(nil), in.specs...)
}

// DecodeInstruction reads instruction data: it returns the instruction's
// name (an Instruction* constant) and its arguments as a value of the
// builder's argument type (InitializeArgs, NoArgs, StackArgs, ...). Bytes
// after the arguments are ignored, as Anchor ignores them. It does not
// panic on any input and allocates no more than len(data).
func DecodeInstruction(data []byte) (name string, args any, err error) {
	if len(data) < len(Discriminator{}) {
		return "", nil, fmt.Errorf("marketplace: decode instruction: %d bytes: %w", len(data), ErrInstructionMissing)
	}
	in := instructionsByDisc[Discriminator(data[:8])]
	if in == nil {
		return "", nil, fmt.Errorf("marketplace: decode instruction: discriminator %x: %w", data[:8], ErrInstructionFallbackNotFound)
	}
	a := in.newArgs()
	rd := newReader(bin.NewBorshDecoder(data[8:]), in.name)
	a.read(rd)
	if rd.err != nil {
		return in.name, nil, fmt.Errorf("marketplace: decode %s instruction: %w: %w", in.name, ErrInstructionDidNotDeserialize, rd.err)
	}
	return in.name, reflect.ValueOf(a).Elem().Interface(), nil
}

// ParseAccounts puts the keys of a named instruction's accounts, in the
// program's order, into its Accounts struct (InitializeAccounts, ...),
// returned by value. Keys after the instruction's accounts are ignored, as
// Anchor leaves them to remaining_accounts; too few fail with
// ErrAccountNotEnoughKeys.
func ParseAccounts(name string, keys []solana.PublicKey) (any, error) {
	in := instructionsByName[name]
	if in == nil {
		return nil, fmt.Errorf("marketplace: parse accounts: unknown instruction %q", name)
	}
	if len(keys) < len(in.specs) {
		return nil, fmt.Errorf("marketplace: parse %s accounts: %d keys, want %d (%s missing): %w",
			name, len(keys), len(in.specs), in.specs[len(keys)].Name, ErrAccountNotEnoughKeys)
	}
	v := reflect.New(in.accounts).Elem()
	for i := range in.specs {
		v.Field(i).Set(reflect.ValueOf(keys[i]))
	}
	return v.Interface(), nil
}

// build makes the instruction name of p with the given accounts (an
// Accounts struct) and arguments.
func (p Program) build(name string, accounts any, args interface{ write(w *writer) }) *solana.GenericInstruction {
	in := instructionsByName[name]
	v := reflect.ValueOf(accounts)
	metas := make(solana.AccountMetaSlice, len(in.specs))
	for i, s := range in.specs {
		k := v.Field(i).Interface().(solana.PublicKey)
		if k.IsZero() && !s.Fixed.IsZero() {
			k = s.Fixed
		}
		metas[i] = solana.NewAccountMeta(k, s.Writable, s.Signer)
	}
	data := encode(64, func(w *writer) {
		w.raw(in.disc[:])
		args.write(w)
	})
	return solana.NewInstruction(p.ID, metas, data)
}

// Initialize builds initialize: create the state, deposit and commission
// accounts. It fails on chain with CommissionRateOutOfBounds when the rate
// exceeds 10^6 micros.
func (p Program) Initialize(a InitializeAccounts, args InitializeArgs) *solana.GenericInstruction {
	return p.build(InstructionInitialize, a, args)
}

// UpdateProviderDeposit builds update_provider_deposit.
func (p Program) UpdateProviderDeposit(a UpdateProviderDepositAccounts, args UpdateProviderDepositArgs) *solana.GenericInstruction {
	return p.build(InstructionUpdateProviderDeposit, a, args)
}

// CreateProviderAuthorizer builds create_provider_authorizer.
func (p Program) CreateProviderAuthorizer(a CreateProviderAuthorizerAccounts) *solana.GenericInstruction {
	return p.build(InstructionCreateProviderAuthorizer, a, NoArgs{})
}

// CreateProvider builds create_provider: create the provider, moving the
// state's provider deposit from OwnerToken to the deposit account.
func (p Program) CreateProvider(a CreateProviderAccounts, args CreateProviderArgs) *solana.GenericInstruction {
	return p.build(InstructionCreateProvider, a, args)
}

// AuthorizeProvider builds authorize_provider.
func (p Program) AuthorizeProvider(a AuthorizeProviderAccounts) *solana.GenericInstruction {
	return p.build(InstructionAuthorizeProvider, a, NoArgs{})
}

// CreateRegion builds create_region.
func (p Program) CreateRegion(a CreateRegionAccounts, args CreateRegionArgs) *solana.GenericInstruction {
	return p.build(InstructionCreateRegion, a, args)
}

// CreateStack builds create_stack (the stack starts at revision 1).
func (p Program) CreateStack(a CreateStackAccounts, args StackArgs) *solana.GenericInstruction {
	return p.build(InstructionCreateStack, a, args)
}

// UpdateStack builds update_stack (revision + 1).
func (p Program) UpdateStack(a UpdateStackAccounts, args StackArgs) *solana.GenericInstruction {
	return p.build(InstructionUpdateStack, a, args)
}

// DeleteStack builds delete_stack.
func (p Program) DeleteStack(a DeleteStackAccounts, args DeleteStackArgs) *solana.GenericInstruction {
	return p.build(InstructionDeleteStack, a, args)
}

// CreateAPIRequestSigner builds create_api_request_signer.
func (p Program) CreateAPIRequestSigner(a CreateAPIRequestSignerAccounts) *solana.GenericInstruction {
	return p.build(InstructionCreateAPIRequestSigner, a, NoArgs{})
}

// ActivateAPIRequestSigner builds activate_api_request_signer.
func (p Program) ActivateAPIRequestSigner(a ActivateAPIRequestSignerAccounts) *solana.GenericInstruction {
	return p.build(InstructionActivateAPIRequestSigner, a, NoArgs{})
}

// DeactivateAPIRequestSigner builds deactivate_api_request_signer.
func (p Program) DeactivateAPIRequestSigner(a DeactivateAPIRequestSignerAccounts) *solana.GenericInstruction {
	return p.build(InstructionDeactivateAPIRequestSigner, a, NoArgs{})
}

// CreateAuthorizedUsageSigner builds create_authorized_usage_signer.
func (p Program) CreateAuthorizedUsageSigner(a CreateAuthorizedUsageSignerAccounts, args CreateAuthorizedUsageSignerArgs) *solana.GenericInstruction {
	return p.build(InstructionCreateAuthorizedUsageSigner, a, args)
}

// CreateProviderEscrowAccount builds create_provider_escrow_account: create
// the user's escrow token account with the provider, owned by the state.
func (p Program) CreateProviderEscrowAccount(a CreateProviderEscrowAccountAccounts) *solana.GenericInstruction {
	return p.build(InstructionCreateProviderEscrowAccount, a, NoArgs{})
}

// WithdrawEscrowBalance builds withdraw_escrow_balance.
func (p Program) WithdrawEscrowBalance(a WithdrawEscrowBalanceAccounts, args WithdrawEscrowBalanceArgs) *solana.GenericInstruction {
	return p.build(InstructionWithdrawEscrowBalance, a, args)
}

// UpdateUsage builds update_usage: charge the usage's price from the
// escrow to the provider and the commission account, and record the
// update under its seed.
func (p Program) UpdateUsage(a UpdateUsageAccounts, args UpdateUsageArgs) *solana.GenericInstruction {
	return p.build(InstructionUpdateUsage, a, args)
}
