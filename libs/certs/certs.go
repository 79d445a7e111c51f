// Package certs makes the certificates of mu's internal mTLS: a CA, and
// certificates issued by it for an Identity, the URI SAN
// spiffe://mu/<role>/<name> every service presents as server and client.
//
// Keys are ECDSA P-256, written as PKCS#8 PEM; certificates are PEM. The
// package holds no state: every function is safe for concurrent use.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Roles a mu certificate may name: the six services and the operator (a
// person or tool calling the services' gRPC APIs).
var Roles = []string{"gateway", "runtime", "mudb", "storage", "chain-indexer", "billing", "operator"}

// ServiceRoles are the Roles of the services, without the operator.
var ServiceRoles = Roles[:len(Roles)-1]

// Scheme and trust domain of an Identity's URI.
const (
	Scheme      = "spiffe"
	TrustDomain = "mu"
)

// clockSkew is how far before now a certificate becomes valid, so that a
// peer whose clock is slightly behind accepts it at once.
const clockSkew = 5 * time.Minute

// Identity is who a certificate speaks for: a role (one of Roles) and the
// node's name.
type Identity struct {
	Role string
	Name string
}

// String is the identity's URI, spiffe://mu/<role>/<name>.
func (id Identity) String() string { return id.URI().String() }

// URI is the identity as the certificate's URI SAN.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: TrustDomain, Path: "/" + id.Role + "/" + id.Name}
}

// Validate reports what is wrong with the identity: an unknown role, or a
// name that is empty or not a DNS-label-like word (letters, digits, '-',
// '.', '_').
func (id Identity) Validate() error {
	if !slices.Contains(Roles, id.Role) {
		return fmt.Errorf("role %q is not a mu role: want one of %s", id.Role, strings.Join(Roles, ", "))
	}
	if id.Name == "" {
		return errors.New("name is empty: want the node's name")
	}
	if len(id.Name) > 253 {
		return fmt.Errorf("name %q is longer than 253 characters", id.Name)
	}
	for _, r := range id.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("name %q has %q: use letters, digits, '-', '.' and '_'", id.Name, r)
		}
	}
	return nil
}

// ParseIdentity parses spiffe://mu/<role>/<name>.
func ParseIdentity(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", s, err)
	}
	return identityOfURI(u)
}

func identityOfURI(u *url.URL) (Identity, error) {
	if u.Scheme != Scheme || u.Host != TrustDomain || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Identity{}, fmt.Errorf("identity %q: want %s://%s/<role>/<name>", u, Scheme, TrustDomain)
	}
	role, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("identity %q: want %s://%s/<role>/<name>", u, Scheme, TrustDomain)
	}
	id := Identity{Role: role, Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", u, err)
	}
	return id, nil
}

// IdentityOf is the identity a certificate carries: its one spiffe://mu
// URI SAN. A certificate with none, or with more than one, has no identity.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme && u.Host == TrustDomain {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q has no %s://%s/ URI SAN", cert.Subject, Scheme, TrustDomain)
	case 1:
		return identityOfURI(found[0])
	default:
		return Identity{}, fmt.Errorf("certificate %q has %d %s://%s/ URI SANs, want one", cert.Subject, len(found), Scheme, TrustDomain)
	}
}

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed CA named name, valid for validity from now
// (less a few minutes of clock skew). It may sign end-entity certificates
// only (path length 0).
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" {
		return nil, errors.New("certs: CA name is empty")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("certs: CA validity %v: want more than 0", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mu"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA from its certificate and key PEM, checking that the
// certificate is a CA's and that the key is its own.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA certificate: %w", err)
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: CA certificate %q is not a CA's (basic constraints CA:FALSE)", cert.Subject)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("certs: the CA key is not the key of CA certificate %q", cert.Subject)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA's certificate as PEM (what tls_ca_file holds).
func (ca *CA) CertPEM() []byte { return EncodeCertificate(ca.Cert) }

// KeyPEM is the CA's key as PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return EncodePrivateKey(ca.Key) }

// Request asks a CA for a certificate.
type Request struct {
	Identity Identity
	// DNSNames and IPs the certificate is also valid for: the names and
	// addresses peers dial this node at.
	DNSNames []string
	IPs      []net.IP
	// Validity from now; it may not end after the CA's certificate.
	Validity time.Duration
}

// Issued is a certificate issued by a CA, with its new key.
type Issued struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // the certificate (tls_cert_file)
	KeyPEM  []byte // its key, PKCS#8 (tls_key_file)
}

// Issue makes a key and a certificate for req.Identity signed by the CA,
// usable by a server and a client (mu's services are both). It refuses an
// invalid identity, a validity of 0 or less, and one that outlives the CA.
func (ca *CA) Issue(req Request) (*Issued, error) {
	if err := req.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("certs: issue: %w", err)
	}
	if req.Validity <= 0 {
		return nil, fmt.Errorf("certs: issue %s: validity %v: want more than 0", req.Identity, req.Validity)
	}
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("certs: issue %s: validity ends %s, after the CA %q (valid until %s): make a shorter certificate or a new CA",
			req.Identity, notAfter.UTC().Format(time.RFC3339), ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, d := range req.DNSNames {
		if d == "" || strings.ContainsAny(d, " /:") {
			return nil, fmt.Errorf("certs: issue %s: DNS name %q is not a host name", req.Identity, d)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: key: %w", req.Identity, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Identity.Name, OrganizationalUnit: []string{req.Identity.Role}, Organization: []string{"mu"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{req.Identity.URI()},
		DNSNames:              slices.Clone(req.DNSNames),
		IPAddresses:           slices.Clone(req.IPs),
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: %w", req.Identity, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: issue %s: %w", req.Identity, err)
	}
	keyPEM, err := EncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key, CertPEM: EncodeCertificate(cert), KeyPEM: keyPEM}, nil
}

// Verify checks that cert chains to one of the CA bundle's certificates
// at time now (zero: the current time) for a client or server, and
// returns its identity.
func Verify(cert *x509.Certificate, bundle []*x509.Certificate, now time.Time) (Identity, error) {
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, fmt.Errorf("certs: verify %q: %w", cert.Subject, err)
	}
	return IdentityOf(cert)
}

// EncodeCertificate is cert as a PEM CERTIFICATE block.
func EncodeCertificate(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodePrivateKey is key as a PKCS#8 PEM PRIVATE KEY block.
func EncodePrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertificates reads every CERTIFICATE block of a PEM bundle (other
// blocks are skipped); a bundle without one is an error.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// ParsePrivateKey reads the first private key block of PEM: PKCS#8, or
// the EC and RSA forms openssl writes.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a %T cannot sign", block.Type, key)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// keyID is the subject key identifier of a public key: the first 20
// bytes of the SHA-256 of its encoding (RFC 7093, method 1).
func keyID(pub *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return bytes.Clone(sum[:20])
}
