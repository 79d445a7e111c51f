package chainindexer

import (
	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/service"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// rules say which certificate roles may call the chain indexer over mTLS
// (see service.Rules): any node of the region may read and watch what it
// follows; the local ledger it hosts (ledger_backend local) may be read by
// any node and written only by billing (usage settlement) and an operator
// (the region package and the CLI: providers, regions, escrows, stacks).
// Ledger writes are signed by their accounts' keys besides.
var rules = service.Rules{
	"/mu.chainindexer.v1.ChainIndexerService/*":      service.AnyRole,
	"/mu.ledger.v1.LedgerService/*":                  {certs.RoleBilling, certs.RoleOperator},
	ledgerv1.LedgerService_GetState_FullMethodName:   service.AnyRole,
	ledgerv1.LedgerService_GetBalance_FullMethodName: service.AnyRole,
	ledgerv1.LedgerService_GetSlot_FullMethodName:    service.AnyRole,
}
