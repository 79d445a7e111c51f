package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/project"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
	"github.com/muprotocol/mu/region"
	billing "github.com/muprotocol/mu/services/billing"
	chainindexer "github.com/muprotocol/mu/services/chain-indexer"
	"github.com/muprotocol/mu/services/runtime/logs"
)

func newRunCommand() *cobra.Command {
	var gatewayAddr, indexerAddr, billingAddr, dataDir string
	var watch, traced bool
	var led ledgerFlags
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Build a project and serve it on a local region",
		Long: `Run builds the project in DIR (default .) to WebAssembly, starts a local
region — the gateway, the runtime, muDB, storage, a local marketplace
ledger and the chain-indexer following it, in this process, on 127.0.0.1,
with embedded defaults — and deploys the stack the way a provider's region
gets it: the binaries are uploaded to storage (signed with the developer's
key), the stack is posted on the ledger (create_stack, or update_stack when
the manifest changed since the last run), and the runtime and the gateway
learn it from the chain-indexer. The ledger holds a dev marketplace: an
authority, an authorized provider with one region, and the developer's
escrow with it.

Run prints each endpoint URL, then the storage service's base URL, then the
chain-indexer's gRPC address (for grpcurl; reflection is on), each on a
line of its own, and streams the functions' logs until Ctrl-C or SIGTERM.
While it runs, the region's addresses are recorded in region.json under
the user's state directory ($MU_STATE_DIR, else $XDG_STATE_HOME/mu, else
~/.local/state/mu), where 'mu usage' finds them; the file is removed on
exit.

The keys are kept in DIR/.mu/keys (Solana JSON keypairs); the stack's id is
derived from the developer key, so URLs stay the same between runs. The
ledger, the indexer's view, the stack's tables (the embedded TiKV store),
its boxes and binaries (a local directory) and compiled artifacts are kept
under DIR/.mu/data, so data written in one run is there in the next.

With --watch, a change to the project's Go files, go.mod, go.sum or mu.yaml
rebuilds it and posts the new revision; the runtime starts the new
revision's instances before it retires the old ones, so requests in flight
finish on the old revision and none is dropped. A build that fails is
reported and the last good revision keeps serving.

With --trace, every request is traced across the services (OpenTelemetry,
W3C trace context, in this process) and, when it has been answered, its
span tree is printed to stderr: the gateway route, the runtime's Invoke,
the instance wait, the wasm call (fuel, outcome) and each muDB and storage
call (table, keys, bytes), indented under their parents with their
durations. Function log lines then carry the first 8 hex digits of their
request's trace id, as [trace 4bf92f35].

With --ledger solana the region runs on the marketplace program on a
Solana cluster instead of the local ledger: --rpc names the node's JSON-RPC
URL (--ws its websocket URL, default the RPC port + 1), --program-id the
program, --fee-payer the Solana JSON keypair that pays the transactions'
fees (default DIR/.mu/data/ledger/fee-payer.json, made once). The fee
payer and the project's keys, which pay the rent of what the program
creates for them, are funded by an airdrop when they hold no lamports, as
a test validator grants.
The dev market (state, provider, region, escrow) is set up on the program
the first time, with the project's keys; the program has no storage rates,
so storage is free there, and billing keeps the program's missing rules
itself (whole-token usage updates, the remainder carried to the next).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			sol, err := led.solana()
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			return runProject(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, gatewayAddr, indexerAddr, billingAddr, dataDir, watch, traced, sol)
		},
	}
	led.register(cmd)
	cmd.Flags().StringVar(&gatewayAddr, "gateway-addr", "127.0.0.1:12080", "address of the local gateway's HTTP listener")
	cmd.Flags().StringVar(&indexerAddr, "chain-indexer-addr", "127.0.0.1:12040", "address of the local chain-indexer's gRPC API (reflection on)")
	cmd.Flags().StringVar(&billingAddr, "billing-addr", "127.0.0.1:12050", "address of the local billing service's gRPC API (mu usage asks it)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where the local region keeps its data (default DIR/.mu/data)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "rebuild and redeploy when the project's sources change")
	cmd.Flags().BoolVar(&traced, "trace", false, "trace each request and print its span tree to stderr")
	return cmd
}

// loadProject loads DIR, reporting manifest problems line by line.
func loadProject(stderr io.Writer, dir string) (*project.Project, error) {
	p, err := project.Load(dir)
	if err != nil {
		var verr *manifest.ValidationError
		var serr *manifest.SyntaxError
		if errors.As(err, &verr) || errors.As(err, &serr) || errors.Is(err, manifest.ErrTooLarge) {
			reportManifestError(stderr, filepath.Join(dir, project.ManifestFile), err)
			return nil, &exitError{code: ExitInvalid}
		}
		return nil, &exitError{code: ExitUsage, err: err}
	}
	return p, nil
}

func buildProject(ctx context.Context, stderr io.Writer, p *project.Project) (*project.Build, error) {
	if err := syncSDK(ctx, stderr, p); err != nil {
		return nil, err
	}
	b, err := p.Build(ctx, func(fn, dir string) {
		fmt.Fprintf(stderr, "building %s (%s)\n", fn, dir)
	})
	if err != nil {
		return nil, &exitError{code: ExitInvalid, err: err}
	}
	return b, nil
}

// devStackSeed is the seed of the stack `mu run` posts: one stack per
// project, whose developer key lives in the project's DIR/.mu/keys.
const devStackSeed = 1

func runProject(ctx context.Context, stdout, stderr io.Writer, dir, gatewayAddr, indexerAddr, billingAddr, dataDir string, watch, traced bool, sol *backend.Solana) error {
	p, err := loadProject(stderr, dir)
	if err != nil {
		return err
	}
	b, err := buildProject(ctx, stderr, p)
	if err != nil {
		return err
	}
	var keys region.MarketKeys
	for name, k := range map[string]**ledger.Keypair{"authority": &keys.Authority, "provider": &keys.Provider, "developer": &keys.Developer} {
		if *k, err = p.Keypair(name); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
	}
	if dataDir == "" {
		dataDir = filepath.Join(p.StateDir(), "data")
	}
	var tp *sdktrace.TracerProvider
	if traced {
		// Every request sampled; the tree printed when its root ends.
		tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newSpanTree(stderr)))
		defer tp.Shutdown(context.Background())
	}
	opts := region.Options{
		DataDir:     dataDir,
		Mudb:        &region.MudbOptions{},
		Storage:     &region.StorageOptions{},
		UploaderKey: keys.Developer.PrivateKey(),
		Ledger: &region.LedgerOptions{
			Keys:    keys,
			Solana:  sol,
			Indexer: func(c *chainindexer.Config) { c.GRPCAddr = indexerAddr },
		},
		Billing: &region.BillingOptions{Addr: billingAddr, Config: func(c *billing.Config) { c.SettleInterval = devSettleInterval }},
		Runtime: &region.RuntimeOptions{},
		Gateway: &region.GatewayOptions{HTTPAddr: gatewayAddr},
	}
	if tp != nil {
		opts.TracerProvider = tp
	}
	local, err := region.Start(ctx, opts)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("start local region: %w", err)}
	}
	defer local.Close()
	sub := local.Runtime().Server().Logs().Subscribe(logs.Filter{})
	defer sub.Close()
	start := time.Now()
	before, findErr := region.FindStack(ctx, local.Ledger(), keys.Developer.Pubkey(), local.Market().Region.ID, devStackSeed)
	st, err := local.Post(ctx, keys.Developer, devStackSeed, b.Manifest, b.Binaries)
	if err != nil {
		return &exitError{code: ExitInvalid, err: fmt.Errorf("post the stack on the %s: %w", ledgerName(sol), err)}
	}
	posted := time.Now()
	id := ids.StackID(st.ID)
	if err := local.WaitServed(ctx, id, st.Revision); err != nil {
		return &exitError{code: ExitInvalid, err: fmt.Errorf("stack %s revision %d was posted on the ledger but is not served: %w", id, st.Revision, err)}
	}
	what := "created"
	switch {
	case findErr == nil && before.Revision == st.Revision:
		what = "unchanged"
	case findErr == nil:
		what = "updated"
	}
	fmt.Fprintf(stderr, "stack %s %q revision %d (%s on the ledger) served in %s (%s from the ledger write)\n",
		id, b.Manifest.Name, st.Revision, what, time.Since(start).Round(time.Millisecond), time.Since(posted).Round(time.Millisecond))
	// Recorded before the URLs are printed: whoever reads them finds it.
	rec := describeRegion(local, "mu run", []string{id.String()})
	rec.PID = os.Getpid()
	if path, err := writeRegionFile(rec); err != nil {
		fmt.Fprintf(stderr, "warning: %v (mu usage will need --billing)\n", err)
	} else {
		defer removeRegionFile(func(f regionFile) bool { return f.PID == rec.PID && f.Started.Equal(rec.Started) })
		fmt.Fprintf(stderr, "  addresses recorded in %s (removed on exit)\n", path)
	}
	printed := map[string]bool{}
	printURLs := func(m *manifest.Manifest) { printEndpoints(stdout, stderr, local.URLs(id, m), printed) }
	printURLs(b.Manifest)
	if st := local.Storage(); st != nil {
		fmt.Fprintf(stdout, "%s\n", st.URL())
		fmt.Fprintf(stderr, "  storage: public boxes at %s/%s/{box}/{key}, binary uploads at %s/binaries\n", st.URL(), id, st.URL())
	}
	ix := local.ChainIndexer()
	fmt.Fprintf(stdout, "%s\n", ix.Addr())
	fmt.Fprintf(stderr, "  chain-indexer: gRPC with reflection at %s (grpcurl -plaintext %s list)\n", ix.Addr(), ix.Addr())
	fmt.Fprintf(stderr, "  billing: gRPC at %s, settling on the %s every %s (mu usage %s)\n", local.Billing().Addr(), ledgerName(sol), devSettleInterval, id)
	var changes <-chan struct{}
	var watchErrs <-chan error
	if watch {
		w, err := watchSources(p.Dir, 300*time.Millisecond)
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("watch %s: %w", p.Dir, err)}
		}
		defer w.Close()
		changes, watchErrs = w.C, w.Errors
		fmt.Fprintf(stderr, "watching %s for changes to Go files, go.mod, go.sum and %s\n", p.Dir, project.ManifestFile)
	}
	revision := st.Revision
	fmt.Fprintln(stderr, "serving; press Ctrl-C to stop")
	for {
		select {
		case <-changes:
			if m, rev, ok := redeploy(ctx, stderr, local, keys.Developer, dir, id, revision); ok {
				revision = rev
				printURLs(m)
			}
		case err := <-watchErrs:
			fmt.Fprintf(stderr, "watch: %v\n", err)
		case <-ctx.Done():
			fmt.Fprintln(stderr, "stopping")
			printUsage(stderr, local, id)
			local.Close()
			return nil
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if e.Dropped > 0 {
				fmt.Fprintf(stderr, "(%d log lines dropped)\n", e.Dropped)
			}
			fn := e.Function
			if fn == "" {
				fn = "runtime"
			}
			writeLogLine(stdout, e.Time.Format("15:04:05.000"), e.Level.String(), fn, e.TraceID, e.Body)
		}
	}
}

// redeploy rebuilds the project after a change and posts the new
// revision; on any failure it says so and the revision served stays. It
// returns the new manifest and revision, and whether one is served.
func redeploy(ctx context.Context, stderr io.Writer, local *region.Region, dev *ledger.Keypair, dir string, id ids.StackID, serving uint64) (*manifest.Manifest, uint64, bool) {
	start := time.Now()
	fmt.Fprintln(stderr, "change detected: rebuilding")
	keep := func(what string, err error) (*manifest.Manifest, uint64, bool) {
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", what, err)
		}
		fmt.Fprintf(stderr, "revision %d keeps serving\n", serving)
		return nil, 0, false
	}
	p, err := loadProject(stderr, dir)
	if err != nil {
		return keep("the manifest is not valid", errors.Unwrap(err))
	}
	b, err := buildProject(ctx, stderr, p)
	if err != nil {
		return keep("build failed", errors.Unwrap(err))
	}
	st, err := local.Post(ctx, dev, devStackSeed, b.Manifest, b.Binaries)
	if err != nil {
		return keep("post the new revision", err)
	}
	if st.Revision == serving {
		fmt.Fprintf(stderr, "the stack did not change: revision %d keeps serving\n", serving)
		return nil, 0, false
	}
	if err := local.WaitServed(ctx, id, st.Revision); err != nil {
		return keep(fmt.Sprintf("revision %d was posted but is not served", st.Revision), err)
	}
	fmt.Fprintf(stderr, "revision %d served in %s\n", st.Revision, time.Since(start).Round(time.Millisecond))
	return b.Manifest, st.Revision, true
}

// printEndpoints prints each URL of eps on stdout once (one line per URL,
// whatever its methods; printed remembers them across calls) and every
// method, URL and function on stderr.
func printEndpoints(stdout, stderr io.Writer, eps []region.Endpoint, printed map[string]bool) {
	for _, e := range eps {
		if !printed[e.URL] {
			printed[e.URL] = true
			fmt.Fprintln(stdout, e.URL)
		}
		fmt.Fprintf(stderr, "  %s %s → %s\n", e.Method, e.URL, e.Function)
	}
}

// devSettleInterval is how often `mu run`'s billing settles on the local
// ledger: often, so that a developer sees the escrow move.
const devSettleInterval = 10 * time.Second

// printUsage prints what billing counted for the stack during the run and
// since (the local region keeps its billing data), in billing units.
func printUsage(w io.Writer, local *region.Region, id ids.StackID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := local.FlushUsage(ctx); err != nil {
		fmt.Fprintf(w, "usage: not all usage reached billing: %v\n", err)
	}
	resp, err := local.Billing().Client().GetUsage(ctx, &billingv1.GetUsageRequest{StackId: id.Bytes()})
	if err != nil {
		fmt.Fprintf(w, "usage: billing did not answer: %v\n", err)
		return
	}
	got := map[typesv1.UsageKind]string{}
	for _, x := range resp.GetTotals() {
		got[x.GetKind()] = ledger.Uint128{Hi: x.GetAmount().GetHi(), Lo: x.GetAmount().GetLo()}.String()
	}
	amount := func(k typesv1.UsageKind) string {
		if v, ok := got[k]; ok {
			return v
		}
		return "0"
	}
	fmt.Fprintf(w, "usage (mu usage %s for more): %s requests, %s traffic bytes, %s megabyte-instructions, %s db reads, %s db writes, %s storage bytes moved\n",
		id, amount(typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS), amount(typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES),
		amount(typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS), amount(typesv1.UsageKind_USAGE_KIND_DB_READS),
		amount(typesv1.UsageKind_USAGE_KIND_DB_WRITES), amount(typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES))
}
