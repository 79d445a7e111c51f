package service

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/rpcerr"
)

// pki is a test region's CA and the files it wrote into dir.
type pki struct {
	ca  *certs.CA
	dir string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := certs.NewCA("test region", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, dir: t.TempDir()}
}

func (p *pki) node(t *testing.T, role certs.Role, name string) certs.Files {
	t.Helper()
	f, err := p.ca.WriteNode(p.dir, certs.Identity{Role: role, Name: name}, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tlsBase is testBase with mTLS from f.
func tlsBase(f certs.Files) Base {
	b := testBase()
	b.AdminAddr = ""
	b.SetTLSFiles(f)
	return b
}

// startTLSEcho starts the echo service with mTLS as a runtime node whose
// echo method only gateways may call, and a handler that answers with the
// caller's identity.
func startTLSEcho(t *testing.T, p *pki, reload time.Duration) (*Runner, certs.Files) {
	t.Helper()
	f := p.node(t, certs.RoleRuntime, "rt-1")
	b := tlsBase(f)
	if reload > 0 {
		b.TLSReloadInterval = reload
	}
	r := NewRunner("runtime", b, RunnerOptions{Rules: Rules{echoMethod: {certs.RoleGateway}}})
	e := &echo{fn: func(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		id, ok := Caller(ctx)
		if !ok {
			return nil, status.Error(codes.Internal, "no caller in the context")
		}
		return wrapperspb.Bytes([]byte(id.String())), nil
	}}
	r.GRPC().RegisterService(&echoDesc, e)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(nil) })
	return r, f
}

func dialWith(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialAs dials addr with the node credentials of files, expecting a
// server of role server.
func dialAs(t *testing.T, addr string, f certs.Files, server certs.Role) *grpc.ClientConn {
	t.Helper()
	tc, err := NewTLS(tlsBase(f), nil)
	if err != nil {
		t.Fatal(err)
	}
	return dialWith(t, addr, tc.ClientCredentials(server))
}

func callEcho(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.BytesValue)
	err := cc.Invoke(ctx, echoMethod, wrapperspb.Bytes(nil), out, opts...)
	return string(out.GetValue()), err
}

func wantUnavailable(t *testing.T, err error, texts ...string) {
	t.Helper()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want UNAVAILABLE", err)
	}
	for _, s := range texts {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
}

func TestTLS_RightRolePassesWithItsIdentityInTheContext(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	cc := dialAs(t, r.GRPCAddr(), p.node(t, certs.RoleGateway, "gw-1"), certs.RoleRuntime)
	got, err := callEcho(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	if got != "spiffe://mu/gateway/gw-1" {
		t.Errorf("handler saw caller %q", got)
	}
}

func TestTLS_WrongRoleIsPermissionDeniedNamingIdentityMethodAndRoles(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	cc := dialAs(t, r.GRPCAddr(), p.node(t, certs.RoleStorage, "st-1"), certs.RoleRuntime)
	_, err := callEcho(context.Background(), cc)
	if status.Code(err) != codes.PermissionDenied || rpcerr.ReasonOf(err) != rpcerr.CallerNotAuthorized {
		t.Fatalf("err = %v, want PERMISSION_DENIED CALLER_NOT_AUTHORIZED", err)
	}
	for _, s := range []string{"spiffe://mu/storage/st-1", echoMethod, "allowed roles: gateway"} {
		if !strings.Contains(status.Convert(err).Message(), s) {
			t.Errorf("message lacks %q: %v", s, err)
		}
	}
}

func TestTLS_HealthIsOpenToAnyVerifiedCertificate(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	cc := dialAs(t, r.GRPCAddr(), p.node(t, certs.RoleOperator, "alice"), certs.RoleRuntime)
	if err := cc.Invoke(context.Background(), "/grpc.health.v1.Health/Check", wrapperspb.Bytes(nil), new(wrapperspb.BytesValue)); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unavailable {
		t.Errorf("health check by an operator: %v", err)
	}
}

func TestTLS_ClientWithoutCertificateFailsTheHandshake(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	cc := dialWith(t, r.GRPCAddr(), credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}))
	// The server's alert ("tls: certificate required") or, when it closed
	// first, a failed write: the call never reaches the handler.
	_, err := callEcho(context.Background(), cc)
	wantUnavailable(t, err)
}

func TestTLS_CertificateOfAnotherCAIsRefusedByTheServer(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	other := newPKI(t)
	f := other.node(t, certs.RoleGateway, "gw-1")
	// The intruder trusts the region's CA too, so it gets as far as
	// presenting its certificate.
	bundle := filepath.Join(other.dir, "both.crt")
	if err := os.WriteFile(bundle, append(append([]byte{}, p.ca.CertPEM()...), other.ca.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	f.CA = bundle
	cc := dialAs(t, r.GRPCAddr(), f, certs.RoleRuntime)
	_, err := callEcho(context.Background(), cc)
	wantUnavailable(t, err, "the runtime at "+r.GRPCAddr()+" refused this node's certificate", "spiffe://mu/gateway/gw-1", "unknown certificate authority")
}

func TestTLS_ClientRefusesServerOfAnotherCA(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	other := newPKI(t)
	cc := dialAs(t, r.GRPCAddr(), other.node(t, certs.RoleGateway, "gw-1"), certs.RoleRuntime)
	_, err := callEcho(context.Background(), cc)
	wantUnavailable(t, err, "is not valid under tls_ca_file", "unknown authority")
}

func TestTLS_ClientRefusesServerOfTheWrongRole(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	cc := dialAs(t, r.GRPCAddr(), p.node(t, certs.RoleGateway, "gw-1"), certs.RoleMudb)
	_, err := callEcho(context.Background(), cc)
	wantUnavailable(t, err, "is spiffe://mu/runtime/rt-1, not a mudb")
}

func TestTLS_ExpiredCertificateIsRefused(t *testing.T) {
	p := newPKI(t)
	r, _ := startTLSEcho(t, p, 0)
	now := time.Now()
	is, err := p.ca.IssueBetween(certs.Identity{Role: certs.RoleGateway, Name: "old"}, nil, nil, now.Add(-4*time.Minute), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f := certs.Files{Cert: filepath.Join(p.dir, "old.crt"), Key: filepath.Join(p.dir, "old.key"), CA: filepath.Join(p.dir, "ca.crt")}
	if err := is.WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	t.Run("our client says its certificate expired", func(t *testing.T) {
		cc := dialAs(t, r.GRPCAddr(), f, certs.RoleRuntime)
		_, err := callEcho(context.Background(), cc)
		wantUnavailable(t, err, "this node's certificate "+f.Cert, "spiffe://mu/gateway/old", "expired at", "renew it")
	})
	t.Run("the server refuses it", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		cc := dialWith(t, r.GRPCAddr(), credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}))
		// A plain gRPC client learns of the refusal as a remote error
		// ("tls: expired certificate") or, when the server closed first,
		// as a failed write; either way the call does not reach the
		// handler.
		_, err = callEcho(context.Background(), cc)
		wantUnavailable(t, err)
	})
}

func TestTLS_InProcessCallsAreNotChecked(t *testing.T) {
	p := newPKI(t)
	b := tlsBase(p.node(t, certs.RoleRuntime, "rt-1"))
	r := NewRunner("runtime", b, RunnerOptions{Rules: Rules{echoMethod: nil}}) // no role may call it over gRPC
	e := &echo{fn: func(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { return in, nil }}
	r.GRPC().RegisterService(&echoDesc, e)
	u := NewUnary(r, e, echoMethod, e.Echo)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close(nil)
	if _, err := u.Call(context.Background(), wrapperspb.Bytes([]byte("x"))); err != nil {
		t.Errorf("in-process call: %v", err)
	}
	cc := dialAs(t, r.GRPCAddr(), p.node(t, certs.RoleGateway, "gw-1"), certs.RoleRuntime)
	if _, err := callEcho(context.Background(), cc); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "allowed roles: none") {
		t.Errorf("gRPC call to a method no role may call: %v", err)
	}
}

func TestRunner_StartFailsForAMethodWithoutARule(t *testing.T) {
	r := NewRunner("svc", testBase(), RunnerOptions{})
	r.GRPC().RegisterService(&echoDesc, &echo{})
	defer r.Close(nil)
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "no authorization rule (RunnerOptions.Rules) for "+echoMethod) {
		t.Errorf("Start = %v", err)
	}
}

func TestRunner_StartFailsWhenTheTLSFilesDoNotLoad(t *testing.T) {
	p := newPKI(t)
	f := p.node(t, certs.RoleRuntime, "rt-1")
	f.Key = p.node(t, certs.RoleRuntime, "other").Key
	r := NewRunner("runtime", tlsBase(f), RunnerOptions{})
	defer r.Close(nil)
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "tls_key_file "+f.Key) {
		t.Errorf("Start with a key of another certificate = %v", err)
	}
}

// serialSeen dials addr afresh and returns the serial number of the
// server certificate its handshake saw.
func serialSeen(t *testing.T, addr string, client certs.Files) *big.Int {
	t.Helper()
	cc := dialAs(t, addr, client, certs.RoleRuntime)
	defer cc.Close()
	var pr peer.Peer
	if _, err := callEcho(context.Background(), cc, grpc.Peer(&pr)); err != nil {
		t.Fatalf("new connection: %v", err)
	}
	return pr.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
}

func TestTLS_ReloadUnderLoadFailsNoCallAndNewConnectionsSeeTheNewCertificate(t *testing.T) {
	p := newPKI(t)
	r, f := startTLSEcho(t, p, 20*time.Millisecond)
	client := p.node(t, certs.RoleGateway, "gw-1")
	before := serialSeen(t, r.GRPCAddr(), client)

	// Load: one long-lived connection and fresh ones, calling in a loop.
	ctx, stop := context.WithCancel(context.Background())
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	long := dialAs(t, r.GRPCAddr(), client, certs.RoleRuntime)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cc := long
				if w%2 == 1 {
					cc = dialAs(t, r.GRPCAddr(), client, certs.RoleRuntime)
				}
				if _, err := callEcho(context.Background(), cc); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
				if cc != long {
					cc.Close()
				}
			}
		}()
	}

	// A half-written rotation (a key of another certificate) is refused
	// and the old certificate stays in use.
	other, err := p.ca.Issue(certs.Identity{Role: certs.RoleRuntime, Name: "rt-1"}, nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFile(f.Key, other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.TLS().Reloader().Check(); err == nil || !strings.Contains(err.Error(), "tls_key_file") {
		t.Errorf("mismatched key accepted: %v", err)
	}
	if got := serialSeen(t, r.GRPCAddr(), client); got.Cmp(before) != 0 {
		t.Errorf("after a refused key a new connection saw serial %x, want the old %x", got, before)
	}
	// The whole rotation.
	if err := other.WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	want := other.Cert.SerialNumber
	var got *big.Int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = serialSeen(t, r.GRPCAddr(), client); got.Cmp(want) == 0 {
			break
		}
	}
	for calls.Load() < 200 { // enough calls across the swap
		time.Sleep(time.Millisecond)
	}
	stop()
	wg.Wait()
	if got.Cmp(want) != 0 {
		t.Errorf("new connections still see serial %x, want the new %x", got, want)
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed during the rotation; first: %v", failed.Load(), calls.Load(), firstErr.Load())
	}
	t.Logf("%d calls, 0 failed", calls.Load())
}
