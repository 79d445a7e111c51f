package ledgerrpc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/ledger/local"
	"github.com/muprotocol/mu/libs/rpcerr"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

func key(t *testing.T, name string) *ledger.Keypair {
	t.Helper()
	seed := sha256.Sum256([]byte("ledgerrpc-test/" + name))
	k, err := ledger.KeypairFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// market is a local ledger with one authorized provider, one region whose
// usage signer is usage, and one stack of dev with an escrow of 1000.
type market struct {
	l                     *local.Ledger
	auth, prov, dev, used *ledger.Keypair
	provider              ledger.Pubkey
	stack                 ledger.Pubkey
}

func newMarket(t *testing.T) *market {
	t.Helper()
	ctx := t.Context()
	l, err := local.Open(local.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m := &market{l: l, auth: key(t, "authority"), prov: key(t, "provider"), dev: key(t, "developer"), used: key(t, "usage-signer")}
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ok(l.Initialize(ctx, m.auth, ledger.InitParams{ProviderDeposit: 1000, CommissionMicros: 100_000}))
	ok(l.Mint(ctx, m.auth, m.prov.Pubkey(), 5000))
	ok(l.Mint(ctx, m.auth, m.dev.Pubkey(), 100_000))
	p, err := l.CreateProvider(ctx, m.prov, "acme")
	ok(err)
	m.provider = p.ID
	ok(l.AuthorizeProvider(ctx, m.auth, p.ID))
	r, err := l.CreateRegion(ctx, m.prov, 1, ledger.RegionConfig{
		Name: "eu1", BaseURL: "https://eu1.example.net", MinEscrowBalance: 100,
		Rates: ledger.Rates{
			FunctionPerTeraMBInstructions: 1000, DBPerMillionReads: 7, DBPerMillionWrites: 20,
			DBPerGiBMonthStored: 50, GatewayPerMillionRequests: 300, GatewayPerGiBTraffic: 90,
			StoragePerGiBMonthStored: 25, StoragePerGiBTraffic: 80,
		},
	})
	ok(err)
	ok(l.CreateUsageSigner(ctx, m.prov, r.ID, m.used.Pubkey()))
	_, err = l.CreateEscrow(ctx, m.dev, p.ID)
	ok(err)
	_, err = l.RechargeEscrow(ctx, m.dev, p.ID, 1000)
	ok(err)
	s, err := l.CreateStack(ctx, m.dev, r.ID, 7, []byte("name: app\n"))
	ok(err)
	m.stack = s.ID
	return m
}

// serve serves l's LedgerService on 127.0.0.1:0 and returns a client
// connection and a function that stops the server.
func serve(t testing.TB, l ledger.Writer, opts ...grpc.DialOption) (*grpc.ClientConn, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ledgerv1.RegisterLedgerServiceServer(srv, ledgerrpc.NewServer(l))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, srv.Stop
}

func usage(mbi, reads, requests, traffic uint64) ledger.Usage {
	var u ledger.Usage
	u.Set(ledger.UnitFunctionMBInstructions, ledger.U128(mbi))
	u.Set(ledger.UnitDBReads, ledger.U128(reads))
	u.Set(ledger.UnitGatewayRequests, ledger.U128(requests))
	u.Set(ledger.UnitGatewayTrafficBytes, ledger.U128(traffic))
	return u
}

func TestClient_ChargesAsInProcess(t *testing.T) {
	remote, inproc := newMarket(t), newMarket(t)
	cc, _ := serve(t, remote.l)
	c := ledgerrpc.NewClient(cc)
	ctx := t.Context()
	// Amounts with sub-unit remainders, so the carries are exercised too.
	steps := []ledger.Usage{
		usage(123_456_789_012, 1_234_567, 3_333, 987_654_321),
		usage(1, 999_999, 1, 1<<30+17),
		usage(300_000_000_000, 0, 200_000, 0),
		{StorageStoredByteSeconds: ledger.Uint128{Hi: 0, Lo: 1 << 50}, DBWrites: ledger.U128(42)},
		usage(5_000_000_000_000, 0, 0, 0), // more than the escrow holds: a shortfall
	}
	for i, u := range steps {
		seed := ledger.Uint128{Hi: 1, Lo: uint64(i)}
		got, err := c.UpdateUsage(ctx, remote.used, remote.stack, seed, u)
		if err != nil {
			t.Fatalf("step %d over gRPC: %v", i, err)
		}
		want, err := inproc.l.UpdateUsage(ctx, inproc.used, inproc.stack, seed, u)
		if err != nil {
			t.Fatalf("step %d in process: %v", i, err)
		}
		if got != want {
			t.Fatalf("step %d: over gRPC %+v, in process %+v", i, got, want)
		}
		if i == len(steps)-1 && got.Shortfall.IsZero() {
			t.Fatalf("the last step left no shortfall: the fixture does not test one")
		}
		if got.Charged == 0 {
			t.Fatalf("step %d charged nothing: the fixture does not test the charge", i)
		}
	}
	for _, who := range []struct {
		name   string
		pk     func(m *market) ledger.Pubkey
		escrow bool
	}{
		{"provider wallet", func(m *market) ledger.Pubkey { return m.prov.Pubkey() }, false},
		{"developer escrow", func(m *market) ledger.Pubkey { return m.dev.Pubkey() }, true},
	} {
		var a, b uint64
		if who.escrow {
			ea, err := remote.l.Escrow(ctx, remote.dev.Pubkey(), remote.provider)
			if err != nil {
				t.Fatal(err)
			}
			eb, err := inproc.l.Escrow(ctx, inproc.dev.Pubkey(), inproc.provider)
			if err != nil {
				t.Fatal(err)
			}
			a, b = ea.Balance, eb.Balance
		} else {
			var err error
			if a, err = remote.l.Balance(ctx, who.pk(remote)); err != nil {
				t.Fatal(err)
			}
			if b, err = inproc.l.Balance(ctx, who.pk(inproc)); err != nil {
				t.Fatal(err)
			}
		}
		if a != b {
			t.Errorf("%s: %d after the gRPC writes, %d after the same writes in process", who.name, a, b)
		}
	}
}

func TestClient_ReplayIsErrReplayedSeed(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	c := ledgerrpc.NewClient(cc)
	u := usage(1_000_000_000_000, 0, 10, 0)
	first, err := c.UpdateUsage(t.Context(), m.used, m.stack, ledger.U128(9), u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateUsage(t.Context(), m.used, m.stack, ledger.U128(9), u)
	if !errors.Is(err, ledger.ErrReplayedSeed) {
		t.Fatalf("replay: %v, want ErrReplayedSeed", err)
	}
	if status.Code(err) != codes.AlreadyExists || rpcerr.ReasonOf(err) != rpcerr.ReplayedSeed {
		t.Errorf("replay: code %v reason %q, want AlreadyExists REPLAYED_SEED", status.Code(err), rpcerr.ReasonOf(err))
	}
	e, err := m.l.Escrow(t.Context(), m.dev.Pubkey(), m.provider)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1000 - first.Charged; e.Balance != want {
		t.Errorf("escrow %d after a charge of %d and a replay, want %d", e.Balance, first.Charged, want)
	}
}

// tamper signs correctly and then flips one bit of the signature.
type tamper struct{ k *ledger.Keypair }

func (s tamper) Pubkey() ledger.Pubkey { return s.k.Pubkey() }
func (s tamper) Sign(msg []byte) ([]byte, error) {
	sig, err := s.k.Sign(msg)
	sig[5] ^= 0x10
	return sig, err
}

func TestClient_BadSignaturesAreErrBadSigner(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	c := ledgerrpc.NewClient(cc)
	u := usage(1, 2, 3, 4)
	for _, tc := range []struct {
		name   string
		signer ledger.Signer
	}{
		{"another key", key(t, "intruder")},
		{"the provider, not its usage signer", m.prov},
		{"altered signature", tamper{m.used}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UpdateUsage(t.Context(), tc.signer, m.stack, ledger.U128(1), u)
			if !errors.Is(err, ledger.ErrBadSigner) {
				t.Fatalf("got %v, want ErrBadSigner", err)
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("code %v, want PermissionDenied", status.Code(err))
			}
		})
	}
	// The seed is still free: none of the refused writes took it.
	if _, err := c.UpdateUsage(t.Context(), m.used, m.stack, ledger.U128(1), u); err != nil {
		t.Fatalf("the usage signer after refused forgeries: %v", err)
	}
}

func TestServer_AlteredWriteIsBadSigner(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	raw := ledgerv1.NewLedgerServiceClient(cc)
	u := usage(1_000_000_000_000, 0, 0, 0)
	msg, err := local.UpdateUsageMessage(m.stack, ledger.U128(3), u, m.used.Pubkey())
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := m.used.Sign(msg)
	req := func(amount, seed uint64) *ledgerv1.UpdateUsageRequest {
		return &ledgerv1.UpdateUsageRequest{
			StackId: m.stack.Bytes(),
			Seed:    &typesv1.Uint128{Lo: seed},
			Usage: []*ledgerv1.UsageAmount{{
				Kind: typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS, Amount: &typesv1.Uint128{Lo: amount},
			}},
			Signer: &ledgerv1.Signature{Pubkey: m.used.Pubkey().Bytes(), Signature: sig},
		}
	}
	for _, tc := range []struct {
		name         string
		amount, seed uint64
	}{{"amount lowered", 1, 3}, {"seed changed", 1_000_000_000_000, 4}} {
		_, err := raw.UpdateUsage(t.Context(), req(tc.amount, tc.seed))
		if status.Code(err) != codes.PermissionDenied || rpcerr.ReasonOf(err) != rpcerr.BadSigner {
			t.Errorf("%s: %v, want PermissionDenied BAD_SIGNER", tc.name, err)
		}
	}
	resp, err := raw.UpdateUsage(t.Context(), req(1_000_000_000_000, 3))
	if err != nil {
		t.Fatalf("the write as signed: %v", err)
	}
	if resp.GetCharged() != 1000 {
		t.Errorf("charged %d for 10^12 MB-instructions at 1000 per 10^12, want 1000", resp.GetCharged())
	}
}

func TestClient_UnknownStackIsErrNotFound(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	_, err := ledgerrpc.NewClient(cc).UpdateUsage(t.Context(), m.used, key(t, "no-stack").Pubkey(), ledger.U128(1), usage(1, 1, 1, 1))
	if !errors.Is(err, ledger.ErrNotFound) || rpcerr.ReasonOf(err) != rpcerr.StackNotFound {
		t.Fatalf("got %v (reason %q), want ErrNotFound STACK_NOT_FOUND", err, rpcerr.ReasonOf(err))
	}
}

func TestClient_ServerDownIsErrUnavailable(t *testing.T) {
	m := newMarket(t)
	cc, stop := serve(t, m.l)
	c := ledgerrpc.NewClient(cc)
	if _, err := c.UpdateUsage(t.Context(), m.used, m.stack, ledger.U128(1), usage(1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := c.UpdateUsage(ctx, m.used, m.stack, ledger.U128(2), usage(1, 1, 1, 1))
	if !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("server stopped: %v, want ErrUnavailable", err)
	}
}

func TestClient_DeadlineIsErrUnavailable(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := ledgerrpc.NewClient(cc).UpdateUsage(ctx, m.used, m.stack, ledger.U128(1), usage(1, 1, 1, 1))
	if !errors.Is(err, ledger.ErrUnavailable) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("past deadline: %v (code %v), want ErrUnavailable over DeadlineExceeded", err, status.Code(err))
	}
}

func TestServer_InvalidRequestsNameTheField(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	raw := ledgerv1.NewLedgerServiceClient(cc)
	sig := &ledgerv1.Signature{Pubkey: m.used.Pubkey().Bytes(), Signature: make([]byte, 64)}
	reads := func(n uint64) *ledgerv1.UsageAmount {
		return &ledgerv1.UsageAmount{Kind: typesv1.UsageKind_USAGE_KIND_DB_READS, Amount: &typesv1.Uint128{Lo: n}}
	}
	seed := &typesv1.Uint128{Lo: 1}
	for _, tc := range []struct {
		name string
		req  *ledgerv1.UpdateUsageRequest
		want string
	}{
		{"short stack", &ledgerv1.UpdateUsageRequest{StackId: make([]byte, 31), Seed: seed, Signer: sig}, "stack_id: 31 bytes, want 32"},
		{"no seed", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Signer: sig}, "seed: missing"},
		{"duplicate kind", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed, Signer: sig,
			Usage: []*ledgerv1.UsageAmount{reads(1), {Kind: typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS}, reads(2)}},
			"usage[2].kind: USAGE_KIND_DB_READS listed twice (first at usage[0])"},
		{"unknown kind", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed, Signer: sig,
			Usage: []*ledgerv1.UsageAmount{reads(1), {Kind: 99}}}, "usage[1].kind: unknown usage kind 99"},
		{"unspecified kind", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed, Signer: sig,
			Usage: []*ledgerv1.UsageAmount{{}}}, "usage[0].kind: unknown usage kind USAGE_KIND_UNSPECIFIED"},
		{"no signer", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed}, "signer: missing"},
		{"short pubkey", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed,
			Signer: &ledgerv1.Signature{Pubkey: make([]byte, 33), Signature: make([]byte, 64)}}, "signer.pubkey: 33 bytes, want 32"},
		{"short signature", &ledgerv1.UpdateUsageRequest{StackId: m.stack.Bytes(), Seed: seed,
			Signer: &ledgerv1.Signature{Pubkey: m.used.Pubkey().Bytes(), Signature: make([]byte, 10)}}, "signer.signature: 10 bytes, want 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := raw.UpdateUsage(t.Context(), tc.req)
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || rpcerr.ReasonOf(err) != rpcerr.InvalidRequest || st.Message() != tc.want {
				t.Fatalf("got %v %q (reason %q), want InvalidArgument %q", st.Code(), st.Message(), rpcerr.ReasonOf(err), tc.want)
			}
		})
	}
}

func TestClient_MapsEveryLedgerErrorBack(t *testing.T) {
	seenReasons := map[rpcerr.Reason]error{}
	for _, tc := range []struct {
		sentinel error
		code     codes.Code
	}{
		{ledger.ErrNotInitialized, codes.FailedPrecondition},
		{ledger.ErrAlreadyInitialized, codes.AlreadyExists},
		{ledger.ErrNotFound, codes.NotFound},
		{ledger.ErrAlreadyExists, codes.AlreadyExists},
		{ledger.ErrUnknownRegion, codes.NotFound},
		{ledger.ErrUnauthorizedProvider, codes.FailedPrecondition},
		{ledger.ErrBadSigner, codes.PermissionDenied},
		{ledger.ErrReplayedSeed, codes.AlreadyExists},
		{ledger.ErrInsufficientFunds, codes.FailedPrecondition},
		{ledger.ErrInsufficientEscrow, codes.FailedPrecondition},
		{ledger.ErrBelowMinimum, codes.FailedPrecondition},
		{ledger.ErrStackDeleted, codes.FailedPrecondition},
		{ledger.ErrInvalidArgument, codes.InvalidArgument},
		{ledger.ErrOverflow, codes.InvalidArgument},
		{ledger.ErrCompacted, codes.OutOfRange},
		{ledger.ErrUnavailable, codes.Unavailable},
		{ledger.ErrUnsupported, codes.Unimplemented},
	} {
		t.Run(tc.sentinel.Error(), func(t *testing.T) {
			answer := fmt.Errorf("ledger: withdraw escrow: %w: escrow holds 10, region minimum 1000", tc.sentinel)
			cc, _ := serve(t, failing{err: answer})
			c := ledgerrpc.NewClient(cc)
			_, usageErr := c.UpdateUsage(t.Context(), key(t, "x"), ledger.Pubkey{1}, ledger.U128(1), ledger.Usage{})
			_, withdrawErr := c.WithdrawEscrow(t.Context(), key(t, "x"), ledger.Pubkey{2}, 5)
			for _, err := range []error{usageErr, withdrawErr} {
				if !errors.Is(err, tc.sentinel) || status.Code(err) != tc.code {
					t.Fatalf("got %v (code %v), want %v over %v", err, status.Code(err), tc.sentinel, tc.code)
				}
				for _, m := range allSentinels {
					if m != tc.sentinel && errors.Is(err, m) {
						t.Errorf("%v also matches %v", err, m)
					}
				}
			}
			// The ledger's text reaches the caller as it was (people read it).
			if withdrawErr.Error() != answer.Error() {
				t.Errorf("client error %q, the ledger said %q", withdrawErr, answer)
			}
			if reason := rpcerr.ReasonOf(withdrawErr); reason == "" || seenReasons[reason] != nil && seenReasons[reason] != tc.sentinel {
				t.Errorf("reason %q of %v is empty or shared with %v", reason, tc.sentinel, seenReasons[reason])
			} else {
				seenReasons[reason] = tc.sentinel
			}
		})
	}
	if len(seenReasons) != len(allSentinels) {
		t.Errorf("%d reasons for %d sentinels", len(seenReasons), len(allSentinels))
	}
}

var allSentinels = []error{
	ledger.ErrNotInitialized, ledger.ErrAlreadyInitialized, ledger.ErrNotFound, ledger.ErrAlreadyExists,
	ledger.ErrUnknownRegion, ledger.ErrUnauthorizedProvider, ledger.ErrBadSigner, ledger.ErrReplayedSeed,
	ledger.ErrInsufficientFunds, ledger.ErrInsufficientEscrow, ledger.ErrBelowMinimum, ledger.ErrStackDeleted,
	ledger.ErrInvalidArgument, ledger.ErrOverflow, ledger.ErrCompacted, ledger.ErrUnavailable,
	ledger.ErrUnsupported,
}

// failing is a ledger whose UpdateUsage and WithdrawEscrow always fail
// with err (its other methods are not called).
type failing struct {
	ledger.Writer
	err error
}

func (f failing) UpdateUsage(context.Context, ledger.Signer, ledger.Pubkey, ledger.Uint128, ledger.Usage) (ledger.UsageResult, error) {
	return ledger.UsageResult{}, f.err
}

func (f failing) WithdrawEscrow(context.Context, ledger.Signer, ledger.Pubkey, uint64) (ledger.Escrow, error) {
	return ledger.Escrow{}, f.err
}
