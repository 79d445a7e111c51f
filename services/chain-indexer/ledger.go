package chainindexer

import (
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
)

// openLedger opens the backend cfg names.
func openLedger(cfg LedgerConfig) (ledger.Ledger, error) {
	return nil, fmt.Errorf("chain-indexer: ledger backend %q is not available yet", cfg.Backend)
}
