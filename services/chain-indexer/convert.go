package chainindexer

import (
	"github.com/muprotocol/mu/libs/ledger"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/services/chain-indexer/internal/index"
)

// The conversions from ledger accounts to the messages the indexer
// serves. They copy every byte slice, so the served messages never alias
// a backend's memory.

func providerProto(p ledger.Provider) *chainindexerv1.Provider {
	return &chainindexerv1.Provider{
		Id:         p.ID.Bytes(),
		Owner:      p.Owner.Bytes(),
		Name:       p.Name,
		Deposit:    p.Deposit,
		Authorized: p.Authorized,
	}
}

func regionProto(r ledger.Region) *chainindexerv1.Region {
	out := &chainindexerv1.Region{
		Id:                         r.ID.Bytes(),
		ProviderId:                 r.Provider.Bytes(),
		RegionNum:                  r.Number,
		Name:                       r.Name,
		BaseUrl:                    r.BaseURL,
		Rates:                      r.Rates.Proto(),
		MinEscrowBalance:           r.MinEscrowBalance,
		MaxGigaInstructionsPerCall: r.MaxGigaInstructionsPerCall,
		MinMemoryLimitBytes:        r.MinMemoryLimitBytes,
		MaxMemoryLimitBytes:        r.MaxMemoryLimitBytes,
	}
	if !r.UsageSigner.IsZero() { // "empty when none is set"
		out.UsageSigner = r.UsageSigner.Bytes()
	}
	return out
}

func stackStateProto(s ledger.StackState) chainindexerv1.StackState {
	switch s {
	case ledger.StackActive:
		return chainindexerv1.StackState_STACK_STATE_ACTIVE
	case ledger.StackDeleted:
		return chainindexerv1.StackState_STACK_STATE_DELETED
	}
	return chainindexerv1.StackState_STACK_STATE_UNSPECIFIED
}

func stackProto(s ledger.Stack) *chainindexerv1.Stack {
	state := stackStateProto(s.State)
	return &chainindexerv1.Stack{
		Id:       s.ID.Bytes(),
		Owner:    s.Owner.Bytes(),
		RegionId: s.Region.Bytes(),
		Seed:     s.Seed,
		Revision: s.Revision,
		Manifest: append([]byte(nil), s.Manifest...),
		State:    state,
		// The ledger decides; a stack that is not active is never served.
		Enabled: s.Enabled && state == chainindexerv1.StackState_STACK_STATE_ACTIVE,
	}
}

func escrowProto(e ledger.Escrow) *chainindexerv1.Escrow {
	return &chainindexerv1.Escrow{
		Developer:  e.Developer.Bytes(),
		ProviderId: e.Provider.Bytes(),
		Balance:    e.Balance,
	}
}

// changeObject converts one ledger change; ok is false for accounts the
// indexer does not serve (the state account).
func changeObject(c ledger.Change) (o index.Object, ok bool) {
	switch {
	case c.Provider != nil:
		return index.Object{Provider: providerProto(*c.Provider)}, true
	case c.Region != nil:
		return index.Object{Region: regionProto(*c.Region)}, true
	case c.Stack != nil:
		return index.Object{Stack: stackProto(*c.Stack)}, true
	case c.Escrow != nil:
		return index.Object{Escrow: escrowProto(*c.Escrow)}, true
	}
	return o, false
}
