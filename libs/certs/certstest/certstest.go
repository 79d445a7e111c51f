// Package certstest makes a throwaway CA and node certificates for tests
// of mTLS: files in the test's temporary directory, and the client
// credentials of any identity.
package certstest

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
)

// PKI is a test CA and the directory it writes certificates to.
type PKI struct {
	CA  *certs.CA
	Dir string
}

// New makes a CA valid for an hour, writing into t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	ca, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, Dir: t.TempDir()}
}

// Node issues a certificate for role/name valid for an hour (for
// localhost and 127.0.0.1) and returns its files.
func (p *PKI) Node(t testing.TB, role certs.Role, name string) certs.Files {
	t.Helper()
	f, err := p.CA.WriteNode(p.Dir, certs.Identity{Role: role, Name: name}, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Secure issues a certificate for role and b's node name and makes b use
// it (mTLS).
func (p *PKI) Secure(t testing.TB, b *service.Base, role certs.Role) {
	t.Helper()
	b.SetTLSFiles(p.Node(t, role, b.NodeName))
}

// Dial connects to addr, a server of role server, as role/name, closing
// the connection at cleanup. extra options follow the credentials.
func (p *PKI) Dial(t testing.TB, addr string, server, role certs.Role, name string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	var b service.Base
	b.SetTLSFiles(p.Node(t, role, name))
	b.TLSReloadInterval = time.Minute
	tc, err := service.NewTLS(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{tc.DialOption(server)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
