package solanatest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/system"
	"github.com/gagliardetto/solana-go/programs/token"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/jsonrpc"
	"github.com/mr-tron/base58"
)

func TestSystemTransfer_MovesLamportsAndChargesTheFee(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	slot := e.chain.Slot()
	sig := e.send([]solana.Instruction{system.NewTransferInstruction(1234, e.payer.PublicKey(), to).Build()})
	if got, want := e.lamports(e.payer.PublicKey()), uint64(10*sol-1234-FeePerSignature); got != want {
		t.Errorf("payer has %d lamports, want %d", got, want)
	}
	if got := e.lamports(to); got != 1234 {
		t.Errorf("recipient has %d lamports, want 1234", got)
	}
	st, _, ok := e.chain.SignatureStatus(sig)
	if !ok || st != slot+1 {
		t.Errorf("status slot %d (known %v), want the next slot %d", st, ok, slot+1)
	}
}

func TestSignatures_FlippedByteWrongKeyAndMissingSignerAreRefused(t *testing.T) {
	e := newEnv(t)
	other := newKey(t)
	e.airdrop(other.PublicKey(), sol)
	to := newKey(t).PublicKey()
	// A transfer from other, so it needs other's signature beside the payer's.
	ixs := []solana.Instruction{system.NewTransferInstruction(5, other.PublicKey(), to).Build()}
	before := e.lamports(e.payer.PublicKey())

	flipped := e.tx(ixs, other)
	flipped.Signatures[1][7] ^= 1

	wrongKey := e.tx(ixs, other)
	msg, _ := wrongKey.Message.MarshalBinary()
	impostor := newKey(t)
	s, _ := impostor.Sign(msg)
	wrongKey.Signatures[1] = s

	missing := e.tx(ixs, other)
	missing.Signatures[1] = solana.Signature{}

	for name, tx := range map[string]*solana.Transaction{"flipped byte": flipped, "wrong key": wrongKey, "missing signer": missing} {
		re := e.sendTxErr(tx)
		if re.Code != codeSignatureVerification {
			t.Errorf("%s: code %d (%s), want -32003", name, re.Code, re.Message)
		}
	}
	// A signature left out of the wire bytes altogether is a malformed
	// transaction (solana-go pads a short list with zeros, so build the bytes).
	short := e.tx(ixs, other)
	msgBytes, _ := short.Message.MarshalBinary()
	wire := append(append([]byte{1}, short.Signatures[0][:]...), msgBytes...)
	var out string
	var re *jsonrpc.RPCError
	err := e.rpc.RPCCallForInto(e.ctx, &out, "sendTransaction", []any{base64.StdEncoding.EncodeToString(wire), map[string]any{"encoding": "base64"}})
	if !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("one signature short: %v, want -32602", err)
	}
	if got := e.lamports(e.payer.PublicKey()); got != before {
		t.Errorf("payer has %d lamports after refused transactions, want %d (no fee)", got, before)
	}
	if got := e.lamports(to); got != 0 {
		t.Errorf("recipient has %d lamports, want 0", got)
	}
}

func TestBlockhash_StaleAndUnknownBlockhashesAreRefused(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	ixs := []solana.Instruction{system.NewTransferInstruction(5, e.payer.PublicKey(), to).Build()}
	stale := e.tx(ixs)
	e.chain.ExpireBlockhashes()
	valid, err := e.rpc.IsBlockhashValid(e.ctx, stale.Message.RecentBlockhash, rpc.CommitmentFinalized)
	if err != nil || valid.Value {
		t.Fatalf("isBlockhashValid of an expired hash = %v, %v; want false", valid, err)
	}
	if got := preflightErr(t, e.sendTxErr(stale)); got != `"BlockhashNotFound"` {
		t.Errorf("stale blockhash: err %s, want \"BlockhashNotFound\"", got)
	}
	unknown := e.tx(ixs)
	unknown.Message.RecentBlockhash = solana.HashFromBytes(bytes.Repeat([]byte{7}, 32))
	unknown.Signatures = nil
	if _, err := unknown.Sign(func(solana.PublicKey) *solana.PrivateKey { return &e.payer }); err != nil {
		t.Fatal(err)
	}
	if got := preflightErr(t, e.sendTxErr(unknown)); got != `"BlockhashNotFound"` {
		t.Errorf("unknown blockhash: err %s, want \"BlockhashNotFound\"", got)
	}
	// Re-signed under the new blockhash, it lands.
	e.send(ixs)
	if got := e.lamports(to); got != 5 {
		t.Errorf("recipient has %d, want 5", got)
	}
}

func TestBlockhash_ExpiresAfterMaxAgeSlots(t *testing.T) {
	c := New(testProgramID)
	payer := newKey(t)
	if _, err := c.Airdrop(payer.PublicKey(), sol); err != nil {
		t.Fatal(err)
	}
	old := c.LatestBlockhash()
	c.AdvanceSlots(MaxBlockhashAge - 1)
	if _, err := c.Airdrop(newKey(t).PublicKey(), 1); err != nil {
		t.Fatal(err)
	}
	tx, _ := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(1, payer.PublicKey(), newKey(t).PublicKey()).Build()}, old, solana.TransactionPayer(payer.PublicKey()))
	if _, err := tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &payer }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubmitTransaction(tx); err != nil {
		t.Fatalf("a blockhash %d slots old: %v, want accepted", MaxBlockhashAge, err)
	}
	if _, err := c.Airdrop(newKey(t).PublicKey(), 1); err != nil {
		t.Fatal(err)
	}
	tx2, _ := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(2, payer.PublicKey(), newKey(t).PublicKey()).Build()}, old, solana.TransactionPayer(payer.PublicKey()))
	if _, err := tx2.Sign(func(solana.PublicKey) *solana.PrivateKey { return &payer }); err != nil {
		t.Fatal(err)
	}
	_, err := c.SubmitTransaction(tx2)
	var te *TransactionError
	if !errors.As(err, &te) || te.Kind != "BlockhashNotFound" {
		t.Fatalf("a blockhash %d slots old: %v, want BlockhashNotFound", MaxBlockhashAge+2, err)
	}
}

func TestSend_DuplicateAndUnfundedFeePayer(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	tx := e.tx([]solana.Instruction{system.NewTransferInstruction(5, e.payer.PublicKey(), to).Build()})
	if _, err := e.rpc.SendTransaction(e.ctx, tx); err != nil {
		t.Fatal(err)
	}
	if got := preflightErr(t, e.sendTxErr(tx)); got != `"AlreadyProcessed"` {
		t.Errorf("resent: err %s, want \"AlreadyProcessed\"", got)
	}
	if got := e.lamports(to); got != 5 {
		t.Errorf("recipient has %d, want 5 (once)", got)
	}

	poor := newKey(t)
	bh := e.chain.LatestBlockhash()
	mk := func() *solana.Transaction {
		tx, _ := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(1, poor.PublicKey(), to).Build()}, bh, solana.TransactionPayer(poor.PublicKey()))
		if _, err := tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &poor }); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	if got := preflightErr(t, e.sendTxErr(mk())); got != `"AccountNotFound"` {
		t.Errorf("unfunded payer: err %s, want \"AccountNotFound\"", got)
	}
	if _, err := e.chain.Airdrop(poor.PublicKey(), FeePerSignature-1); err != nil {
		t.Fatal(err)
	}
	bh = e.chain.LatestBlockhash()
	if got := preflightErr(t, e.sendTxErr(mk())); got != `"InsufficientFundsForFee"` {
		t.Errorf("payer short of the fee: err %s, want \"InsufficientFundsForFee\"", got)
	}
}

func TestFailingTransaction_ChangesNothingButSkipPreflightPaysTheFee(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	poor := newKey(t)
	e.airdrop(poor.PublicKey(), 10)
	// The first instruction succeeds, the second fails: nothing of the first stays.
	ixs := []solana.Instruction{
		system.NewTransferInstruction(7, e.payer.PublicKey(), to).Build(),
		system.NewTransferInstruction(11, poor.PublicKey(), to).Build(),
	}
	before := e.lamports(e.payer.PublicKey())
	slot := e.chain.Slot()
	if got, want := preflightErr(t, e.sendErr(ixs, poor)), customErrJSON(1, sysErrResultWithNegativeLamports); got != want {
		t.Errorf("err %s, want %s", got, want)
	}
	if e.lamports(to) != 0 || e.lamports(e.payer.PublicKey()) != before || e.chain.Slot() != slot {
		t.Errorf("a refused transaction changed the bank: recipient %d, payer %d (was %d), slot %d (was %d)",
			e.lamports(to), e.lamports(e.payer.PublicKey()), before, e.chain.Slot(), slot)
	}

	tx := e.tx(ixs, poor)
	sig, err := e.rpc.SendTransactionWithOpts(e.ctx, tx, rpc.TransactionOpts{SkipPreflight: true})
	if err != nil {
		t.Fatalf("skipPreflight send: %v", err)
	}
	st, err := e.rpc.GetSignatureStatuses(e.ctx, false, sig)
	if err != nil || st.Value[0] == nil {
		t.Fatalf("status: %v %v", st, err)
	}
	b, _ := json.Marshal(st.Value[0].Err)
	if string(b) != customErrJSON(1, sysErrResultWithNegativeLamports) {
		t.Errorf("landed status err %s", b)
	}
	if got, want := e.lamports(e.payer.PublicKey()), before-2*FeePerSignature; got != want {
		t.Errorf("payer %d after a landed failure, want %d (the fee for two signatures)", got, want)
	}
	if e.lamports(to) != 0 || e.lamports(poor.PublicKey()) != 10 {
		t.Errorf("a landed failure moved lamports: recipient %d, poor %d", e.lamports(to), e.lamports(poor.PublicKey()))
	}
}

func TestToken_MintTransferAndRefusalsWithExactBalances(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint := e.newMint(auth.PublicKey(), 6)
	m, ok := e.chain.Account(mint)
	if !ok || len(m.Data) != MintSize || !m.Owner.Equals(solana.TokenProgramID) {
		t.Fatalf("mint account %+v", m)
	}
	alice, bob := newKey(t), newKey(t)
	a := e.newATA(alice.PublicKey(), mint)
	b := e.newATA(bob.PublicKey(), mint)
	acct, _ := e.chain.Account(a)
	if len(acct.Data) != TokenAccountSize {
		t.Fatalf("token account has %d bytes, want 165", len(acct.Data))
	}
	e.send([]solana.Instruction{token.NewMintToInstruction(1_000_000, mint, a, auth.PublicKey(), nil).Build()}, auth)
	e.send([]solana.Instruction{token.NewTransferInstruction(300_000, a, b, alice.PublicKey(), nil).Build()}, alice)
	e.send([]solana.Instruction{token.NewTransferCheckedInstruction(1, 6, a, mint, b, alice.PublicKey(), nil).Build()}, alice)
	if got := e.tokenAmount(a); got != "699999" {
		t.Errorf("alice has %s, want 699999", got)
	}
	if got := e.tokenAmount(b); got != "300001" {
		t.Errorf("bob has %s, want 300001", got)
	}
	bal, _ := e.rpc.GetTokenAccountBalance(e.ctx, b, "")
	if bal.Value.Decimals != 6 || bal.Value.UiAmountString != "0.300001" {
		t.Errorf("ui amount %+v", bal.Value)
	}
	mm, _ := DecodeMint(e.mustAccount(mint).Data)
	if mm.Supply != 1_000_000 {
		t.Errorf("supply %d, want 1000000", mm.Supply)
	}

	cases := []struct {
		name string
		ix   solana.Instruction
		sign []solana.PrivateKey
		want string
	}{
		{"more than the balance", token.NewTransferInstruction(700_000, a, b, alice.PublicKey(), nil).Build(), []solana.PrivateKey{alice}, customErrJSON(0, tokErrInsufficientFunds)},
		{"not the owner", token.NewTransferInstruction(1, a, b, bob.PublicKey(), nil).Build(), []solana.PrivateKey{bob}, customErrJSON(0, tokErrOwnerMismatch)},
		{"wrong decimals", token.NewTransferCheckedInstruction(1, 2, a, mint, b, alice.PublicKey(), nil).Build(), []solana.PrivateKey{alice}, customErrJSON(0, tokErrMintDecimalsMismatch)},
		{"not the mint authority", token.NewMintToInstruction(1, mint, a, alice.PublicKey(), nil).Build(), []solana.PrivateKey{alice}, customErrJSON(0, tokErrOwnerMismatch)},
	}
	for _, tc := range cases {
		if got := preflightErr(t, e.sendErr([]solana.Instruction{tc.ix}, tc.sign...)); got != tc.want {
			t.Errorf("%s: err %s, want %s", tc.name, got, tc.want)
		}
	}
	// An owner that does not sign: the instruction marks it signer, so the
	// transaction needs its signature; a hand-made one without the flag fails in
	// the program.
	unsigned := solana.NewInstruction(solana.TokenProgramID, solana.AccountMetaSlice{
		solana.Meta(a).WRITE(), solana.Meta(b).WRITE(), solana.Meta(alice.PublicKey()),
	}, append([]byte{token.Instruction_Transfer}, 1, 0, 0, 0, 0, 0, 0, 0))
	if got := preflightErr(t, e.sendErr([]solana.Instruction{unsigned})); got != `{"InstructionError":[0,"MissingRequiredSignature"]}` {
		t.Errorf("owner not signing: err %s", got)
	}
	if e.tokenAmount(a) != "699999" || e.tokenAmount(b) != "300001" {
		t.Errorf("refusals moved tokens: alice %s bob %s", e.tokenAmount(a), e.tokenAmount(b))
	}
}

func (e *env) mustAccount(k solana.PublicKey) Account {
	e.t.Helper()
	a, ok := e.chain.Account(k)
	if !ok {
		e.t.Fatalf("no account %s", k)
	}
	return a
}

func TestATA_AddressIsCheckedAndCreateIdempotentTolerates(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint := e.newMint(auth.PublicKey(), 0)
	w := newKey(t).PublicKey()
	// CreateIdempotent creates, then tolerates the existing account.
	e.send([]solana.Instruction{createIdempotent(e.payer.PublicKey(), w, mint)})
	e.send([]solana.Instruction{createIdempotent(e.payer.PublicKey(), w, mint)})
	ata, _, _ := solana.FindAssociatedTokenAddress(w, mint)
	if got := e.tokenAmount(ata); got != "0" {
		t.Errorf("ata amount %s", got)
	}
	ta, _ := DecodeTokenAccount(e.mustAccount(ata).Data)
	if !ta.Owner.Equals(w) || !ta.Mint.Equals(mint) {
		t.Errorf("ata holds owner %s mint %s", ta.Owner, ta.Mint)
	}
	// Create on an existing account fails in the system program.
	if got := preflightErr(t, e.sendErr([]solana.Instruction{createWith(e.payer.PublicKey(), ata, w, mint, nil)})); got != customErrJSON(0, sysErrAccountAlreadyInUse) {
		t.Errorf("Create of an existing ata: err %s", got)
	}
	// An address that is not the derived one.
	wrong := newKey(t).PublicKey()
	if got := preflightErr(t, e.sendErr([]solana.Instruction{createWith(e.payer.PublicKey(), wrong, w, mint, nil)})); got != `{"InstructionError":[0,"InvalidSeeds"]}` {
		t.Errorf("Create at a wrong address: err %s", got)
	}
}

func createWith(payer, ata, wallet, mint solana.PublicKey, data []byte) solana.Instruction {
	return solana.NewInstruction(solana.SPLAssociatedTokenAccountProgramID, solana.AccountMetaSlice{
		solana.Meta(payer).WRITE().SIGNER(), solana.Meta(ata).WRITE(), solana.Meta(wallet), solana.Meta(mint),
		solana.Meta(solana.SystemProgramID), solana.Meta(solana.TokenProgramID),
	}, data)
}

func TestRuntime_ReadOnlyAndForeignAccountsCannotChange(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint := e.newMint(auth.PublicKey(), 0)
	alice := newKey(t)
	a := e.newATA(alice.PublicKey(), mint)
	e.send([]solana.Instruction{token.NewMintToInstruction(10, mint, a, auth.PublicKey(), nil).Build()}, auth)
	b := e.newATA(newKey(t).PublicKey(), mint)
	// The destination passed read-only.
	ro := solana.NewInstruction(solana.TokenProgramID, solana.AccountMetaSlice{
		solana.Meta(a).WRITE(), solana.Meta(b), solana.Meta(alice.PublicKey()).SIGNER(),
	}, append([]byte{token.Instruction_Transfer}, 1, 0, 0, 0, 0, 0, 0, 0))
	if got := preflightErr(t, e.sendErr([]solana.Instruction{ro}, alice)); got != `{"InstructionError":[0,"ReadonlyDataModified"]}` {
		t.Errorf("read-only destination: err %s", got)
	}
	// The system program does not move lamports of an account it does not own.
	held := newKey(t)
	e.send([]solana.Instruction{system.NewCreateAccountInstruction(1000, 0, solana.TokenProgramID, e.payer.PublicKey(), held.PublicKey()).Build()}, held)
	sp := system.NewTransferInstruction(1, held.PublicKey(), newKey(t).PublicKey()).Build()
	if got := preflightErr(t, e.sendErr([]solana.Instruction{sp}, held)); got != `{"InstructionError":[0,"InvalidArgument"]}` {
		t.Errorf("spending a token-program account's lamports: err %s", got)
	}
	// The runtime's rule, below the programs: an instruction may not debit an
	// account its program does not own.
	tx := newTxn(e.chain, []meta{{key: held.PublicKey(), signer: true, writable: true}})
	after := tx.get(held.PublicKey())
	after.Lamports--
	if ierr := tx.store(solana.SystemProgramID, held.PublicKey(), after); ierr == nil || ierr.Name != "ExternalAccountLamportSpend" {
		t.Errorf("runtime let the system program debit a token-program account: %v", ierr)
	}
}

func TestGetProgramAccounts_FiltersInBase58AndBase64(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint1 := e.newMint(auth.PublicKey(), 0)
	mint2 := e.newMint(auth.PublicKey(), 0)
	w := newKey(t).PublicKey()
	a1 := e.newATA(w, mint1)
	a2 := e.newATA(w, mint2)
	a3 := e.newATA(newKey(t).PublicKey(), mint1)

	// solana-go sends memcmp bytes in base58.
	got, err := e.rpc.GetProgramAccountsWithOpts(e.ctx, solana.TokenProgramID, &rpc.GetProgramAccountsOpts{
		Encoding: solana.EncodingBase64,
		Filters: []rpc.RPCFilter{
			{DataSize: TokenAccountSize},
			{Memcmp: &rpc.RPCFilterMemcmp{Offset: 32, Bytes: w.Bytes()}},
		},
	})
	if err != nil {
		t.Fatalf("getProgramAccounts: %v", err)
	}
	keys := map[solana.PublicKey]bool{}
	for _, ka := range got {
		keys[ka.Pubkey] = true
		if ta, ok := DecodeTokenAccount(ka.Account.Data.GetBinary()); !ok || !ta.Owner.Equals(w) {
			t.Errorf("%s: data does not decode as w's token account", ka.Pubkey)
		}
	}
	if len(keys) != 2 || !keys[a1] || !keys[a2] {
		t.Errorf("owner filter gave %v, want %s and %s", keys, a1, a2)
	}
	// Base64 memcmp bytes, raw request; and the mints by size.
	var raw []struct {
		Pubkey string `json:"pubkey"`
	}
	cfg := map[string]any{"encoding": "base64", "filters": []any{
		map[string]any{"memcmp": map[string]any{"offset": 0, "bytes": base64.StdEncoding.EncodeToString(mint1[:]), "encoding": "base64"}},
	}}
	if err := e.rpc.RPCCallForInto(e.ctx, &raw, "getProgramAccounts", []any{solana.TokenProgramID.String(), cfg}); err != nil {
		t.Fatalf("getProgramAccounts base64 memcmp: %v", err)
	}
	if len(raw) != 2 {
		t.Errorf("mint1 filter matched %d accounts (%v), want mint1's 2 token accounts", len(raw), raw)
	}
	seen := map[string]bool{}
	for _, r := range raw {
		seen[r.Pubkey] = true
	}
	// mint1's own account does not hold its key at offset 0; the two token
	// accounts of mint1 do, and mint2's ata does not.
	if !seen[a1.String()] || !seen[a3.String()] || seen[a2.String()] {
		t.Errorf("mint1 filter gave %v", seen)
	}
	mints, err := e.rpc.GetProgramAccountsWithOpts(e.ctx, solana.TokenProgramID, &rpc.GetProgramAccountsOpts{
		Filters: []rpc.RPCFilter{{DataSize: MintSize}},
	})
	if err != nil || len(mints) != 2 {
		t.Errorf("dataSize 82 gave %d accounts (%v), want the 2 mints", len(mints), err)
	}
	// A bad filter is a -32602.
	var re *jsonrpc.RPCError
	err = e.rpc.RPCCallForInto(e.ctx, &raw, "getProgramAccounts", []any{solana.TokenProgramID.String(), map[string]any{"filters": []any{map[string]any{"memcmp": map[string]any{"offset": 0, "bytes": "0OIl"}}}}})
	if !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("bad base58 memcmp: %v, want -32602", err)
	}
}

func TestRPC_AccountInfoShapesAndErrors(t *testing.T) {
	e := newEnv(t)
	_, err := e.rpc.GetAccountInfo(e.ctx, newKey(t).PublicKey())
	if !errors.Is(err, rpc.ErrNotFound) {
		t.Errorf("missing account: %v, want rpc.ErrNotFound (a null value)", err)
	}
	ai, err := e.rpc.GetAccountInfo(e.ctx, e.payer.PublicKey())
	if err != nil || ai.Value.Lamports != 10*sol || !ai.Value.Owner.Equals(solana.SystemProgramID) {
		t.Errorf("payer account %+v, %v", ai, err)
	}
	ma, err := e.rpc.GetMultipleAccounts(e.ctx, e.payer.PublicKey(), newKey(t).PublicKey())
	if err != nil || len(ma.Value) != 2 || ma.Value[0] == nil || ma.Value[1] != nil {
		t.Errorf("getMultipleAccounts %+v, %v", ma, err)
	}
	if v, err := e.rpc.GetVersion(e.ctx); err != nil || v.SolanaCore == "" {
		t.Errorf("getVersion %+v %v", v, err)
	}
	if h, err := e.rpc.GetHealth(e.ctx); err != nil || h != rpc.HealthOk {
		t.Errorf("getHealth %q %v", h, err)
	}
	if n, err := e.rpc.GetMinimumBalanceForRentExemption(e.ctx, 165, ""); err != nil || n != 2039280 {
		t.Errorf("rent-exempt minimum for 165 bytes %d %v, want 2039280", n, err)
	}
	var out any
	var re *jsonrpc.RPCError
	if err := e.rpc.RPCCallForInto(e.ctx, &out, "getNoSuchThing", nil); !errors.As(err, &re) || re.Code != codeMethodNotFound {
		t.Errorf("unknown method: %v, want -32601", err)
	}
	if err := e.rpc.RPCCallForInto(e.ctx, &out, "getAccountInfo", []any{"not-a-key"}); !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("bad pubkey: %v, want -32602", err)
	}
	if err := e.rpc.RPCCallForInto(e.ctx, &out, "getAccountInfo", []any{e.payer.PublicKey().String(), map[string]any{"encoding": "jsonParsed"}}); !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("jsonParsed: %v, want -32602", err)
	}
	if err := e.rpc.RPCCallForInto(e.ctx, &out, "getSlot", []any{map[string]any{"commitment": "soon"}}); !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("bad commitment: %v, want -32602", err)
	}
}

func TestRPC_EnvelopeEchoesIDsAndHasNoOtherFields(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{`"6f1c1d2e-aaaa-4bbb-8ccc-0123456789ab"`, `9007199254740993`, `null`} {
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"getSlot"}`
		resp, err := http.Post(e.chain.RPCURL(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		dec := json.NewDecoder(resp.Body)
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if string(m["id"]) != id {
			t.Errorf("id %s echoed as %s", id, m["id"])
		}
		for k := range m {
			if k != "jsonrpc" && k != "id" && k != "result" {
				t.Errorf("reply has field %q", k)
			}
		}
	}
	// A batch answers each request.
	resp, err := http.Post(e.chain.RPCURL(), "application/json", strings.NewReader(`[{"jsonrpc":"2.0","id":1,"method":"getSlot"},{"jsonrpc":"2.0","id":2,"method":"nope"}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var batch []rpcResponse
	if err := json.NewDecoder(resp.Body).Decode(&batch); err != nil || len(batch) != 2 || batch[1].Error == nil || batch[1].Error.Code != codeMethodNotFound {
		t.Errorf("batch reply %+v %v", batch, err)
	}
}

func TestSendFaults_RefuseDropAndLoseReply(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	ix := func(n uint64) []solana.Instruction {
		return []solana.Instruction{system.NewTransferInstruction(n, e.payer.PublicKey(), to).Build()}
	}
	e.chain.RefuseSends(1)
	if re := e.sendErr(ix(1)); re.Code != codeNodeUnhealthy {
		t.Errorf("refused send: code %d, want -32005", re.Code)
	}
	e.chain.DropSends(1)
	dropped := e.tx(ix(2))
	sig, err := e.rpc.SendTransaction(e.ctx, dropped)
	if err != nil || sig != dropped.Signatures[0] {
		t.Fatalf("dropped send answered %s, %v; want its signature", sig, err)
	}
	st, _ := e.rpc.GetSignatureStatuses(e.ctx, false, sig)
	if st.Value[0] != nil {
		t.Errorf("a dropped transaction has status %+v", st.Value[0])
	}
	e.chain.LoseSendReplies(1)
	lost := e.tx(ix(4))
	_, err = e.rpc.SendTransaction(e.ctx, lost)
	var he *jsonrpc.HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusServiceUnavailable {
		t.Errorf("lost reply: %v, want an HTTP 503", err)
	}
	st, _ = e.rpc.GetSignatureStatuses(e.ctx, false, lost.Signatures[0])
	if st.Value[0] == nil || st.Value[0].Err != nil {
		t.Errorf("a transaction whose reply was lost has status %+v, want landed", st.Value[0])
	}
	// Resending it is AlreadyProcessed; the dropped one can be resent and lands.
	if got := preflightErr(t, e.sendTxErr(lost)); got != `"AlreadyProcessed"` {
		t.Errorf("resent lost-reply transaction: %s", got)
	}
	if _, err := e.rpc.SendTransaction(e.ctx, dropped); err != nil {
		t.Errorf("resent dropped transaction: %v", err)
	}
	if got := e.lamports(to); got != 6 {
		t.Errorf("recipient %d, want 6 (the dropped 2 resent, the lost-reply 4)", got)
	}
	if e.chain.SendCount() != 5 {
		t.Errorf("SendCount %d, want 5", e.chain.SendCount())
	}
	e.chain.DelaySends(1, time.Millisecond)
	e.send(ix(1))
}

func TestSimulate_ReportsErrAndLogsWithoutChanging(t *testing.T) {
	e := newEnv(t)
	to := newKey(t).PublicKey()
	poor := newKey(t)
	tx := e.tx([]solana.Instruction{system.NewTransferInstruction(5, poor.PublicKey(), to).Build()}, poor)
	sim, err := e.rpc.SimulateTransaction(e.ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sim.Value.Err)
	if string(b) != customErrJSON(0, sysErrResultWithNegativeLamports) || len(sim.Value.Logs) == 0 {
		t.Errorf("simulation err %s logs %v", b, sim.Value.Logs)
	}
	ok := e.tx([]solana.Instruction{system.NewTransferInstruction(5, e.payer.PublicKey(), to).Build()})
	sim, err = e.rpc.SimulateTransaction(e.ctx, ok)
	if err != nil || sim.Value.Err != nil {
		t.Errorf("simulating a good transaction: %+v %v", sim.Value, err)
	}
	if e.lamports(to) != 0 {
		t.Errorf("simulation moved lamports")
	}
}

func TestWS_AccountProgramSignatureAndSlotNotificationsAfterTheAck(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint := e.newMint(auth.PublicKey(), 0)
	alice := newKey(t)
	a := e.newATA(alice.PublicKey(), mint)
	cl := e.wsClient()
	acctSub, err := cl.AccountSubscribeWithOpts(a, rpc.CommitmentConfirmed, solana.EncodingBase64)
	if err != nil {
		t.Fatal(err)
	}
	progSub, err := cl.ProgramSubscribeWithOpts(solana.TokenProgramID, rpc.CommitmentConfirmed, solana.EncodingBase64,
		[]rpc.RPCFilter{{DataSize: TokenAccountSize}, {Memcmp: &rpc.RPCFilterMemcmp{Offset: 0, Bytes: mint.Bytes()}}})
	if err != nil {
		t.Fatal(err)
	}
	slotSub, err := cl.SlotSubscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.chain.WaitSubscriptions(ctx, 3); err != nil {
		t.Fatal(err)
	}
	tx := e.tx([]solana.Instruction{token.NewMintToInstruction(42, mint, a, auth.PublicKey(), nil).Build()}, auth)
	sigSub, err := cl.SignatureSubscribe(tx.Signatures[0], rpc.CommitmentConfirmed)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.chain.WaitSubscriptions(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rpc.SendTransaction(e.ctx, tx); err != nil {
		t.Fatal(err)
	}
	slot := e.chain.Slot()

	ar, err := acctSub.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ta, ok := DecodeTokenAccount(ar.Value.Data.GetBinary())
	if !ok || ta.Amount != 42 || ar.Context.Slot != slot {
		t.Errorf("account notification: amount %d (ok %v) slot %d, want 42 at %d", ta.Amount, ok, ar.Context.Slot, slot)
	}
	pr, err := progSub.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Value.Pubkey.Equals(a) {
		t.Errorf("program notification for %s, want %s (the mint account itself is filtered out)", pr.Value.Pubkey, a)
	}
	sr, err := sigSub.Recv(ctx)
	if err != nil || sr.Value.Err != nil || sr.Context.Slot != slot {
		t.Errorf("signature notification %+v %v", sr, err)
	}
	sl, err := slotSub.Recv(ctx)
	if err != nil || sl.Slot != slot {
		t.Errorf("slot notification %+v %v, want slot %d", sl, err, slot)
	}
	// A signature already processed is notified right after the ack.
	late, err := cl.SignatureSubscribe(tx.Signatures[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if lr, err := late.Recv(ctx); err != nil || lr.Context.Slot != slot {
		t.Errorf("late signature notification %+v %v", lr, err)
	}
	// Unsubscribing ends the chain's side.
	acctSub.Unsubscribe()
	progSub.Unsubscribe()
	for {
		e.chain.subs.mu.Lock()
		n, ch := len(e.chain.subs.subs), e.chain.subs.changed
		e.chain.subs.mu.Unlock()
		if n == 1 { // the slot subscription stays
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%d subscriptions stay after unsubscribing", n)
		}
	}
}

func TestDecodeTransaction_RefusesGarbage(t *testing.T) {
	for name, raw := range map[string][]byte{
		"empty":     {},
		"short":     {1, 2, 3},
		"sig count": append([]byte{5}, bytes.Repeat([]byte{0}, 64)...),
	} {
		if _, rerr := decodeTransaction(raw); rerr == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := base58.Decode("0"); err == nil {
		t.Fatal("base58 accepted 0")
	}
}

func TestConcurrentSends_EachLandsInItsOwnSlot(t *testing.T) {
	e := newEnv(t)
	const n = 16
	keys := make([]solana.PrivateKey, n)
	for i := range keys {
		keys[i] = newKey(t)
		e.airdrop(keys[i].PublicKey(), sol)
	}
	to := newKey(t).PublicKey()
	cl := e.wsClient()
	sub, err := cl.AccountSubscribe(to, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.chain.WaitSubscriptions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	bh := e.chain.LatestBlockhash()
	start := e.chain.Slot()
	errs := make(chan error, n)
	for i := range keys {
		go func(k solana.PrivateKey) {
			tx, err := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(1, k.PublicKey(), to).Build()}, bh, solana.TransactionPayer(k.PublicKey()))
			if err == nil {
				_, err = tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &k })
			}
			if err == nil {
				_, err = e.rpc.SendTransaction(ctx, tx)
			}
			errs <- err
		}(keys[i])
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.chain.Slot(); got != start+n {
		t.Errorf("slot %d after %d transactions from %d, want %d", got, n, start, start+n)
	}
	// Notifications arrive in slot order with the balance of their slot.
	last := uint64(0)
	for i := 1; i <= n; i++ {
		r, err := sub.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Value.Lamports != uint64(i) || r.Context.Slot <= last {
			t.Errorf("notification %d: %d lamports at slot %d (previous %d)", i, r.Value.Lamports, r.Context.Slot, last)
		}
		last = r.Context.Slot
	}
}

func FuzzDecodeTransaction(f *testing.F) {
	payer, _ := solana.NewRandomPrivateKey()
	tx, _ := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(1, payer.PublicKey(), solana.SystemProgramID).Build()}, solana.Hash{1}, solana.TransactionPayer(payer.PublicKey()))
	_, _ = tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &payer })
	raw, _ := tx.MarshalBinary()
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New(testProgramID)
		// Whatever the bytes, processing must not panic, and a refusal
		// changes nothing.
		slot := c.Slot()
		res := c.process(b, processOpts{commit: true, verifySigs: true})
		if res.refused() != nil && c.Slot() != slot {
			t.Fatalf("a refused transaction made a slot")
		}
	})
}

// FuzzExecute runs arbitrary instruction data against each program with
// signatures unchecked: no input may panic the chain, and a failing
// transaction changes nothing but the fee.
func FuzzExecute(f *testing.F) {
	f.Add(uint8(0), []byte{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, uint8(3))
	f.Add(uint8(1), []byte{3, 1, 0, 0, 0, 0, 0, 0, 0}, uint8(3))
	f.Add(uint8(2), []byte{1}, uint8(6))
	f.Add(uint8(3), bin.SighashInstruction("update_usage"), uint8(11))
	f.Add(uint8(3), append(bin.SighashInstruction("create_region"), 1, 0, 0, 0, 2, 0, 0, 0, 'a'), uint8(4))
	f.Fuzz(func(t *testing.T, prog uint8, data []byte, nAccounts uint8) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				panic(fmt.Sprintf("slow input: prog %d data %x accounts %d", prog, data, nAccounts))
			}
		}()
		c := New(testProgramID)
		payer := solana.PublicKey{1}
		if _, err := c.Airdrop(payer, sol); err != nil {
			t.Fatal(err)
		}
		programs := []solana.PublicKey{solana.SystemProgramID, solana.TokenProgramID, solana.SPLAssociatedTokenAccountProgramID, testProgramID}
		statePDA, _, _ := solana.FindProgramAddress([][]byte{[]byte("state")}, testProgramID)
		pool := []solana.PublicKey{payer, statePDA, solana.SystemProgramID, solana.TokenProgramID, solana.SysVarRentPubkey, {2}, {3}}
		var metas solana.AccountMetaSlice
		for i := 0; i < int(nAccounts%12); i++ {
			k := pool[i%len(pool)]
			metas = append(metas, &solana.AccountMeta{PublicKey: k, IsWritable: i%3 != 2, IsSigner: k == payer})
		}
		ix := solana.NewInstruction(programs[int(prog)%len(programs)], metas, data)
		tx, err := solana.NewTransaction([]solana.Instruction{ix}, c.LatestBlockhash(), solana.TransactionPayer(payer))
		if err != nil {
			return
		}
		tx.Signatures = make([]solana.Signature, tx.Message.Header.NumRequiredSignatures)
		raw, err := tx.MarshalBinary()
		if err != nil {
			return
		}
		before := c.accounts[payer].Lamports
		res := c.process(raw, processOpts{commit: true, commitFailed: true})
		if res.err != nil {
			if got := c.accounts[payer].Lamports; got != before-uint64(len(tx.Signatures))*FeePerSignature {
				t.Fatalf("a failing transaction left the payer %d lamports (was %d)", got, before)
			}
		}
	})
}

func TestToken_InitializeVariantsAndGetTransaction(t *testing.T) {
	e := newEnv(t)
	auth := newKey(t)
	mint, acct1, acct3 := newKey(t), newKey(t), newKey(t)
	owner := newKey(t).PublicKey()
	p := e.payer.PublicKey()
	sig := e.send([]solana.Instruction{
		system.NewCreateAccountInstruction(RentExemptMinimum(MintSize), MintSize, solana.TokenProgramID, p, mint.PublicKey()).Build(),
		token.NewInitializeMintInstruction(2, auth.PublicKey(), auth.PublicKey(), mint.PublicKey(), solana.SysVarRentPubkey).Build(),
		system.NewCreateAccountInstruction(RentExemptMinimum(TokenAccountSize), TokenAccountSize, solana.TokenProgramID, p, acct1.PublicKey()).Build(),
		token.NewInitializeAccountInstruction(acct1.PublicKey(), mint.PublicKey(), owner, solana.SysVarRentPubkey).Build(),
		system.NewCreateAccountInstruction(RentExemptMinimum(TokenAccountSize), TokenAccountSize, solana.TokenProgramID, p, acct3.PublicKey()).Build(),
		token.NewInitializeAccount3Instruction(owner, acct3.PublicKey(), mint.PublicKey()).Build(),
	}, mint, acct1, acct3)
	m, ok := DecodeMint(e.mustAccount(mint.PublicKey()).Data)
	if !ok || m.Decimals != 2 || m.MintAuthority == nil || !m.MintAuthority.Equals(auth.PublicKey()) || m.FreezeAuthority == nil || !m.FreezeAuthority.Equals(auth.PublicKey()) {
		t.Errorf("mint %+v", m)
	}
	for _, k := range []solana.PublicKey{acct1.PublicKey(), acct3.PublicKey()} {
		ta, ok := DecodeTokenAccount(e.mustAccount(k).Data)
		if !ok || !ta.Owner.Equals(owner) || !ta.Mint.Equals(mint.PublicKey()) {
			t.Errorf("token account %s: %+v", k, ta)
		}
	}
	if got, want := e.lamports(p), uint64(10*sol-RentExemptMinimum(MintSize)-2*RentExemptMinimum(TokenAccountSize)-4*FeePerSignature); got != want {
		t.Errorf("payer %d, want %d (an explicit CreateAccount moves its lamports)", got, want)
	}
	// Initializing again is AlreadyInUse.
	again := token.NewInitializeAccount3Instruction(owner, acct3.PublicKey(), mint.PublicKey()).Build()
	if got := preflightErr(t, e.sendErr([]solana.Instruction{again})); got != customErrJSON(0, tokErrAlreadyInUse) {
		t.Errorf("second InitializeAccount3: %s", got)
	}
	v := uint64(0)
	got, err := e.rpc.GetTransaction(e.ctx, sig, &rpc.GetTransactionOpts{Encoding: solana.EncodingBase64, MaxSupportedTransactionVersion: &v})
	if err != nil {
		t.Fatalf("getTransaction: %v", err)
	}
	tx, err := got.Transaction.GetTransaction()
	if err != nil || tx.Signatures[0] != sig || got.Meta == nil || got.Meta.Err != nil || got.Meta.Fee != 4*FeePerSignature || len(got.Meta.LogMessages) == 0 {
		t.Errorf("getTransaction: %+v %v", got, err)
	}
}

func TestWS_DisconnectWebsocketsEndsSubscriptionsAndAcceptsNewOnes(t *testing.T) {
	e := newEnv(t)
	cl := e.wsClient()
	sub, err := cl.AccountSubscribe(e.payer.PublicKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.chain.WaitSubscriptions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.chain.DisconnectWebsockets()
	if n := e.chain.Subscriptions(); n != 0 {
		t.Errorf("%d subscriptions after disconnecting", n)
	}
	if _, err := sub.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv after the disconnect: %v, want the connection's error", err)
	}
	cl2 := e.wsClient()
	sub2, err := cl2.AccountSubscribe(e.payer.PublicKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.chain.WaitSubscriptions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.airdrop(e.payer.PublicKey(), 1)
	if r, err := sub2.Recv(ctx); err != nil || r.Value.Lamports != 10*sol+1 {
		t.Errorf("notification on a new connection: %+v %v", r, err)
	}
}

func TestRPC_Base58TransactionsAssignAndDataSlices(t *testing.T) {
	e := newEnv(t)
	k := newKey(t)
	e.airdrop(k.PublicKey(), sol)
	// Assign, sent base58-encoded (the validator's default encoding).
	tx := e.tx([]solana.Instruction{system.NewAssignInstruction(solana.TokenProgramID, k.PublicKey()).Build()}, k)
	raw, _ := tx.MarshalBinary()
	var sig string
	if err := e.rpc.RPCCallForInto(e.ctx, &sig, "sendTransaction", []any{base58.Encode(raw)}); err != nil {
		t.Fatalf("base58 sendTransaction: %v", err)
	}
	if sig != tx.Signatures[0].String() {
		t.Errorf("signature %s, want %s", sig, tx.Signatures[0])
	}
	if a := e.mustAccount(k.PublicKey()); !a.Owner.Equals(solana.TokenProgramID) || a.Lamports != sol {
		t.Errorf("assigned account %+v", a)
	}
	// Assign without the account's signature fails in the system program.
	other := newKey(t).PublicKey()
	e.airdrop(other, sol)
	assign := system.NewAssignInstruction(solana.TokenProgramID, other).Build()
	data, _ := assign.Data()
	if got := preflightErr(t, e.sendErr([]solana.Instruction{solana.NewInstruction(solana.SystemProgramID, solana.AccountMetaSlice{solana.Meta(other).WRITE()}, data)})); got != `{"InstructionError":[0,"MissingRequiredSignature"]}` {
		t.Errorf("assign without the signature: %s", got)
	}

	// A token account read with a data slice, base58 and base64.
	auth := newKey(t)
	mint := e.newMint(auth.PublicKey(), 0)
	w := newKey(t).PublicKey()
	ata := e.newATA(w, mint)
	off, n := uint64(32), uint64(32)
	for _, enc := range []solana.EncodingType{solana.EncodingBase58, solana.EncodingBase64} {
		ai, err := e.rpc.GetAccountInfoWithOpts(e.ctx, ata, &rpc.GetAccountInfoOpts{Encoding: enc, DataSlice: &rpc.DataSlice{Offset: &off, Length: &n}})
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if got := ai.Value.Data.GetBinary(); !bytes.Equal(got, w[:]) || ai.Value.Space != TokenAccountSize {
			t.Errorf("%s slice [32:64] = %x (space %d), want the owner %x", enc, got, ai.Value.Space, w[:])
		}
	}
	// 165 bytes do not go in base58.
	var out any
	var re *jsonrpc.RPCError
	if err := e.rpc.RPCCallForInto(e.ctx, &out, "getAccountInfo", []any{ata.String(), map[string]any{"encoding": "base58"}}); !errors.As(err, &re) || re.Code != codeInvalidParams {
		t.Errorf("base58 of 165 bytes: %v, want -32602", err)
	}
}
