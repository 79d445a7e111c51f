package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

func newProviderCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "provider",
		Short: "Register a provider, get it authorized, create its regions and their usage signers",
		Long: `Provider commands act on the marketplace ledger for the people who run a region:
register a provider (paying the marketplace's deposit), have the marketplace
authority authorize it, create regions with their prices, and set each
region's usage signer (the key the region's billing signs usage with).

Every command signs with --keypair (else the profile's keypair, else
keys/id.json under the user's config directory) and reaches the ledger and
the chain-indexer of the profile (see mu config), or of the local region
that make cluster / mu run started.`,
	}
	region := &cobra.Command{Use: "region", Short: "Create and list a provider's regions"}
	region.AddCommand(newRegionCreateCommand(), newRegionListCommand())
	signer := &cobra.Command{Use: "signer", Short: "Set a region's usage signer"}
	signer.AddCommand(newSignerCreateCommand())
	c.AddCommand(newProviderCreateCommand(), newProviderStatusCommand(), newProviderAuthorizeCommand(), region, signer)
	return c
}

// session is a command's target, connections and signing key.
type session struct {
	t  *target
	c  *conns
	ix chainindexerv1.ChainIndexerServiceClient
	l  ledger.Writer
	// opened is the Solana ledger's slot when the session opened it: the
	// node's slot then, which counts transactions the chain-indexer never
	// sees (airdrops, SOL transfers), so only a slot above it (a write
	// this session made or saw) is one the indexer is waited for.
	opened uint64
}

// openSession resolves the target and dials the indexer, and the ledger
// when writes is set.
func openSession(cmd *cobra.Command, f *regionFlags, writes bool) (*session, error) {
	t, err := resolveTarget(cmd, f)
	if err != nil {
		return nil, err
	}
	s := &session{t: t, c: &conns{t: t}}
	if s.ix, err = s.c.indexer(); err != nil {
		s.Close()
		return nil, err
	}
	if writes {
		if s.l, err = s.c.ledger(); err != nil {
			s.Close()
			return nil, err
		}
		if s.solana() {
			cctx, cancel := s.c.ctx(cmd.Context())
			s.opened, err = s.l.Slot(cctx)
			cancel()
			if err != nil {
				s.Close()
				return nil, s.ledErr(err)
			}
		}
	}
	if err := s.sync(cmd.Context(), writes); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// sync waits until the indexer has applied every ledger write made so
// far, so that a command reads what earlier commands wrote. A command
// that only reads does it when the ledger answers and goes on with the
// indexer's view otherwise.
//
// With the Solana ledger the slots of the CLI's and the indexer's
// backends agree only on the writes both saw (the slot of a write's
// transaction), so a session waits for the writes it made or saw after
// opening (s.opened), and Close waits for them before the command ends:
// the next command then finds them indexed. A reading command opens no
// Solana ledger (it would read every account of the program).
func (s *session) sync(ctx context.Context, required bool) error {
	l := s.l
	if l == nil {
		if s.solana() {
			return nil
		}
		var err error
		if l, err = s.c.ledger(); err != nil {
			return nil
		}
	}
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	slot, err := l.Slot(cctx)
	if err != nil {
		if required {
			return s.ledErr(err)
		}
		return nil
	}
	if s.solana() && slot <= s.opened {
		return nil
	}
	for {
		st, err := s.ix.GetStatus(cctx, &chainindexerv1.GetStatusRequest{})
		if err != nil {
			return s.ixErr(err)
		}
		if st.GetLedgerSlot() >= slot {
			return nil
		}
		select {
		case <-cctx.Done():
			return &exitError{code: ExitUsage, err: fmt.Errorf("%s is at ledger slot %d, behind the ledger's %d after %s; is it following the same ledger?", s.t.indexer.where("the chain-indexer"), st.GetLedgerSlot(), slot, s.t.timeout)}
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close ends the session. With the Solana ledger it first waits (up to
// --timeout) until the indexer has the writes the command made, as the
// local ledger's next command does on opening; a command that failed
// halfway still waits for what it wrote.
func (s *session) Close() {
	if s.l != nil && s.solana() {
		_ = s.sync(context.Background(), false) // a lagging indexer: the next command's reads say so
	}
	s.c.Close()
}

// solana says the session's ledger is the Solana backend.
func (s *session) solana() bool { return s.t.ledgerBackend.v == "solana" }

// openKeyed is openSession for a command that signs: the session and the
// signing key (the session is closed when the key cannot be loaded).
func openKeyed(cmd *cobra.Command, f *regionFlags, writes bool) (*session, *ledger.Keypair, error) {
	s, err := openSession(cmd, f, writes)
	if err != nil {
		return nil, nil, err
	}
	key, err := s.t.keypair()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, key, nil
}

// ixErr and ledErr explain failed calls to the indexer and the ledger.
func (s *session) ixErr(err error) error { return remoteErr(s.t.indexer, "the chain-indexer", err) }
func (s *session) ledErr(err error) error {
	return remoteErr(s.t.ledgerAddr, "the ledger", err)
}

// providers lists every provider.
func (s *session) providers(ctx context.Context) ([]*chainindexerv1.Provider, error) {
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	resp, err := s.ix.ListProviders(cctx, &chainindexerv1.ListProvidersRequest{})
	if err != nil {
		return nil, s.ixErr(err)
	}
	return resp.GetProviders(), nil
}

// regions lists the regions of provider (nil: all).
func (s *session) regions(ctx context.Context, provider []byte) ([]*chainindexerv1.Region, error) {
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	resp, err := s.ix.ListRegions(cctx, &chainindexerv1.ListRegionsRequest{ProviderId: provider})
	if err != nil {
		return nil, s.ixErr(err)
	}
	return resp.GetRegions(), nil
}

// providersByID indexes every provider by id.
func (s *session) providersByID(ctx context.Context) (map[string]*chainindexerv1.Provider, error) {
	ps, err := s.providers(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]*chainindexerv1.Provider{}
	for _, p := range ps {
		m[string(p.GetId())] = p
	}
	return m, nil
}

// requireAuthority fails unless key is the marketplace authority, which
// alone may do what (mint, authorize providers).
func (s *session) requireAuthority(ctx context.Context, key *ledger.Keypair, what string) error {
	st, err := s.l.State(ctx)
	if err != nil {
		return s.ledErr(err)
	}
	if st.Authority != key.Pubkey() {
		return &exitError{code: ExitUsage, err: fmt.Errorf("only the marketplace authority %s %s; %s (from %s) is not it: pass --keypair AUTHORITY_KEY", st.Authority, what, key.Pubkey(), s.t.kp.from)}
	}
	return nil
}

// providerOf finds the provider owned by owner.
func (s *session) providerOf(ctx context.Context, owner ledger.Pubkey) (*chainindexerv1.Provider, error) {
	ps, err := s.providers(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if string(p.GetOwner()) == string(owner[:]) {
			return p, nil
		}
	}
	return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%s owns no provider: register one with mu provider create NAME --deposit AMOUNT (signed by this key), or pass --keypair of the provider's owner", owner)}
}

// providerArg is the provider an optional PROVIDER argument names, else
// the one the signing key owns.
func (s *session) providerArg(ctx context.Context, args []string) (*chainindexerv1.Provider, error) {
	if len(args) == 1 {
		return s.findProvider(ctx, args[0])
	}
	key, err := s.t.keypair()
	if err != nil {
		return nil, err
	}
	return s.providerOf(ctx, key.Pubkey())
}

// findProvider resolves a provider given by id (base58) or by name.
func (s *session) findProvider(ctx context.Context, arg string) (*chainindexerv1.Provider, error) {
	ps, err := s.providers(ctx)
	if err != nil {
		return nil, err
	}
	id, idErr := ledger.ParsePubkey(arg)
	var byName []*chainindexerv1.Provider
	for _, p := range ps {
		if idErr == nil && string(p.GetId()) == string(id[:]) {
			return p, nil
		}
		if p.GetName() == arg {
			byName = append(byName, p)
		}
	}
	switch len(byName) {
	case 1:
		return byName[0], nil
	case 0:
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no provider %q on the ledger (by id or name); see mu list providers", arg)}
	}
	ids := make([]string, len(byName))
	for i, p := range byName {
		ids[i] = ledger.Pubkey(p.GetId()).String()
	}
	return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%d providers are named %q (%s): give the id", len(byName), arg, strings.Join(ids, ", "))}
}

// findRegion resolves a region of provider (nil: any) given by id, by
// name or by number.
func (s *session) findRegion(ctx context.Context, provider []byte, arg string) (*chainindexerv1.Region, error) {
	rs, err := s.regions(ctx, provider)
	if err != nil {
		return nil, err
	}
	id, idErr := ledger.ParsePubkey(arg)
	var matches []*chainindexerv1.Region
	for _, r := range rs {
		if idErr == nil && string(r.GetId()) == string(id[:]) {
			return r, nil
		}
		if r.GetName() == arg || fmt.Sprint(r.GetRegionNum()) == arg {
			matches = append(matches, r)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no region %q (by id, name or number); see mu list regions", arg)}
	}
	ids := make([]string, len(matches))
	for i, r := range matches {
		ids[i] = ledger.Pubkey(r.GetId()).String()
	}
	return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%d regions match %q (%s): give the id, or --provider", len(matches), arg, strings.Join(ids, ", "))}
}

// fundsHint is what to do about a wallet that cannot pay.
func fundsHint(wallet ledger.Pubkey) string {
	return fmt.Sprintf("fund wallet %s: mu wallet transfer %s AMOUNT from a wallet that holds tokens (on a local ledger the marketplace authority can mint: mu wallet mint %s AMOUNT --keypair AUTHORITY_KEY)", wallet, wallet, wallet)
}

func newProviderCreateCommand() *cobra.Command {
	var deposit uint64
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "create NAME --deposit AMOUNT",
		Short: "Register a provider owned by your key, paying the marketplace's deposit",
		Long: `Create registers the provider NAME owned by the signing key. The marketplace's
provider deposit moves from that key's wallet to the deposit vault; --deposit
says the amount you agree to pay, and must equal the marketplace's. A new
provider is not authorized: the marketplace authority authorizes it (after
KYC, out of band) with mu provider authorize.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("deposit") {
				return &exitError{code: ExitUsage, err: errors.New("--deposit AMOUNT is required: the deposit (token base units) you agree to pay; mu provider status shows the marketplace's")}
			}
			s, key, err := openKeyed(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			st, err := s.l.State(ctx)
			if err != nil {
				return s.ledErr(err)
			}
			if st.ProviderDeposit != deposit {
				return &exitError{code: ExitUsage, err: fmt.Errorf("the marketplace's provider deposit is %d, not --deposit %d", st.ProviderDeposit, deposit)}
			}
			bal, err := s.l.Balance(ctx, key.Pubkey())
			if err != nil {
				return s.ledErr(err)
			}
			if bal < deposit {
				return &exitError{code: ExitUsage, err: fmt.Errorf("wallet %s holds %d, the deposit is %d: %s", key.Pubkey(), bal, deposit, fundsHint(key.Pubkey()))}
			}
			p, err := s.l.CreateProvider(ctx, key, args[0])
			if errors.Is(err, ledger.ErrAlreadyExists) {
				return &exitError{code: ExitUsage, err: fmt.Errorf("%s already owns a provider (one per key): see mu provider status", key.Pubkey())}
			}
			if err != nil {
				return s.ledErr(err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "provider %s created: name %s, owner %s, deposit %d\n", p.ID, p.Name, p.Owner, p.Deposit)
			fmt.Fprintf(out, "not authorized yet: the marketplace authority (%s) authorizes it with: mu provider authorize %s\n", st.Authority, p.ID)
			return nil
		},
	}
	cmd.Flags().Uint64Var(&deposit, "deposit", 0, "the provider deposit you agree to pay, token base units (must equal the marketplace's)")
	f = addRegionFlags(cmd, false)
	return cmd
}

func newProviderStatusCommand() *cobra.Command {
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "status [PROVIDER]",
		Short: "Show a provider (default: the one your key owns), its authorization and its regions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, f, false)
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := s.providerArg(cmd.Context(), args)
			if err != nil {
				return err
			}
			rs, err := s.regions(cmd.Context(), p.GetId())
			if err != nil {
				return err
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), struct {
					Provider providerJSON `json:"provider"`
					Regions  []regionJSON `json:"regions"`
				}{providerView(p), regionViews(rs, nil)})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "provider %s\n  name        %s\n  owner       %s\n  deposit     %d\n  authorized  %v\n", ledger.Pubkey(p.GetId()), p.GetName(), ledger.Pubkey(p.GetOwner()), p.GetDeposit(), p.GetAuthorized())
			if !p.GetAuthorized() {
				fmt.Fprintf(out, "  the marketplace authority authorizes it with: mu provider authorize %s\n", ledger.Pubkey(p.GetId()))
			}
			if len(rs) == 0 {
				fmt.Fprintln(out, "no regions yet: mu provider region create --name NAME --base-url URL --number N --min-escrow AMOUNT --rates FILE")
				return nil
			}
			printRegionTable(out, rs, nil)
			return nil
		},
	}
	f = addRegionFlags(cmd, true)
	return cmd
}

func newProviderAuthorizeCommand() *cobra.Command {
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "authorize PROVIDER",
		Short: "Authorize a provider (signed by the marketplace authority's key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := s.findProvider(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			key, err := s.t.keypair()
			if err != nil {
				return err
			}
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			if err := s.requireAuthority(ctx, key, "authorizes providers"); err != nil {
				return err
			}
			id := ledger.Pubkey(p.GetId())
			if err := s.l.AuthorizeProvider(ctx, key, id); err != nil {
				return s.ledErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "provider %s (%s) authorized\n", id, p.GetName())
			return nil
		},
	}
	f = addRegionFlags(cmd, false)
	return cmd
}

func newRegionCreateCommand() *cobra.Command {
	var name, baseURL, ratesFile string
	var number uint32
	var minEscrow, maxGiga uint64
	var minMem, maxMem string
	var yes bool
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "create --name NAME --base-url URL --number N --min-escrow AMOUNT --rates FILE",
		Short: "Create a region of your provider with its prices",
		Long: `Create creates region number N of the provider your key owns. The provider
must be authorized. --rates names a YAML file with one price per line in
token base units per a quantity of your choice; mu converts each exactly to
the ledger's units and shows them back before signing:

` + rateExample + `

Prices that are not whole base units in the ledger's units are refused. A
developer's escrow with you must hold at least --min-escrow, or their stacks
in the region are disabled. Without a terminal, pass --yes to sign after
checking the rates mu prints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, req := range []string{"name", "base-url", "number", "min-escrow", "rates"} {
				if !cmd.Flags().Changed(req) {
					return &exitError{code: ExitUsage, err: fmt.Errorf("--%s is required", req)}
				}
			}
			rf, err := os.Open(ratesFile)
			if err != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--rates: %w", err)}
			}
			rates, shown, err := parseRates(ratesFile, rf)
			rf.Close()
			if err != nil {
				return &exitError{code: ExitInvalid, err: err}
			}
			cfg := ledger.RegionConfig{Name: name, BaseURL: baseURL, Rates: rates, MinEscrowBalance: minEscrow, MaxGigaInstructionsPerCall: maxGiga}
			if cfg.MinMemoryLimitBytes, err = parseSizeFlag("min-memory", minMem); err != nil {
				return err
			}
			if cfg.MaxMemoryLimitBytes, err = parseSizeFlag("max-memory", maxMem); err != nil {
				return err
			}
			s, key, err := openKeyed(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := s.providerOf(cmd.Context(), key.Pubkey())
			if err != nil {
				return err
			}
			if !p.GetAuthorized() {
				return &exitError{code: ExitUsage, err: fmt.Errorf("provider %s (%s) is not authorized: the marketplace authority authorizes it with mu provider authorize %s", ledger.Pubkey(p.GetId()), p.GetName(), ledger.Pubkey(p.GetId()))}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "region %d %q of provider %s at %s, min escrow %d, rates in token base units:\n", number, name, p.GetName(), baseURL, minEscrow)
			rows := [][]string{{"KEY", "AS WRITTEN", "LEDGER RATE"}}
			for _, r := range shown {
				rows = append(rows, []string{r.key, r.written, fmt.Sprintf("%s per %s", groupDigits(fmt.Sprint(r.rate)), r.label)})
			}
			printTable(out, rows)
			if !yes {
				if err := confirm(cmd.InOrStdin(), out, "sign and create the region?"); err != nil {
					return err
				}
			}
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			r, err := s.l.CreateRegion(ctx, key, number, cfg)
			switch {
			case errors.Is(err, ledger.ErrAlreadyExists):
				return &exitError{code: ExitUsage, err: fmt.Errorf("provider %s already has region number %d: pick another --number (mu provider region list)", p.GetName(), number)}
			case errors.Is(err, ledger.ErrUnauthorizedProvider):
				return &exitError{code: ExitUsage, err: fmt.Errorf("provider %s is not authorized: the marketplace authority authorizes it with mu provider authorize %s", p.GetName(), ledger.Pubkey(p.GetId()))}
			case err != nil:
				return s.ledErr(err)
			}
			fmt.Fprintf(out, "region %s created (number %d, %s)\n", r.ID, r.Number, r.Name)
			fmt.Fprintf(out, "it has no usage signer yet: set one with mu provider signer create --region %s\n", r.ID)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&name, "name", "", "the region's name")
	fs.StringVar(&baseURL, "base-url", "", "the region's public gateway URL")
	fs.Uint32Var(&number, "number", 0, "the region's number within the provider")
	fs.Uint64Var(&minEscrow, "min-escrow", 0, "the escrow balance a developer must keep, token base units")
	fs.StringVar(&ratesFile, "rates", "", "YAML file of prices (see above)")
	fs.Uint64Var(&maxGiga, "max-giga-instructions", 0, "bound of one call's fuel, 10^9 instructions (0: the runtime's own)")
	fs.StringVar(&minMem, "min-memory", "", "smallest memory_limit a function may ask for, such as 16MiB (default: no bound)")
	fs.StringVar(&maxMem, "max-memory", "", "largest memory_limit a function may ask for, such as 1GiB (default: no bound)")
	fs.BoolVarP(&yes, "yes", "y", false, "sign without asking")
	f = addRegionFlags(cmd, false)
	return cmd
}

// parseSizeFlag reads a size such as 64MiB, as manifests write them
// (empty: 0).
func parseSizeFlag(flag, v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := manifest.ParseByteSize(v)
	if err != nil {
		return 0, &exitError{code: ExitUsage, err: fmt.Errorf("--%s: %v", flag, err)}
	}
	return uint64(n), nil
}

// confirm asks a yes/no question on a terminal; without one it refuses.
func confirm(in io.Reader, out io.Writer, q string) error {
	if f, ok := in.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return &exitError{code: ExitUsage, err: errors.New("stdin is not a terminal: check the values above and pass --yes to sign")}
	}
	fmt.Fprintf(out, "%s [y/N] ", q)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return &exitError{code: ExitUsage, err: errors.New("not signed")}
	}
	return nil
}

func newRegionListCommand() *cobra.Command {
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "list [PROVIDER]",
		Short: "List a provider's regions (default: the one your key owns)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, f, false)
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := s.providerArg(cmd.Context(), args)
			if err != nil {
				return err
			}
			rs, err := s.regions(cmd.Context(), p.GetId())
			if err != nil {
				return err
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), regionViews(rs, map[string]*chainindexerv1.Provider{string(p.GetId()): p}))
			}
			if len(rs) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "provider %s has no regions\n", p.GetName())
				return nil
			}
			printRegionTable(cmd.OutOrStdout(), rs, map[string]*chainindexerv1.Provider{string(p.GetId()): p})
			return nil
		},
	}
	f = addRegionFlags(cmd, true)
	return cmd
}

func newSignerCreateCommand() *cobra.Command {
	var regionArg, signerArg, out string
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "create --region REGION",
		Short: "Make a region's usage signer: a new key (or --signer PUBKEY) allowed to sign its usage",
		Long: `Create sets the key that signs a region's usage updates (the region's billing
service signs with it). Without --signer it makes a new keypair, writes it
to --out (default keys/signer-<region id>.json under the user's config
directory, mode 0600; never overwritten) and registers its public key. The
signing key is the provider owner's. A region has one signer: a second
create replaces it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if regionArg == "" {
				return &exitError{code: ExitUsage, err: errors.New("--region REGION is required (id, name or number; see mu provider region list)")}
			}
			s, key, err := openKeyed(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			p, err := s.providerOf(cmd.Context(), key.Pubkey())
			if err != nil {
				return err
			}
			r, err := s.findRegion(cmd.Context(), p.GetId(), regionArg)
			if err != nil {
				return err
			}
			rid := ledger.Pubkey(r.GetId())
			var signer ledger.Pubkey
			var wrote string
			if signerArg != "" {
				if signer, err = ledger.ParsePubkey(signerArg); err != nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("--signer: %v", err)}
				}
			} else {
				path := out
				if path == "" {
					d, err := configDir()
					if err != nil {
						return &exitError{code: ExitUsage, err: err}
					}
					path = filepath.Join(d, "keys", "signer-"+rid.String()+".json")
				}
				if _, err := os.Stat(path); err == nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("%s exists: mu never overwrites a keypair; pass --out for another file, or --signer PUBKEY to register an existing key", path)}
				}
				k, err := ledger.GenerateKeypair()
				if err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				if err := ledger.SaveKeypair(path, k); err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				signer, wrote = k.Pubkey(), path
			}
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			if err := s.l.CreateUsageSigner(ctx, key, rid, signer); err != nil {
				return s.ledErr(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "usage signer of region %s (%s): %s\n", rid, r.GetName(), signer)
			if wrote != "" {
				fmt.Fprintf(w, "its keypair is in %s (mode 0600): give it to the region's billing service (signer_key_file)\n", wrote)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&regionArg, "region", "", "the region (id, name or number)")
	cmd.Flags().StringVar(&signerArg, "signer", "", "register this public key instead of making a new keypair")
	cmd.Flags().StringVar(&out, "out", "", "where to write the new keypair")
	f = addRegionFlags(cmd, false)
	return cmd
}
