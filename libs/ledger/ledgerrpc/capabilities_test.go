package ledgerrpc_test

import (
	"errors"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// lacking is a hosted backend that lacks what the Solana backend lacks.
type lacking struct {
	ledger.Writer
	lacks []ledger.Capability
}

func (l lacking) Lacks() []ledger.Capability { return l.lacks }

func TestClient_FetchLacksCarriesWhatTheHostLacks(t *testing.T) {
	m := newMarket(t)
	want := []ledger.Capability{ledger.CapCarries, ledger.CapPartialCharge, "a_rule_this_client_does_not_know"}
	cc, _ := serve(t, lacking{Writer: m.l, lacks: want})
	c := ledgerrpc.NewClient(cc)
	if c.LacksKnown() || c.Lacks() != nil {
		t.Fatal("the client claims to know the host's capabilities before asking")
	}
	got, err := c.FetchLacks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.Equal(c.Lacks(), want) || !c.LacksKnown() {
		t.Fatalf("FetchLacks %v, Lacks %v, want %v", got, c.Lacks(), want)
	}
	if !ledger.Lacks(c, ledger.CapCarries) || !ledger.Lacks(c, ledger.CapPartialCharge) {
		t.Fatal("ledger.Lacks does not see through the client")
	}
}

func TestClient_FetchLacksOfTheLocalLedgerIsNone(t *testing.T) {
	m := newMarket(t)
	cc, _ := serve(t, m.l)
	c := ledgerrpc.NewClient(cc)
	got, err := c.FetchLacks(t.Context())
	if err != nil || len(got) != 0 || !c.LacksKnown() {
		t.Fatalf("FetchLacks = %v, %v; want none", got, err)
	}
	if ledger.Lacks(c, ledger.CapCarries) {
		t.Fatal("the local ledger's client lacks carries")
	}
}

// oldHost is a LedgerService from before GetCapabilities.
type oldHost struct {
	ledgerv1.UnimplementedLedgerServiceServer
}

func TestClient_FetchLacksOfAHostWithoutTheRPCIsNone(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ledgerv1.RegisterLedgerServiceServer(srv, oldHost{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := ledgerrpc.NewClient(cc)
	got, err := c.FetchLacks(t.Context())
	if err != nil || len(got) != 0 || !c.LacksKnown() {
		t.Fatalf("FetchLacks = %v, %v; want none", got, err)
	}
}

func TestClient_FetchLacksOfAnUnreachableHostIsUnavailableAndNotCached(t *testing.T) {
	m := newMarket(t)
	cc, stop := serve(t, lacking{Writer: m.l, lacks: []ledger.Capability{ledger.CapCarries}})
	stop()
	c := ledgerrpc.NewClient(cc)
	if _, err := c.FetchLacks(t.Context()); !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("FetchLacks of a stopped host: %v, want ErrUnavailable", err)
	}
	if c.LacksKnown() {
		t.Fatal("a failed FetchLacks was cached")
	}
}
