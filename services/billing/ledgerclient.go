package billing

import (
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/service"
)

// dialLedger connects to the mu.ledger.v1.LedgerService at addr (the
// process that hosts the ledger: a chain-indexer with ledger_backend
// local); the closer releases the connection. Connecting is lazy: an
// unreachable ledger fails settlements with ledger.ErrUnavailable, which
// keeps them pending, not New.
func dialLedger(addr string, base service.Base, tlsc *service.TLS) (ledger.UsageUpdater, io.Closer, error) {
	// The ledger's host is a chain indexer (ledger_backend local).
	cc, err := grpc.NewClient(addr, tlsc.DialOption(certs.RoleChainIndexer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(base.MaxMessageBytes), grpc.MaxCallSendMsgSize(base.MaxMessageBytes)))
	if err != nil {
		return nil, nil, fmt.Errorf("ledger_addr %q: %w", addr, err)
	}
	return ledgerrpc.NewClient(cc), cc, nil
}
