package solanatest

import (
	"bytes"
	"fmt"
	"time"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
)

// processOpts says how far a transaction goes.
type processOpts struct {
	commit       bool // apply a successful transaction (false: simulate)
	commitFailed bool // a transaction failing in execution lands with its error and pays its fee (skipPreflight)
	verifySigs   bool
	// replaceBlockhash runs a simulation under the latest blockhash.
	replaceBlockhash bool
}

// processResult is what happened to a transaction.
type processResult struct {
	sig solana.Signature
	// rpcErr: refused before reaching the bank (undecodable, unsanitary, bad
	// signature); nothing changed.
	rpcErr *rpcError
	// preErr: refused by the bank before execution (duplicate, blockhash, fee
	// payer); nothing changed.
	preErr *TransactionError
	// err: an instruction failed; the transaction landed only if landed.
	err    *TransactionError
	logs   []string
	landed bool
	slot   uint64
	// accounts is the post-state of the touched accounts (for simulate).
	accounts map[solana.PublicKey]*Account
}

// refused is the error of a transaction that did not execute, nil if it did.
func (r *processResult) refused() error {
	if r.rpcErr != nil {
		return r.rpcErr
	}
	if r.preErr != nil {
		return r.preErr
	}
	return nil
}

type meta struct {
	key      solana.PublicKey
	signer   bool
	writable bool
}

// decodeTransaction decodes a legacy transaction and checks its shape the way
// a validator sanitizes it.
func decodeTransaction(raw []byte) (*solana.Transaction, *rpcError) {
	if len(raw) > 1232 {
		return nil, invalidParams("transaction is %d bytes, more than the packet size 1232", len(raw))
	}
	tx := new(solana.Transaction)
	dec := bin.NewBinDecoder(raw)
	if err := tx.UnmarshalWithDecoder(dec); err != nil {
		return nil, &rpcError{Code: codeInvalidParams, Message: fmt.Sprintf("failed to deserialize transaction: %v", err)}
	}
	if dec.Remaining() != 0 {
		return nil, &rpcError{Code: codeInvalidParams, Message: fmt.Sprintf("failed to deserialize transaction: %d trailing bytes", dec.Remaining())}
	}
	if tx.Message.IsVersioned() {
		return nil, &rpcError{Code: codeUnsupportedVersion, Message: "solanatest: versioned (v0) messages are not supported, send legacy messages"}
	}
	// The signatures must cover exactly the message this chain will verify.
	msg, err := tx.Message.MarshalBinary()
	if err != nil || !bytes.HasSuffix(raw, msg) {
		return nil, &rpcError{Code: codeInvalidParams, Message: "invalid transaction: message does not re-encode to the bytes sent"}
	}
	m := &tx.Message
	h := m.Header
	n := len(m.AccountKeys)
	sanitize := func(why string) *rpcError {
		return &rpcError{Code: codeInvalidParams, Message: "invalid transaction: Transaction failed to sanitize accounts offsets correctly: " + why}
	}
	switch {
	case h.NumRequiredSignatures == 0:
		return nil, sanitize("no required signatures")
	case int(h.NumRequiredSignatures) > n:
		return nil, sanitize("more required signatures than account keys")
	case h.NumReadonlySignedAccounts >= h.NumRequiredSignatures:
		return nil, sanitize("the fee payer is read-only")
	case int(h.NumReadonlyUnsignedAccounts)+int(h.NumRequiredSignatures) > n:
		return nil, sanitize("more read-only accounts than account keys")
	case len(tx.Signatures) != int(h.NumRequiredSignatures):
		return nil, sanitize(fmt.Sprintf("%d signatures for %d required signers", len(tx.Signatures), h.NumRequiredSignatures))
	}
	seen := map[solana.PublicKey]bool{}
	for _, k := range m.AccountKeys {
		if seen[k] {
			return nil, &rpcError{Code: codeInvalidParams, Message: "invalid transaction: Account loaded twice: " + k.String()}
		}
		seen[k] = true
	}
	for i, ix := range m.Instructions {
		if int(ix.ProgramIDIndex) >= n || ix.ProgramIDIndex == 0 {
			return nil, sanitize(fmt.Sprintf("instruction %d names program index %d", i, ix.ProgramIDIndex))
		}
		for _, a := range ix.Accounts {
			if int(a) >= n {
				return nil, sanitize(fmt.Sprintf("instruction %d names account index %d of %d", i, a, n))
			}
		}
	}
	return tx, nil
}

// metas says, for each account key, whether it signs and whether it is writable.
func metas(m *solana.Message) []meta {
	h := m.Header
	n := len(m.AccountKeys)
	req := int(h.NumRequiredSignatures)
	out := make([]meta, n)
	for i, k := range m.AccountKeys {
		out[i].key = k
		if i < req {
			out[i].signer = true
			out[i].writable = i < req-int(h.NumReadonlySignedAccounts)
		} else {
			out[i].writable = i-req < n-req-int(h.NumReadonlyUnsignedAccounts)
		}
	}
	return out
}

// process runs one transaction. It takes the chain's lock for the bank part.
func (c *Chain) process(raw []byte, o processOpts) processResult {
	var res processResult
	tx, rerr := decodeTransaction(raw)
	if rerr != nil {
		res.rpcErr = rerr
		return res
	}
	res.sig = tx.Signatures[0]
	if o.verifySigs {
		if err := tx.VerifySignatures(); err != nil {
			res.rpcErr = &rpcError{Code: codeSignatureVerification, Message: "Transaction signature verification failure: " + err.Error()}
			return res
		}
	}
	ms := metas(&tx.Message)
	fee := uint64(len(tx.Signatures)) * FeePerSignature

	c.mu.Lock()
	if _, dup := c.statuses[res.sig]; dup && o.commit {
		c.mu.Unlock()
		res.preErr = txErr("AlreadyProcessed")
		return res
	}
	if !o.replaceBlockhash && !c.blockhashValidLocked(tx.Message.RecentBlockhash) {
		c.mu.Unlock()
		res.preErr = txErr("BlockhashNotFound")
		return res
	}
	payer := c.accounts[ms[0].key]
	if !payer.exists() {
		c.mu.Unlock()
		res.preErr = txErr("AccountNotFound")
		return res
	}
	if payer.Lamports < fee || !payer.Owner.Equals(solana.SystemProgramID) {
		c.mu.Unlock()
		res.preErr = txErr("InsufficientFundsForFee")
		return res
	}
	for _, ix := range tx.Message.Instructions {
		p := c.accounts[ms[ix.ProgramIDIndex].key]
		if !p.exists() {
			c.mu.Unlock()
			res.preErr = txErr("ProgramAccountNotFound")
			return res
		}
		if !p.Executable {
			c.mu.Unlock()
			res.preErr = txErr("InvalidProgramForExecution")
			return res
		}
	}

	t := newTxn(c, ms)
	// The fee is taken before execution and kept on failure.
	feePayer := t.get(ms[0].key)
	feePayer.Lamports -= fee
	t.changed[ms[0].key] = feePayer
	afterFee := t.snapshot()

	for i, ix := range tx.Message.Instructions {
		in := &instr{t: t, program: ms[ix.ProgramIDIndex].key, data: ix.Data, index: i, depth: 1}
		for _, a := range ix.Accounts {
			in.accounts = append(in.accounts, ms[a])
		}
		if ierr := t.invoke(in); ierr != nil {
			res.err = &TransactionError{Index: i, Instruction: ierr}
			break
		}
	}
	res.logs = t.logs
	if res.err != nil {
		t.changed = afterFee
	}
	res.accounts = t.changed
	if !o.commit || (res.err != nil && !o.commitFailed) {
		res.slot = c.slot
		c.mu.Unlock()
		return res
	}
	changed := t.commit()
	c.newSlotLocked()
	res.slot = c.slot
	res.landed = true
	c.statuses[res.sig] = &txRecord{slot: c.slot, err: res.err, logs: res.logs, fee: fee, raw: append([]byte(nil), raw...), isTx: true, stamp: time.Now()}
	c.subs.slotDone(res.slot, changed)
	c.subs.signatureDone(res.sig, res.slot, res.err)
	c.mu.Unlock()
	return res
}

// txn is a transaction's view of the bank: reads fall through to the bank,
// writes stay here until commit.
type txn struct {
	c        *Chain
	changed  map[solana.PublicKey]*Account
	writable map[solana.PublicKey]bool
	signer   map[solana.PublicKey]bool
	logs     []string
}

func newTxn(c *Chain, ms []meta) *txn {
	t := &txn{c: c, changed: map[solana.PublicKey]*Account{}, writable: map[solana.PublicKey]bool{}, signer: map[solana.PublicKey]bool{}}
	for _, m := range ms {
		t.writable[m.key] = m.writable
		t.signer[m.key] = m.signer
	}
	return t
}

// get is a copy of the account at k as the transaction sees it; a missing
// account is an empty system account with no lamports.
func (t *txn) get(k solana.PublicKey) *Account {
	if a, ok := t.changed[k]; ok {
		return a.clone()
	}
	if a := t.c.accounts[k]; a != nil {
		return a.clone()
	}
	return &Account{Owner: solana.SystemProgramID}
}

func (t *txn) snapshot() map[solana.PublicKey]*Account {
	s := make(map[solana.PublicKey]*Account, len(t.changed))
	for k, a := range t.changed {
		s[k] = a.clone()
	}
	return s
}

// commit writes the changes into the bank (accounts left with no lamports are
// deleted) and returns the accounts that changed, nil values for deleted ones.
// The caller holds the chain's lock.
func (t *txn) commit() map[solana.PublicKey]*Account {
	out := map[solana.PublicKey]*Account{}
	for k, a := range t.changed {
		old := t.c.accounts[k]
		if a.Lamports == 0 {
			if old != nil {
				delete(t.c.accounts, k)
				out[k] = nil
			}
			continue
		}
		if old != nil && old.Lamports == a.Lamports && old.Owner == a.Owner && old.Executable == a.Executable && bytes.Equal(old.Data, a.Data) {
			continue
		}
		t.c.accounts[k] = a.clone()
		out[k] = a.clone()
	}
	return out
}

func (t *txn) log(format string, args ...any) {
	t.logs = append(t.logs, fmt.Sprintf(format, args...))
}

// store writes after as the account at k on behalf of program, enforcing the
// runtime's rules: only writable accounts change; only the owner program
// changes data or debits lamports; the owner changes only by the owner, on an
// account whose data is zeroed.
func (t *txn) store(program, k solana.PublicKey, after *Account) *InstructionError {
	before := t.get(k)
	sameData := bytes.Equal(before.Data, after.Data)
	if before.Lamports == after.Lamports && before.Owner == after.Owner && sameData {
		return nil
	}
	if !t.writable[k] {
		if before.Lamports != after.Lamports {
			return progErr("ReadonlyLamportChange", "instruction changed the balance of a read-only account "+k.String())
		}
		return progErr("ReadonlyDataModified", "instruction modified data of a read-only account "+k.String())
	}
	owned := before.Owner.Equals(program)
	if before.Owner != after.Owner {
		if !owned {
			return progErr("ModifiedProgramId", "instruction illegally modified the program id of account "+k.String())
		}
		for _, b := range before.Data {
			if b != 0 {
				return progErr("ModifiedProgramId", "instruction changed the owner of "+k.String()+" whose data is not zeroed")
			}
		}
	}
	if !sameData && !owned {
		if len(before.Data) != len(after.Data) {
			return progErr("AccountDataSizeChanged", "instruction changed the size of account "+k.String()+" it does not own")
		}
		return progErr("ExternalAccountDataModified", "instruction modified data of account "+k.String()+" it does not own")
	}
	if after.Lamports < before.Lamports && !owned {
		return progErr("ExternalAccountLamportSpend", "instruction spent from the balance of account "+k.String()+" it does not own")
	}
	t.changed[k] = after.clone()
	return nil
}

// instr is one executing instruction (top-level or a CPI).
type instr struct {
	t        *txn
	program  solana.PublicKey
	accounts []meta
	data     []byte
	index    int // top-level instruction index
	depth    int
	// pdaSigners are the addresses a calling program signed for (invoke_signed).
	pdaSigners map[solana.PublicKey]bool
}

// maxInvokeDepth is the runtime's limit on CPI nesting.
const maxInvokeDepth = 4

func (t *txn) invoke(in *instr) *InstructionError {
	if in.depth > maxInvokeDepth {
		return progErr("CallDepth", "cross-program invocation nested too deep")
	}
	t.log("Program %s invoke [%d]", in.program, in.depth)
	var err *InstructionError
	switch {
	case in.program.Equals(solana.SystemProgramID):
		err = execSystem(in)
	case in.program.Equals(solana.TokenProgramID):
		err = execToken(in)
	case in.program.Equals(solana.SPLAssociatedTokenAccountProgramID):
		err = execATA(in)
	case in.program.Equals(solana.ComputeBudget):
		// Compute budget requests are accepted and have no effect here.
	case in.program.Equals(t.c.programID):
		err = execMarketplace(in)
	default:
		err = progErr("UnsupportedProgramId", "solanatest does not execute program "+in.program.String())
	}
	if err != nil {
		if err.Msg != "" && !err.IsCustom {
			t.log("Program log: %s", err.Msg)
		}
		t.log("Program %s failed: %s", in.program, failText(err))
		return err
	}
	t.log("Program %s success", in.program)
	return nil
}

func failText(e *InstructionError) string {
	if e.IsCustom {
		return fmt.Sprintf("custom program error: 0x%x", e.Custom)
	}
	return e.Name
}

// signed says whether k signed this instruction: a transaction signer the
// instruction marks as signer, or an address the calling program signed for.
func (in *instr) signed(k solana.PublicKey) bool {
	if in.pdaSigners[k] {
		return true
	}
	for _, a := range in.accounts {
		if a.key.Equals(k) && a.signer {
			return true
		}
	}
	return false
}

// account is the instruction's i-th account.
func (in *instr) account(i int) (meta, *InstructionError) {
	if i >= len(in.accounts) {
		return meta{}, progErr("NotEnoughAccountKeys", fmt.Sprintf("instruction needs at least %d accounts, got %d", i+1, len(in.accounts)))
	}
	return in.accounts[i], nil
}

// cpi makes an instruction of program called from in, with the accounts'
// signer flags inherited (and signers the caller signed for added).
func (in *instr) cpi(program solana.PublicKey, data []byte, pdaSigners []solana.PublicKey, accounts ...meta) *InstructionError {
	sub := &instr{t: in.t, program: program, data: data, index: in.index, depth: in.depth + 1, pdaSigners: map[solana.PublicKey]bool{}}
	for _, p := range pdaSigners {
		sub.pdaSigners[p] = true
	}
	for _, a := range accounts {
		// A CPI cannot raise privileges: a signer must have signed the caller
		// (or be signed for by it), a writable account must be writable in the
		// transaction.
		if a.signer && !in.signed(a.key) && !sub.pdaSigners[a.key] {
			return progErr("PrivilegeEscalation", "cross-program invocation with unauthorized signer "+a.key.String())
		}
		if a.writable && !in.t.writable[a.key] {
			return progErr("PrivilegeEscalation", "cross-program invocation with unauthorized writable account "+a.key.String())
		}
		if sub.pdaSigners[a.key] {
			a.signer = true
		}
		sub.accounts = append(sub.accounts, a)
	}
	return in.t.invoke(sub)
}
