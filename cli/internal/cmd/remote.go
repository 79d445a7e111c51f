package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/ledger/solana"
	"github.com/muprotocol/mu/libs/service"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// regionFlags are the flags of every command that talks to a region: each
// one set overrides the profile.
type regionFlags struct {
	gateway, storage, indexer, billing, ledgerAddr, keypair string
	ledgerWS, programID, commitment, feePayer               string // the Solana ledger's
	timeout                                                 time.Duration
	output                                                  string // listings: text or json
	tls                                                     *tlsFlags
}

// addRegionFlags gives cmd the region flags; listing commands also get
// --output.
func addRegionFlags(cmd *cobra.Command, listing bool) *regionFlags {
	f := &regionFlags{}
	fs := cmd.Flags()
	fs.StringVar(&f.gateway, "gateway", "", "the region's public gateway URL (overrides the profile)")
	fs.StringVar(&f.storage, "storage", "", "the region's storage HTTP URL, for uploads (overrides the profile)")
	fs.StringVar(&f.indexer, "indexer", "", "gRPC address of the region's chain-indexer (overrides the profile)")
	fs.StringVar(&f.billing, "billing", "", "gRPC address of the region's billing service (overrides the profile)")
	fs.StringVar(&f.ledgerAddr, "ledger-addr", "", "the ledger's address: the mu.ledger.v1 gRPC address of the local ledger (default: the indexer's), or the JSON-RPC URL of the Solana node (ledger_backend solana)")
	fs.StringVar(&f.ledgerWS, "ledger-ws-url", "", "ledger_backend solana: the node's websocket URL (overrides the profile; default: derived from the RPC URL, the port one above)")
	fs.StringVar(&f.programID, "ledger-program-id", "", "ledger_backend solana: the marketplace program's address (overrides the profile; default: "+solana.DefaultProgramID+")")
	fs.StringVar(&f.commitment, "ledger-commitment", "", "ledger_backend solana: the commitment writes are confirmed at: processed, confirmed or finalized (overrides the profile; default: confirmed)")
	fs.StringVar(&f.feePayer, "fee-payer", "", "ledger_backend solana: the Solana JSON keypair that pays the transaction fees (overrides the profile; default: the signing keypair)")
	fs.StringVar(&f.keypair, "keypair", "", "the Solana JSON keypair that signs (overrides the profile; default: keys/id.json under the user's config directory)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "how long to wait for each answer of the region")
	if listing {
		fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	}
	f.tls = addTLSFlags(fs)
	return f
}

// tlsFlags are the client certificate of every command that dials a
// region's gRPC services: all three, or none (plaintext).
type tlsFlags struct{ cert, key, ca string }

// addTLSFlags gives fs --tls-cert, --tls-key and --tls-ca.
func addTLSFlags(fs *pflag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.cert, "tls-cert", "", "PEM client certificate for the region's gRPC services, e.g. an operator's from mu certs issue --role operator (with --tls-key and --tls-ca; overrides the profile's tls_cert; none of the three: plaintext)")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert (overrides the profile's tls_key)")
	fs.StringVar(&f.ca, "tls-ca", "", "PEM CA bundle that signs the region's service certificates (overrides the profile's tls_ca)")
	return f
}

// clientTLS is how a command dials a region's gRPC services: mTLS with a
// client certificate, or plaintext (the local region of mu run and make
// cluster).
type clientTLS struct {
	tls *service.TLS
}

// plaintextTLS dials without TLS.
func plaintextTLS() *clientTLS {
	t, _ := service.NewTLS(service.Base{Plaintext: true}, nil) // loads nothing
	return &clientTLS{tls: t}
}

// resolveTLS picks the client certificate: each of the three files from
// its flag, else from the profile (named profName). All three or none;
// a partial set is a usage error naming what is missing and where the
// others came from. Relative paths from flags are the working directory's.
func resolveTLS(f *tlsFlags, p *Profile, profName string) (*clientTLS, error) {
	if f == nil {
		f = &tlsFlags{}
	}
	if p == nil {
		p = &Profile{}
	}
	type part struct {
		flag, key string
		s         setting
	}
	pick := func(flag, key, flagV, profV string) part {
		switch {
		case flagV != "":
			return part{flag, key, setting{flagV, "--" + flag}}
		case profV != "":
			return part{flag, key, setting{profV, "profile " + profName + " (" + key + ")"}}
		}
		return part{flag: flag, key: key}
	}
	parts := []part{
		pick("tls-cert", "tls_cert", f.cert, p.TLSCert),
		pick("tls-key", "tls_key", f.key, p.TLSKey),
		pick("tls-ca", "tls_ca", f.ca, p.TLSCA),
	}
	var have, missing []string
	for _, pt := range parts {
		if pt.s.v == "" {
			missing = append(missing, "--"+pt.flag+" (profile key "+pt.key+")")
		} else {
			have = append(have, pt.s.v+" from "+pt.s.from)
		}
	}
	switch len(missing) {
	case len(parts):
		return plaintextTLS(), nil
	case 0:
	default:
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("a client certificate needs all of --tls-cert, --tls-key and --tls-ca (or the profile keys tls_cert, tls_key, tls_ca), or none for plaintext: missing %s (given: %s)",
			strings.Join(missing, ", "), strings.Join(have, ", "))}
	}
	b := service.DefaultBase("", "") // for tls_reload_interval's default
	b.SetTLSFiles(certs.Files{Cert: parts[0].s.v, Key: parts[1].s.v, CA: parts[2].s.v})
	t, err := service.NewTLS(b, nil)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("the client certificate %s (from %s), its key %s (from %s) and the CA bundle %s (from %s): %w",
			parts[0].s.v, parts[0].s.from, parts[1].s.v, parts[1].s.from, parts[2].s.v, parts[2].s.from, err)}
	}
	return &clientTLS{tls: t}, nil
}

// dialOption is the transport of a connection to a service of role.
func (c *clientTLS) dialOption(role certs.Role) grpc.DialOption {
	if c == nil {
		return plaintextTLS().tls.DialOption(role)
	}
	return c.tls.DialOption(role)
}

// setting is one endpoint or path a command uses, and where it came from
// (for errors a person can act on).
type setting struct {
	v    string
	from string // "--indexer", "profile dev", "the local region (region.json)", "the default"
}

// target is what a command talks to.
type target struct {
	profile                                                           string
	gateway, storage, indexer, billing, ledgerBackend, ledgerAddr, kp setting
	ledgerWS, programID, commitment, feePayer                         setting // the Solana ledger's
	timeout                                                           time.Duration
	output                                                            string
	tls                                                               *clientTLS
}

// resolveTarget picks every setting: a flag, else the profile (--profile,
// else the current one), else the local region that mu run or mu cluster
// up recorded; the keypair defaults to keys/id.json under the config dir.
func resolveTarget(cmd *cobra.Command, f *regionFlags) (*target, error) {
	sel, err := selectProfile(cmd)
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--timeout must be positive, got %s", f.timeout)}
	}
	if f.output != "" && f.output != "text" && f.output != "json" {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--output %q: want text or json", f.output)}
	}
	t := &target{profile: sel.name, timeout: f.timeout, output: f.output}
	p := sel.profile
	fromProfile := "profile " + sel.name
	pick := func(flagName, flagV, profV string) setting {
		switch {
		case flagV != "":
			return setting{flagV, "--" + flagName}
		case profV != "":
			return setting{profV, fromProfile}
		}
		return setting{}
	}
	t.gateway = pick("gateway", f.gateway, p.Gateway)
	t.storage = pick("storage", f.storage, p.Storage)
	t.indexer = pick("indexer", f.indexer, p.Indexer)
	t.billing = pick("billing", f.billing, p.Billing)
	t.ledgerAddr = pick("ledger-addr", f.ledgerAddr, p.LedgerAddr)
	t.ledgerBackend = pick("", "", p.LedgerBackend)
	t.kp = pick("keypair", f.keypair, p.Keypair)
	t.ledgerWS = pick("ledger-ws-url", f.ledgerWS, p.LedgerWSURL)
	t.programID = pick("ledger-program-id", f.programID, p.LedgerProgramID)
	t.commitment = pick("ledger-commitment", f.commitment, p.LedgerCommitment)
	t.feePayer = pick("fee-payer", f.feePayer, p.FeePayer)
	if t.tls, err = resolveTLS(f.tls, p, sel.name); err != nil {
		return nil, err
	}

	// What neither gives comes from the local region, if one is recorded.
	if t.gateway.v == "" || t.storage.v == "" || t.indexer.v == "" || t.billing.v == "" {
		if rec, path, err := readRegionFile(); err == nil {
			from := fmt.Sprintf("the local region started by %s (%s)", rec.StartedBy, path)
			fill := func(s *setting, v string) {
				if s.v == "" && v != "" {
					*s = setting{v, from}
				}
			}
			fill(&t.gateway, rec.Gateway)
			fill(&t.storage, rec.StorageHTTP)
			fill(&t.indexer, rec.ChainIndexer)
			fill(&t.billing, rec.Billing)
		}
	}
	if t.ledgerBackend.v == "" {
		t.ledgerBackend = setting{"local", "the default"}
	}
	// The local ledger is served by the chain-indexer; a Solana node's
	// URL has no default.
	if t.ledgerAddr.v == "" && t.indexer.v != "" && t.ledgerBackend.v == "local" {
		t.ledgerAddr = setting{t.indexer.v, t.indexer.from + ", the indexer's address"}
	}
	if t.kp.v == "" {
		d, err := configDir()
		if err != nil {
			return nil, &exitError{code: ExitUsage, err: err}
		}
		t.kp = setting{filepath.Join(d, "keys", "id.json"), "the default"}
	}
	return t, nil
}

// where names a setting for an error: "the chain-indexer at ADDR (from
// profile dev)".
func (s setting) where(what string) string {
	if s.from == "" {
		return what
	}
	return fmt.Sprintf("%s at %s (from %s)", what, s.v, s.from)
}

// need fails when a setting is missing, saying how to give it.
func (t *target) need(s setting, what, flag, key string) error {
	if s.v != "" {
		return nil
	}
	prof := "NAME"
	if t.profile != "" {
		prof = t.profile
	}
	return &exitError{code: ExitUsage, err: fmt.Errorf("no %s: pass --%s, or set it with mu config set %s %s=..., or start a local region with make cluster / mu run", what, flag, prof, key)}
}

// keypair loads the signing key.
func (t *target) keypair() (*ledger.Keypair, error) {
	k, err := ledger.LoadKeypair(t.kp.v)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no keypair at %s (from %s): make one with mu keygen, or pass --keypair FILE", t.kp.v, t.kp.from)}
	}
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("keypair %s (from %s): %w", t.kp.v, t.kp.from, err)}
	}
	return k, nil
}

// conns holds a command's connections to the region: one per address and
// server role, made on first use and shared after (the console asks from
// many goroutines). Safe for concurrent use.
type conns struct {
	t   *target
	mu  sync.Mutex
	ccs map[string]*grpc.ClientConn
	sol *solana.Ledger // the Solana ledger, opened on first use
}

func (c *conns) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.ccs {
		cc.Close()
	}
	c.ccs = nil
	if c.sol != nil {
		c.sol.Close()
		c.sol = nil
	}
}

// dial connects to the service of role at s (mTLS with the target's
// client certificate, else plaintext).
func (c *conns) dial(s setting, what string, role certs.Role) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := string(role) + " " + s.v
	if cc := c.ccs[key]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(s.v, c.t.tls.dialOption(role))
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%s: %w", s.where(what), err)}
	}
	if c.ccs == nil {
		c.ccs = map[string]*grpc.ClientConn{}
	}
	c.ccs[key] = cc
	return cc, nil
}

// indexer is a ChainIndexerService client.
func (c *conns) indexer() (chainindexerv1.ChainIndexerServiceClient, error) {
	if err := c.t.need(c.t.indexer, "chain-indexer address", "indexer", "indexer"); err != nil {
		return nil, err
	}
	cc, err := c.dial(c.t.indexer, "the chain-indexer", certs.RoleChainIndexer)
	if err != nil {
		return nil, err
	}
	return chainindexerv1.NewChainIndexerServiceClient(cc), nil
}

// ledger is the ledger the profile names, for writes.
func (c *conns) ledger() (ledger.Writer, error) {
	switch c.t.ledgerBackend.v {
	case "local":
	case "solana":
		return c.solana()
	default:
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("ledger_backend %q (from %s): want local or solana", c.t.ledgerBackend.v, c.t.ledgerBackend.from)}
	}
	if err := c.t.need(c.t.ledgerAddr, "ledger address", "ledger-addr", "ledger_addr"); err != nil {
		return nil, err
	}
	cc, err := c.dial(c.t.ledgerAddr, "the ledger", certs.RoleChainIndexer)
	if err != nil {
		return nil, err
	}
	return ledgerrpc.NewClient(cc), nil
}

// solana opens the Solana ledger of the target (once; Close closes it):
// the CLI sends its writes to the node itself, since the chain-indexer
// cannot forward a transaction it did not sign. Its own keypair pays the
// fees unless fee_payer names another.
func (c *conns) solana() (ledger.Writer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sol != nil {
		return c.sol, nil
	}
	t := c.t
	if t.ledgerAddr.v == "" {
		prof := "NAME"
		if t.profile != "" {
			prof = t.profile
		}
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("ledger_backend solana (from %s) needs the Solana node's JSON-RPC URL: pass --ledger-addr URL, or set it with mu config set %s ledger_addr=URL", t.ledgerBackend.from, prof)}
	}
	cfg, err := t.solanaConfig()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	l, err := solana.Open(ctx, cfg)
	if err != nil {
		rpc := t.ledgerAddr
		if !strings.HasPrefix(rpc.from, "--") {
			rpc.from += ", key ledger_addr"
		}
		return nil, remoteErr(rpc, "the Solana node", err)
	}
	c.sol = l
	return l, nil
}

// solanaConfig is the Solana backend's settings from the target, each
// problem naming the flag or profile key it came from.
func (t *target) solanaConfig() (solana.Config, error) {
	cfg := solana.DefaultConfig()
	cfg.RPCURL = t.ledgerAddr.v
	cfg.RequestTimeout = t.timeout
	named := map[string]setting{"rpc_url": t.ledgerAddr}
	for _, o := range []struct {
		field string
		dst   *string
		s     setting
	}{
		{"ws_url", &cfg.WSURL, t.ledgerWS},
		{"program_id", &cfg.ProgramID, t.programID},
		{"commitment", &cfg.Commitment, t.commitment},
	} {
		if o.s.v != "" {
			*o.dst = o.s.v
			named[o.field] = o.s
		}
	}
	payer := t.feePayer
	if payer.v == "" {
		if _, err := t.keypair(); err != nil { // its errors say how to make one
			return cfg, err
		}
		payer = setting{t.kp.v, t.kp.from + ", the signing keypair"}
	} else if _, err := ledger.LoadKeypair(payer.v); err != nil {
		return cfg, &exitError{code: ExitUsage, err: fmt.Errorf("the fee payer %s (from %s): %w", payer.v, payer.from, err)}
	}
	cfg.FeePayerKeypair = payer.v // ledger.LoadKeypair reads the CLI's keypair files: they are Solana JSON
	named["fee_payer_keypair"] = payer
	if err := cfg.Validate(); err != nil {
		var where []string
		for _, k := range []string{"rpc_url", "ws_url", "program_id", "commitment", "fee_payer_keypair"} {
			if s, ok := named[k]; ok && strings.Contains(err.Error(), k) {
				where = append(where, fmt.Sprintf("%s is %s (from %s)", k, s.v, s.from))
			}
		}
		if strings.Contains(err.Error(), "ws_url") && named["ws_url"].v == "" {
			where = append(where, "ws_url is derived from ledger_addr: give it with --ledger-ws-url or the profile key ledger_ws_url")
		}
		return cfg, &exitError{code: ExitUsage, err: fmt.Errorf("the Solana ledger's settings (ledger_backend solana from %s): %w; %s", t.ledgerBackend.from, err, strings.Join(where, "; "))}
	}
	return cfg, nil
}

// ctx bounds one call to the region.
func (c *conns) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.t.timeout)
}

// remoteErr turns a failed call to a region service into an error a
// person can act on: an unreachable service names its address and where
// the address came from.
func remoteErr(s setting, what string, err error) error {
	if err == nil {
		return nil
	}
	var xerr *exitError
	if errors.As(err, &xerr) {
		return err
	}
	if terr := transportErr(s.where(what), err); terr != nil {
		return terr
	}
	code := status.Code(err)
	if errors.Is(err, ledger.ErrUnavailable) || code == codes.Unavailable || code == codes.DeadlineExceeded {
		return &exitError{code: ExitUsage, err: unreachableError{fmt.Errorf("%s is unreachable: %v; check the address (mu config show) or pass it with a flag", s.where(what), status.Convert(unwrapStatus(err)).Message())}}
	}
	if st, ok := status.FromError(err); ok && !errors.Is(err, ledger.ErrNotFound) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %s", s.where(what), st.Message())}
	}
	return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %w", s.where(what), err)}
}

// certHelp says how to get and give a client certificate.
const certHelp = "issue one from the region's CA with mu certs issue --dir CADIR --role operator --name NAME (or use operator/ of mu certs region) and give it with --tls-cert, --tls-key and --tls-ca, or the profile keys tls_cert, tls_key and tls_ca (mu config set)"

// transportErr is the error for a call that failed on transport security,
// nil for other failures: the service refused the client certificate or
// its role (PermissionDenied from its authorization, naming the role), the
// TLS handshake failed (libs/certs names the certificate and what is wrong:
// expired or refused, a server of another role or not of the CA bundle),
// or a plaintext call reached a server that wants TLS. Each says what to
// do. where names the service and its address. (gRPC keeps only the text
// of a failed connection's error, so the cases are told by libs/certs's
// and gRPC's words.)
func transportErr(where string, err error) error {
	st, ok := status.FromError(unwrapStatus(err))
	if !ok {
		return nil
	}
	msg := st.Message()
	switch {
	case st.Code() == codes.PermissionDenied:
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s refused the call: %s; use a certificate of an allowed role: %s", where, msg, certHelp)}
	case st.Code() == codes.Unavailable && strings.Contains(msg, "refusing to use it as one"):
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: the TLS connection failed: %s; check the address (mu config show) or pass the right one with a flag", where, msg)}
	case st.Code() == codes.Unavailable && strings.Contains(msg, "is not valid under tls_ca_file"):
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: the TLS connection failed: %s; --tls-ca (profile key tls_ca) must be the CA bundle that signs the region's service certificates", where, msg)}
	case st.Code() == codes.Unavailable && strings.Contains(msg, "certs: "):
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s: the TLS connection failed: %s; %s", where, msg, certHelp)}
	case st.Code() == codes.Unavailable && plaintextRefused(msg):
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s closed the connection before answering (%s): if the region uses mTLS, it needs a client certificate: %s", where, msg, certHelp)}
	}
	return nil
}

// plaintextRefused reports whether msg is gRPC's error for a plaintext
// connection that a TLS server closed: the server never sent HTTP/2's
// preface.
func plaintextRefused(msg string) bool {
	return strings.Contains(msg, "server preface")
}

// unreachableError marks an error that says a region service did not
// answer (the console answers 502 for it, 400 for the others).
type unreachableError struct{ error }

func (e unreachableError) Unwrap() error { return e.error }

// unwrapStatus finds the gRPC status inside a wrapped error.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
