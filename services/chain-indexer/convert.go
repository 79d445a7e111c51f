package chainindexer

import (
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	"github.com/muprotocol/mu/services/chain-indexer/internal/index"
)

// The conversions from ledger accounts to the messages the indexer
// serves (package libs/ledger/ledgerpb, shared with the ledger's own
// service). They copy every byte slice, so the served messages never
// alias a backend's memory.

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
		return index.Object{Provider: ledgerpb.ProviderProto(*c.Provider)}, true
	case c.Region != nil:
		return index.Object{Region: ledgerpb.RegionProto(*c.Region)}, true
	case c.Stack != nil:
		return index.Object{Stack: ledgerpb.StackProto(*c.Stack)}, true
	case c.Escrow != nil:
		return index.Object{Escrow: escrowProto(*c.Escrow)}, true
	}
	return o, false
}
