package region

import (
	"context"
	"errors"
	"fmt"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/ledger/local"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	chainindexer "github.com/muprotocol/mu/services/chain-indexer"
)

// LedgerOptions asks Start for a marketplace ledger, a dev market on it
// and the chain-indexer following it. Runtimes and the gateway then learn
// their stacks from the indexer's Watch, as in a provider's region
// (design section 3, Deploy); deploy with Region.Post. The ledger and the
// indexer run in this process in both modes: the local ledger's embedded
// store can only be opened by one process, and the indexer is what
// hosts it.
type LedgerOptions struct {
	// Ledger is used when set (Close leaves it open); otherwise the local
	// backend is opened under DataDir/ledger (in memory without a
	// DataDir).
	Ledger ledger.Ledger
	// Local, if set, adjusts the local backend's configuration.
	Local func(c *local.Config)
	// Solana, if set (and Ledger unset), selects the Solana backend: the
	// marketplace program through the node at Solana.RPCURL instead of the
	// local ledger. An empty fee_payer_keypair uses DataDir/ledger/
	// fee-payer.json (made once; a temporary file without a DataDir); a
	// fee payer without lamports is funded by an airdrop. The dev market
	// leaves out what the program lacks (storage rates, memory bounds).
	// Billing settles on the program directly (in process mode, as a child
	// with ledger_backend solana). Not with IndexerProcess.
	Solana *backend.Solana
	// Keys are the market's keys; nil fields are generated for the life of
	// the region.
	Keys MarketKeys
	// Market, if set, adjusts DevMarketSettings() before SetUpMarket.
	Market func(s *MarketSettings)
	// Indexer, if set, adjusts the chain-indexer's configuration
	// (GRPCAddr, AdminAddr and its data directory are set).
	Indexer func(c *chainindexer.Config)
	// IndexerProcess, in process mode, runs the chain-indexer as a child
	// process (mu-chain-indexer) that hosts the local ledger under
	// DataDir/ledger, as a provider runs it. The embedded store can be
	// open in one process only, so Start opens the ledger here first, sets
	// up the market, runs Prepare, closes it and then starts the child;
	// afterwards Region.Ledger is nil and Post fails. Needs a DataDir and
	// the local backend (Ledger unset).
	IndexerProcess bool
	// Prepare, if set, runs once the market is set up, while this process
	// holds the ledger (with IndexerProcess: the only time it does); it
	// may Post stacks (storage, if any, is running).
	Prepare func(ctx context.Context, r *Region) error
}

// ChainIndexerNode is the region's chain-indexer.
type ChainIndexerNode struct {
	name      string
	addr      string
	adminAddr string
	client    chainindexerv1.ChainIndexerServiceClient
	server    *chainindexer.Server
	process   *Process
}

// Process is the node's child process (LedgerOptions.IndexerProcess), or
// nil.
func (n *ChainIndexerNode) Process() *Process { return n.process }

// Name is the node's name.
func (n *ChainIndexerNode) Name() string { return n.name }

// Addr is the node's gRPC address (ChainIndexerService, health,
// reflection).
func (n *ChainIndexerNode) Addr() string { return n.addr }

// AdminAddr is the node's admin HTTP address.
func (n *ChainIndexerNode) AdminAddr() string { return n.adminAddr }

// Client is a ChainIndexerService client of the node.
func (n *ChainIndexerNode) Client() chainindexerv1.ChainIndexerServiceClient { return n.client }

// Server is the in-process server, or nil with IndexerProcess.
func (n *ChainIndexerNode) Server() *chainindexer.Server { return n.server }

// Ledger is the region's marketplace ledger, or nil without
// Options.Ledger.
func (r *Region) Ledger() ledger.Ledger { return r.ledger }

// Market is the dev market Start set up on the ledger, or nil.
func (r *Region) Market() *Market { return r.market }

// ChainIndexer is the region's chain-indexer, or nil.
func (r *Region) ChainIndexer() *ChainIndexerNode { return r.indexer }

// startLedger opens (or takes) the ledger, sets up the market and starts
// the chain-indexer in this process.
func (r *Region) startLedger(ctx context.Context, opts Options) error {
	lo := opts.Ledger
	r.ledger = lo.Ledger
	child := lo.IndexerProcess && r.procs != nil
	if child && (lo.Ledger != nil || lo.Solana != nil || opts.DataDir == "") {
		return errors.New("region: LedgerOptions.IndexerProcess needs Options.DataDir and the local ledger (LedgerOptions.Ledger and Solana unset)")
	}
	var localCfg local.Config
	if r.ledger == nil && lo.Solana != nil {
		l, s, err := r.openSolana(ctx, *lo.Solana, nodeDir(opts.DataDir, "ledger"))
		if err != nil {
			return err
		}
		r.ledger, r.solana = l, &s
		r.closers = append(r.closers, l.Close)
	}
	if r.ledger == nil {
		localCfg = local.DefaultConfig()
		localCfg.DataDir = nodeDir(opts.DataDir, "ledger")
		if lo.Local != nil {
			lo.Local(&localCfg)
		}
		l, err := local.Open(localCfg)
		if err != nil {
			return fmt.Errorf("region: ledger: %w", err)
		}
		r.ledger = l
		if child {
			defer func() {
				if r.ledger != nil { // a failure before the hand-over
					l.Close()
					r.ledger = nil
				}
			}()
		} else {
			r.closers = append(r.closers, l.Close)
		}
	}
	keys := lo.Keys
	for _, k := range []**ledger.Keypair{&keys.Authority, &keys.Provider, &keys.Developer} {
		if *k == nil {
			kp, err := ledger.GenerateKeypair()
			if err != nil {
				return err
			}
			*k = kp
		}
	}
	if r.solana != nil {
		// On a real cluster the program makes each instruction's authority
		// pay the rent of what it creates (the state, the provider and
		// region, a stack or escrow, every usage record): they need SOL.
		if err := r.fundKeys(ctx, keys); err != nil {
			return err
		}
	}
	settings := DevMarketSettings()
	if lo.Market != nil {
		lo.Market(&settings)
	}
	m, err := SetUpMarket(ctx, r.ledger, keys, settings)
	if err != nil {
		return err
	}
	r.market = m
	if lo.Prepare != nil {
		if err := lo.Prepare(ctx, r); err != nil {
			return err
		}
	}

	cfg := chainindexer.DefaultConfig()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeName = "chain-indexer"
	if err := r.secure(&cfg.Base, certs.RoleChainIndexer, cfg.NodeName); err != nil {
		return err
	}
	cfg.DataDir = nodeDir(opts.DataDir, "chain-indexer")
	if r.solana != nil {
		// A Solana write's signature covers a blockhash only its sender
		// knows: the indexer cannot take signed writes for the program.
		cfg.ServeLedger = false
	}
	if lo.Indexer != nil {
		lo.Indexer(&cfg)
	}
	if child {
		// Hand the ledger over to the child that hosts it from now on.
		if err := r.ledger.Close(); err != nil {
			return fmt.Errorf("region: ledger: %w", err)
		}
		r.ledger = nil
		cfg.Ledger = chainindexer.LedgerConfig{Backend: chainindexer.BackendLocal, PDEndpoints: localCfg.PDEndpoints, DataDir: localCfg.DataDir}
		n, err := r.procs.chainIndexer(ctx, cfg.NodeName, cfg)
		if n != nil {
			r.indexer = n
		}
		if err != nil {
			return err
		}
	} else if err := r.indexerInProcess(ctx, cfg); err != nil {
		return err
	}
	cc, err := r.dialService(certs.RoleChainIndexer, r.indexer.addr, cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, cc.Close)
	r.indexer.client = chainindexerv1.NewChainIndexerServiceClient(cc)
	return nil
}

// indexerInProcess starts the chain-indexer in this process on r.ledger.
func (r *Region) indexerInProcess(ctx context.Context, cfg chainindexer.Config) error {
	s, err := chainindexer.New(cfg, chainindexer.Deps{Logger: r.log, Ledger: r.ledger, TracerProvider: r.opts.TracerProvider})
	if err != nil {
		return fmt.Errorf("region: chain-indexer: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return fmt.Errorf("region: chain-indexer: %w", err)
	}
	r.indexer = &ChainIndexerNode{name: cfg.NodeName, addr: s.Addr(), adminAddr: s.AdminAddr(), server: s}
	return nil
}
