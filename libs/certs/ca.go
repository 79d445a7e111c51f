package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// clockSkew is how far before now a certificate's validity starts, so that
// a peer whose clock is a little behind accepts it.
const clockSkew = 5 * time.Minute

// CA is a certificate authority that signs a region's certificates: a
// self-signed CA certificate and its private key. Its methods are safe for
// concurrent use.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// Issued is a certificate a CA signed, with its private key.
type Issued struct {
	Cert    *x509.Certificate
	CertPEM []byte // the certificate, PEM
	KeyPEM  []byte // its private key, PEM (PKCS #8)
}

// NewCA makes a CA with a new ECDSA P-256 key whose certificate, named name
// (its subject common name), is valid for validity from now.
func NewCA(name string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("certs: CA %q: validity must be positive, got %v", name, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: CA %q: key: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mu"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: CA %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: CA %q: %w", name, err)
	}
	return &CA{Cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA's certificate and private key from PEM files, as
// WriteFiles writes them.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate %s: %w", certFile, err)
	}
	if len(certs) != 1 || !certs[0].IsCA {
		return nil, fmt.Errorf("certs: CA certificate %s: want one CA certificate, got %d certificates", certFile, len(certs))
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("certs: CA key %s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key %s: %w", keyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !publicKeysEqual(signer.Public(), certs[0].PublicKey) {
		return nil, fmt.Errorf("certs: CA key %s does not match the certificate %s", keyFile, certFile)
	}
	return &CA{Cert: certs[0], key: signer, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// CertPEM is the CA certificate, PEM: what a node's tls_ca_file holds (a
// bundle may concatenate several during a CA rotation).
func (ca *CA) CertPEM() []byte { return ca.pem }

// WriteFiles writes the CA certificate to certFile and its key to keyFile
// (mode 0600), each atomically (see WriteFile).
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("certs: CA key: %w", err)
	}
	if err := WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return WriteFile(certFile, ca.pem, 0o644)
}

// Issue signs a certificate for id valid for validity from now, for
// servers and clients alike (a node's certificate is both), with a new
// ECDSA P-256 key. dnsNames and ips are the names peers may dial it by
// (informational: mu peers check the identity, not the host name).
func (ca *CA) Issue(id Identity, dnsNames []string, ips []net.IP, validity time.Duration) (*Issued, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("certs: issue %s: validity must be positive, got %v", id, validity)
	}
	now := time.Now()
	return ca.IssueBetween(id, dnsNames, ips, now.Add(-clockSkew), now.Add(validity))
}

// IssueBetween is Issue with an explicit validity period (tests use it for
// certificates that expired or are not valid yet). The period is cut to the
// CA's own.
func (ca *CA) IssueBetween(id Identity, dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (*Issued, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("certs: issue %s: not_after %v is not after not_before %v", id, notAfter, notBefore)
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: key: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name, OrganizationalUnit: []string{string(id.Role)}, Organization: []string{"mu"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: %w", id, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: key: %w", id, err)
	}
	return &Issued{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// WriteFiles writes the certificate to certFile and the key to keyFile
// (mode 0600), each atomically (see WriteFile). The key is written first,
// so a node that reloads between the two writes sees a key that does not
// match its certificate, refuses the pair and keeps its old one.
func (is *Issued) WriteFiles(certFile, keyFile string) error {
	if err := WriteFile(keyFile, is.KeyPEM, 0o600); err != nil {
		return err
	}
	return WriteFile(certFile, is.CertPEM, 0o644)
}

// WriteFile writes data to path through a temporary file in the same
// directory renamed over path, so a reader sees the old content or the new,
// never part of it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), perm)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

// parseCerts decodes every CERTIFICATE block of a PEM bundle; anything
// else in it, or no certificate at all, is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q where a CERTIFICATE was expected", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE in it")
	}
	return out, nil
}

// WriteNode issues a certificate for id (see Issue) and writes the node's
// files into dir: <role>-<name>.crt and .key, and the CA certificate as
// ca.crt. It returns their paths, as a node's tls_* settings take them.
func (ca *CA) WriteNode(dir string, id Identity, dnsNames []string, ips []net.IP, validity time.Duration) (Files, error) {
	is, err := ca.Issue(id, dnsNames, ips, validity)
	if err != nil {
		return Files{}, err
	}
	base := filepath.Join(dir, string(id.Role)+"-"+id.Name)
	f := Files{Cert: base + ".crt", Key: base + ".key", CA: filepath.Join(dir, "ca.crt")}
	if err := WriteFile(f.CA, ca.pem, 0o644); err != nil {
		return Files{}, err
	}
	if err := is.WriteFiles(f.Cert, f.Key); err != nil {
		return Files{}, err
	}
	return f, nil
}
