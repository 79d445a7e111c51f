package chainindexer

import (
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

func ledgerClient(t *testing.T, addr string) *ledgerrpc.Client {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ledgerrpc.NewClient(cc)
}

func TestServer_ServesSignedUsageWritesOfTheHostedLedger(t *testing.T) {
	f := newFixture(t, testConfig())
	signer := key(t)
	check(t, f.led.CreateUsageSigner(ctxT(t), f.ownerA, f.r1.ID, signer.Pubkey()))
	c := ledgerClient(t, f.srv.Addr())

	// Region rates: 5 per million requests; 2_000_000 requests cost 10.
	var u ledger.Usage
	u.Set(ledger.UnitGatewayRequests, ledger.U128(2_000_000))
	res, err := c.UpdateUsage(ctxT(t), signer, f.s1.ID, ledger.U128(1), u)
	if err != nil {
		t.Fatal(err)
	}
	if res.Charged != 10 || res.Due != ledger.U128(10) || !res.Shortfall.IsZero() {
		t.Fatalf("charged %+v, want 10 of 10", res)
	}
	if e := must[ledger.Escrow](t)(f.led.Escrow(ctxT(t), f.dev1.Pubkey(), f.a.ID)); e.Balance != 990 {
		t.Fatalf("escrow %d after a charge of 10 from 1000", e.Balance)
	}
	// The node follows its own ledger: the charge shows in its view.
	eventually(t, "the charged escrow in the view", func() bool {
		r, err := f.c.ListEscrows(ctxT(t), &chainindexerv1.ListEscrowsRequest{Developer: f.dev1.Pubkey().Bytes()})
		return err == nil && len(r.GetEscrows()) == 1 && r.GetEscrows()[0].GetBalance() == 990
	})

	if _, err := c.UpdateUsage(ctxT(t), signer, f.s1.ID, ledger.U128(1), u); !errors.Is(err, ledger.ErrReplayedSeed) {
		t.Errorf("replay: %v, want ErrReplayedSeed", err)
	}
	if _, err := c.UpdateUsage(ctxT(t), key(t), f.s1.ID, ledger.U128(2), u); !errors.Is(err, ledger.ErrBadSigner) {
		t.Errorf("another key: %v, want ErrBadSigner", err)
	}
	// r2 has no usage signer at all.
	if _, err := c.UpdateUsage(ctxT(t), signer, f.s2.ID, ledger.U128(1), u); !errors.Is(err, ledger.ErrBadSigner) {
		t.Errorf("a stack of a region without a usage signer: %v, want ErrBadSigner", err)
	}
	if e := must[ledger.Escrow](t)(f.led.Escrow(ctxT(t), f.dev1.Pubkey(), f.a.ID)); e.Balance != 990 {
		t.Errorf("escrow %d after refused writes, want 990", e.Balance)
	}
}

func TestServer_ServeLedgerOffLeavesLedgerServiceUnimplemented(t *testing.T) {
	cfg := testConfig()
	cfg.ServeLedger = false
	f := newFixture(t, cfg)
	signer := key(t)
	check(t, f.led.CreateUsageSigner(ctxT(t), f.ownerA, f.r1.ID, signer.Pubkey()))
	var u ledger.Usage
	u.Set(ledger.UnitGatewayRequests, ledger.U128(2_000_000))
	_, err := ledgerClient(t, f.srv.Addr()).UpdateUsage(ctxT(t), signer, f.s1.ID, ledger.U128(1), u)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("serve_ledger off: %v, want Unimplemented", err)
	}
	if e := must[ledger.Escrow](t)(f.led.Escrow(ctxT(t), f.dev1.Pubkey(), f.a.ID)); e.Balance != 1000 {
		t.Errorf("escrow %d, want the untouched 1000", e.Balance)
	}
}
