package cmd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/certs"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	list, err := parseCertificates(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return list[0]
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCertsCA_WritesACAWithAPrivateKeyAndNeverOverwritesWithoutForce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errb := mu(t, "certs", "ca", "--dir", dir, "--name", "test CA", "--days", "30")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA || ca.Subject.CommonName != "test CA" {
		t.Errorf("ca.crt: CA %v, name %q", ca.IsCA, ca.Subject.CommonName)
	}
	if left := time.Until(ca.NotAfter); left < 29*day || left > 30*day {
		t.Errorf("valid for %v more, want 30 days", left)
	}
	if m := mode(t, filepath.Join(dir, "ca.key")); m != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", m)
	}
	if !strings.Contains(out, filepath.Join(dir, "ca.key")) {
		t.Errorf("output does not say what it wrote: %q", out)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	code, _, errb = mu(t, "certs", "ca", "--dir", dir)
	if code != ExitUsage || !strings.Contains(errb, "never overwrites") || !strings.Contains(errb, "--force") {
		t.Fatalf("second ca: exit %d %q", code, errb)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(before, after) {
		t.Fatal("the CA key changed")
	}
	if code, _, errb := mu(t, "certs", "ca", "--dir", dir, "--force"); code != ExitOK {
		t.Fatalf("--force: exit %d %s", code, errb)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.key")); bytes.Equal(before, after) {
		t.Error("--force kept the old key")
	}
}

func TestCertsIssue_CertificateVerifiesAgainstTheCAWithItsIdentity(t *testing.T) {
	dir := t.TempDir()
	if code, _, errb := mu(t, "certs", "ca", "--dir", dir); code != ExitOK {
		t.Fatalf("ca: %s", errb)
	}
	code, out, errb := mu(t, "certs", "issue", "--dir", dir, "--role", "chain-indexer", "--name", "idx-0",
		"--dns", "idx.mu.svc,localhost", "--ip", "127.0.0.1", "--days", "10")
	if code != ExitOK {
		t.Fatalf("issue: exit %d %s", code, errb)
	}
	want := certs.Identity{Role: certs.RoleChainIndexer, Name: "idx-0"}
	if !strings.Contains(out, want.String()) || !strings.Contains(out, filepath.Join(dir, "idx-0.crt")) {
		t.Errorf("output does not name the identity and the files: %q", out)
	}
	crt := readCert(t, filepath.Join(dir, "idx-0.crt"))
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := crt.Verify(x509.VerifyOptions{Roots: roots, DNSName: "idx.mu.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify against ca.crt: %v", err)
	}
	if err := crt.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if got, err := certs.ParseIdentity(crt); err != nil || got != want {
		t.Errorf("identity %v, %v; want %v", got, err, want)
	}
	if m := mode(t, filepath.Join(dir, "idx-0.key")); m != 0o600 {
		t.Errorf("key mode %v, want 0600", m)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "idx-0.crt"), filepath.Join(dir, "idx-0.key")); err != nil {
		t.Errorf("crypto/tls does not load the pair: %v", err)
	}
	// --days bounds the validity: past it the certificate is refused.
	var invalid x509.CertificateInvalidError
	_, err := crt.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: time.Now().Add(11 * day), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("11 days on, a 10-day certificate: %v, want expired", err)
	}
	// Again: refused without --force.
	code, _, errb = mu(t, "certs", "issue", "--dir", dir, "--role", "chain-indexer", "--name", "idx-0")
	if code != ExitUsage || !strings.Contains(errb, "idx-0.crt exists") {
		t.Errorf("reissue without --force: exit %d %q", code, errb)
	}
}

func TestCertsIssue_OutWritesTheKubernetesSecretKeys(t *testing.T) {
	dir := t.TempDir()
	if code, _, errb := mu(t, "certs", "ca", "--dir", dir); code != ExitOK {
		t.Fatalf("ca: %s", errb)
	}
	out := filepath.Join(t.TempDir(), "gateway-tls")
	if code, _, errb := mu(t, "certs", "issue", "--dir", dir, "--role", "gateway", "--name", "gw", "--out", out); code != ExitOK {
		t.Fatalf("issue: %s", errb)
	}
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("--out: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "gw.crt")); err == nil {
		t.Error("--out also wrote DIR/NAME.crt")
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if copied, _ := os.ReadFile(filepath.Join(out, "ca.crt")); !bytes.Equal(ca, copied) {
		t.Error("--out's ca.crt is not the CA's certificate")
	}
}

func TestCertsIssue_ABadRoleIsRefusedListingTheRoles(t *testing.T) {
	dir := t.TempDir()
	if code, _, errb := mu(t, "certs", "ca", "--dir", dir); code != ExitOK {
		t.Fatalf("ca: %s", errb)
	}
	code, _, errb := mu(t, "certs", "issue", "--dir", dir, "--role", "database", "--name", "db-0")
	if code != ExitUsage || !strings.Contains(errb, `role "database"`) {
		t.Fatalf("exit %d %q", code, errb)
	}
	for _, r := range certs.Roles {
		if !strings.Contains(errb, string(r)) {
			t.Errorf("the error does not list role %s: %q", r, errb)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "db-0.crt")); err == nil {
		t.Error("a certificate was written")
	}
}

func TestCertsIssue_ErrorsNameWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "gateway", "--name", "g"}, "--dir is required"},
		{[]string{"--dir", dir, "--name", "g"}, "--role and --name are required"},
		{[]string{"--dir", dir, "--role", "gateway", "--name", "g"}, "mu certs ca --dir " + dir},
		{[]string{"--dir", dir, "--role", "gateway", "--name", "g", "--ip", "1.2.3"}, `--ip "1.2.3" is not an IP address`},
		{[]string{"--dir", dir, "--role", "gateway", "--name", "g", "--days", "0"}, "--days 0"},
	} {
		code, _, errb := mu(t, append([]string{"certs", "issue"}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: exit %d %q, want %q", tc.args, code, errb, tc.want)
		}
	}
	if code, _, _ := mu(t, "certs", "ca", "--dir", dir, "--days", "5"); code != ExitOK {
		t.Fatal("ca")
	}
	code, _, errb := mu(t, "certs", "issue", "--dir", dir, "--role", "gateway", "--name", "g", "--days", "6")
	if code != ExitUsage || !strings.Contains(errb, "after the CA") {
		t.Errorf("a certificate outliving the CA: exit %d %q", code, errb)
	}
}

func TestCertsRegion_OneCertificatePerRoleFromOneCAAndTheKubectlCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errb := mu(t, "certs", "region", "--dir", dir, "--dns", "mu.example.com", "--namespace", "prod")
	if code != ExitOK {
		t.Fatalf("region: exit %d %s", code, errb)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := parseCertificates(caPEM)
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	for _, r := range certs.Roles {
		role := string(r)
		crt := readCert(t, filepath.Join(dir, role, "tls.crt"))
		if _, err := crt.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: verify against ca.crt: %v", role, err)
		}
		if id, err := certs.ParseIdentity(crt); err != nil || id != (certs.Identity{Role: r, Name: role}) {
			t.Errorf("%s: identity %v, %v", role, id, err)
		}
		if err := crt.VerifyHostname("mu.example.com"); err != nil {
			t.Errorf("%s: --dns: %v", role, err)
		}
		if role != "operator" {
			if err := crt.VerifyHostname("mu-" + role + ".prod.svc"); err != nil {
				t.Errorf("%s: the chart's Service name: %v", role, err)
			}
			if !strings.Contains(out, "kubectl create secret generic mu-"+role+"-tls -n prod --from-file="+filepath.Join(dir, role)) {
				t.Errorf("no kubectl command for %s in %q", role, out)
			}
		}
		// What a service loads from tls_cert_file, tls_key_file and tls_ca_file.
		files := certs.Files{Cert: filepath.Join(dir, role, "tls.crt"), Key: filepath.Join(dir, role, "tls.key"), CA: filepath.Join(dir, role, "ca.crt")}
		if rl, err := certs.NewReloader(files, time.Second, nil); err != nil {
			t.Errorf("%s: a service would refuse its files: %v", role, err)
		} else if rl.Identity() != (certs.Identity{Role: r, Name: role}) {
			t.Errorf("%s: a service would present %v", role, rl.Identity())
		}
		if m := mode(t, filepath.Join(dir, role, "tls.key")); m != 0o600 {
			t.Errorf("%s: key mode %v", role, m)
		}
	}
	// It says how to give the operator's certificate to mu.
	op := filepath.Join(dir, "operator")
	if want := "mu config set NAME tls_cert=" + filepath.Join(op, "tls.crt") + " tls_key=" + filepath.Join(op, "tls.key") + " tls_ca=" + filepath.Join(op, "ca.crt"); !strings.Contains(out, want) {
		t.Errorf("no %q in %q", want, out)
	}
	// A second run keeps the CA and the certificates.
	gw, _ := os.ReadFile(filepath.Join(dir, "gateway", "tls.crt"))
	code, out, errb = mu(t, "certs", "region", "--dir", dir)
	if code != ExitOK {
		t.Fatalf("second region: %s", errb)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "gateway", "tls.crt")); !bytes.Equal(gw, again) || !strings.Contains(out, "kept the CA") {
		t.Errorf("a second run replaced what existed: %q", out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); !bytes.Equal(caPEM, again) {
		t.Error("a second run replaced the CA")
	}
}

func TestCertsShow_PrintsIdentityIssuerValidityAndSANs(t *testing.T) {
	dir := t.TempDir()
	mu(t, "certs", "ca", "--dir", dir, "--name", "show CA")
	if code, _, errb := mu(t, "certs", "issue", "--dir", dir, "--role", "storage", "--name", "st-1", "--dns", "st.local", "--ip", "10.0.0.9"); code != ExitOK {
		t.Fatal(errb)
	}
	code, out, errb := mu(t, "certs", "show", filepath.Join(dir, "st-1.crt"))
	if code != ExitOK {
		t.Fatalf("show: %s", errb)
	}
	for _, want := range []string{"identity:   spiffe://mu/storage/st-1", "issuer:     CN=show CA", "DNS:st.local", "IP:10.0.0.9", "URI:spiffe://mu/storage/st-1", "days left"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not print %q:\n%s", want, out)
		}
	}
	code, _, errb = mu(t, "certs", "show", filepath.Join(dir, "st-1.key"))
	if code != ExitInvalid || !strings.Contains(errb, "no PEM CERTIFICATE") {
		t.Errorf("show of a key: exit %d %q", code, errb)
	}
}
