package region

import (
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
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
	// Keys are the market's keys; nil fields are generated for the life of
	// the region.
	Keys MarketKeys
	// Market, if set, adjusts DevMarketSettings() before SetUpMarket.
	Market func(s *MarketSettings)
	// Indexer, if set, adjusts the chain-indexer's configuration
	// (GRPCAddr, AdminAddr and its data directory are set).
	Indexer func(c *chainindexer.Config)
}

// ChainIndexerNode is the region's chain-indexer.
type ChainIndexerNode struct {
	name      string
	addr      string
	adminAddr string
	client    chainindexerv1.ChainIndexerServiceClient
	server    *chainindexer.Server
}

// Name is the node's name.
func (n *ChainIndexerNode) Name() string { return n.name }

// Addr is the node's gRPC address (ChainIndexerService, health,
// reflection).
func (n *ChainIndexerNode) Addr() string { return n.addr }

// AdminAddr is the node's admin HTTP address.
func (n *ChainIndexerNode) AdminAddr() string { return n.adminAddr }

// Client is a ChainIndexerService client of the node.
func (n *ChainIndexerNode) Client() chainindexerv1.ChainIndexerServiceClient { return n.client }

// Server is the in-process server.
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
	if r.ledger == nil {
		cfg := local.DefaultConfig()
		cfg.DataDir = nodeDir(opts.DataDir, "ledger")
		if lo.Local != nil {
			lo.Local(&cfg)
		}
		l, err := local.Open(cfg)
		if err != nil {
			return fmt.Errorf("region: ledger: %w", err)
		}
		r.ledger = l
		r.closers = append(r.closers, l.Close)
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
	settings := DevMarketSettings()
	if lo.Market != nil {
		lo.Market(&settings)
	}
	m, err := SetUpMarket(ctx, r.ledger, keys, settings)
	if err != nil {
		return err
	}
	r.market = m

	cfg := chainindexer.DefaultConfig()
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeName = "chain-indexer"
	cfg.DataDir = nodeDir(opts.DataDir, "chain-indexer")
	if lo.Indexer != nil {
		lo.Indexer(&cfg)
	}
	s, err := chainindexer.New(cfg, chainindexer.Deps{Logger: r.log, Ledger: r.ledger})
	if err != nil {
		return fmt.Errorf("region: chain-indexer: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return fmt.Errorf("region: chain-indexer: %w", err)
	}
	r.indexer = &ChainIndexerNode{name: cfg.NodeName, addr: s.Addr(), adminAddr: s.AdminAddr(), server: s}
	cc, err := dialService("chain-indexer", s.Addr(), cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, cc.Close)
	r.indexer.client = chainindexerv1.NewChainIndexerServiceClient(cc)
	return nil
}
