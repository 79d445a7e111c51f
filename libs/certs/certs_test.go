package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/certs"
)

const day = 24 * time.Hour

func newCA(t *testing.T) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA("mu test CA", 30*day)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestIdentity_RoundTripsThroughItsURIAndACertificate(t *testing.T) {
	ca := newCA(t)
	for _, role := range certs.Roles {
		id := certs.Identity{Role: role, Name: "node-1.eu_west"}
		if got, want := id.String(), "spiffe://mu/"+role+"/node-1.eu_west"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		parsed, err := certs.ParseIdentity(id.String())
		if err != nil || parsed != id {
			t.Errorf("ParseIdentity(%q) = %v, %v", id, parsed, err)
		}
		iss, err := ca.Issue(certs.Request{Identity: id, Validity: day})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := certs.IdentityOf(iss.Cert); err != nil || got != id {
			t.Errorf("IdentityOf(cert for %s) = %v, %v", id, got, err)
		}
	}
}

func TestParseIdentity_RefusesWhatIsNotAMuIdentity(t *testing.T) {
	for in, want := range map[string]string{
		"spiffe://mu/wizard/n1":    "not a mu role",
		"spiffe://other/gateway/n": "want spiffe://mu/<role>/<name>",
		"https://mu/gateway/n":     "want spiffe://mu/<role>/<name>",
		"spiffe://mu/gateway":      "want spiffe://mu/<role>/<name>",
		"spiffe://mu/gateway/":     "name is empty",
		"spiffe://mu/gateway/a/b":  "want spiffe://mu/<role>/<name>",
		"spiffe://mu/gateway/a b":  "use letters, digits",
	} {
		if _, err := certs.ParseIdentity(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseIdentity(%q): %v, want an error with %q", in, err, want)
		}
	}
}

func TestIssue_BadRoleListsTheRoles(t *testing.T) {
	_, err := newCA(t).Issue(certs.Request{Identity: certs.Identity{Role: "db", Name: "n1"}, Validity: day})
	if err == nil {
		t.Fatal("issued a certificate for role db")
	}
	for _, r := range certs.Roles {
		if !strings.Contains(err.Error(), r) {
			t.Errorf("%v: does not list role %s", err, r)
		}
	}
}

func TestIssue_CertificateVerifiesAgainstItsCAForServerAndClient(t *testing.T) {
	ca := newCA(t)
	id := certs.Identity{Role: "mudb", Name: "mudb-0"}
	iss, err := ca.Issue(certs.Request{Identity: id, DNSNames: []string{"mudb.mu.svc", "localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: day})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := iss.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "mudb.mu.svc", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	if err := iss.Cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("IP SAN: %v", err)
	}
	if got, err := certs.Verify(iss.Cert, []*x509.Certificate{ca.Cert}, time.Time{}); err != nil || got != id {
		t.Errorf("Verify = %v, %v", got, err)
	}
	// The PEM pair is what crypto/tls loads from tls_cert_file and tls_key_file.
	if _, err := tls.X509KeyPair(iss.CertPEM, iss.KeyPEM); err != nil {
		t.Errorf("tls.X509KeyPair: %v", err)
	}
}

func TestVerify_RefusesACertificateOfAnotherCA(t *testing.T) {
	iss, err := newCA(t).Issue(certs.Request{Identity: certs.Identity{Role: "gateway", Name: "g"}, Validity: day})
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := certs.Verify(iss.Cert, []*x509.Certificate{newCA(t).Cert}, time.Time{}); !errors.As(err, &unknown) {
		t.Errorf("a certificate of another CA: %v, want an unknown authority error", err)
	}
}

func TestVerify_ABundleOfOldAndNewCAAcceptsCertificatesOfBoth(t *testing.T) {
	old, next := newCA(t), newCA(t)
	bundle := []*x509.Certificate{old.Cert, next.Cert}
	for _, ca := range []*certs.CA{old, next} {
		iss, err := ca.Issue(certs.Request{Identity: certs.Identity{Role: "runtime", Name: "r"}, Validity: day})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := certs.Verify(iss.Cert, bundle, time.Time{}); err != nil {
			t.Errorf("certificate of %x with the bundle: %v", ca.Cert.SubjectKeyId, err)
		}
	}
	pem := append(old.CertPEM(), next.CertPEM()...)
	parsed, err := certs.ParseCertificates(pem)
	if err != nil || len(parsed) != 2 {
		t.Errorf("ParseCertificates(bundle) = %d certificates, %v", len(parsed), err)
	}
}

func TestVerify_AnExpiredCertificateIsRefused(t *testing.T) {
	ca := newCA(t)
	iss, err := ca.Issue(certs.Request{Identity: certs.Identity{Role: "billing", Name: "b"}, Validity: 2 * day})
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.Cert.NotAfter.Sub(iss.Cert.NotBefore); got < 2*day || got > 2*day+time.Hour {
		t.Errorf("validity %v, want 2 days (and the clock skew allowance)", got)
	}
	bundle := []*x509.Certificate{ca.Cert}
	if _, err := certs.Verify(iss.Cert, bundle, iss.Cert.NotAfter.Add(-time.Second)); err != nil {
		t.Errorf("a second before its end: %v", err)
	}
	var invalid x509.CertificateInvalidError
	_, err = certs.Verify(iss.Cert, bundle, iss.Cert.NotAfter.Add(time.Second))
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("a second after its end: %v, want an expired error", err)
	}
}

func TestIssue_RefusesAValidityPastTheCAs(t *testing.T) {
	ca := newCA(t)
	_, err := ca.Issue(certs.Request{Identity: certs.Identity{Role: "storage", Name: "s"}, Validity: 31 * day})
	if err == nil || !strings.Contains(err.Error(), "after the CA") {
		t.Errorf("a certificate outliving its CA: %v", err)
	}
	if _, err := ca.Issue(certs.Request{Identity: certs.Identity{Role: "storage", Name: "s"}}); err == nil || !strings.Contains(err.Error(), "validity") {
		t.Errorf("no validity: %v", err)
	}
}

func TestLoadCA_ReadsWhatNewCAWritesAndRefusesAnotherKey(t *testing.T) {
	ca := newCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := certs.LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := loaded.Issue(certs.Request{Identity: certs.Identity{Role: "operator", Name: "alice"}, Validity: day})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Verify(iss.Cert, []*x509.Certificate{ca.Cert}, time.Time{}); err != nil {
		t.Errorf("issued by the loaded CA: %v", err)
	}
	otherKey, _ := newCA(t).KeyPEM()
	if _, err := certs.LoadCA(ca.CertPEM(), otherKey); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Errorf("another CA's key: %v", err)
	}
	if _, err := certs.LoadCA(iss.CertPEM, iss.KeyPEM); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf as CA: %v", err)
	}
}
