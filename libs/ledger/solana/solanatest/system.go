package solanatest

import (
	"fmt"

	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/system"
)

// The system program's custom error codes (SystemError).
const (
	sysErrAccountAlreadyInUse        = 0
	sysErrResultWithNegativeLamports = 1
	sysErrInvalidAccountDataLength   = 3
)

func toSolanaMetas(ms []meta) []*solana.AccountMeta {
	out := make([]*solana.AccountMeta, len(ms))
	for i, m := range ms {
		out[i] = &solana.AccountMeta{PublicKey: m.key, IsSigner: m.signer, IsWritable: m.writable}
	}
	return out
}

// execSystem runs the system program's CreateAccount, Transfer and Assign.
func execSystem(in *instr) *InstructionError {
	if len(in.data) < 4 {
		return progErr("InvalidInstructionData", "system instruction shorter than its 4-byte tag")
	}
	dec, err := system.DecodeInstruction(toSolanaMetas(in.accounts), in.data)
	if err != nil {
		if len(in.accounts) == 0 {
			return progErr("NotEnoughAccountKeys", "system instruction: "+err.Error())
		}
		return progErr("InvalidInstructionData", "system instruction: "+err.Error())
	}
	switch ix := dec.Impl.(type) {
	case *system.CreateAccount:
		from, err := in.account(0)
		if err != nil {
			return err
		}
		to, err := in.account(1)
		if err != nil {
			return err
		}
		return sysCreateAccount(in, from.key, to.key, *ix.Lamports, *ix.Space, *ix.Owner, true)
	case *system.Transfer:
		from, err := in.account(0)
		if err != nil {
			return err
		}
		to, err := in.account(1)
		if err != nil {
			return err
		}
		return sysTransfer(in, from.key, to.key, *ix.Lamports)
	case *system.Assign:
		acct, err := in.account(0)
		if err != nil {
			return err
		}
		a := in.t.get(acct.key)
		if a.Owner.Equals(*ix.Owner) {
			return nil
		}
		if !in.signed(acct.key) {
			return progErr("MissingRequiredSignature", "Assign: account "+acct.key.String()+" must sign")
		}
		a.Owner = *ix.Owner
		return in.t.store(solana.SystemProgramID, acct.key, a)
	default:
		return progErr("InvalidInstructionData", fmt.Sprintf("solanatest does not execute system instruction %s", system.InstructionIDToName(dec.TypeID.Uint32())))
	}
}

// sysCreateAccount creates the account to (which must sign) with space zeroed
// bytes owned by owner, moving lamports from from (which must sign) when
// debit is true; with debit false the lamports are credited from nowhere
// (rent this chain does not charge).
func sysCreateAccount(in *instr, from, to solana.PublicKey, lamports, space uint64, owner solana.PublicKey, debit bool) *InstructionError {
	if debit && !in.signed(from) {
		return progErr("MissingRequiredSignature", "CreateAccount: funding account "+from.String()+" must sign")
	}
	if !in.signed(to) {
		return progErr("MissingRequiredSignature", "CreateAccount: new account "+to.String()+" must sign")
	}
	a := in.t.get(to)
	if a.Lamports > 0 || len(a.Data) > 0 || !a.Owner.Equals(solana.SystemProgramID) {
		return customErr(sysErrAccountAlreadyInUse, fmt.Sprintf("Create Account: account Address { address: %s, base: None } already in use", to))
	}
	if space > maxAccountDataLen {
		return customErr(sysErrInvalidAccountDataLength, fmt.Sprintf("Create Account: %d bytes is more than %d", space, maxAccountDataLen))
	}
	if debit {
		if ierr := sysTransfer(in, from, to, lamports); ierr != nil {
			return ierr
		}
		a = in.t.get(to)
	} else {
		a.Lamports += lamports
	}
	a.Data = make([]byte, space)
	a.Owner = owner
	// The system program owns the account until it assigns it, so this store
	// is the system program's.
	if !in.t.writable[to] {
		return progErr("ReadonlyDataModified", "CreateAccount: new account "+to.String()+" is not writable")
	}
	in.t.changed[to] = a
	return nil
}

// sysTransfer moves lamports from a system account that signs.
func sysTransfer(in *instr, from, to solana.PublicKey, lamports uint64) *InstructionError {
	if !in.signed(from) {
		return progErr("MissingRequiredSignature", "Transfer: `from` account "+from.String()+" must sign")
	}
	f := in.t.get(from)
	if len(f.Data) > 0 {
		return progErr("InvalidArgument", "Transfer: `from` must not carry data")
	}
	if !f.Owner.Equals(solana.SystemProgramID) {
		return progErr("InvalidArgument", "Transfer: `from` must be owned by the system program")
	}
	if f.Lamports < lamports {
		return customErr(sysErrResultWithNegativeLamports, fmt.Sprintf("Transfer: insufficient lamports %d, need %d", f.Lamports, lamports))
	}
	if from.Equals(to) {
		return nil
	}
	f.Lamports -= lamports
	if ierr := in.t.store(solana.SystemProgramID, from, f); ierr != nil {
		return ierr
	}
	d := in.t.get(to)
	if d.Lamports+lamports < d.Lamports {
		return progErr("ArithmeticOverflow", "Transfer: recipient balance overflows")
	}
	d.Lamports += lamports
	return in.t.store(solana.SystemProgramID, to, d)
}
