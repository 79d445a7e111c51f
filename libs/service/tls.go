package service

import (
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/certs"
)

// TLS is a node's transport security on its internal gRPC links, made from
// Base's tls_* settings: the credentials of its gRPC server (the Runner's)
// and of every connection it dials to another service, which all share one
// certs.Reloader, so a changed certificate or CA bundle is picked up by all
// of them. With plaintext it is insecure credentials and no reloader. Safe
// for concurrent use.
type TLS struct {
	reloader *certs.Reloader // nil with plaintext
}

// NewTLS loads b's TLS files (nothing with plaintext), failing with an
// error naming the setting and file that are wrong. log receives reloads
// and refused files; nil discards them.
func NewTLS(b Base, log *slog.Logger) (*TLS, error) {
	if b.Plaintext {
		return &TLS{}, nil
	}
	r, err := certs.NewReloader(certs.Files{Cert: b.TLSCertFile, Key: b.TLSKeyFile, CA: b.TLSCAFile}, b.TLSReloadInterval, log)
	if err != nil {
		return nil, err
	}
	return &TLS{reloader: r}, nil
}

// Plaintext reports whether t is the plaintext setting's (no TLS).
func (t *TLS) Plaintext() bool { return t.reloader == nil }

// Reloader is the node's TLS material, nil with plaintext.
func (t *TLS) Reloader() *certs.Reloader { return t.reloader }

// ClientCredentials are the transport credentials of a connection to a
// service of role server: mTLS with this node's certificate, accepting only
// a server of that role whose certificate chains to tls_ca_file
// (certs.ClientCredentials); insecure with plaintext. Every internal dial
// takes its credentials from here.
func (t *TLS) ClientCredentials(server certs.Role) credentials.TransportCredentials {
	if t.reloader == nil {
		return insecure.NewCredentials()
	}
	return certs.ClientCredentials(t.reloader, server)
}

// DialOption is grpc.WithTransportCredentials of ClientCredentials(server).
func (t *TLS) DialOption(server certs.Role) grpc.DialOption {
	return grpc.WithTransportCredentials(t.ClientCredentials(server))
}

// serverCredentials are the Runner's: mTLS requiring a client certificate
// of the CA bundle, or insecure with plaintext.
func (t *TLS) serverCredentials() credentials.TransportCredentials {
	if t.reloader == nil {
		return insecure.NewCredentials()
	}
	return certs.ServerCredentials(t.reloader)
}

// SetTLSFiles makes b use mTLS with the files f (a node's certificate, key
// and CA bundle, as certs.CA.WriteNode writes them).
func (b *Base) SetTLSFiles(f certs.Files) {
	b.TLSCertFile, b.TLSKeyFile, b.TLSCAFile, b.Plaintext = f.Cert, f.Key, f.CA, false
}
