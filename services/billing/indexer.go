package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// errNoIndexer: billing has no chain indexer to ask.
var errNoIndexer = errors.New("billing: no chain indexer (chain_indexer_addr is empty)")

// market is what the chain indexer says about a stack: its owner, region
// and the owner's escrow with the region's provider.
type market struct {
	stack  *chainindexerv1.Stack
	region *chainindexerv1.Region
	escrow *chainindexerv1.Escrow // nil when the owner has none
}

func (m *market) owner() ledger.Pubkey {
	p, _ := ledger.PubkeyFromBytes("owner", m.stack.GetOwner())
	return p
}

func (m *market) provider() ledger.Pubkey {
	p, _ := ledger.PubkeyFromBytes("provider_id", m.region.GetProviderId())
	return p
}

// lookup asks the chain indexer about stack: the stack, its region and
// the owner's escrow with the region's provider.
func (s *Server) lookup(ctx context.Context, stack ledger.Pubkey) (*market, error) {
	if s.indexer == nil {
		return nil, errNoIndexer
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IndexerTimeout)
	defer cancel()
	st, err := s.indexer.ListStacks(ctx, &chainindexerv1.ListStacksRequest{StackIds: [][]byte{stack.Bytes()}, IncludeDeleted: true})
	if err != nil {
		return nil, fmt.Errorf("billing: chain indexer: list stacks: %w", err)
	}
	if len(st.GetStacks()) == 0 {
		return nil, fmt.Errorf("billing: chain indexer does not know stack %s", stack)
	}
	m := &market{stack: st.GetStacks()[0]}
	regions, err := s.indexer.ListRegions(ctx, &chainindexerv1.ListRegionsRequest{})
	if err != nil {
		return nil, fmt.Errorf("billing: chain indexer: list regions: %w", err)
	}
	for _, r := range regions.GetRegions() {
		if string(r.GetId()) == string(m.stack.GetRegionId()) {
			m.region = r
		}
	}
	if m.region == nil {
		return nil, fmt.Errorf("billing: chain indexer does not know region %x of stack %s", m.stack.GetRegionId(), stack)
	}
	es, err := s.indexer.ListEscrows(ctx, &chainindexerv1.ListEscrowsRequest{Developer: m.stack.GetOwner(), ProviderId: m.region.GetProviderId()})
	if err != nil {
		return nil, fmt.Errorf("billing: chain indexer: list escrows: %w", err)
	}
	if len(es.GetEscrows()) > 0 {
		m.escrow = es.GetEscrows()[0]
	}
	return m, nil
}

func u128pb(x ledger.Uint128) *typesv1.Uint128 { return &typesv1.Uint128{Hi: x.Hi, Lo: x.Lo} }

// totals converts amounts to UsageTotals (non-zero kinds, in kind order:
// the units are numbered in UsageKind order),
// priced at rates when rates is non-nil.
func totals(a amounts, rates *ledger.Rates) []*billingv1.UsageTotal {
	var out []*billingv1.UsageTotal
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		if a[u].IsZero() {
			continue
		}
		t := &billingv1.UsageTotal{Kind: u.Kind(), Amount: u128pb(a[u])}
		if rates != nil {
			var one ledger.Usage
			one.Set(u, a[u])
			if due, _, err := ledger.Charge(*rates, one, ledger.Carry{}); err == nil {
				t.Cost = u128pb(due)
			}
		}
		out = append(out, t)
	}
	return out
}
