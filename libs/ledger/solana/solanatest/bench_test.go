package solanatest

import (
	"context"
	"testing"

	"github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/programs/system"
	"github.com/gagliardetto/solana-go/rpc"
)

// BenchmarkSendTransaction is one signed system transfer sent over HTTP with
// preflight, verified, executed and answered: the per-transaction cost of the
// chain and solana-go's client together.
func BenchmarkSendTransaction(b *testing.B) {
	c := New(testProgramID)
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl := rpc.New(c.RPCURL())
	defer cl.Close()
	payer, _ := solana.NewRandomPrivateKey()
	if _, err := c.Airdrop(payer.PublicKey(), 1<<62); err != nil {
		b.Fatal(err)
	}
	to := solana.PublicKey{9}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := solana.NewTransaction([]solana.Instruction{system.NewTransferInstruction(uint64(i+1), payer.PublicKey(), to).Build()},
			c.LatestBlockhash(), solana.TransactionPayer(payer.PublicKey()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &payer }); err != nil {
			b.Fatal(err)
		}
		if _, err := cl.SendTransaction(ctx, tx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessUpdateUsage is the marketplace's update_usage submitted in
// process (no HTTP; signatures verified): the Anchor checks, the update
// account's creation and the two token CPIs.
func BenchmarkProcessUpdateUsage(b *testing.B) {
	m := newMarket(b)
	stack := m.stackPDA(1)
	m.send([]solana.Instruction{m.createStackIx(1, []byte("data"), "bench")}, m.user)
	signer := m.usageSigner
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := solana.NewTransaction([]solana.Instruction{m.usageIx(stack, uint64(i+1), 0, signer.PublicKey())},
			m.chain.LatestBlockhash(), solana.TransactionPayer(signer.PublicKey()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Sign(func(solana.PublicKey) *solana.PrivateKey { return &signer }); err != nil {
			b.Fatal(err)
		}
		if _, err := m.chain.SubmitTransaction(tx); err != nil {
			b.Fatal(err)
		}
	}
}
