package region

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// MarketKeys are the keys of a dev marketplace: the marketplace authority,
// the provider's owner (who also signs usage) and one developer.
type MarketKeys struct {
	Authority *ledger.Keypair
	Provider  *ledger.Keypair
	Developer *ledger.Keypair
}

// Market is the dev marketplace SetUpMarket made sure of.
type Market struct {
	Keys     MarketKeys
	Provider ledger.Provider
	Region   ledger.Region
	Escrow   ledger.Escrow
}

// MarketSettings say what SetUpMarket creates.
type MarketSettings struct {
	// ProviderDeposit and CommissionMicros initialise the state.
	ProviderDeposit  uint64
	CommissionMicros uint32
	// ProviderName names the dev provider.
	ProviderName string
	// RegionNumber is the dev region's number within its provider.
	RegionNumber uint32
	// Region is the dev region's name, URL, rates and limits.
	Region ledger.RegionConfig
	// Escrow is the balance the developer's escrow is topped up to
	// (minted to the developer first).
	Escrow uint64
}

// DevMarketSettings are the settings `mu run` uses: small prices in every
// unit (so usage has a visible cost), a minimum escrow of 1,000 base units
// and an escrow of 1,000,000,000.
func DevMarketSettings() MarketSettings {
	return MarketSettings{
		ProviderDeposit:  1_000_000,
		CommissionMicros: 50_000, // 5%
		ProviderName:     "local",
		RegionNumber:     1,
		Region: ledger.RegionConfig{
			Name:    "local",
			BaseURL: "http://127.0.0.1",
			Rates: ledger.Rates{
				FunctionPerTeraMBInstructions: 1_000,
				DBPerMillionReads:             100,
				DBPerMillionWrites:            500,
				DBPerGiBMonthStored:           1_000,
				GatewayPerMillionRequests:     200,
				GatewayPerGiBTraffic:          100,
				StoragePerGiBMonthStored:      500,
				StoragePerGiBTraffic:          100,
			},
			MinEscrowBalance:           1_000,
			MaxGigaInstructionsPerCall: 0,
		},
		Escrow: 1_000_000_000,
	}
}

// SetUpMarket makes sure l holds a marketplace the keys can deploy to:
// the state (authority), the provider (deposit minted and paid,
// authorized), its region (settings applied), the provider as the
// region's usage signer, and the developer's escrow with the provider
// holding at least s.Escrow. It is idempotent: run against a ledger that
// has all this it changes nothing but a region whose settings differ
// and an escrow under s.Escrow.
//
// On a backend that lacks some rules (ledger.Lacking: the Solana program)
// the region leaves out what it cannot hold: no storage rates without
// ledger.CapStorage, no memory bounds without ledger.CapMemoryBounds. A
// region whose settings differ fails without ledger.CapUpdateRegion, and
// one with another usage signer without ledger.CapReplaceUsageSigner:
// the error says which setting to change (RegionNumber picks a new
// region).
func SetUpMarket(ctx context.Context, l ledger.Ledger, keys MarketKeys, s MarketSettings) (*Market, error) {
	if keys.Authority == nil || keys.Provider == nil || keys.Developer == nil {
		return nil, errors.New("region: market: the authority, provider and developer keys are all required")
	}
	st, err := l.State(ctx)
	switch {
	case errors.Is(err, ledger.ErrNotInitialized):
		if err := l.Initialize(ctx, keys.Authority, ledger.InitParams{ProviderDeposit: s.ProviderDeposit, CommissionMicros: s.CommissionMicros}); err != nil && !errors.Is(err, ledger.ErrAlreadyInitialized) {
			return nil, fmt.Errorf("region: market: %w", err)
		}
		if st, err = l.State(ctx); err != nil {
			return nil, fmt.Errorf("region: market: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("region: market: %w", err)
	}
	if st.Authority != keys.Authority.Pubkey() {
		return nil, fmt.Errorf("region: market: the ledger's authority is %s, not the authority key %s", st.Authority, keys.Authority.Pubkey())
	}

	m := &Market{Keys: keys}
	owner := keys.Provider.Pubkey()
	m.Provider, err = findProvider(ctx, l, owner)
	if errors.Is(err, ledger.ErrNotFound) {
		if err := topUp(ctx, l, keys.Authority, owner, st.ProviderDeposit); err != nil {
			return nil, err
		}
		if m.Provider, err = l.CreateProvider(ctx, keys.Provider, s.ProviderName); err != nil {
			return nil, fmt.Errorf("region: market: create provider: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	if !m.Provider.Authorized {
		if err := l.AuthorizeProvider(ctx, keys.Authority, m.Provider.ID); err != nil {
			return nil, fmt.Errorf("region: market: authorize provider: %w", err)
		}
		m.Provider.Authorized = true
	}

	want := heldRegionConfig(l, s.Region)
	m.Region, err = findRegion(ctx, l, m.Provider.ID, s.RegionNumber)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		if m.Region, err = l.CreateRegion(ctx, keys.Provider, s.RegionNumber, want); err != nil {
			return nil, fmt.Errorf("region: market: create region: %w", err)
		}
	case err != nil:
		return nil, err
	case m.Region.RegionConfig != want && ledger.Lacks(l, ledger.CapUpdateRegion):
		return nil, fmt.Errorf("region: market: region %d (%s) of provider %s has other settings than asked (%+v, not %+v) and this ledger cannot update a region: use another region number",
			s.RegionNumber, m.Region.ID, m.Provider.ID, m.Region.RegionConfig, want)
	case m.Region.RegionConfig != want:
		if m.Region, err = l.UpdateRegion(ctx, keys.Provider, m.Region.ID, want); err != nil {
			return nil, fmt.Errorf("region: market: update region: %w", err)
		}
	}
	if m.Region.UsageSigner != owner && m.Region.UsageSigner != (ledger.Pubkey{}) && ledger.Lacks(l, ledger.CapReplaceUsageSigner) {
		return nil, fmt.Errorf("region: market: region %s signs usage with %s, not the provider key %s, and this ledger cannot replace a usage signer: use another region number",
			m.Region.ID, m.Region.UsageSigner, owner)
	}
	if m.Region.UsageSigner != owner {
		if err := l.CreateUsageSigner(ctx, keys.Provider, m.Region.ID, owner); err != nil {
			return nil, fmt.Errorf("region: market: usage signer: %w", err)
		}
		if m.Region, err = l.Region(ctx, m.Region.ID); err != nil {
			return nil, fmt.Errorf("region: market: %w", err)
		}
	}

	dev := keys.Developer.Pubkey()
	m.Escrow, err = l.Escrow(ctx, dev, m.Provider.ID)
	if errors.Is(err, ledger.ErrNotFound) {
		if m.Escrow, err = l.CreateEscrow(ctx, keys.Developer, m.Provider.ID); err != nil {
			return nil, fmt.Errorf("region: market: create escrow: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("region: market: %w", err)
	}
	if m.Escrow.Balance < s.Escrow {
		need := s.Escrow - m.Escrow.Balance
		if err := topUp(ctx, l, keys.Authority, dev, need); err != nil {
			return nil, err
		}
		if m.Escrow, err = l.RechargeEscrow(ctx, keys.Developer, m.Provider.ID, need); err != nil {
			return nil, fmt.Errorf("region: market: recharge escrow: %w", err)
		}
	}
	return m, nil
}

// heldRegionConfig is c without what l cannot hold (see SetUpMarket).
func heldRegionConfig(l ledger.Ledger, c ledger.RegionConfig) ledger.RegionConfig {
	if ledger.Lacks(l, ledger.CapStorage) {
		c.Rates.StoragePerGiBMonthStored, c.Rates.StoragePerGiBTraffic = 0, 0
	}
	if ledger.Lacks(l, ledger.CapMemoryBounds) {
		c.MinMemoryLimitBytes, c.MaxMemoryLimitBytes = 0, 0
	}
	return c
}

// topUp mints what the wallet of to lacks of amount.
func topUp(ctx context.Context, l ledger.Ledger, authority ledger.Signer, to ledger.Pubkey, amount uint64) error {
	have, err := l.Balance(ctx, to)
	if err != nil {
		return fmt.Errorf("region: market: balance of %s: %w", to, err)
	}
	if have >= amount {
		return nil
	}
	if err := l.Mint(ctx, authority, to, amount-have); err != nil {
		return fmt.Errorf("region: market: mint %d to %s: %w", amount-have, to, err)
	}
	return nil
}

func findProvider(ctx context.Context, l ledger.Ledger, owner ledger.Pubkey) (ledger.Provider, error) {
	ps, err := l.Providers(ctx)
	if err != nil {
		return ledger.Provider{}, fmt.Errorf("region: market: %w", err)
	}
	for _, p := range ps {
		if p.Owner == owner {
			return p, nil
		}
	}
	return ledger.Provider{}, ledger.ErrNotFound
}

func findRegion(ctx context.Context, l ledger.Ledger, provider ledger.Pubkey, number uint32) (ledger.Region, error) {
	rs, err := l.Regions(ctx)
	if err != nil {
		return ledger.Region{}, fmt.Errorf("region: market: %w", err)
	}
	for _, r := range rs {
		if r.Provider == provider && r.Number == number {
			return r, nil
		}
	}
	return ledger.Region{}, ledger.ErrNotFound
}

// FindStack returns the stack owner posted in region with seed (deleted
// ones included), or ledger.ErrNotFound.
func FindStack(ctx context.Context, l ledger.Ledger, owner, region ledger.Pubkey, seed uint64) (ledger.Stack, error) {
	ss, err := l.Stacks(ctx)
	if err != nil {
		return ledger.Stack{}, err
	}
	for _, s := range ss {
		if s.Owner == owner && s.Region == region && s.Seed == seed {
			return s, nil
		}
	}
	return ledger.Stack{}, ledger.ErrNotFound
}

// Post deploys a stack as `mu deploy` does: it uploads binaries (binary id
// → wasm) to the region's storage, signed with developer's key, and posts
// the manifest on the ledger in the region's market region: create_stack
// the first time for (developer, seed), update_stack when the manifest
// differs from the one on the ledger, nothing when it is the same. The
// runtimes and the gateway learn the stack from the chain-indexer; use
// WaitServed to wait for them. It needs a region started with Ledger and
// Storage.
func (r *Region) Post(ctx context.Context, developer *ledger.Keypair, seed uint64, m *manifest.Manifest, binaries map[string][]byte) (ledger.Stack, error) {
	if r.ledger == nil || r.market == nil {
		return ledger.Stack{}, errors.New("region: Post needs a ledger (Options.Ledger)")
	}
	yml, err := m.Marshal()
	if err != nil {
		return ledger.Stack{}, err
	}
	keys := make([]string, 0, len(binaries))
	for k := range binaries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := r.uploadAs(ctx, developer.PrivateKey(), k, binaries[k]); err != nil {
			return ledger.Stack{}, err
		}
	}
	st, err := FindStack(ctx, r.ledger, developer.Pubkey(), r.market.Region.ID, seed)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return r.ledger.CreateStack(ctx, developer, r.market.Region.ID, seed, yml)
	case err != nil:
		return ledger.Stack{}, err
	case st.State == ledger.StackDeleted:
		return st, fmt.Errorf("region: stack %s (seed %d) was deleted on the ledger; post it with another seed: %w", st.ID, seed, ledger.ErrStackDeleted)
	case bytes.Equal(st.Manifest, yml):
		return st, nil
	}
	return r.ledger.UpdateStack(ctx, developer, st.ID, yml)
}

// WaitServed blocks until every running gateway (Gateways) routes stack id
// at revision (or a later one) and the runtimes that own it have it installed (every
// runtime, without Options.Cluster: each alone owns every stack; with
// it, the runtime that owns it by placement, which must also be the owner
// the gateway routes to), or ctx ends.
func (r *Region) WaitServed(ctx context.Context, id ids.StackID, revision uint64) error {
	return r.waitFor(ctx, func(ctx context.Context) (bool, error) {
		gatewayOwner := "" // node id of the owner in the gateways' rings (cluster mode)
		gateways := r.Gateways()
		for _, g := range gateways {
			if g.process != nil && exited(g.process) {
				continue // a killed executor's gateway
			}
			resp, err := g.client.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()})
			if err != nil || resp.GetRevision() < revision {
				return false, nil
			}
			if r.opts.Cluster != nil {
				p, err := g.client.Placement(ctx, &gatewayv1.PlacementRequest{StackIds: [][]byte{id.Bytes()}})
				if err != nil || len(p.GetStacks()) == 0 || p.GetStacks()[0].GetOwner().GetNodeId() == "" {
					return false, nil // the gateway does not see a runtime for it yet
				}
				owner := p.GetStacks()[0].GetOwner().GetNodeId()
				if gatewayOwner != "" && owner != gatewayOwner {
					return false, nil // the gateways do not agree yet
				}
				gatewayOwner = owner
			}
		}
		owned := false
		for _, n := range r.Runtimes() {
			resp, err := n.client.Status(ctx, &runtimev1.StatusRequest{StackId: id.Bytes()})
			ok := err == nil && len(resp.GetStacks()) > 0 && resp.GetStacks()[0].GetRevision() >= revision
			if r.opts.Cluster == nil && !ok {
				return false, nil // every lone runtime owns every stack
			}
			// In a cluster the stack is served once the runtime that owns it
			// has deployed it and the gateway routes to that same runtime.
			if ok && resp.GetStacks()[0].GetOwned() && (len(gateways) == 0 || resp.GetNodeId() == gatewayOwner) {
				owned = true
			}
		}
		return r.opts.Cluster == nil || owned, nil
	}, fmt.Sprintf("stack %s revision %d to be served", id, revision))
}

// WaitGone blocks until neither the gateway nor any runtime serves stack
// id, or ctx ends.
func (r *Region) WaitGone(ctx context.Context, id ids.StackID) error {
	return r.waitFor(ctx, func(ctx context.Context) (bool, error) {
		if g := r.Gateway(); g != nil {
			if _, err := g.client.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()}); err == nil {
				return false, nil
			}
		}
		for _, n := range r.Runtimes() {
			resp, err := n.client.Status(ctx, &runtimev1.StatusRequest{StackId: id.Bytes()})
			if status.Code(err) == codes.NotFound {
				continue
			}
			if err != nil || len(resp.GetStacks()) > 0 {
				return false, nil
			}
		}
		return true, nil
	}, fmt.Sprintf("stack %s to be gone", id))
}

// WaitEnabled blocks until the gateway reports stack id enabled (or
// disabled, for enabled false), or ctx ends.
func (r *Region) WaitEnabled(ctx context.Context, id ids.StackID, enabled bool) error {
	g := r.Gateway()
	if g == nil {
		return errors.New("region: WaitEnabled needs a gateway")
	}
	return r.waitFor(ctx, func(ctx context.Context) (bool, error) {
		resp, err := g.client.Routes(ctx, &gatewayv1.RoutesRequest{StackId: id.Bytes()})
		return err == nil && resp.GetEnabled() == enabled, nil
	}, fmt.Sprintf("stack %s enabled=%v on the gateway", id, enabled))
}

// waitPoll is how often the Wait methods look.
const waitPoll = 5 * time.Millisecond

func (r *Region) waitFor(ctx context.Context, done func(context.Context) (bool, error), what string) error {
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		ok, err := done(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("region: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
