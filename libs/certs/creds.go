package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// ServerCredentials are the gRPC transport credentials of a node's server:
// TLS 1.3 with the Reloader's certificate, requiring a client certificate
// that chains to its CA bundle (a client without one, or with one expired
// or of another CA, fails the handshake). Authorizing the verified
// identity is the server's interceptors' work (service.Runner).
func ServerCredentials(r *Reloader) credentials.TransportCredentials {
	return &transport{r: r, server: true}
}

// ClientCredentials are the gRPC transport credentials of a node's
// connections to a server of role server: TLS 1.3 presenting the
// Reloader's certificate, accepting a server whose certificate chains to
// the CA bundle and whose identity has role server (any role for RoleAny). Host names are not
// checked (a pod is dialled by IP or by a Service name; the identity is
// what says who answers). A handshake fails at once, with an error saying
// so, when this node's certificate has expired; when the server refuses
// the certificate after the handshake (TLS 1.3 clients learn it on the
// first read), the connection's error names the certificate and says the
// server refused it.
func ClientCredentials(r *Reloader, server Role) credentials.TransportCredentials {
	return &transport{r: r, role: server}
}

type transport struct {
	r      *Reloader
	server bool
	role   Role // the server's, on the client side
}

func (t *transport) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	m := t.r.current()
	leaf := m.cert.Leaf
	if now := t.r.now(); now.After(leaf.NotAfter) {
		raw.Close()
		return nil, nil, fmt.Errorf("certs: this node's certificate %s (%s, serial %s) expired at %s; the %s at %s would refuse it: renew it",
			m.files.Cert, m.id, serialOf(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), t.role, authority)
	}
	conn, info, err := m.client(t.role).ClientHandshake(ctx, authority, raw)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "remote error" {
			return nil, nil, fmt.Errorf("certs: the %s at %s refused the TLS handshake of %s (serial %s): %w", t.role, authority, m.id, serialOf(leaf), err)
		}
		return nil, nil, fmt.Errorf("certs: TLS handshake with the %s at %s: %w", t.role, authority, err)
	}
	return &clientConn{Conn: conn, m: m, role: t.role, authority: authority}, info, nil
}

func (t *transport) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	m := t.r.current()
	conn, info, err := m.server.ServerHandshake(raw)
	if err != nil {
		// A peer that closes before a word (a TCP probe, a port scan) is
		// not worth a warning.
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug
		}
		t.r.log.Log(context.Background(), level, "TLS handshake refused", "peer", raw.RemoteAddr().String(), "err", err)
		return nil, nil, err
	}
	return conn, info, nil
}

func (t *transport) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}

func (t *transport) Clone() credentials.TransportCredentials { c := *t; return &c }

// OverrideServerName is part of the interface, deprecated by gRPC and not
// used: mu checks identities, not server names.
func (t *transport) OverrideServerName(string) error { return nil }

// client returns the client credentials of m for a server of role,
// building them once.
func (m *material) client(role Role) credentials.TransportCredentials {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.clients[role]; ok {
		return c
	}
	cert := &m.cert
	c := credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always present the certificate, even if the server's list of
		// acceptable CAs does not name its issuer: the server then refuses
		// it with a reason of its own, instead of seeing no certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
		// The chain and the identity are checked by VerifyConnection;
		// Go's own check would also want the dialled host name in the
		// certificate.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return m.verifyServer(cs, role) },
	})
	m.clients[role] = c
	return c
}

// verifyServer checks that the server's certificate chains to the CA bundle
// and carries an identity of role. Its errors do not name the server: gRPC
// dials by address and Go leaves the connection's ServerName empty for an
// IP, so ClientHandshake's wrapper names the role and the address.
func (m *material) verifyServer(cs tls.ConnectionState, role Role) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("certs: the server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("certs: the server's certificate (serial %s) is not valid under tls_ca_file %s: %w", serialOf(leaf), m.files.CA, err)
	}
	id, err := ParseIdentity(leaf)
	if err != nil {
		return fmt.Errorf("certs: the server's certificate: %w", err)
	}
	if role != RoleAny && id.Role != role {
		return fmt.Errorf("certs: the server is %s, not a %s: refusing to use it as one", id, role)
	}
	return nil
}

// alertWait bounds how long a failed write waits to read the alert that
// explains it (the server's refusal arrives just before it closes).
const alertWait = 200 * time.Millisecond

// clientConn names the server's refusal of this node's certificate, which
// a TLS 1.3 client learns only after the handshake: on its first read, or
// as a failed write when the server has already closed, when it reads the
// alert that came before.
type clientConn struct {
	net.Conn
	m         *material
	role      Role
	authority string
	refusal   atomic.Pointer[error]
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		if r := c.refused(err); r != nil {
			return n, r
		}
	}
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		if r := c.refusal.Load(); r != nil {
			return n, *r
		}
		c.Conn.SetReadDeadline(time.Now().Add(alertWait))
		var b [1]byte
		if _, rerr := c.Conn.Read(b[:]); rerr != nil {
			if r := c.refused(rerr); r != nil {
				return n, fmt.Errorf("%w (%v)", r, err)
			}
		}
	}
	return n, err
}

// refused returns the error saying the server refused this node's
// certificate when err is a TLS alert from the server, and nil otherwise.
func (c *clientConn) refused(err error) error {
	if r := c.refusal.Load(); r != nil {
		return *r
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" {
		return nil
	}
	leaf := c.m.cert.Leaf
	r := fmt.Errorf("certs: the %s at %s refused this node's certificate %s (%s, serial %s, valid until %s; is it signed by a CA the server trusts, and unexpired?): %w",
		c.role, c.authority, c.m.files.Cert, c.m.id, serialOf(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), err)
	c.refusal.CompareAndSwap(nil, &r)
	return *c.refusal.Load()
}
