package marketplace

import (
	"encoding/binary"
	"fmt"

	"github.com/gagliardetto/solana-go"

	"github.com/muprotocol/mu/libs/ledger"
)

// The seed lists of the program's addresses, without the bump. Each call
// returns fresh slices, so a caller may append a bump to them.

// StateSeeds are the seeds of the state account: "state".
func StateSeeds() [][]byte { return [][]byte{[]byte("state")} }

// DepositSeeds are the seeds of the deposit token account: "deposit".
func DepositSeeds() [][]byte { return [][]byte{[]byte("deposit")} }

// CommissionSeeds are the seeds of the commission token account:
// "commission".
func CommissionSeeds() [][]byte { return [][]byte{[]byte("commission")} }

// AuthorizerSeeds are the seeds of a provider authorizer: "authorizer",
// the authorizer's key.
func AuthorizerSeeds(authorizer solana.PublicKey) [][]byte {
	return [][]byte{[]byte("authorizer"), key(authorizer)}
}

// ProviderSeeds are the seeds of a provider: "provider", the owner's key.
func ProviderSeeds(owner solana.PublicKey) [][]byte {
	return [][]byte{[]byte("provider"), key(owner)}
}

// RegionSeeds are the seeds of a region: "region", the provider owner's
// key (the wallet, not the provider account), region_num as u32 LE.
func RegionSeeds(owner solana.PublicKey, regionNum uint32) [][]byte {
	return [][]byte{[]byte("region"), key(owner), binary.LittleEndian.AppendUint32(nil, regionNum)}
}

// StackSeeds are the seeds of a stack: "stack", the user's key, the region
// account's address, the stack seed as u64 LE.
func StackSeeds(user, region solana.PublicKey, seed uint64) [][]byte {
	return [][]byte{[]byte("stack"), key(user), key(region), binary.LittleEndian.AppendUint64(nil, seed)}
}

// EscrowSeeds are the seeds of a developer's escrow token account with a
// provider: "escrow", the user's key, the provider account's address.
func EscrowSeeds(user, provider solana.PublicKey) [][]byte {
	return [][]byte{[]byte("escrow"), key(user), key(provider)}
}

// AuthorizedSignerSeeds are the seeds of a region's authorized usage
// signer: "authorized_signer", the region account's address.
func AuthorizedSignerSeeds(region solana.PublicKey) [][]byte {
	return [][]byte{[]byte("authorized_signer"), key(region)}
}

// UpdateSeeds are the seeds of a usage update: "update", the stack
// account's address, the region account's address, the update seed as u128
// LE (low word first).
func UpdateSeeds(stack, region solana.PublicKey, seed ledger.Uint128) [][]byte {
	s := binary.LittleEndian.AppendUint64(nil, seed.Lo)
	s = binary.LittleEndian.AppendUint64(s, seed.Hi)
	return [][]byte{[]byte("update"), key(stack), key(region), s}
}

// RequestSignerSeeds are the seeds of an API request signer:
// "request_signer", the user's key, the signer's key, the region account's
// address.
func RequestSignerSeeds(user, signer, region solana.PublicKey) [][]byte {
	return [][]byte{[]byte("request_signer"), key(user), key(signer), key(region)}
}

func key(k solana.PublicKey) []byte { return append([]byte(nil), k[:]...) }

// find is solana.FindProgramAddress under p's id. It fails only if none of
// the 255 bumps gives an address off the ed25519 curve, which has
// probability 2^-255; that cannot be handled and is not caused by input, so
// it panics rather than burden every caller with an error.
func (p Program) find(seeds [][]byte) (solana.PublicKey, uint8) {
	addr, bump, err := solana.FindProgramAddress(seeds, p.ID)
	if err != nil {
		panic(fmt.Sprintf("marketplace: no program address for seeds %q under %s: %v", seeds, p.ID, err))
	}
	return addr, bump
}

// Address is the program address of seeds with the given bump
// (solana.CreateProgramAddress): the check Anchor makes for an account
// whose bump is stored (bump = account.bump). It fails when the seeds and
// bump give a point on the curve.
func (p Program) Address(seeds [][]byte, bump uint8) (solana.PublicKey, error) {
	withBump := append(append([][]byte(nil), seeds...), []byte{bump})
	return solana.CreateProgramAddress(withBump, p.ID)
}

// State is the state account's address and bump.
func (p Program) State() (solana.PublicKey, uint8) { return p.find(StateSeeds()) }

// Deposit is the provider-deposit token account's address and bump.
func (p Program) Deposit() (solana.PublicKey, uint8) { return p.find(DepositSeeds()) }

// Commission is the commission token account's address and bump.
func (p Program) Commission() (solana.PublicKey, uint8) { return p.find(CommissionSeeds()) }

// Authorizer is the address and bump of authorizer's ProviderAuthorizer.
func (p Program) Authorizer(authorizer solana.PublicKey) (solana.PublicKey, uint8) {
	return p.find(AuthorizerSeeds(authorizer))
}

// Provider is the address and bump of the Provider owned by owner.
func (p Program) Provider(owner solana.PublicKey) (solana.PublicKey, uint8) {
	return p.find(ProviderSeeds(owner))
}

// Region is the address and bump of owner's region number regionNum.
func (p Program) Region(owner solana.PublicKey, regionNum uint32) (solana.PublicKey, uint8) {
	return p.find(RegionSeeds(owner, regionNum))
}

// Stack is the address and bump of user's stack with seed in region (the
// region's account address).
func (p Program) Stack(user, region solana.PublicKey, seed uint64) (solana.PublicKey, uint8) {
	return p.find(StackSeeds(user, region, seed))
}

// Escrow is the address and bump of user's escrow token account with
// provider (the provider's account address).
func (p Program) Escrow(user, provider solana.PublicKey) (solana.PublicKey, uint8) {
	return p.find(EscrowSeeds(user, provider))
}

// AuthorizedSigner is the address and bump of region's
// AuthorizedUsageSigner.
func (p Program) AuthorizedSigner(region solana.PublicKey) (solana.PublicKey, uint8) {
	return p.find(AuthorizedSignerSeeds(region))
}

// Update is the address and bump of the UsageUpdate of stack in region
// with seed.
func (p Program) Update(stack, region solana.PublicKey, seed ledger.Uint128) (solana.PublicKey, uint8) {
	return p.find(UpdateSeeds(stack, region, seed))
}

// RequestSigner is the address and bump of user's ApiRequestSigner for
// signer in region.
func (p Program) RequestSigner(user, signer, region solana.PublicKey) (solana.PublicKey, uint8) {
	return p.find(RequestSignerSeeds(user, signer, region))
}
