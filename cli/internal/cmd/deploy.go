package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/storage/upload"
)

func newDeployCommand() *cobra.Command {
	var provider, regionArg string
	var seed uint64
	var wait time.Duration
	var f *regionFlags
	cmd := &cobra.Command{
		Use:   "deploy [DIR] --provider P --region R",
		Short: "Build a project, upload its binaries, post the stack on the ledger and wait until the region serves it",
		Long: `Deploy builds the project in DIR (default .) as mu build does, uploads each
function's binary to the region's storage (signed with your key; a progress
bar on a terminal, plain lines otherwise), then creates the stack on the
ledger, or updates it to a new revision when the manifest changed, and waits
until the region's gateway routes the new revision and its owner runtime
has it installed. It prints the endpoint URLs, one per line.

The stack is yours (--keypair, else the profile's) in region R of provider P
(ids, names or a region number; with one region on the ledger both may be
left out). Its id comes from your key, the region and a seed derived from
the manifest's name, so deploying the same project again updates it; --seed
gives another. Before anything is uploaded, deploy checks that the region
has a usage signer and that your escrow with the provider holds the
region's minimum, and says what to run when not.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			s, err := openSession(cmd, f, true)
			if err != nil {
				return err
			}
			defer s.Close()
			d := &deployer{s: s, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), wait: wait}
			// The bar only when a person watches both streams; plain lines
			// when either goes to a file or a pipe.
			d.tty = isTerminal(d.stdout) && isTerminal(d.stderr)
			if cmd.Flags().Changed("seed") {
				d.seed = &seed
			}
			return d.deploy(cmd.Context(), dir, provider, regionArg)
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "", "the provider (id or name)")
	cmd.Flags().StringVar(&regionArg, "region", "", "the region (id, name or number)")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "the stack's seed (default: derived from the manifest's name)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the region to serve the new revision (0: do not wait)")
	f = addRegionFlags(cmd, false)
	return cmd
}

// deployer runs one mu deploy.
type deployer struct {
	s              *session
	stdout, stderr io.Writer
	wait           time.Duration
	seed           *uint64
	tty            bool
}

// stackSeed is the seed of a stack named name: the same project deploys to
// the same stack id.
func stackSeed(name string) uint64 {
	h := sha256.Sum256([]byte("mu-stack-seed-v1:" + name))
	return binary.BigEndian.Uint64(h[:8])
}

// pickRegion resolves --provider and --region; with neither, the ledger's
// only region.
func (s *session) pickRegion(ctx context.Context, providerArg, regionArg string) (*chainindexerv1.Provider, *chainindexerv1.Region, error) {
	var p *chainindexerv1.Provider
	var err error
	if providerArg != "" {
		if p, err = s.findProvider(ctx, providerArg); err != nil {
			return nil, nil, err
		}
	}
	var r *chainindexerv1.Region
	if regionArg != "" {
		if r, err = s.findRegion(ctx, p.GetId(), regionArg); err != nil {
			return nil, nil, err
		}
	} else {
		rs, err := s.regions(ctx, p.GetId())
		if err != nil {
			return nil, nil, err
		}
		switch len(rs) {
		case 0:
			if p != nil {
				return nil, nil, &exitError{code: ExitUsage, err: fmt.Errorf("provider %s has no region yet: its owner creates one with mu provider region create", p.GetName())}
			}
			return nil, nil, &exitError{code: ExitUsage, err: errors.New("the ledger lists no region yet: a provider creates one with mu provider region create (see mu list providers)")}
		case 1:
		default:
			return nil, nil, &exitError{code: ExitUsage, err: fmt.Errorf("%d regions to choose from: pass --region (and --provider); see mu list regions", len(rs))}
		}
		r = rs[0]
	}
	if p == nil {
		byID, err := s.providersByID(ctx)
		if err != nil {
			return nil, nil, err
		}
		if p = byID[string(r.GetProviderId())]; p == nil {
			return nil, nil, &exitError{code: ExitUsage, err: fmt.Errorf("region %s names provider %s, which the indexer does not list", ledger.Pubkey(r.GetId()), ledger.Pubkey(r.GetProviderId()))}
		}
	}
	return p, r, nil
}

// checkCanDeploy says what to do when the region cannot take a stack of
// dev: no usage signer, no escrow, or an escrow under the minimum.
func (s *session) checkCanDeploy(ctx context.Context, dev ledger.Pubkey, p *chainindexerv1.Provider, r *chainindexerv1.Region) error {
	rid := ledger.Pubkey(r.GetId())
	if len(r.GetUsageSigner()) != 32 || ledger.Pubkey(r.GetUsageSigner()).IsZero() {
		return &exitError{code: ExitUsage, err: fmt.Errorf("region %s (%s) has no usage signer, so it cannot bill and takes no stacks: its provider (%s) sets one with mu provider signer create --region %s", r.GetName(), rid, p.GetName(), rid)}
	}
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	er, err := s.ix.ListEscrows(cctx, &chainindexerv1.ListEscrowsRequest{Developer: dev.Bytes(), ProviderId: p.GetId()})
	if err != nil {
		return s.ixErr(err)
	}
	if len(er.GetEscrows()) == 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("you (%s) have no escrow with provider %s: create it with mu escrow create %s, then fund it with mu escrow recharge %s %d (region %s needs at least %d)", dev, p.GetName(), p.GetName(), p.GetName(), max(r.GetMinEscrowBalance(), 1), r.GetName(), r.GetMinEscrowBalance())}
	}
	if bal, min := er.GetEscrows()[0].GetBalance(), r.GetMinEscrowBalance(); bal < min {
		return &exitError{code: ExitUsage, err: fmt.Errorf("your escrow with provider %s holds %d, under region %s's minimum of %d: add at least %d with mu escrow recharge %s %d", p.GetName(), bal, r.GetName(), min, min-bal, p.GetName(), min-bal)}
	}
	return nil
}

func (d *deployer) deploy(ctx context.Context, dir, providerArg, regionArg string) error {
	s := d.s
	if err := s.t.need(s.t.storage, "storage URL", "storage", "storage"); err != nil {
		return err
	}
	if err := s.t.need(s.t.gateway, "gateway URL", "gateway", "gateway"); err != nil {
		return err
	}
	key, err := s.t.keypair()
	if err != nil {
		return err
	}
	p, r, err := s.pickRegion(ctx, providerArg, regionArg)
	if err != nil {
		return err
	}
	if err := s.checkCanDeploy(ctx, key.Pubkey(), p, r); err != nil {
		return err
	}
	proj, err := loadProject(d.stderr, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	b, err := buildProject(ctx, d.stderr, proj)
	if err != nil {
		return err
	}
	if err := d.upload(ctx, key, b.Manifest, b.Binaries); err != nil {
		return err
	}
	yml, err := b.Manifest.Marshal()
	if err != nil {
		return &exitError{code: ExitInvalid, err: err}
	}
	seed := stackSeed(b.Manifest.Name)
	if d.seed != nil {
		seed = *d.seed
	}
	st, what, err := d.post(ctx, key, r, seed, yml)
	if err != nil {
		return err
	}
	id := ids.StackID(st.ID)
	fmt.Fprintf(d.stderr, "stack %s %q revision %d %s in region %s of %s\n", id, b.Manifest.Name, st.Revision, what, r.GetName(), p.GetName())
	posted := time.Now()
	if d.wait > 0 {
		if err := d.waitServed(ctx, id, st.Revision); err != nil {
			return err
		}
		fmt.Fprintf(d.stderr, "served in %s (%s after the ledger write)\n", time.Since(start).Round(time.Millisecond), time.Since(posted).Round(time.Millisecond))
	}
	printEndpoints(d.stdout, d.stderr, region.StackEndpoints(s.t.gateway.v, id, b.Manifest), map[string]bool{})
	return nil
}

// upload sends every binary of the build, one function at a time.
func (d *deployer) upload(ctx context.Context, key *ledger.Keypair, m *manifest.Manifest, binaries map[string][]byte) error {
	names := map[string]string{} // binary id → function names
	for _, fn := range m.Functions {
		if names[fn.Binary] != "" {
			names[fn.Binary] += ","
		}
		names[fn.Binary] += fn.Name
	}
	bins := make([]string, 0, len(binaries))
	for id := range binaries {
		bins = append(bins, id)
	}
	sort.Strings(bins)
	for _, bin := range bins {
		wasm := binaries[bin]
		pr := newProgress(d.stderr, d.tty, names[bin], int64(len(wasm)))
		c := upload.Client{BaseURL: d.s.t.storage.v, Progress: pr.update}
		limit := d.s.t.timeout + time.Duration(len(wasm)>>20)*time.Second // --timeout plus a second per MiB
		uctx, cancel := context.WithTimeout(ctx, limit)
		res, err := c.Upload(uctx, key.PrivateKey(), wasm)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("upload %s to %s took more than %s (--timeout plus a second per MiB): raise --timeout for a slow link", names[bin], d.s.t.storage.where("storage"), limit)}
		}
		if err != nil {
			if isConnErr(err) {
				return &exitError{code: ExitUsage, err: fmt.Errorf("%s is unreachable: %v; check the address (mu config show) or pass --storage URL", d.s.t.storage.where("storage"), err)}
			}
			return &exitError{code: ExitUsage, err: fmt.Errorf("upload %s to %s: %w", names[bin], d.s.t.storage.where("storage"), err)}
		}
		if res.BinaryID != bin {
			return &exitError{code: ExitUsage, err: fmt.Errorf("upload %s: storage gave it the content id %s, not %s", names[bin], res.BinaryID, bin)}
		}
		note := "binary " + bin
		if res.AlreadyExisted {
			note += " (already stored)"
		}
		pr.done(note)
	}
	return nil
}

// isConnErr reports a failure to reach an HTTP endpoint at all.
func isConnErr(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr) && !uerr.Timeout() && strings.Contains(uerr.Err.Error(), "connect")
}

// post creates the stack or updates it; what says which ("created",
// "updated", "unchanged").
func (d *deployer) post(ctx context.Context, key *ledger.Keypair, r *chainindexerv1.Region, seed uint64, yml []byte) (ledger.Stack, string, error) {
	s := d.s
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	rid := ledger.Pubkey(r.GetId())
	resp, err := s.ix.ListStacks(cctx, &chainindexerv1.ListStacksRequest{RegionId: rid.Bytes(), Owner: key.Pubkey().Bytes(), IncludeDeleted: true})
	if err != nil {
		return ledger.Stack{}, "", s.ixErr(err)
	}
	var old *chainindexerv1.Stack
	for _, x := range resp.GetStacks() {
		if x.GetSeed() == seed {
			old = x
		}
	}
	switch {
	case old == nil:
		st, err := s.l.CreateStack(cctx, key, rid, seed, yml)
		if err != nil {
			return st, "", d.postErr(err, r)
		}
		return st, "created", nil
	case old.GetState() == chainindexerv1.StackState_STACK_STATE_DELETED:
		return ledger.Stack{}, "", &exitError{code: ExitUsage, err: fmt.Errorf("stack %s (seed %d) was deleted and cannot be used again: deploy it as a new stack with --seed N (any other number)", ledger.Pubkey(old.GetId()), seed)}
	case string(old.GetManifest()) == string(yml):
		st := ledger.Stack{ID: ledger.Pubkey(old.GetId()), Revision: old.GetRevision()}
		return st, "unchanged", nil
	}
	st, err := s.l.UpdateStack(cctx, key, ledger.Pubkey(old.GetId()), yml)
	if err != nil {
		return st, "", d.postErr(err, r)
	}
	return st, "updated", nil
}

func (d *deployer) postErr(err error, r *chainindexerv1.Region) error {
	switch {
	case errors.Is(err, ledger.ErrInsufficientEscrow), errors.Is(err, ledger.ErrNotFound):
		return &exitError{code: ExitUsage, err: fmt.Errorf("the ledger refused the stack: %v; mu escrow view shows your escrow (region %s needs %d)", err, r.GetName(), r.GetMinEscrowBalance())}
	case errors.Is(err, ledger.ErrInvalidArgument):
		return &exitError{code: ExitInvalid, err: fmt.Errorf("the ledger refused the manifest: %v", err)}
	}
	return d.s.ledErr(err)
}

// gatewayStatus asks the gateway what it serves of stack id; found is
// false when it does not know the stack.
func (s *session) gatewayStatus(ctx context.Context, id ids.StackID) (st gateway.StackStatus, found bool, err error) {
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimSuffix(s.t.gateway.v, "/")+gateway.StacksPath+id.String(), nil)
	if err != nil {
		return st, false, &exitError{code: ExitUsage, err: fmt.Errorf("%s: %w", s.t.gateway.where("the gateway"), err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, false, &exitError{code: ExitUsage, err: fmt.Errorf("%s is unreachable: %v; check the address (mu config show) or pass --gateway URL", s.t.gateway.where("the gateway"), err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return st, false, nil
	default:
		return st, false, &exitError{code: ExitUsage, err: fmt.Errorf("%s: %s: %s", s.t.gateway.where("the gateway"), resp.Status, strings.TrimSpace(string(body)))}
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, false, &exitError{code: ExitUsage, err: fmt.Errorf("%s: bad stack status: %v", s.t.gateway.where("the gateway"), err)}
	}
	return st, true, nil
}

// waitServed polls the gateway until it routes revision rev of id and the
// owner runtime has it installed.
func (d *deployer) waitServed(ctx context.Context, id ids.StackID, rev uint64) error {
	deadline := time.Now().Add(d.wait)
	last := "the gateway does not know the stack yet"
	for {
		st, found, err := d.s.gatewayStatus(ctx, id)
		if err != nil {
			return err
		}
		if found {
			switch {
			case st.Revision >= rev && !st.Enabled:
				return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s is disabled: %s", id, st.DisabledReason)}
			case st.Revision < rev:
				last = fmt.Sprintf("the gateway routes revision %d", st.Revision)
			case st.Owner.Node == "":
				last = "the gateway sees no runtime to own it"
			case st.Owner.Error != "":
				last = fmt.Sprintf("its owner %s answers: %s", st.Owner.Node, st.Owner.Error)
			case !st.Owner.Deployed || st.Owner.Revision < rev:
				last = fmt.Sprintf("its owner %s has revision %d installed", st.Owner.Node, st.Owner.Revision)
			default:
				return nil
			}
		}
		if time.Now().After(deadline) {
			return &exitError{code: ExitUsage, err: fmt.Errorf("stack %s revision %d is on the ledger but the region did not serve it within %s: %s; mu stack status %s shows more", id, rev, d.wait, last, id)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
