package chainindexer

import (
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
	"github.com/muprotocol/mu/libs/ledger/local"
)

// openLedger opens the backend cfg names; the caller closes it. The
// Solana backend connects to its node here (ctx bounds that).
func openLedger(ctx context.Context, cfg LedgerConfig) (ledger.Ledger, error) {
	switch cfg.Backend {
	case BackendLocal:
		lc := local.DefaultConfig()
		lc.PDEndpoints, lc.DataDir = cfg.PDEndpoints, cfg.DataDir
		l, err := local.Open(lc)
		if err != nil {
			return nil, fmt.Errorf("chain-indexer: ledger_backend local: %w", err)
		}
		return l, nil
	case BackendSolana:
		l, err := backend.OpenSolana(ctx, cfg.Solana)
		if err != nil {
			return nil, fmt.Errorf("chain-indexer: %w", err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("chain-indexer: ledger_backend %q: want %q or %q", cfg.Backend, BackendLocal, BackendSolana)
}
