package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/region"
)

// tlsRegion is a region whose chain-indexer and billing serve mTLS only,
// and the files of the certificates a CLI may present to them.
type tlsRegion struct {
	r                *region.Region
	indexer, billing string
	ca               string
	operator         [2]string // cert, key: the region's operator certificate
	gateway          [2]string // a gateway-role certificate from the same CA
}

func startTLSRegion(t *testing.T) *tlsRegion {
	t.Helper()
	r, err := region.Start(context.Background(), region.Options{
		DataDir: t.TempDir(),
		TLS:     &region.TLSOptions{},
		Ledger:  &region.LedgerOptions{},
		Billing: &region.BillingOptions{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	dir := r.CertsDir()
	if _, err := r.RotateCertificate(certs.RoleGateway, "cli-test"); err != nil {
		t.Fatal(err)
	}
	return &tlsRegion{
		r:        r,
		indexer:  r.ChainIndexer().Addr(),
		billing:  r.Billing().Addr(),
		ca:       filepath.Join(dir, "ca.crt"),
		operator: [2]string{filepath.Join(dir, "operator-region.crt"), filepath.Join(dir, "operator-region.key")},
		gateway:  [2]string{filepath.Join(dir, "gateway-cli-test.crt"), filepath.Join(dir, "gateway-cli-test.key")},
	}
}

func (tr *tlsRegion) flags(cert [2]string) []string {
	return []string{"--tls-cert", cert[0], "--tls-key", cert[1], "--tls-ca", tr.ca}
}

func wantIn(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not say %q:\n%s", what, p, s)
		}
	}
}

func TestTLS_CommandsWithAnOperatorCertificateReachAnMTLSRegion(t *testing.T) {
	tr := startTLSRegion(t)
	code, out, errOut := run(t, "", append([]string{"list", "regions", "--indexer", tr.indexer, "-o", "json"}, tr.flags(tr.operator)...)...)
	if code != 0 {
		t.Fatalf("mu list regions with the operator certificate: exit %d: %s", code, errOut)
	}
	wantIn(t, "mu list regions", out, "[")
	code, out, errOut = run(t, "", append([]string{"usage", testStack.String(), "--billing", tr.billing}, tr.flags(tr.operator)...)...)
	if code != 0 {
		t.Fatalf("mu usage with the operator certificate: exit %d: %s", code, errOut)
	}
	wantIn(t, "mu usage", out, "stack "+testStack.String())
}

func TestTLS_TheProfilesCertificateIsUsedAndShown(t *testing.T) {
	t.Setenv("MU_CONFIG_DIR", t.TempDir())
	tr := startTLSRegion(t)
	if code, _, errOut := run(t, "", "config", "set", "tlsdev", "indexer="+tr.indexer, "billing="+tr.billing,
		"tls_cert="+tr.operator[0], "tls_key="+tr.operator[1], "tls_ca="+tr.ca); code != 0 {
		t.Fatalf("mu config set: exit %d: %s", code, errOut)
	}
	_, out, _ := run(t, "", "config", "show")
	wantIn(t, "mu config show", out, "tls_cert", tr.operator[0], "tls_key", tr.operator[1], "tls_ca", tr.ca)
	if code, _, errOut := run(t, "", "list", "regions"); code != 0 {
		t.Fatalf("mu list regions with the profile's certificate: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "usage", testStack.String()); code != 0 {
		t.Fatalf("mu usage with the profile's certificate: exit %d: %s", code, errOut)
	}
	// A flag overrides the profile's file: a missing one is named.
	code, _, errOut := run(t, "", "list", "regions", "--tls-cert", filepath.Join(t.TempDir(), "nope.crt"))
	if code != ExitUsage {
		t.Fatalf("a missing --tls-cert file: exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	wantIn(t, "the error", errOut, "nope.crt", "--tls-cert")
}

func TestTLS_WithoutACertificateTheErrorSaysToGiveOne(t *testing.T) {
	tr := startTLSRegion(t)
	for _, args := range [][]string{
		{"list", "regions", "--indexer", tr.indexer, "--timeout", "5s"},
		{"usage", testStack.String(), "--billing", tr.billing, "--timeout", "5s"},
	} {
		code, _, errOut := run(t, "", args...)
		if code != ExitUsage {
			t.Fatalf("mu %s without a certificate: exit %d, want %d: %s", args[0], code, ExitUsage, errOut)
		}
		wantIn(t, "mu "+args[0]+"'s error", errOut, args[3], "mTLS", "--tls-cert", "mu certs issue", "--role operator", "tls_cert")
		if strings.Contains(errOut, "unreachable") {
			t.Errorf("mu %s says unreachable: %s", args[0], errOut)
		}
	}
}

func TestTLS_AGatewayCertificateIsRefusedBillingsQueryNamingTheRole(t *testing.T) {
	tr := startTLSRegion(t)
	code, _, errOut := run(t, "", append([]string{"usage", testStack.String(), "--billing", tr.billing}, tr.flags(tr.gateway)...)...)
	if code != ExitUsage {
		t.Fatalf("mu usage with a gateway certificate: exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	wantIn(t, "the error", errOut, tr.billing, "refused", "spiffe://mu/gateway/cli-test", "operator", "mu certs issue")
	// The chain-indexer's reads take any role.
	if code, _, errOut := run(t, "", append([]string{"list", "regions", "--indexer", tr.indexer}, tr.flags(tr.gateway)...)...); code != 0 {
		t.Fatalf("mu list regions with a gateway certificate: exit %d: %s", code, errOut)
	}
}

func TestTLS_AServerOfAnotherRoleIsRefused(t *testing.T) {
	tr := startTLSRegion(t)
	// billing's address given as the chain-indexer's.
	code, _, errOut := run(t, "", append([]string{"list", "regions", "--indexer", tr.billing, "--timeout", "5s"}, tr.flags(tr.operator)...)...)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	wantIn(t, "the error", errOut, tr.billing, "spiffe://mu/billing/", "not a chain-indexer", "check the address")
}

func TestTLS_ACertificateOfAnotherCAIsRefusedByTheServiceWithWhatToDo(t *testing.T) {
	tr := startTLSRegion(t)
	ca, err := certs.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := ca.WriteNode(dir, certs.Identity{Role: certs.RoleOperator, Name: "stranger"}, nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A CA bundle of both CAs: the CLI trusts the region's services and
	// loads its own certificate, which the services refuse.
	regionCA, err := os.ReadFile(tr.ca)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	both := writeFile(t, dir, "both.crt", string(regionCA)+string(otherCA))
	code, _, errOut := run(t, "", "usage", testStack.String(), "--billing", tr.billing, "--timeout", "5s", "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", both)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	wantIn(t, "the error", errOut, tr.billing, "refused", f.Cert, "spiffe://mu/operator/stranger", "mu certs issue")
	if strings.Contains(errOut, "did not answer") {
		t.Errorf("the error says billing did not answer: %s", errOut)
	}
	// A CA bundle that did not sign the CLI's certificate is refused
	// before any dial, naming the flags.
	code, _, errOut = run(t, "", "usage", testStack.String(), "--billing", tr.billing, "--tls-cert", tr.operator[0], "--tls-key", tr.operator[1], "--tls-ca", f.CA)
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	wantIn(t, "the error", errOut, "CA bundle "+f.CA+" (from --tls-ca)", "is not signed by a CA of")
}

func TestTLS_APartialSetOfFlagsIsRefusedNamingWhatIsMissing(t *testing.T) {
	for _, args := range [][]string{
		{"list", "regions", "--indexer", "127.0.0.1:1", "--tls-cert", "op.crt"},
		{"usage", testStack.String(), "--billing", "127.0.0.1:1", "--tls-cert", "op.crt"},
		{"audit", "r1", "--billing", "127.0.0.1:1", "--tls-cert", "op.crt"},
	} {
		code, _, errOut := run(t, "", args...)
		if code != ExitUsage {
			t.Fatalf("mu %s with --tls-cert alone: exit %d, want %d: %s", args[0], code, ExitUsage, errOut)
		}
		wantIn(t, "mu "+args[0]+"'s error", errOut, "missing --tls-key (profile key tls_key), --tls-ca (profile key tls_ca)", "op.crt from --tls-cert")
	}
}
