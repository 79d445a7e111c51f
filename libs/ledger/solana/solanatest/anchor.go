package solanatest

import (
	"fmt"

	"github.com/gagliardetto/solana-go"

	mp "github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// Anchor 0.26's error codes and the program's own, as the program client
// names them.
const (
	anchorInstructionMissing           = uint32(mp.ErrorInstructionMissing)
	anchorInstructionFallbackNotFound  = uint32(mp.ErrorInstructionFallbackNotFound)
	anchorInstructionDidNotDeserialize = uint32(mp.ErrorInstructionDidNotDeserialize)
	anchorConstraintMut                = uint32(mp.ErrorConstraintMut)
	anchorConstraintHasOne             = uint32(mp.ErrorConstraintHasOne)
	anchorConstraintSeeds              = uint32(mp.ErrorConstraintSeeds)
	anchorAccountDiscriminatorNotFound = uint32(mp.ErrorAccountDiscriminatorNotFound)
	anchorAccountDiscriminatorMismatch = uint32(mp.ErrorAccountDiscriminatorMismatch)
	anchorAccountDidNotDeserialize     = uint32(mp.ErrorAccountDidNotDeserialize)
	anchorAccountDidNotSerialize       = uint32(mp.ErrorAccountDidNotSerialize)
	anchorAccountNotEnoughKeys         = uint32(mp.ErrorAccountNotEnoughKeys)
	anchorAccountOwnedByWrongProgram   = uint32(mp.ErrorAccountOwnedByWrongProgram)
	anchorInvalidProgramID             = uint32(mp.ErrorInvalidProgramID)
	anchorInvalidProgramExecutable     = uint32(mp.ErrorInvalidProgramExecutable)
	anchorAccountNotSigner             = uint32(mp.ErrorAccountNotSigner)
	anchorAccountNotInitialized        = uint32(mp.ErrorAccountNotInitialized)
	anchorAccountSysvarMismatch        = uint32(mp.ErrorAccountSysvarMismatch)
	anchorAccountReallocExceedsLimit   = uint32(mp.ErrorAccountReallocExceedsLimit)

	errProviderNotAuthorized       = uint32(mp.ErrorProviderNotAuthorized)
	errCommissionRateOutOfBounds   = uint32(mp.ErrorCommissionRateOutOfBounds)
	errCannotOperateOnDeletedStack = uint32(mp.ErrorCannotOperateOnDeletedStack)
)

// maxPermittedDataIncrease is the runtime's limit on growing an account in one
// instruction.
const maxPermittedDataIncrease = 10 * 1024

// anchor executes one Anchor instruction: it checks accounts the way
// Anchor's generated try_accounts does and logs errors the way Anchor does.
type anchor struct {
	in *instr
}

// fail is an Anchor error caused by the named account (or by the program body
// when account is "").
func (a *anchor) fail(code uint32, account string) *InstructionError {
	c := mp.ErrorCode(code)
	if account != "" {
		a.in.t.log("Program log: AnchorError caused by account: %s. Error Code: %s. Error Number: %d. Error Message: %s.", account, c.Name(), code, c.Message())
	} else {
		a.in.t.log("Program log: AnchorError occurred. Error Code: %s. Error Number: %d. Error Message: %s.", c.Name(), code, c.Message())
	}
	return customErr(code, "")
}

func (a *anchor) meta(i int) meta { return a.in.accounts[i] }

// need checks the instruction has at least n accounts.
func (a *anchor) need(n int) *InstructionError {
	if len(a.in.accounts) < n {
		return a.fail(anchorAccountNotEnoughKeys, "")
	}
	return nil
}

// signer is a Signer<'info> field.
func (a *anchor) signer(i int, name string) (solana.PublicKey, *InstructionError) {
	m := a.meta(i)
	if !a.in.signed(m.key) {
		return m.key, a.fail(anchorAccountNotSigner, name)
	}
	return m.key, nil
}

// program is a Program<'info, T> field for the program id.
func (a *anchor) program(i int, name string, id solana.PublicKey) *InstructionError {
	m := a.meta(i)
	if !m.key.Equals(id) {
		return a.fail(anchorInvalidProgramID, name)
	}
	if acct := a.in.t.get(m.key); !acct.Executable {
		return a.fail(anchorInvalidProgramExecutable, name)
	}
	return nil
}

// rentSysvar is a Sysvar<'info, Rent> field.
func (a *anchor) rentSysvar(i int) *InstructionError {
	if !a.meta(i).key.Equals(solana.SysVarRentPubkey) {
		return a.fail(anchorAccountSysvarMismatch, "rent")
	}
	return nil
}

// owned loads an Account<'info, T> field's data, checking it is initialized
// and owned by owner.
func (a *anchor) owned(i int, name string, owner solana.PublicKey) (solana.PublicKey, []byte, *InstructionError) {
	m := a.meta(i)
	acct := a.in.t.get(m.key)
	if acct.Owner.Equals(solana.SystemProgramID) && acct.Lamports == 0 {
		return m.key, nil, a.fail(anchorAccountNotInitialized, name)
	}
	if !acct.Owner.Equals(owner) {
		return m.key, nil, a.fail(anchorAccountOwnedByWrongProgram, name)
	}
	return m.key, acct.Data, nil
}

// tokenAccount is an Account<'info, TokenAccount> field.
func (a *anchor) tokenAccount(i int, name string) (solana.PublicKey, *InstructionError) {
	k, data, ierr := a.owned(i, name, solana.TokenProgramID)
	if ierr != nil {
		return k, ierr
	}
	if _, ok := DecodeTokenAccount(data); !ok {
		return k, a.fail(anchorAccountDidNotDeserialize, name)
	}
	return k, nil
}

// mint is an Account<'info, Mint> field.
func (a *anchor) mint(i int, name string) (solana.PublicKey, *InstructionError) {
	k, data, ierr := a.owned(i, name, solana.TokenProgramID)
	if ierr != nil {
		return k, ierr
	}
	if _, ok := DecodeMint(data); !ok {
		return k, a.fail(anchorAccountDidNotDeserialize, name)
	}
	return k, nil
}

// mut is the mut constraint.
func (a *anchor) mut(i int, name string) *InstructionError {
	if !a.meta(i).writable {
		return a.fail(anchorConstraintMut, name)
	}
	return nil
}

// hasOne is has_one: the field's stored key must be the account given.
func (a *anchor) hasOne(name string, stored, given solana.PublicKey) *InstructionError {
	if !stored.Equals(given) {
		return a.fail(anchorConstraintHasOne, name)
	}
	return nil
}

// seedsBump is seeds = [...], bump = stored: the address must be the one the
// seeds and bump make.
func (a *anchor) seedsBump(name string, key solana.PublicKey, bump uint8, seeds ...[]byte) *InstructionError {
	want, err := solana.CreateProgramAddress(append(seeds, []byte{bump}), a.in.program)
	if err != nil || !want.Equals(key) {
		return a.fail(anchorConstraintSeeds, name)
	}
	return nil
}

// seedsFind is seeds = [...], bump (no stored bump): the address must be the
// canonical PDA of the seeds; it returns the bump.
func (a *anchor) seedsFind(name string, key solana.PublicKey, seeds ...[]byte) (uint8, *InstructionError) {
	want, bump, err := solana.FindProgramAddress(seeds, a.in.program)
	if err != nil || !want.Equals(key) {
		return 0, a.fail(anchorConstraintSeeds, name)
	}
	return bump, nil
}

// initPDA is init with seeds, payer and space: the address must be the
// canonical PDA of the seeds; the account is created (by the system
// program, which refuses one already in use) owned by owner with space zeroed
// bytes. It returns the bump. Rent is not charged (see the package doc).
func (a *anchor) initPDA(i int, name string, payer solana.PublicKey, owner solana.PublicKey, space uint64, seeds ...[]byte) (uint8, *InstructionError) {
	m := a.meta(i)
	if !m.writable {
		return 0, a.fail(anchorConstraintMut, name)
	}
	bump, ierr := a.seedsFind(name, m.key, seeds...)
	if ierr != nil {
		return 0, ierr
	}
	cur := a.in.t.get(m.key)
	sysIn := &instr{t: a.in.t, program: solana.SystemProgramID, index: a.in.index, depth: a.in.depth + 1,
		accounts:   []meta{{key: payer, signer: true, writable: true}, {key: m.key, signer: true, writable: true}},
		pdaSigners: map[solana.PublicKey]bool{m.key: true}}
	a.in.t.log("Program %s invoke [%d]", solana.SystemProgramID, a.in.depth+1)
	rent, charge := RentExemptMinimum(space), a.in.t.c.chargeRent
	var ierr2 *InstructionError
	if cur.Lamports > 0 && len(cur.Data) == 0 && cur.Owner.Equals(solana.SystemProgramID) {
		// Pre-funded: Anchor tops it up, allocates and assigns instead of creating.
		if charge && cur.Lamports < rent {
			ierr2 = sysTransfer(sysIn, payer, m.key, rent-cur.Lamports)
		}
		if ierr2 == nil {
			cur = a.in.t.get(m.key)
			cur.Data = make([]byte, space)
			cur.Owner = owner
			a.in.t.changed[m.key] = cur
		}
	} else {
		ierr2 = sysCreateAccount(sysIn, payer, m.key, rent, space, owner, charge)
	}
	if ierr2 != nil {
		a.in.t.log("Program log: %s", ierr2.Msg)
		a.in.t.log("Program %s failed: %s", solana.SystemProgramID, failText(ierr2))
		return 0, ierr2
	}
	a.in.t.log("Program %s success", solana.SystemProgramID)
	return bump, nil
}

// initTokenPDA is init of a token account PDA with token::mint and
// token::authority.
func (a *anchor) initTokenPDA(i int, name string, payer, mint, authority solana.PublicKey, seeds ...[]byte) *InstructionError {
	if _, ierr := a.initPDA(i, name, payer, solana.TokenProgramID, TokenAccountSize, seeds...); ierr != nil {
		return ierr
	}
	key := a.meta(i).key
	tokIn := &instr{t: a.in.t, program: solana.TokenProgramID, index: a.in.index, depth: a.in.depth + 1}
	a.in.t.log("Program %s invoke [%d]", solana.TokenProgramID, a.in.depth+1)
	if ierr := initTokenAccount(tokIn, key, mint, authority); ierr != nil {
		a.in.t.log("Program %s failed: %s", solana.TokenProgramID, failText(ierr))
		return ierr
	}
	a.in.t.log("Program %s success", solana.TokenProgramID)
	return nil
}

// write serializes an account's new contents into the account (Anchor's exit),
// keeping its size; a larger serialization is AccountDidNotSerialize.
func (a *anchor) write(name string, key solana.PublicKey, enc []byte) *InstructionError {
	acct := a.in.t.get(key)
	if len(enc) > len(acct.Data) {
		return a.fail(anchorAccountDidNotSerialize, name)
	}
	copy(acct.Data, enc)
	return a.in.t.store(a.in.program, key, acct)
}

// realloc resizes an account the program owns (realloc::zero = false keeps
// the bytes it has). With rent charged, a growth's rent comes from payer (a
// system transfer) and a shrink's excess goes back to it.
func (a *anchor) realloc(name string, key, payer solana.PublicKey, size int) *InstructionError {
	acct := a.in.t.get(key)
	if size > len(acct.Data)+maxPermittedDataIncrease {
		return a.fail(anchorAccountReallocExceedsLimit, name)
	}
	if a.in.t.c.chargeRent && size != len(acct.Data) {
		need := RentExemptMinimum(uint64(size))
		switch {
		case size > len(acct.Data) && need > acct.Lamports:
			sysIn := &instr{t: a.in.t, program: solana.SystemProgramID, index: a.in.index, depth: a.in.depth + 1,
				accounts: []meta{{key: payer, signer: true, writable: true}, {key: key, writable: true}}}
			a.in.t.log("Program %s invoke [%d]", solana.SystemProgramID, a.in.depth+1)
			if ierr := sysTransfer(sysIn, payer, key, need-acct.Lamports); ierr != nil {
				a.in.t.log("Program %s failed: %s", solana.SystemProgramID, failText(ierr))
				return ierr
			}
			a.in.t.log("Program %s success", solana.SystemProgramID)
		case size < len(acct.Data) && acct.Lamports > need:
			excess := acct.Lamports - need
			acct.Lamports = need
			if ierr := a.in.t.store(a.in.program, key, acct); ierr != nil {
				return ierr
			}
			p := a.in.t.get(payer)
			p.Lamports += excess
			if ierr := a.in.t.store(a.in.program, payer, p); ierr != nil {
				return ierr
			}
		}
		acct = a.in.t.get(key)
	}
	if size <= len(acct.Data) {
		acct.Data = acct.Data[:size]
	} else {
		acct.Data = append(acct.Data, make([]byte, size-len(acct.Data))...)
	}
	return a.in.t.store(a.in.program, key, acct)
}

// programErr is one of the program's own errors, thrown by its body.
func (a *anchor) programErr(code uint32) *InstructionError {
	c := mp.ErrorCode(code)
	a.in.t.log("Program log: AnchorError thrown in programs/marketplace/src/lib.rs. Error Code: %s. Error Number: %d. Error Message: %s.", c.Name(), code, c.Message())
	return customErr(code, "")
}

// tokenTransfer is anchor_spl::token::transfer: a CPI to the token program's
// Transfer, signed by authority (a transaction signer, or the PDA made from
// signerSeeds when they are given).
func (a *anchor) tokenTransfer(from, to, authority solana.PublicKey, amount uint64, signerSeeds [][]byte) *InstructionError {
	var pdas []solana.PublicKey
	if signerSeeds != nil {
		pda, err := solana.CreateProgramAddress(signerSeeds, a.in.program)
		if err != nil {
			return progErr("InvalidSeeds", fmt.Sprintf("signer seeds make no address: %v", err))
		}
		pdas = append(pdas, pda)
	}
	data := make([]byte, 9)
	data[0] = 3 // Transfer
	for i := 0; i < 8; i++ {
		data[1+i] = byte(amount >> (8 * i))
	}
	return a.in.cpi(solana.TokenProgramID, data, pdas,
		meta{key: from, writable: a.in.t.writable[from]},
		meta{key: to, writable: a.in.t.writable[to]},
		meta{key: authority, signer: true},
	)
}
