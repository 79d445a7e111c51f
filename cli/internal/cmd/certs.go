package cmd

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/certs"
)

// The files of a certificate directory: the CA's under --dir, and the
// Kubernetes Secret key names (cert-manager's too) under a --out directory.
const (
	caCertFile  = "ca.crt"
	caKeyFile   = "ca.key"
	tlsCertFile = "tls.crt"
	tlsKeyFile  = "tls.key"
)

const day = 24 * time.Hour

// roleNames lists the roles a certificate may name.
func roleNames() string {
	names := make([]string, len(certs.Roles))
	for i, r := range certs.Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// serviceRoles are the roles of the region's services (every role but
// the operator's).
func serviceRoles() []certs.Role {
	var out []certs.Role
	for _, r := range certs.Roles {
		if r != certs.RoleOperator {
			out = append(out, r)
		}
	}
	return out
}

func newCertsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Make a CA and the mTLS certificates of a region's services",
		Long: `Certs makes the certificates mu's services present to each other (mTLS on every
internal gRPC link). Each certificate carries an identity, the URI SAN
spiffe://mu/<role>/<name>, where role is one of ` + roleNames() + `.

  mu certs ca      makes a CA (ca.crt, ca.key) in --dir
  mu certs issue   issues a certificate for one identity, signed by that CA
  mu certs region  makes the CA if missing and one certificate per service (and
                   an operator's), laid out as Kubernetes Secrets
  mu certs show    prints a certificate's identity, issuer, validity and SANs

Give a service its files with tls_cert_file, tls_key_file and tls_ca_file; it
re-reads them within tls_reload_interval when they change. The CA made here is
for development and small regions: keep ca.key offline.`,
	}
	c.AddCommand(newCertsCACommand(), newCertsIssueCommand(), newCertsRegionCommand(), newCertsShowCommand())
	return c
}

func newCertsCACommand() *cobra.Command {
	var dir, name string
	var days int
	var force bool
	cmd := &cobra.Command{
		Use:   "ca --dir DIR",
		Short: "Make a CA: DIR/ca.crt and DIR/ca.key (mode 0600)",
		Long: `Ca makes a new self-signed CA (ECDSA P-256) valid for --days and writes its
certificate to DIR/ca.crt and its key to DIR/ca.key (mode 0600). It refuses to
overwrite either unless --force: a new CA invalidates every certificate of the
old one (to rotate a CA without an outage, see "Transport security" in the
README: serve a bundle of the old and new CA first).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return &exitError{code: ExitUsage, err: errors.New("--dir is required: the directory to write ca.crt and ca.key to")}
			}
			if days < 1 {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--days %d: want at least 1", days)}
			}
			ca, err := certs.NewCA(name, time.Duration(days)*day)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			paths, err := writeCA(dir, ca, force)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			out := cmd.OutOrStdout()
			for _, p := range paths {
				fmt.Fprintf(out, "wrote %s\n", p)
			}
			fmt.Fprintf(out, "CA %q valid until %s\n", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write ca.crt and ca.key to (made if missing)")
	cmd.Flags().StringVar(&name, "name", "mu dev CA", "the CA's common name")
	cmd.Flags().IntVar(&days, "days", 3650, "days the CA is valid")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing ca.crt and ca.key")
	return cmd
}

// issueFlags are the flags of mu certs issue and region that shape a
// certificate.
type issueFlags struct {
	dns   []string
	ips   []string
	days  int
	force bool
}

func (f *issueFlags) add(cmd *cobra.Command, daysDefault int) {
	cmd.Flags().StringSliceVar(&f.dns, "dns", nil, "DNS names the certificate is also valid for (comma-separated): the names peers dial")
	cmd.Flags().StringSliceVar(&f.ips, "ip", nil, "IP addresses the certificate is also valid for (comma-separated)")
	cmd.Flags().IntVar(&f.days, "days", daysDefault, "days the certificate is valid (at most what is left of the CA's)")
	cmd.Flags().BoolVar(&f.force, "force", false, "overwrite existing certificate and key files")
}

// request is a certificate to issue.
type request struct {
	id       certs.Identity
	dnsNames []string
	ips      []net.IP
	validity time.Duration
}

func (f *issueFlags) request(id certs.Identity, extraDNS []string) (request, error) {
	if err := id.Validate(); err != nil {
		return request{}, err
	}
	if f.days < 1 {
		return request{}, fmt.Errorf("--days %d: want at least 1", f.days)
	}
	req := request{id: id, validity: time.Duration(f.days) * day}
	for _, d := range append(slices.Clone(extraDNS), f.dns...) {
		if d = strings.TrimSpace(d); d == "" || slices.Contains(req.dnsNames, d) {
			continue
		} else if strings.ContainsAny(d, " /:") {
			return request{}, fmt.Errorf("--dns %q is not a host name", d)
		}
		req.dnsNames = append(req.dnsNames, d)
	}
	for _, s := range f.ips {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return request{}, fmt.Errorf("--ip %q is not an IP address", s)
		}
		req.ips = append(req.ips, ip)
	}
	return req, nil
}

// issue signs req with the CA, refusing a certificate that would outlive
// the CA (rather than cutting it short unannounced).
func issue(ca *certs.CA, req request) (*certs.Issued, error) {
	if end := time.Now().Add(req.validity); end.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%s: a certificate of %d days would end %s, after the CA %q (valid until %s): ask for fewer --days or make a new CA",
			req.id, int(req.validity/day), end.UTC().Format(time.RFC3339), ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ca.Issue(req.id, req.dnsNames, req.ips, req.validity)
}

func newCertsIssueCommand() *cobra.Command {
	var dir, role, name, out string
	var f issueFlags
	cmd := &cobra.Command{
		Use:   "issue --dir DIR --role ROLE --name NAME",
		Short: "Issue a certificate for spiffe://mu/ROLE/NAME, signed by DIR's CA",
		Long: `Issue makes a key and a certificate for the identity spiffe://mu/ROLE/NAME
(NAME: the node's name), signed by the CA in DIR (ca.crt, ca.key; see mu certs
ca), usable as server and client certificate. It writes DIR/NAME.crt and
DIR/NAME.key (mode 0600), or, with --out, tls.crt, tls.key and ca.crt in that
directory: the key names of a Kubernetes TLS Secret (and cert-manager's), so
  kubectl create secret generic SECRET --from-file=OUT
makes the Secret a component mounts. Roles: ` + roleNames() + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return &exitError{code: ExitUsage, err: errors.New("--dir is required: the directory holding the CA (ca.crt, ca.key)")}
			}
			if role == "" || name == "" {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--role and --name are required: the identity spiffe://mu/ROLE/NAME (roles: %s)", roleNames())}
			}
			req, err := f.request(certs.Identity{Role: certs.Role(role), Name: name}, nil)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			ca, err := loadCA(dir)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			iss, err := issue(ca, req)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			var paths []string
			if out != "" {
				paths, err = writeSecretDir(out, ca, iss, f.force)
			} else {
				paths, err = writePair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), iss, f.force)
			}
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			w := cmd.OutOrStdout()
			for _, p := range paths {
				fmt.Fprintf(w, "wrote %s\n", p)
			}
			fmt.Fprintf(w, "identity %s, valid until %s\n", req.id, iss.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory holding the CA (ca.crt, ca.key)")
	cmd.Flags().StringVar(&role, "role", "", "the identity's role: "+roleNames())
	cmd.Flags().StringVar(&name, "name", "", "the identity's name: the node's name")
	cmd.Flags().StringVar(&out, "out", "", "directory to write tls.crt, tls.key and ca.crt to (a Kubernetes Secret's keys) instead of DIR/NAME.crt and DIR/NAME.key")
	f.add(cmd, 365)
	return cmd
}

func newCertsRegionCommand() *cobra.Command {
	var dir, fullname, namespace string
	var f issueFlags
	cmd := &cobra.Command{
		Use:   "region --dir DIR",
		Short: "Make a CA (if missing) and one certificate per service and an operator's",
		Long: `Region makes what a region's services need for mTLS: the CA in DIR (kept if
ca.crt and ca.key exist), then for each role (` + roleNames() + `)
DIR/ROLE/tls.crt, tls.key and ca.crt, the certificate's identity being
spiffe://mu/ROLE/ROLE. A service's certificate is valid for the names its
peers dial: ROLE, localhost, 127.0.0.1, the chart's Service names
(FULLNAME-ROLE, FULLNAME-ROLE.NAMESPACE.svc and .svc.cluster.local) and --dns.
Existing certificates are kept unless --force. It then prints the kubectl
commands making the Secrets the chart mounts (FULLNAME-ROLE-tls).

For docker compose: mu certs region --dir deployments/certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return &exitError{code: ExitUsage, err: errors.New("--dir is required: the directory to write the CA and the certificates to")}
			}
			w := cmd.OutOrStdout()
			ca, err := loadCA(dir)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if ca, err = certs.NewCA("mu region CA", 3650*day); err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				paths, err := writeCA(dir, ca, false)
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				for _, p := range paths {
					fmt.Fprintf(w, "wrote %s\n", p)
				}
			case err != nil:
				return &exitError{code: ExitUsage, err: err}
			default:
				fmt.Fprintf(w, "kept the CA in %s (%q, valid until %s)\n", dir, ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
			}
			f.ips = append([]string{"127.0.0.1", "::1"}, f.ips...)
			for _, role := range certs.Roles {
				out := filepath.Join(dir, string(role))
				if !f.force && exists(filepath.Join(out, tlsCertFile)) {
					fmt.Fprintf(w, "kept %s (--force makes a new one)\n", filepath.Join(out, tlsCertFile))
					continue
				}
				names := []string{string(role), "localhost"}
				if role != certs.RoleOperator {
					svc := fullname + "-" + string(role)
					names = append(names, svc, svc+"."+namespace+".svc", svc+"."+namespace+".svc.cluster.local")
				}
				req, err := f.request(certs.Identity{Role: role, Name: string(role)}, names)
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				iss, err := issue(ca, req)
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				if _, err := writeSecretDir(out, ca, iss, true); err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				fmt.Fprintf(w, "wrote %s/{%s,%s,%s}: %s\n", out, tlsCertFile, tlsKeyFile, caCertFile, req.id)
			}
			fmt.Fprintf(w, "\nKubernetes Secrets for the chart (release full name %s, namespace %s):\n", fullname, namespace)
			for _, role := range serviceRoles() {
				fmt.Fprintf(w, "  kubectl create secret generic %s-%s-tls -n %s --from-file=%s\n", fullname, role, namespace, filepath.Join(dir, string(role)))
			}
			op := filepath.Join(dir, string(certs.RoleOperator))
			fmt.Fprintf(w, "The operator's certificate (%s) is for grpcurl and mu's own calls to the services; give it to mu in a profile:\n", op)
			fmt.Fprintf(w, "  mu config set NAME tls_cert=%s tls_key=%s tls_ca=%s\n",
				filepath.Join(op, tlsCertFile), filepath.Join(op, tlsKeyFile), filepath.Join(op, caCertFile))
			fmt.Fprintf(w, "or per command: --tls-cert %s --tls-key %s --tls-ca %s\n",
				filepath.Join(op, tlsCertFile), filepath.Join(op, tlsKeyFile), filepath.Join(op, caCertFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the CA and one ROLE/ directory per certificate")
	cmd.Flags().StringVar(&fullname, "fullname", "mu", "the chart's full name (the release name if it contains \"mu\", else RELEASE-mu): Service and Secret names")
	cmd.Flags().StringVar(&namespace, "namespace", "mu-system", "the chart's namespace: Service names")
	f.add(cmd, 365)
	return cmd
}

func newCertsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Print the identity, issuer, validity and SANs of each certificate in a PEM file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			list, err := parseCertificates(b)
			if err != nil {
				return &exitError{code: ExitInvalid, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			for i, c := range list {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				showCertificate(cmd.OutOrStdout(), c, time.Now())
			}
			return nil
		},
	}
}

func showCertificate(w io.Writer, c *x509.Certificate, now time.Time) {
	if id, err := certs.ParseIdentity(c); err == nil {
		fmt.Fprintf(w, "identity:   %s\n", id)
	} else if c.IsCA {
		fmt.Fprintf(w, "identity:   none (a CA)\n")
	} else {
		fmt.Fprintf(w, "identity:   none: %v\n", err)
	}
	fmt.Fprintf(w, "subject:    %s\n", c.Subject)
	fmt.Fprintf(w, "issuer:     %s\n", c.Issuer)
	fmt.Fprintf(w, "CA:         %v\n", c.IsCA)
	state := "valid"
	switch {
	case now.Before(c.NotBefore):
		state = "not yet valid"
	case now.After(c.NotAfter):
		state = "EXPIRED"
	default:
		state = fmt.Sprintf("valid, %d days left", int(c.NotAfter.Sub(now)/day))
	}
	fmt.Fprintf(w, "validity:   %s to %s (%s)\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state)
	var sans []string
	for _, u := range c.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	for _, d := range c.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	if len(sans) == 0 {
		sans = []string{"none"}
	}
	fmt.Fprintf(w, "SANs:       %s\n", strings.Join(sans, ", "))
	fmt.Fprintf(w, "serial:     %x\n", c.SerialNumber)
}

// parseCertificates reads every CERTIFICATE block of a PEM file (other
// blocks, such as a key, are skipped); a file without one is an error.
func parseCertificates(b []byte) ([]*x509.Certificate, error) {
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

// loadCA reads DIR/ca.crt and DIR/ca.key. A missing file is an error
// wrapping fs.ErrNotExist.
func loadCA(dir string) (*certs.CA, error) {
	ca, err := certs.LoadCA(filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the CA in %s: %w (make one with: mu certs ca --dir %s)", dir, err, dir)
	}
	return ca, err
}

// writeCA writes DIR/ca.crt and DIR/ca.key (0600), refusing to replace
// either without force.
func writeCA(dir string, ca *certs.CA, force bool) ([]string, error) {
	crt, key := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	if err := prepare(dir, force, crt, key); err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(crt, key); err != nil {
		return nil, err
	}
	return []string{crt, key}, nil
}

// writePair writes a certificate and its key (0600) to dir.
func writePair(certPath, keyPath string, iss *certs.Issued, force bool) ([]string, error) {
	if err := prepare(filepath.Dir(certPath), force, certPath, keyPath); err != nil {
		return nil, err
	}
	if err := iss.WriteFiles(certPath, keyPath); err != nil {
		return nil, err
	}
	return []string{certPath, keyPath}, nil
}

// writeSecretDir writes tls.crt, tls.key and ca.crt to dir: the keys of
// a Kubernetes TLS Secret with its CA.
func writeSecretDir(dir string, ca *certs.CA, iss *certs.Issued, force bool) ([]string, error) {
	crt, key, caPath := filepath.Join(dir, tlsCertFile), filepath.Join(dir, tlsKeyFile), filepath.Join(dir, caCertFile)
	if err := prepare(dir, force, crt, key, caPath); err != nil {
		return nil, err
	}
	if err := certs.WriteFile(caPath, ca.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	if err := iss.WriteFiles(crt, key); err != nil {
		return nil, err
	}
	return []string{crt, key, caPath}, nil
}

// prepare makes dir (0755) and, without force, checks that none of the
// files exists, so that nothing is written when one does. The writes
// themselves replace files atomically (certs.WriteFile), so a service
// reading them meanwhile sees the old file or the new.
func prepare(dir string, force bool, files ...string) error {
	if !force {
		for _, p := range files {
			if exists(p) {
				return fmt.Errorf("%s exists: mu certs never overwrites a certificate or key without --force", p)
			}
		}
	}
	return os.MkdirAll(dir, 0o755)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
