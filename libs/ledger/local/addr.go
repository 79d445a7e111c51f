package local

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/muprotocol/mu/libs/ledger"
)

// The local ledger's account addresses. They are specific to this backend:
// SHA-256 over "mu-ledger/" + a domain + 0x00 + the seeds, in the manner
// of (but not equal to) Solana's program-derived addresses, which the
// Solana backend uses instead. Callers should take ids from the accounts a
// ledger returns rather than derive them.

// derive is H(domain, parts...): SHA-256 with a domain prefix.
func derive(domain string, parts ...[]byte) ledger.Pubkey {
	h := sha256.New()
	h.Write([]byte("mu-ledger/"))
	h.Write([]byte(domain))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var out ledger.Pubkey
	h.Sum(out[:0])
	return out
}

// ProviderAddress is the provider account of owner.
func ProviderAddress(owner ledger.Pubkey) ledger.Pubkey {
	return derive("provider", owner[:])
}

// RegionAddress is region number of the provider account provider (a
// ProviderAddress), number in u32 little-endian.
func RegionAddress(provider ledger.Pubkey, number uint32) ledger.Pubkey {
	return derive("region", provider[:], binary.LittleEndian.AppendUint32(nil, number))
}

// StackAddress is the stack of owner in region with seed (u64
// little-endian): the stack id.
func StackAddress(owner, region ledger.Pubkey, seed uint64) ledger.Pubkey {
	return derive("stack", owner[:], region[:], binary.LittleEndian.AppendUint64(nil, seed))
}

// EscrowAddress is the escrow token account of developer with the provider
// account provider.
func EscrowAddress(developer, provider ledger.Pubkey) ledger.Pubkey {
	return derive("escrow", developer[:], provider[:])
}

// UsageAddress is the usage-update record of stack with seed (u128
// little-endian), whose existence makes a replay fail.
func UsageAddress(stack ledger.Pubkey, seed ledger.Uint128) ledger.Pubkey {
	b := binary.LittleEndian.AppendUint64(nil, seed.Lo)
	b = binary.LittleEndian.AppendUint64(b, seed.Hi)
	return derive("usage", stack[:], b)
}

// DepositVault is the token account holding providers' deposits.
func DepositVault() ledger.Pubkey { return derive("deposit_vault") }

// CommissionAccount is the token account holding the marketplace's
// commission.
func CommissionAccount() ledger.Pubkey { return derive("commission") }
