// Package certs is the certificate side of mu's internal mTLS: the identity
// a certificate carries (Identity, a SPIFFE-style URI SAN
// spiffe://mu/<role>/<name>), a certificate authority that issues them (CA,
// for the `mu certs` command and the throwaway CAs of local regions), the
// files a node loads and reloads when they change (Reloader) and the gRPC
// transport credentials made from them (ServerCredentials,
// ClientCredentials), which verify every peer against the region's CA
// bundle and, on the client side, the role of the server being dialled.
package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Role is what a node is in a region: the role of its certificate's
// identity, which services check to authorize their callers.
type Role string

// The roles of a region's certificates.
const (
	RoleGateway      Role = "gateway"
	RoleRuntime      Role = "runtime"
	RoleMudb         Role = "mudb"
	RoleStorage      Role = "storage"
	RoleChainIndexer Role = "chain-indexer"
	RoleBilling      Role = "billing"
	// RoleOperator is a person or tool operating the region (the mu CLI,
	// the region package that starts local regions), not a service.
	RoleOperator Role = "operator"
)

// RoleAny, as the server role of ClientCredentials, accepts a server of
// any role of the region (a health check that only needs the server to be
// one of the region's nodes). It is no certificate's role.
const RoleAny Role = ""

// Roles lists every role, services first.
var Roles = []Role{RoleGateway, RoleRuntime, RoleMudb, RoleStorage, RoleChainIndexer, RoleBilling, RoleOperator}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, known := range Roles {
		if r == known {
			return true
		}
	}
	return false
}

// URI scheme and trust domain of mu identities.
const (
	Scheme      = "spiffe"
	TrustDomain = "mu"
)

// Identity is who a certificate says its holder is: a role and the node's
// name (its node_name setting; for an operator, the person or tool).
type Identity struct {
	Role Role
	Name string
}

// ErrNoIdentity is returned by ParseIdentity for a certificate without a
// mu identity URI SAN.
var ErrNoIdentity = errors.New("certs: certificate has no mu identity (a URI SAN spiffe://mu/<role>/<name>)")

// Validate returns an error naming what is wrong with id: an unknown role,
// an empty name or a name with a '/' or characters a URI path cannot hold
// unescaped.
func (id Identity) Validate() error {
	if !id.Role.Valid() {
		return fmt.Errorf("certs: identity role %q: want one of %s", id.Role, roleList())
	}
	if id.Name == "" {
		return fmt.Errorf("certs: identity %s has no name", id.Role)
	}
	if strings.Contains(id.Name, "/") || url.PathEscape(id.Name) != id.Name {
		return fmt.Errorf("certs: identity name %q: want letters, digits, '-', '.', '_' or '~' only", id.Name)
	}
	return nil
}

func roleList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// URI is id as the certificate's URI SAN: spiffe://mu/<role>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: TrustDomain, Path: "/" + string(id.Role) + "/" + id.Name}
}

// String is the URI's text, as logs and errors show an identity.
func (id Identity) String() string {
	return Scheme + "://" + TrustDomain + "/" + string(id.Role) + "/" + id.Name
}

// ParseURI parses a mu identity URI (spiffe://mu/<role>/<name>).
func ParseURI(u *url.URL) (Identity, error) {
	if u.Scheme != Scheme || u.Host != TrustDomain || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Identity{}, fmt.Errorf("certs: %q is not a mu identity: want %s://%s/<role>/<name>", u.String(), Scheme, TrustDomain)
	}
	role, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	id := Identity{Role: Role(role), Name: name}
	if !ok {
		return Identity{}, fmt.Errorf("certs: %q is not a mu identity: want %s://%s/<role>/<name>", u.String(), Scheme, TrustDomain)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("certs: %q: %w", u.String(), err)
	}
	return id, nil
}

// ParseIdentity returns the mu identity of cert: its one URI SAN of scheme
// spiffe and trust domain mu. Other URI SANs are ignored; none, or two mu
// ones, is an error (ErrNoIdentity for none).
func ParseIdentity(cert *x509.Certificate) (Identity, error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != Scheme || u.Host != TrustDomain {
			continue
		}
		if found != nil {
			return Identity{}, fmt.Errorf("certs: certificate %s has two mu identities, %s and %s", serialOf(cert), found, u)
		}
		found = u
	}
	if found == nil {
		return Identity{}, ErrNoIdentity
	}
	return ParseURI(found)
}

func serialOf(cert *x509.Certificate) string {
	if cert.SerialNumber == nil {
		return "(no serial)"
	}
	return cert.SerialNumber.Text(16)
}
