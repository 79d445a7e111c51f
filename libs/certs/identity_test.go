package certs

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestIdentity_URIRoundTrips(t *testing.T) {
	for _, r := range Roles {
		id := Identity{Role: r, Name: "node-1.a_b~"}
		if got := id.URI().String(); got != id.String() {
			t.Errorf("URI %q, String %q", got, id.String())
		}
		back, err := ParseURI(id.URI())
		if err != nil || back != id {
			t.Errorf("ParseURI(%s) = %v, %v", id, back, err)
		}
	}
}

func TestParseURI_RefusesWhatIsNotAMuIdentity(t *testing.T) {
	for _, s := range []string{
		"spiffe://other/runtime/a", "https://mu/runtime/a", "spiffe://mu/runtime", "spiffe://mu/admin/a",
		"spiffe://mu/runtime/", "spiffe://mu/runtime/a/b", "spiffe://mu/runtime/a?x=1",
	} {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := ParseURI(u); err == nil {
			t.Errorf("ParseURI(%s) = %v, want an error", s, id)
		}
	}
}

func TestParseIdentity_OfIssuedCertificate(t *testing.T) {
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Role: RoleChainIndexer, Name: "ci-0"}
	is, err := ca.Issue(want, []string{"localhost"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseIdentity(is.Cert); err != nil || got != want {
		t.Errorf("ParseIdentity = %v, %v; want %v", got, err, want)
	}
	if _, err := ParseIdentity(&x509.Certificate{}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no URI SAN: %v, want ErrNoIdentity", err)
	}
	if _, err := ca.Issue(Identity{Role: "admin", Name: "x"}, nil, nil, time.Hour); err == nil || !strings.Contains(err.Error(), `role "admin"`) {
		t.Errorf("unknown role issued: %v", err)
	}
}

func TestLoadCA_ReadsWhatWriteFilesWrote(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir+"/ca.crt", dir+"/ca.key"); err != nil {
		t.Fatal(err)
	}
	back, err := LoadCA(dir+"/ca.crt", dir+"/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	is, err := back.Issue(Identity{Role: RoleOperator, Name: "alice"}, nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := is.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate of the loaded CA does not verify under the written one: %v", err)
	}
}
