package ledgerrpc_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/ledger/ledgertest"
	"github.com/muprotocol/mu/libs/ledger/local"
	"github.com/muprotocol/mu/libs/rpcerr"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

func openLocal(t testing.TB) *local.Ledger {
	t.Helper()
	l, err := local.Open(local.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// remote is a ledger whose writes (and State, Balance) go through a
// Client over gRPC to a hosted local ledger, and whose other reads go to
// that ledger directly: what a process without the ledger sees.
type remote struct {
	*ledgerrpc.Client // depth 1: every Writer method
	reads             // depth 2: the rest of ledger.Ledger
	close             func() error
}

type reads struct{ ledger.Ledger }

func (r remote) Close() error { return r.close() }

var _ ledger.Ledger = remote{}

// The contract suite passes with every write sent over the wire: the
// server, the client and the message builders together keep every rule,
// error and signature check of the ledger itself.
func TestClient_PassesContractSuiteOverTheWire(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		l := openLocal(t)
		cc, stop := serve(t, l)
		return remote{Client: ledgerrpc.NewClient(cc), reads: reads{l}, close: func() error {
			cc.Close()
			stop()
			return l.Close()
		}}
	})
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// world is a market built through the Client only.
type world struct {
	l                           *local.Ledger
	c                           *ledgerrpc.Client
	auth, prov, dev, usage, bob *ledger.Keypair
	provider                    ledger.Provider
	region                      ledger.Region
	stack                       ledger.Stack
}

func regionCfg(name string, min uint64) ledger.RegionConfig {
	return ledger.RegionConfig{
		Name: name, BaseURL: "https://" + name + ".example.net", MinEscrowBalance: min,
		Rates:                      ledger.Rates{FunctionPerTeraMBInstructions: 1000, DBPerMillionWrites: 20, StoragePerGiBTraffic: 80},
		MaxGigaInstructionsPerCall: 100, MinMemoryLimitBytes: 1 << 20, MaxMemoryLimitBytes: 1 << 30,
	}
}

// buildMarket writes a whole market through c and checks every answer
// against the ledger's own reads.
func buildMarket(t *testing.T, l *local.Ledger, c *ledgerrpc.Client) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{l: l, c: c, auth: key(t, "authority"), prov: key(t, "provider"), dev: key(t, "developer"),
		usage: key(t, "usage-signer"), bob: key(t, "bob")}
	ok(t, "Initialize", c.Initialize(ctx, w.auth, ledger.InitParams{ProviderDeposit: 1000, CommissionMicros: 100_000}))
	ok(t, "Mint", c.Mint(ctx, w.auth, w.prov.Pubkey(), 5000))
	ok(t, "Mint", c.Mint(ctx, w.auth, w.dev.Pubkey(), 100_000))
	ok(t, "Transfer", c.Transfer(ctx, w.dev, w.bob.Pubkey(), 1000))
	ok(t, "UpdateProviderDeposit", c.UpdateProviderDeposit(ctx, w.auth, 900))
	var err error
	w.provider, err = c.CreateProvider(ctx, w.prov, "acme")
	ok(t, "CreateProvider", err)
	ok(t, "AuthorizeProvider", c.AuthorizeProvider(ctx, w.auth, w.provider.ID))
	created, err := c.CreateRegion(ctx, w.prov, 1, regionCfg("eu1", 100))
	ok(t, "CreateRegion", err)
	w.region, err = c.UpdateRegion(ctx, w.prov, created.ID, regionCfg("eu1b", 150))
	ok(t, "UpdateRegion", err)
	ok(t, "CreateUsageSigner", c.CreateUsageSigner(ctx, w.prov, w.region.ID, w.usage.Pubkey()))
	w.region.UsageSigner = w.usage.Pubkey()
	e, err := c.CreateEscrow(ctx, w.dev, w.provider.ID)
	ok(t, "CreateEscrow", err)
	if e.Balance != 0 || e.Developer != w.dev.Pubkey() || e.Provider != w.provider.ID {
		t.Fatalf("new escrow %+v", e)
	}
	_, err = c.RechargeEscrow(ctx, w.dev, w.provider.ID, 2000)
	ok(t, "RechargeEscrow", err)
	e, err = c.WithdrawEscrow(ctx, w.dev, w.provider.ID, 500)
	ok(t, "WithdrawEscrow", err)
	if e.Balance != 1500 {
		t.Fatalf("escrow %d after 2000 in and 500 out", e.Balance)
	}
	w.stack, err = c.CreateStack(ctx, w.dev, w.region.ID, 7, []byte("name: app\n"))
	ok(t, "CreateStack", err)
	w.stack, err = c.UpdateStack(ctx, w.dev, w.stack.ID, []byte("name: app2\n"))
	ok(t, "UpdateStack", err)
	if w.stack.Revision != 2 || string(w.stack.Manifest) != "name: app2\n" {
		t.Fatalf("updated stack %+v", w.stack)
	}
	_, err = c.UpdateUsage(ctx, w.usage, w.stack.ID, ledger.U128(1), ledger.Usage{DBWrites: ledger.U128(1_000_000)})
	ok(t, "UpdateUsage", err)

	// Every answer is what the ledger itself holds.
	same := func(what string, got, want any, err error) {
		t.Helper()
		ok(t, what, err)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the client got %+v, the ledger holds %+v", what, got, want)
		}
	}
	p, err := l.Provider(ctx, w.provider.ID)
	w.provider.Authorized = true
	same("provider", w.provider, p, err)
	r, err := l.Region(ctx, w.region.ID)
	same("region", w.region, r, err)
	s, err := l.Stack(ctx, w.stack.ID)
	same("stack", w.stack, s, err)
	e, err = c.WithdrawEscrow(ctx, w.dev, w.provider.ID, 1)
	ok(t, "WithdrawEscrow", err)
	le, err := l.Escrow(ctx, w.dev.Pubkey(), w.provider.ID)
	same("escrow", e, le, err)
	st, err := c.State(ctx)
	ok(t, "State", err)
	lst, err := l.State(ctx)
	same("state", st, lst, err)
	if st.ProviderDeposit != 900 || st.Authority != w.auth.Pubkey() {
		t.Errorf("state %+v", st)
	}
	for _, k := range []*ledger.Keypair{w.auth, w.prov, w.dev, w.bob, w.usage} {
		got, err := c.Balance(ctx, k.Pubkey())
		ok(t, "Balance", err)
		want, err := l.Balance(ctx, k.Pubkey())
		same("balance of "+k.Pubkey().String(), got, want, err)
	}
	if b, _ := c.Balance(ctx, w.bob.Pubkey()); b != 1000 {
		t.Errorf("bob holds %d after a transfer of 1000", b)
	}
	slot, err := c.Slot(ctx)
	ok(t, "Slot", err)
	lslot, err := l.Slot(ctx)
	same("slot", slot, lslot, err)
	if slot == 0 {
		t.Error("slot 0 after a whole market's writes")
	}
	return w
}

func TestClient_BuildsAWholeMarket(t *testing.T) {
	l := openLocal(t)
	cc, _ := serve(t, l)
	w := buildMarket(t, l, ledgerrpc.NewClient(cc))
	deleted, err := w.c.DeleteStack(t.Context(), w.dev, w.stack.ID)
	ok(t, "DeleteStack", err)
	s, err := l.Stack(t.Context(), w.stack.ID)
	ok(t, "Stack", err)
	if !reflect.DeepEqual(deleted, s) || s.State != ledger.StackDeleted {
		t.Errorf("deleted stack: the client got %+v, the ledger holds %+v", deleted, s)
	}
	if _, err := w.c.UpdateStack(t.Context(), w.dev, w.stack.ID, []byte("x")); !errors.Is(err, ledger.ErrStackDeleted) ||
		rpcerr.ReasonOf(err) != rpcerr.StackDeleted {
		t.Errorf("update of a deleted stack: %v, want ErrStackDeleted", err)
	}
}

// liar claims one key and signs with another.
type liar struct {
	claims ledger.Pubkey
	signs  *ledger.Keypair
}

func (s liar) Pubkey() ledger.Pubkey           { return s.claims }
func (s liar) Sign(msg []byte) ([]byte, error) { return s.signs.Sign(msg) }

// writes is every write of w's market, as the key that may make it.
func (w *world) writes() []struct {
	name string
	as   *ledger.Keypair
	do   func(c ledger.Writer, s ledger.Signer) error
} {
	ctx := context.Background()
	cfg := regionCfg("eu2", 10)
	return []struct {
		name string
		as   *ledger.Keypair
		do   func(c ledger.Writer, s ledger.Signer) error
	}{
		{"Initialize", w.auth, func(c ledger.Writer, s ledger.Signer) error {
			return c.Initialize(ctx, s, ledger.InitParams{ProviderDeposit: 5})
		}},
		{"Mint", w.auth, func(c ledger.Writer, s ledger.Signer) error { return c.Mint(ctx, s, w.dev.Pubkey(), 3) }},
		{"Transfer", w.dev, func(c ledger.Writer, s ledger.Signer) error { return c.Transfer(ctx, s, w.bob.Pubkey(), 3) }},
		{"CreateProvider", w.bob, func(c ledger.Writer, s ledger.Signer) error { _, err := c.CreateProvider(ctx, s, "bob"); return err }},
		{"AuthorizeProvider", w.auth, func(c ledger.Writer, s ledger.Signer) error { return c.AuthorizeProvider(ctx, s, w.provider.ID) }},
		{"UpdateProviderDeposit", w.auth, func(c ledger.Writer, s ledger.Signer) error { return c.UpdateProviderDeposit(ctx, s, 7) }},
		{"CreateRegion", w.prov, func(c ledger.Writer, s ledger.Signer) error { _, err := c.CreateRegion(ctx, s, 2, cfg); return err }},
		{"UpdateRegion", w.prov, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.UpdateRegion(ctx, s, w.region.ID, cfg)
			return err
		}},
		{"CreateUsageSigner", w.prov, func(c ledger.Writer, s ledger.Signer) error {
			return c.CreateUsageSigner(ctx, s, w.region.ID, w.usage.Pubkey())
		}},
		{"CreateEscrow", w.bob, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.CreateEscrow(ctx, s, w.provider.ID)
			return err
		}},
		{"RechargeEscrow", w.dev, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.RechargeEscrow(ctx, s, w.provider.ID, 3)
			return err
		}},
		{"WithdrawEscrow", w.dev, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.WithdrawEscrow(ctx, s, w.provider.ID, 3)
			return err
		}},
		{"CreateStack", w.dev, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.CreateStack(ctx, s, w.region.ID, 8, []byte("name: b\n"))
			return err
		}},
		{"UpdateStack", w.dev, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.UpdateStack(ctx, s, w.stack.ID, []byte("name: c\n"))
			return err
		}},
		{"DeleteStack", w.dev, func(c ledger.Writer, s ledger.Signer) error { _, err := c.DeleteStack(ctx, s, w.stack.ID); return err }},
		{"UpdateUsage", w.usage, func(c ledger.Writer, s ledger.Signer) error {
			_, err := c.UpdateUsage(ctx, s, w.stack.ID, ledger.U128(2), ledger.Usage{DBWrites: ledger.U128(5)})
			return err
		}},
	}
}

// alter changes the first argument of a request after it was signed: the
// first scalar field, looking into messages other than the Signature.
func alter(m protoreflect.Message) bool {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			list := m.Mutable(fd).List()
			if list.Len() > 0 && alter(list.Get(0).Message()) {
				return true
			}
		case fd.Kind() == protoreflect.MessageKind:
			if fd.Message().FullName() == "mu.ledger.v1.Signature" || !m.Has(fd) {
				continue
			}
			if alter(m.Mutable(fd).Message()) {
				return true
			}
		case fd.Kind() == protoreflect.BytesKind:
			b := append([]byte{}, m.Get(fd).Bytes()...)
			if len(b) == 0 {
				b = []byte{0}
			}
			b[0] ^= 1
			m.Set(fd, protoreflect.ValueOfBytes(b))
			return true
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(m.Get(fd).String()+"x"))
			return true
		case fd.Kind() == protoreflect.Uint64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(m.Get(fd).Uint()+1))
			return true
		case fd.Kind() == protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(uint32(m.Get(fd).Uint())+1))
			return true
		}
	}
	return false
}

// For every write, a forged signature (the right key claimed, another
// key signing) and an argument altered after signing are refused as
// ErrBadSigner, and nothing changes; the write as signed then succeeds.
func TestServer_RefusesForgedAndAlteredWrites(t *testing.T) {
	l := openLocal(t)
	cc, _ := serve(t, l)
	w := buildMarket(t, l, ledgerrpc.NewClient(cc))
	altering := true
	tampered, _ := serve(t, l, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if altering {
			m := proto.Clone(req.(proto.Message))
			if !alter(m.ProtoReflect()) {
				t.Errorf("%s: nothing to alter in %v", method, req)
			}
			req = m
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}))
	forger := key(t, "mallory")
	for _, wr := range w.writes() {
		t.Run(wr.name, func(t *testing.T) {
			before, err := l.Slot(t.Context())
			ok(t, "Slot", err)
			err = wr.do(w.c, liar{claims: wr.as.Pubkey(), signs: forger})
			if !errors.Is(err, ledger.ErrBadSigner) || status.Code(err) != codes.PermissionDenied {
				t.Errorf("forged: %v, want ErrBadSigner over PermissionDenied", err)
			}
			altering = true
			if err := wr.do(ledgerrpc.NewClient(tampered), wr.as); !errors.Is(err, ledger.ErrBadSigner) {
				t.Errorf("altered after signing: %v, want ErrBadSigner", err)
			}
			if after, _ := l.Slot(t.Context()); after != before {
				t.Errorf("a refused write moved the slot from %d to %d", before, after)
			}
			altering = false
			err = wr.do(ledgerrpc.NewClient(tampered), wr.as)
			if wr.name == "Initialize" {
				if !errors.Is(err, ledger.ErrAlreadyInitialized) {
					t.Errorf("as signed: %v, want ErrAlreadyInitialized (the signature passed)", err)
				}
				return
			}
			ok(t, "as signed", err)
		})
	}
}

func TestServer_FieldErrorsNameTheField(t *testing.T) {
	l := openLocal(t)
	cc, _ := serve(t, l)
	raw := ledgerv1.NewLedgerServiceClient(cc)
	ctx := t.Context()
	k := key(t, "k").Pubkey().Bytes()
	sig := &ledgerv1.Signature{Pubkey: k, Signature: make([]byte, 64)}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"mint to", func() error {
			_, err := raw.Mint(ctx, &ledgerv1.MintRequest{To: make([]byte, 31), Amount: 1, Authority: sig})
			return err
		}, "to: 31 bytes, want 32"},
		{"no authority", func() error { _, err := raw.Initialize(ctx, &ledgerv1.InitializeRequest{}); return err }, "authority: missing"},
		{"transfer signature", func() error {
			_, err := raw.Transfer(ctx, &ledgerv1.TransferRequest{To: k, From: &ledgerv1.Signature{Pubkey: k, Signature: make([]byte, 10)}})
			return err
		}, "from.signature: 10 bytes, want 64"},
		{"owner pubkey", func() error {
			_, err := raw.CreateProvider(ctx, &ledgerv1.CreateProviderRequest{Name: "n", Owner: &ledgerv1.Signature{Signature: make([]byte, 64)}})
			return err
		}, "owner.pubkey: 0 bytes, want 32"},
		{"no config", func() error {
			_, err := raw.CreateRegion(ctx, &ledgerv1.CreateRegionRequest{Number: 1, Owner: sig})
			return err
		}, "config: missing"},
		{"no rates", func() error {
			_, err := raw.UpdateRegion(ctx, &ledgerv1.UpdateRegionRequest{RegionId: k, Config: &ledgerv1.RegionConfig{Name: "r"}, Owner: sig})
			return err
		}, "config.rates: missing"},
		{"usage signer", func() error {
			_, err := raw.CreateUsageSigner(ctx, &ledgerv1.CreateUsageSignerRequest{RegionId: k, UsageSigner: make([]byte, 33), Owner: sig})
			return err
		}, "usage_signer: 33 bytes, want 32"},
		{"escrow provider", func() error {
			_, err := raw.RechargeEscrow(ctx, &ledgerv1.RechargeEscrowRequest{Amount: 1, Developer: sig})
			return err
		}, "provider_id: 0 bytes, want 32"},
		{"stack region", func() error {
			_, err := raw.CreateStack(ctx, &ledgerv1.CreateStackRequest{RegionId: make([]byte, 2), Owner: sig})
			return err
		}, "region_id: 2 bytes, want 32"},
		{"delete stack id", func() error {
			_, err := raw.DeleteStack(ctx, &ledgerv1.DeleteStackRequest{StackId: make([]byte, 64), Owner: sig})
			return err
		}, "stack_id: 64 bytes, want 32"},
		{"balance account", func() error { _, err := raw.GetBalance(ctx, &ledgerv1.GetBalanceRequest{}); return err }, "account: 0 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || rpcerr.ReasonOf(err) != rpcerr.InvalidRequest || st.Message() != tc.want {
				t.Fatalf("got %v %q (reason %q), want InvalidArgument %q", st.Code(), st.Message(), rpcerr.ReasonOf(err), tc.want)
			}
		})
	}
	if before, _ := l.Slot(ctx); before != 0 {
		t.Errorf("malformed requests wrote: slot %d", before)
	}
}
