package region

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
)

// TLSOptions run a region with mTLS on every gRPC link, as a provider's
// region runs: the region makes a throwaway CA and a certificate for each
// node (identity spiffe://mu/<role>/<node name>) in DataDir/certs (a
// temporary directory without DataDir), configures every node with its
// files, and calls its nodes as an operator (spiffe://mu/operator/region).
// Without TLSOptions (and without Options.ClientTLS) every node is set to
// plaintext: the explicitly local case.
type TLSOptions struct {
	// Validity is how long the CA and the certificates are valid; 0 means
	// 24 hours.
	Validity time.Duration
	// ReloadInterval is every node's tls_reload_interval; 0 keeps the
	// default.
	ReloadInterval time.Duration
}

// regionPKI is the CA of a region started with TLSOptions and where it
// writes certificates.
type regionPKI struct {
	ca       *certs.CA
	dir      string
	validity time.Duration
	reload   time.Duration
}

// startTLS sets r.tls (the credentials of the region's own connections) and,
// with Options.TLS, makes the region's CA.
func (r *Region) startTLS() error {
	switch {
	case r.opts.ClientTLS != nil:
		r.tls = r.opts.ClientTLS
		return nil
	case r.opts.TLS == nil:
		r.tls, _ = service.NewTLS(service.Base{Plaintext: true}, nil) // loads nothing
		return nil
	}
	to := r.opts.TLS
	p := &regionPKI{validity: to.Validity, reload: to.ReloadInterval}
	if p.validity <= 0 {
		p.validity = 24 * time.Hour
	}
	if r.opts.DataDir != "" {
		p.dir = filepath.Join(r.opts.DataDir, "certs")
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return fmt.Errorf("region: certs: %w", err)
		}
	} else {
		d, err := os.MkdirTemp("", "mu-region-certs-")
		if err != nil {
			return fmt.Errorf("region: certs: %w", err)
		}
		r.closers = append(r.closers, func() error { return os.RemoveAll(d) })
		p.dir = d
	}
	ca, err := certs.NewCA("mu local region", p.validity)
	if err != nil {
		return fmt.Errorf("region: %w", err)
	}
	p.ca = ca
	r.pki = p
	var op service.Base
	if err := r.secure(&op, certs.RoleOperator, "region"); err != nil {
		return err
	}
	if r.tls, err = service.NewTLS(op, r.log); err != nil {
		return fmt.Errorf("region: operator certificate: %w", err)
	}
	return nil
}

// secure sets b's transport settings for a node of role named name: with
// TLSOptions, a new certificate from the region's CA; with
// Options.ClientTLS, nothing (the caller configured its nodes); else
// plaintext.
func (r *Region) secure(b *service.Base, role certs.Role, name string) error {
	switch {
	case r.pki != nil:
		f, err := r.pki.ca.WriteNode(r.pki.dir, certs.Identity{Role: role, Name: name}, []string{"localhost"},
			[]net.IP{net.IPv4(127, 0, 0, 1)}, r.pki.validity)
		if err != nil {
			return fmt.Errorf("region: certificate of %s: %w", name, err)
		}
		b.SetTLSFiles(f)
		if r.pki.reload > 0 {
			b.TLSReloadInterval = r.pki.reload
		}
	case r.opts.ClientTLS == nil:
		b.Plaintext = true
	}
	return nil
}

// RotateCertificate issues a new certificate for the node of role named
// name and writes it over its files, which the node loads on its next
// check (tls_reload_interval). It returns the new certificate. Only for
// regions started with TLSOptions.
func (r *Region) RotateCertificate(role certs.Role, name string) (*certs.Issued, error) {
	if r.pki == nil {
		return nil, fmt.Errorf("region: RotateCertificate needs Options.TLS")
	}
	is, err := r.pki.ca.Issue(certs.Identity{Role: role, Name: name}, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, r.pki.validity)
	if err != nil {
		return nil, fmt.Errorf("region: certificate of %s: %w", name, err)
	}
	base := filepath.Join(r.pki.dir, string(role)+"-"+name)
	if err := is.WriteFiles(base+".crt", base+".key"); err != nil {
		return nil, err
	}
	return is, nil
}

// plainRegion is a region value whose connections are plaintext, for
// dialling before or without a Region.
func plainRegion() *Region {
	plain, _ := service.NewTLS(service.Base{Plaintext: true}, nil) // loads nothing
	return &Region{tls: plain}
}

// TLS is the transport security of the region's own connections to its
// nodes (plaintext unless Options.TLS or Options.ClientTLS).
func (r *Region) TLS() *service.TLS { return r.tls }

// CertsDir is where a region started with TLSOptions keeps its CA
// certificate (ca.crt) and its nodes' files (<role>-<name>.crt, .key); ""
// otherwise.
func (r *Region) CertsDir() string {
	if r.pki == nil {
		return ""
	}
	return r.pki.dir
}
