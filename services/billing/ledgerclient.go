package billing

import (
	"errors"
	"io"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/service"
)

// dialLedger connects to the mu.ledger.v1.LedgerService at addr; the
// closer releases the connection.
func dialLedger(addr string, base service.Base) (ledger.UsageUpdater, io.Closer, error) {
	_, _ = addr, base
	return nil, nil, errors.New("ledger_addr: the LedgerService client is not wired yet")
}
