package region

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/muprotocol/mu/libs/certs"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	billingsvc "github.com/muprotocol/mu/services/billing"
)

// BillingOptions ask for the region's billing node, named billing. Every
// service the region starts then reports its usage to it (billing_addr)
// through its durable sender, spooled under DataDir/<node>/usage-spool
// when the region has a DataDir, instead of to Region.Usage. With
// Options.Ledger the node settles on the region's ledger, signed by the
// dev market's usage signer (the provider's key), and reads rates and
// escrows from the region's chain-indexer.
type BillingOptions struct {
	// Addr is the node's gRPC address; empty picks a free port on
	// 127.0.0.1. The senders are told it before the node starts.
	Addr string
	// Config, if set, adjusts the node's configuration before it starts;
	// GRPCAddr (Addr, which the senders were told: leave it), AdminAddr, NodeName, DataDir and, with a ledger, RegionID,
	// ChainIndexerAddr and the ledger and signer are set. In process mode
	// the settings become the child's flags.
	Config func(c *billingsvc.Config)
}

// BillingNode is the billing node of a region.
type BillingNode struct {
	name      string
	addr      string
	adminAddr string
	server    *billingsvc.Server
	process   *Process
	client    billingv1.BillingServiceClient
}

// Name is the node's name, billing.
func (n *BillingNode) Name() string { return n.name }

// Addr is the node's gRPC address (BillingService).
func (n *BillingNode) Addr() string { return n.addr }

// AdminAddr is the node's admin HTTP address.
func (n *BillingNode) AdminAddr() string { return n.adminAddr }

// Client is a BillingService client on the region's connection to the node.
func (n *BillingNode) Client() billingv1.BillingServiceClient { return n.client }

// Server is the node when it runs in this process, nil in process mode.
func (n *BillingNode) Server() *billingsvc.Server { return n.server }

// Process is the node's child process in process mode, nil in this process.
func (n *BillingNode) Process() *Process { return n.process }

// Billing is the region's billing node, or nil without Options.Billing.
func (r *Region) Billing() *BillingNode { return r.billing }

// BillingAddr is the gRPC address the region's senders report usage to
// (chosen at Start, before the node itself starts), or "" without
// Options.Billing.
func (r *Region) BillingAddr() string { return r.billingAddr }

// spoolDir is where node name spools its unacknowledged usage, or "" to
// keep it in memory only (no DataDir, or no billing to report to).
func (r *Region) spoolDir(name string) string {
	if r.billingAddr == "" || r.opts.DataDir == "" {
		return ""
	}
	return filepath.Join(r.opts.DataDir, name, "usage-spool")
}

// releaseBillingPort lets go of billingAddr's port, for the billing node
// to bind; safe to call twice.
func (r *Region) releaseBillingPort() error {
	if r.billingHold == nil {
		return nil
	}
	err := r.billingHold.Close()
	r.billingHold = nil
	return err
}

// startBilling starts the billing node on r.billingAddr, after the ledger
// and the chain-indexer (when the region has them).
func (r *Region) startBilling(ctx context.Context) error {
	if err := r.releaseBillingPort(); err != nil {
		return fmt.Errorf("region: billing: %w", err)
	}
	cfg := billingsvc.DefaultConfig()
	cfg.GRPCAddr = r.billingAddr
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeName = "billing"
	if err := r.secure(&cfg.Base, certs.RoleBilling, cfg.NodeName); err != nil {
		return err
	}
	cfg.DataDir = nodeDir(r.opts.DataDir, "billing")
	deps := billingsvc.Deps{Logger: r.log, TracerProvider: r.opts.TracerProvider}
	if r.market != nil {
		cfg.RegionID = r.market.Region.ID.String()
		cfg.ChainIndexerAddr = r.indexer.addr
		switch {
		case r.procs == nil && r.ledger != nil:
			deps.Ledger = r.ledger
			deps.Signer = r.market.Keys.Provider
		case r.solana != nil:
			// A child settles on the program itself: a Solana write's
			// signature covers a blockhash only its sender knows, so the
			// chain-indexer cannot forward it.
			cfg.LedgerBackend = billingsvc.LedgerSolana
			cfg.LedgerSolana = *r.solana
			if err := r.writeSigner(&cfg); err != nil {
				return err
			}
		default:
			// The chain-indexer hosts the ledger and takes signed writes
			// (mu.ledger.v1.LedgerService); the child reads the signer's
			// key from a file, as a provider's billing does.
			cfg.LedgerAddr = r.indexer.addr
			if err := r.writeSigner(&cfg); err != nil {
				return err
			}
			if r.procs == nil { // in this process, with the ledger in a child
				kp := r.market.Keys.Provider
				deps.Signer = kp
			}
		}
	}
	if bo := r.opts.Billing; bo.Config != nil {
		bo.Config(&cfg)
	}
	var n *BillingNode
	var err error
	if r.procs != nil {
		n, err = r.procs.billing(ctx, "billing", cfg)
	} else {
		n, err = r.billingInProcess(ctx, "billing", cfg, deps)
	}
	if n != nil {
		r.billing = n
	}
	if err != nil {
		return err
	}
	cc, err := r.dialService(certs.RoleBilling, n.addr, cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, cc.Close)
	n.client = billingv1.NewBillingServiceClient(cc)
	return nil
}

// writeSigner writes the dev market's usage signer (the provider's key)
// to a file for a billing child, which reads it as a provider's billing
// does (signer_key_file).
func (r *Region) writeSigner(cfg *billingsvc.Config) error {
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "mu-region-billing-")
		if err != nil {
			return err
		}
		r.closers = append(r.closers, func() error { return os.RemoveAll(d) })
		dir = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("region: billing: %w", err)
	}
	b, err := json.Marshal(r.market.Keys.Provider)
	if err != nil {
		return err
	}
	cfg.SignerKeyFile = filepath.Join(dir, "usage-signer.json")
	if err := os.WriteFile(cfg.SignerKeyFile, b, 0o600); err != nil {
		return fmt.Errorf("region: billing: %w", err)
	}
	return nil
}

// billingInProcess starts the billing node in this process.
func (r *Region) billingInProcess(ctx context.Context, name string, cfg billingsvc.Config, deps billingsvc.Deps) (*BillingNode, error) {
	s, err := billingsvc.New(cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("region: billing: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("region: billing: %w", err)
	}
	return &BillingNode{name: name, addr: s.Addr(), adminAddr: s.AdminAddr(), server: s}, nil
}

// billing starts the billing node as a child process and waits until it
// serves; its gRPC address is already concrete (chosen at Start).
func (s *processStarter) billing(ctx context.Context, name string, cfg billingsvc.Config) (*BillingNode, error) {
	p, err := s.startChild(ctx, name, "billing", &cfg, &cfg.GRPCAddr, []*string{&cfg.GRPCAddr}, []*string{&cfg.AdminAddr})
	if p == nil {
		return nil, err
	}
	return &BillingNode{name: name, addr: cfg.GRPCAddr, adminAddr: cfg.AdminAddr, process: p}, err
}
