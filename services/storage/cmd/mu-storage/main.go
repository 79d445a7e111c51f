// Command mu-storage runs a storage node (see package storage). Settings start
// from DefaultConfig; a YAML file (--config), MU_STORAGE_<FIELD> environment
// variables and --<field> flags override it (--help lists them). Exit codes:
// 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	storage "github.com/muprotocol/mu/services/storage"
)

func main() { service.Main(command()) }

func command() service.Command[storage.Config] {
	return service.Command[storage.Config]{
		Name:   "storage",
		Config: storage.DefaultConfig(),
		Docs:   storage.ConfigDocs(),
		New: func(_ context.Context, cfg storage.Config, log *slog.Logger) (service.Service, error) {
			return storage.New(cfg, storage.Deps{Logger: log})
		},
	}
}
