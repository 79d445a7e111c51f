// Command mu-mudb runs a muDB node (see package mudb). Settings start
// from DefaultConfig; a YAML file (--config), MU_MUDB_<FIELD> environment
// variables and --<field> flags override it (--help lists them). Exit codes:
// 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	mudb "github.com/muprotocol/mu/services/mudb"
)

func main() { service.Main(command()) }

func command() service.Command[mudb.Config] {
	return service.Command[mudb.Config]{
		Name:   "mudb",
		Config: mudb.DefaultConfig(),
		Docs:   mudb.ConfigDocs(),
		New: func(_ context.Context, cfg mudb.Config, log *slog.Logger) (service.Service, error) {
			return mudb.New(cfg, mudb.Deps{Logger: log})
		},
	}
}
