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

// authorize has s sign the message of instruction and args and checks the
// signature as a chain would, returning the key that signed. A nil
// signer, a failing Sign or a signature that does not verify under
// s.Pubkey() is ErrBadSigner.
func authorize(op, instruction string, s ledger.Signer, args any) (ledger.Pubkey, error) {
	if s == nil {
		return ledger.Pubkey{}, fail(op, ledger.ErrBadSigner, "no signer given")
	}
	pk := s.Pubkey()
	msg, err := Message(instruction, args, pk)
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

// UpdateUsageMessage returns the exact message the usage signer signs for
// UpdateUsage(stack, seed, u) on the local ledger, signed by signer: a
// process that hosts no ledger (billing talking to the chain indexer over
// mu.ledger.v1.LedgerService) signs it and sends the signature along, and
// the hosting ledger verifies it as if the signer were in process.
func UpdateUsageMessage(stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage, signer ledger.Pubkey) ([]byte, error) {
	return Message("update_usage", newUsageArgs(stack, seed, u), signer)
}
