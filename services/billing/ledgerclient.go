package billing

import (
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerrpc"
	"github.com/muprotocol/mu/libs/service"
)

// dialLedger connects to the mu.ledger.v1.LedgerService at addr (the
// process that hosts the ledger: a chain-indexer with ledger_backend
// local); the closer releases the connection. Connecting is lazy: an
// unreachable ledger fails settlements with ledger.ErrUnavailable, which
// keeps them pending, not New. extra options come last (trace context).
func dialLedger(addr string, base service.Base, extra ...grpc.DialOption) (ledger.UsageUpdater, io.Closer, error) {
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(base.MaxMessageBytes), grpc.MaxCallSendMsgSize(base.MaxMessageBytes))},
		extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger_addr %q: %w", addr, err)
	}
	return ledgerrpc.NewClient(cc), cc, nil
}
