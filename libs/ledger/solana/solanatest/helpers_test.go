package solanatest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/gagliardetto/solana-go"
	atapkg "github.com/gagliardetto/solana-go/programs/associated-token-account"
	"github.com/gagliardetto/solana-go/programs/system"
	"github.com/gagliardetto/solana-go/programs/token"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/jsonrpc"
	"github.com/gagliardetto/solana-go/rpc/ws"
)

// testProgramID is the marketplace program's id as deployed.
var testProgramID = solana.MustPublicKeyFromBase58("H7eDBkyrr5jLcjmNmyTbDo45sS6U6MvHx6fFGiF9AL8r")

const sol = 1_000_000_000

type env struct {
	t     testing.TB
	chain *Chain
	rpc   *rpc.Client
	ctx   context.Context
	payer solana.PrivateKey
}

// newEnv starts a chain on 127.0.0.1 and a solana-go HTTP client on it, with
// a fee payer holding 10 SOL.
func newEnv(t testing.TB) *env {
	t.Helper()
	c := New(testProgramID)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{t: t, chain: c, rpc: rpc.New(c.RPCURL()), ctx: context.Background(), payer: newKey(t)}
	t.Cleanup(func() { _ = e.rpc.Close() })
	e.airdrop(e.payer.PublicKey(), 10*sol)
	return e
}

func (e *env) wsClient() *ws.Client {
	e.t.Helper()
	cl, err := ws.Connect(e.ctx, e.chain.WSURL())
	if err != nil {
		e.t.Fatalf("ws connect: %v", err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

func newKey(t testing.TB) solana.PrivateKey {
	t.Helper()
	k, err := solana.NewRandomPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// airdrop funds k over RPC.
func (e *env) airdrop(k solana.PublicKey, lamports uint64) {
	e.t.Helper()
	if _, err := e.rpc.RequestAirdrop(e.ctx, k, lamports, rpc.CommitmentFinalized); err != nil {
		e.t.Fatalf("airdrop: %v", err)
	}
}

// tx builds a transaction paid by the env's payer under the latest blockhash
// and signs it with the payer and signers.
func (e *env) tx(ixs []solana.Instruction, signers ...solana.PrivateKey) *solana.Transaction {
	e.t.Helper()
	bh, err := e.rpc.GetLatestBlockhash(e.ctx, rpc.CommitmentFinalized)
	if err != nil {
		e.t.Fatalf("getLatestBlockhash: %v", err)
	}
	tx, err := solana.NewTransaction(ixs, bh.Value.Blockhash, solana.TransactionPayer(e.payer.PublicKey()))
	if err != nil {
		e.t.Fatalf("new transaction: %v", err)
	}
	keys := map[solana.PublicKey]solana.PrivateKey{e.payer.PublicKey(): e.payer}
	for _, s := range signers {
		keys[s.PublicKey()] = s
	}
	if _, err := tx.Sign(func(k solana.PublicKey) *solana.PrivateKey {
		if p, ok := keys[k]; ok {
			return &p
		}
		return nil
	}); err != nil {
		e.t.Fatalf("sign: %v", err)
	}
	return tx
}

// send sends a transaction over RPC and fails the test unless it lands
// successfully.
func (e *env) send(ixs []solana.Instruction, signers ...solana.PrivateKey) solana.Signature {
	e.t.Helper()
	tx := e.tx(ixs, signers...)
	sig, err := e.rpc.SendTransaction(e.ctx, tx)
	if err != nil {
		e.t.Fatalf("sendTransaction: %v", err)
	}
	st, err := e.rpc.GetSignatureStatuses(e.ctx, false, sig)
	if err != nil {
		e.t.Fatalf("getSignatureStatuses: %v", err)
	}
	if st.Value[0] == nil || st.Value[0].Err != nil {
		e.t.Fatalf("transaction %s: status %+v", sig, st.Value[0])
	}
	return sig
}

// sendErr sends a transaction that must fail preflight and returns the
// RPC error.
func (e *env) sendErr(ixs []solana.Instruction, signers ...solana.PrivateKey) *jsonrpc.RPCError {
	e.t.Helper()
	return e.sendTxErr(e.tx(ixs, signers...))
}

func (e *env) sendTxErr(tx *solana.Transaction) *jsonrpc.RPCError {
	e.t.Helper()
	_, err := e.rpc.SendTransaction(e.ctx, tx)
	var re *jsonrpc.RPCError
	if !errors.As(err, &re) {
		e.t.Fatalf("sendTransaction: want an RPC error, got %v", err)
	}
	return re
}

// preflightErr is the err of a -32002 reply, re-marshalled as JSON text.
func preflightErr(t *testing.T, re *jsonrpc.RPCError) string {
	t.Helper()
	if re.Code != codeSendPreflightFailure {
		t.Fatalf("code %d (%s), want -32002", re.Code, re.Message)
	}
	data, ok := re.Data.(map[string]any)
	if !ok {
		t.Fatalf("data %T %v, want an object", re.Data, re.Data)
	}
	if _, ok := data["logs"]; !ok {
		t.Errorf("data has no logs: %v", data)
	}
	b, err := json.Marshal(data["err"])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// customErrJSON is how an instruction's custom error appears in err.
func customErrJSON(idx int, code uint32) string {
	b, _ := json.Marshal(map[string][]any{"InstructionError": {idx, map[string]uint32{"Custom": code}}})
	return string(b)
}

func (e *env) lamports(k solana.PublicKey) uint64 {
	e.t.Helper()
	b, err := e.rpc.GetBalance(e.ctx, k, rpc.CommitmentFinalized)
	if err != nil {
		e.t.Fatalf("getBalance: %v", err)
	}
	return b.Value
}

func (e *env) tokenAmount(k solana.PublicKey) string {
	e.t.Helper()
	b, err := e.rpc.GetTokenAccountBalance(e.ctx, k, rpc.CommitmentFinalized)
	if err != nil {
		e.t.Fatalf("getTokenAccountBalance %s: %v", k, err)
	}
	return b.Value.Amount
}

// newMint creates a mint with decimals whose authority is auth.
func (e *env) newMint(auth solana.PublicKey, decimals uint8) solana.PublicKey {
	e.t.Helper()
	mint := newKey(e.t)
	e.send([]solana.Instruction{
		system.NewCreateAccountInstruction(RentExemptMinimum(MintSize), MintSize, solana.TokenProgramID, e.payer.PublicKey(), mint.PublicKey()).Build(),
		token.NewInitializeMint2Instruction(decimals, auth, auth, mint.PublicKey()).Build(),
	}, mint)
	return mint.PublicKey()
}

// newATA creates wallet's associated token account for mint.
func (e *env) newATA(wallet, mint solana.PublicKey) solana.PublicKey {
	e.t.Helper()
	e.send([]solana.Instruction{atapkg.NewCreateInstruction(e.payer.PublicKey(), wallet, mint).Build()})
	ata, _, err := solana.FindAssociatedTokenAddress(wallet, mint)
	if err != nil {
		e.t.Fatal(err)
	}
	return ata
}

// createIdempotent is the associated token account program's CreateIdempotent,
// which solana-go v1.14.0 has no builder for.
func createIdempotent(payer, wallet, mint solana.PublicKey) solana.Instruction {
	ata, _, _ := solana.FindAssociatedTokenAddress(wallet, mint)
	return solana.NewInstruction(solana.SPLAssociatedTokenAccountProgramID, solana.AccountMetaSlice{
		solana.Meta(payer).WRITE().SIGNER(), solana.Meta(ata).WRITE(), solana.Meta(wallet), solana.Meta(mint),
		solana.Meta(solana.SystemProgramID), solana.Meta(solana.TokenProgramID),
	}, []byte{1})
}
