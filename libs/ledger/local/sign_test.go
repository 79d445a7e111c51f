package local

import (
	"context"
	"errors"
	"testing"

	"github.com/muprotocol/mu/libs/ledger"
)

// presigned answers Sign with a signature made beforehand, as the ledger's
// gRPC server does with the one a client sent.
type presigned struct {
	pk  ledger.Pubkey
	sig []byte
}

func (p presigned) Pubkey() ledger.Pubkey       { return p.pk }
func (p presigned) Sign([]byte) ([]byte, error) { return p.sig, nil }

func presign(t *testing.T, k *ledger.Keypair, msg []byte, err error) ledger.Signer {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	return presigned{pk: k.Pubkey(), sig: sig}
}

func newKey(t *testing.T) *ledger.Keypair {
	t.Helper()
	k, err := ledger.GenerateKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Every exported message builder yields the message its method verifies:
// a whole market is built from signatures made over the builders'
// messages alone, and a signature over one builder's message does not
// pass for a write with other arguments.
func TestMessageBuilders_AreWhatTheMethodsVerify(t *testing.T) {
	l := openMemory(t)
	ctx := context.Background()
	auth, prov, dev, usage := newKey(t), newKey(t), newKey(t), newKey(t)
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	params := ledger.InitParams{ProviderDeposit: 10, CommissionMicros: 50_000}
	msg, err := InitializeMessage(params, auth.Pubkey())
	ok("Initialize", l.Initialize(ctx, presign(t, auth, msg, err), params))
	msg, err = MintMessage(prov.Pubkey(), 1_000, auth.Pubkey())
	ok("Mint", l.Mint(ctx, presign(t, auth, msg, err), prov.Pubkey(), 1_000))
	msg, err = MintMessage(dev.Pubkey(), 5_000, auth.Pubkey())
	ok("Mint", l.Mint(ctx, presign(t, auth, msg, err), dev.Pubkey(), 5_000))
	msg, err = TransferMessage(usage.Pubkey(), 7, dev.Pubkey())
	ok("Transfer", l.Transfer(ctx, presign(t, dev, msg, err), usage.Pubkey(), 7))
	msg, err = UpdateProviderDepositMessage(20, auth.Pubkey())
	ok("UpdateProviderDeposit", l.UpdateProviderDeposit(ctx, presign(t, auth, msg, err), 20))

	msg, err = CreateProviderMessage("acme", prov.Pubkey())
	p, err := l.CreateProvider(ctx, presign(t, prov, msg, err), "acme")
	ok("CreateProvider", err)
	msg, err = AuthorizeProviderMessage(p.ID, auth.Pubkey())
	ok("AuthorizeProvider", l.AuthorizeProvider(ctx, presign(t, auth, msg, err), p.ID))

	cfg := ledger.RegionConfig{Name: "eu1", BaseURL: "https://eu1.example.net", MinEscrowBalance: 100,
		Rates: ledger.Rates{DBPerMillionWrites: 20, StoragePerGiBTraffic: 3}, MaxGigaInstructionsPerCall: 9,
		MinMemoryLimitBytes: 1 << 20, MaxMemoryLimitBytes: 1 << 30}
	msg, err = CreateRegionMessage(3, cfg, prov.Pubkey())
	g, err := l.CreateRegion(ctx, presign(t, prov, msg, err), 3, cfg)
	ok("CreateRegion", err)
	cfg.Name, cfg.MinEscrowBalance = "eu1b", 150
	msg, err = UpdateRegionMessage(g.ID, cfg, prov.Pubkey())
	_, err = l.UpdateRegion(ctx, presign(t, prov, msg, err), g.ID, cfg)
	ok("UpdateRegion", err)
	msg, err = CreateUsageSignerMessage(g.ID, usage.Pubkey(), prov.Pubkey())
	ok("CreateUsageSigner", l.CreateUsageSigner(ctx, presign(t, prov, msg, err), g.ID, usage.Pubkey()))

	msg, err = CreateEscrowMessage(p.ID, dev.Pubkey())
	_, err = l.CreateEscrow(ctx, presign(t, dev, msg, err), p.ID)
	ok("CreateEscrow", err)
	msg, err = RechargeEscrowMessage(p.ID, 1_000, dev.Pubkey())
	_, err = l.RechargeEscrow(ctx, presign(t, dev, msg, err), p.ID, 1_000)
	ok("RechargeEscrow", err)
	msg, err = WithdrawEscrowMessage(p.ID, 10, dev.Pubkey())
	_, err = l.WithdrawEscrow(ctx, presign(t, dev, msg, err), p.ID, 10)
	ok("WithdrawEscrow", err)

	msg, err = CreateStackMessage(g.ID, 42, []byte("name: s"), dev.Pubkey())
	s, err := l.CreateStack(ctx, presign(t, dev, msg, err), g.ID, 42, []byte("name: s"))
	ok("CreateStack", err)
	msg, err = UpdateStackMessage(s.ID, []byte("name: s2"), dev.Pubkey())
	_, err = l.UpdateStack(ctx, presign(t, dev, msg, err), s.ID, []byte("name: s2"))
	ok("UpdateStack", err)
	u := ledger.Usage{DBWrites: ledger.U128(1_000_000)}
	msg, err = UpdateUsageMessage(s.ID, ledger.U128(1), u, usage.Pubkey())
	_, err = l.UpdateUsage(ctx, presign(t, usage, msg, err), s.ID, ledger.U128(1), u)
	ok("UpdateUsage", err)
	msg, err = DeleteStackMessage(s.ID, dev.Pubkey())
	_, err = l.DeleteStack(ctx, presign(t, dev, msg, err), s.ID)
	ok("DeleteStack", err)

	// The signature binds the arguments: the same presigned recharge for
	// another amount is refused.
	msg, err = RechargeEscrowMessage(p.ID, 5, dev.Pubkey())
	if _, err := l.RechargeEscrow(ctx, presign(t, dev, msg, err), p.ID, 6); !errors.Is(err, ledger.ErrBadSigner) {
		t.Fatalf("recharge of 6 signed for 5: %v, want ErrBadSigner", err)
	}
}
