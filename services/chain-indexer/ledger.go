package chainindexer

import (
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/local"
)

// openLedger opens the backend cfg names; the caller closes it.
func openLedger(cfg LedgerConfig) (ledger.Ledger, error) {
	switch cfg.Backend {
	case BackendLocal:
		lc := local.DefaultConfig()
		lc.PDEndpoints, lc.DataDir = cfg.PDEndpoints, cfg.DataDir
		l, err := local.Open(lc)
		if err != nil {
			return nil, fmt.Errorf("chain-indexer: ledger_backend local: %w", err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("chain-indexer: ledger_backend %q: want %q", cfg.Backend, BackendLocal)
}
