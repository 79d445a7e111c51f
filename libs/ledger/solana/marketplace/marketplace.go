// Package marketplace is a client for the marketplace program of mu 2023
// as deployed on Solana (an Anchor 0.26 program): its account layouts with
// their discriminators, the program-derived addresses of every seed list,
// one builder per instruction, decoders of instruction data, and the error
// codes the program and the Anchor framework raise under its constraints.
//
// Everything here is computed from the program's source: accounts are an
// 8-byte discriminator (sha256("account:"+Name)[:8]) followed by the Borsh
// encoding of the struct in its declared field order; instruction data is
// an 8-byte discriminator (sha256("global:"+snake_name)[:8]) followed by the
// Borsh encoding of the arguments in the handler's order; the account metas
// follow the order of the instruction's Accounts struct, writable where the
// program says mut or init (and for every payer), signer where it takes a
// Signer. Borsh here is little-endian integers, u8 bools, u32 lengths for
// strings and byte vectors, and enums as a u8 variant index and its fields,
// encoded with github.com/gagliardetto/binary.
//
// The package does no I/O. Its values are plain data and safe to share.
package marketplace

import (
	"github.com/gagliardetto/solana-go"
)

// DefaultProgramID is the id the program declares (declare_id!) and was
// deployed under.
var DefaultProgramID = solana.MustPublicKeyFromBase58("H7eDBkyrr5jLcjmNmyTbDo45sS6U6MvHx6fFGiF9AL8r")

// Program is the marketplace program deployed under ID. Its methods derive
// the program's addresses and build its instructions for that id, so any
// deployment works; the zero Program has the zero id and is not useful.
type Program struct {
	ID solana.PublicKey
}

// Default is the program under DefaultProgramID.
var Default = Program{ID: DefaultProgramID}
