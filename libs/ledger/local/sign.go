package local

import (
	"crypto/ed25519"
	"fmt"

	bin "github.com/gagliardetto/binary"

	"github.com/muprotocol/mu/libs/ledger"
)

// signedMessage is what a write's signers sign, Borsh-encoded: the
// instruction's name, its Borsh-encoded arguments and the public keys of
// its signers, after a domain string that keeps these messages apart from
// anything else the keys sign.
type signedMessage struct {
	Domain      string
	Instruction string
	Args        []byte
	Signers     []ledger.Pubkey
}

const signDomain = "mu-ledger/local/v1"

// Message returns the canonical message the signers of instruction sign
// for args (any Borsh-encodable value) on the local ledger.
func Message(instruction string, args any, signers ...ledger.Pubkey) ([]byte, error) {
	a, err := bin.MarshalBorsh(args)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode %s arguments: %w", instruction, err)
	}
	return bin.MarshalBorsh(signedMessage{Domain: signDomain, Instruction: instruction, Args: a, Signers: signers})
}

// instruction is one write as its signers see it: the instruction's name
// and its arguments. Each write has one constructor below, used both by
// the method (through authorize) and by its exported message builder, so
// a client that signs a builder's message and the ledger that verifies it
// can never disagree.
type instruction struct {
	name string
	args any
}

// message is the canonical message of in signed by signers.
func (in instruction) message(signers ...ledger.Pubkey) ([]byte, error) {
	return Message(in.name, in.args, signers...)
}

func initializeInstr(p ledger.InitParams) instruction {
	return instruction{"initialize", initArgs{p.ProviderDeposit, p.CommissionMicros}}
}

func mintInstr(to ledger.Pubkey, amount uint64) instruction {
	return instruction{"mint", mintArgs{to, amount}}
}

func transferInstr(to ledger.Pubkey, amount uint64) instruction {
	return instruction{"transfer", transferArgs{to, amount}}
}

func createProviderInstr(name string) instruction {
	return instruction{"create_provider", createProviderArgs{name}}
}

func authorizeProviderInstr(provider ledger.Pubkey) instruction {
	return instruction{"authorize_provider", authorizeProviderArgs{provider}}
}

func updateProviderDepositInstr(amount uint64) instruction {
	return instruction{"update_provider_deposit", depositArgs{amount}}
}

func createRegionInstr(number uint32, cfg ledger.RegionConfig) instruction {
	return instruction{"create_region", newRegionArgs(ledger.Pubkey{}, number, cfg)}
}

func updateRegionInstr(region ledger.Pubkey, cfg ledger.RegionConfig) instruction {
	return instruction{"update_region", newRegionArgs(region, 0, cfg)}
}

func createUsageSignerInstr(region, usageSigner ledger.Pubkey) instruction {
	return instruction{"create_usage_signer", usageSignerArgs{region, usageSigner}}
}

func createEscrowInstr(provider ledger.Pubkey) instruction {
	return instruction{"create_escrow", escrowArgs{Provider: provider}}
}

func rechargeEscrowInstr(provider ledger.Pubkey, amount uint64) instruction {
	return instruction{"recharge_escrow", escrowArgs{provider, amount}}
}

func withdrawEscrowInstr(provider ledger.Pubkey, amount uint64) instruction {
	return instruction{"withdraw_escrow", escrowArgs{provider, amount}}
}

func createStackInstr(region ledger.Pubkey, seed uint64, manifest []byte) instruction {
	return instruction{"create_stack", createStackArgs{region, seed, manifest}}
}

func updateStackInstr(stack ledger.Pubkey, manifest []byte) instruction {
	return instruction{"update_stack", updateStackArgs{stack, manifest}}
}

func deleteStackInstr(stack ledger.Pubkey) instruction {
	return instruction{"delete_stack", deleteStackArgs{stack}}
}

func updateUsageInstr(stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) instruction {
	return instruction{"update_usage", newUsageArgs(stack, seed, u)}
}

// authorize has s sign the message of in and checks the signature as a
// chain would, returning the key that signed. A nil signer, a failing
// Sign or a signature that does not verify under s.Pubkey() is
// ErrBadSigner.
func authorize(op string, s ledger.Signer, in instruction) (ledger.Pubkey, error) {
	if s == nil {
		return ledger.Pubkey{}, fail(op, ledger.ErrBadSigner, "no signer given")
	}
	pk := s.Pubkey()
	msg, err := in.message(pk)
	if err != nil {
		return ledger.Pubkey{}, err
	}
	sig, err := s.Sign(msg)
	if err != nil {
		return ledger.Pubkey{}, fail(op, ledger.ErrBadSigner, "signer %s failed to sign: %v", pk, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return ledger.Pubkey{}, fail(op, ledger.ErrBadSigner, "signature of %s is %d bytes, want %d", pk, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(ed25519.PublicKey(pk[:]), msg, sig) {
		return ledger.Pubkey{}, fail(op, ledger.ErrBadSigner, "signature does not verify under %s", pk)
	}
	return pk, nil
}

// The message builders below return the exact message the signer of a
// write signs on the local ledger, for the write's arguments as the
// ledger.Writer method takes them, signed by signer (the key the rules
// require: see each method). A process that hosts no ledger (the CLI, or
// billing, talking to the chain indexer over mu.ledger.v1.LedgerService)
// signs it and sends the signature along, and the hosting ledger verifies
// it as if the signer were in process.

// InitializeMessage is the message of Initialize(p), signed by the
// authority.
func InitializeMessage(p ledger.InitParams, signer ledger.Pubkey) ([]byte, error) {
	return initializeInstr(p).message(signer)
}

// MintMessage is the message of Mint(to, amount), signed by the authority.
func MintMessage(to ledger.Pubkey, amount uint64, signer ledger.Pubkey) ([]byte, error) {
	return mintInstr(to, amount).message(signer)
}

// TransferMessage is the message of Transfer(to, amount), signed by the
// wallet the tokens leave.
func TransferMessage(to ledger.Pubkey, amount uint64, signer ledger.Pubkey) ([]byte, error) {
	return transferInstr(to, amount).message(signer)
}

// CreateProviderMessage is the message of CreateProvider(name), signed by
// the provider's owner.
func CreateProviderMessage(name string, signer ledger.Pubkey) ([]byte, error) {
	return createProviderInstr(name).message(signer)
}

// AuthorizeProviderMessage is the message of AuthorizeProvider(provider),
// signed by the authority.
func AuthorizeProviderMessage(provider ledger.Pubkey, signer ledger.Pubkey) ([]byte, error) {
	return authorizeProviderInstr(provider).message(signer)
}

// UpdateProviderDepositMessage is the message of
// UpdateProviderDeposit(amount), signed by the authority.
func UpdateProviderDepositMessage(amount uint64, signer ledger.Pubkey) ([]byte, error) {
	return updateProviderDepositInstr(amount).message(signer)
}

// CreateRegionMessage is the message of CreateRegion(number, cfg), signed
// by the provider's owner.
func CreateRegionMessage(number uint32, cfg ledger.RegionConfig, signer ledger.Pubkey) ([]byte, error) {
	return createRegionInstr(number, cfg).message(signer)
}

// UpdateRegionMessage is the message of UpdateRegion(region, cfg), signed
// by the provider's owner.
func UpdateRegionMessage(region ledger.Pubkey, cfg ledger.RegionConfig, signer ledger.Pubkey) ([]byte, error) {
	return updateRegionInstr(region, cfg).message(signer)
}

// CreateUsageSignerMessage is the message of CreateUsageSigner(region,
// usageSigner), signed by the provider's owner.
func CreateUsageSignerMessage(region, usageSigner ledger.Pubkey, signer ledger.Pubkey) ([]byte, error) {
	return createUsageSignerInstr(region, usageSigner).message(signer)
}

// CreateEscrowMessage is the message of CreateEscrow(provider), signed by
// the developer.
func CreateEscrowMessage(provider ledger.Pubkey, signer ledger.Pubkey) ([]byte, error) {
	return createEscrowInstr(provider).message(signer)
}

// RechargeEscrowMessage is the message of RechargeEscrow(provider,
// amount), signed by the developer.
func RechargeEscrowMessage(provider ledger.Pubkey, amount uint64, signer ledger.Pubkey) ([]byte, error) {
	return rechargeEscrowInstr(provider, amount).message(signer)
}

// WithdrawEscrowMessage is the message of WithdrawEscrow(provider,
// amount), signed by the developer.
func WithdrawEscrowMessage(provider ledger.Pubkey, amount uint64, signer ledger.Pubkey) ([]byte, error) {
	return withdrawEscrowInstr(provider, amount).message(signer)
}

// CreateStackMessage is the message of CreateStack(region, seed,
// manifest), signed by the stack's owner.
func CreateStackMessage(region ledger.Pubkey, seed uint64, manifest []byte, signer ledger.Pubkey) ([]byte, error) {
	return createStackInstr(region, seed, manifest).message(signer)
}

// UpdateStackMessage is the message of UpdateStack(stack, manifest),
// signed by the stack's owner.
func UpdateStackMessage(stack ledger.Pubkey, manifest []byte, signer ledger.Pubkey) ([]byte, error) {
	return updateStackInstr(stack, manifest).message(signer)
}

// DeleteStackMessage is the message of DeleteStack(stack), signed by the
// stack's owner.
func DeleteStackMessage(stack ledger.Pubkey, signer ledger.Pubkey) ([]byte, error) {
	return deleteStackInstr(stack).message(signer)
}

// UpdateUsageMessage returns the exact message the usage signer signs for
// UpdateUsage(stack, seed, u) on the local ledger, signed by signer: a
// process that hosts no ledger (billing talking to the chain indexer over
// mu.ledger.v1.LedgerService) signs it and sends the signature along, and
// the hosting ledger verifies it as if the signer were in process.
func UpdateUsageMessage(stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage, signer ledger.Pubkey) ([]byte, error) {
	return updateUsageInstr(stack, seed, u).message(signer)
}
