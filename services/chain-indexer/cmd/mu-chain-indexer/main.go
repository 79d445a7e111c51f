// Command mu-chain-indexer runs a chain-indexer node (see package chainindexer). Settings start
// from DefaultConfig; a YAML file (--config), MU_CHAIN_INDEXER_<FIELD> environment
// variables and --<field> flags override it (--help lists them). Exit codes:
// 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	chainindexer "github.com/muprotocol/mu/services/chain-indexer"
)

func main() { service.Main(command()) }

func command() service.Command[chainindexer.Config] {
	return service.Command[chainindexer.Config]{
		Name:   "chain-indexer",
		Config: chainindexer.DefaultConfig(),
		Docs:   chainindexer.ConfigDocs(),
		New: func(_ context.Context, cfg chainindexer.Config, log *slog.Logger) (service.Service, error) {
			return chainindexer.New(cfg, chainindexer.Deps{Logger: log})
		},
	}
}
