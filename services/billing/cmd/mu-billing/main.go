// Command mu-billing runs a billing node (see package billing). Settings start
// from DefaultConfig; a YAML file (--config), MU_BILLING_<FIELD> environment
// variables and --<field> flags override it (--help lists them). Exit codes:
// 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	billing "github.com/muprotocol/mu/services/billing"
)

func main() { service.Main(command()) }

func command() service.Command[billing.Config] {
	return service.Command[billing.Config]{
		Name:   "billing",
		Config: billing.DefaultConfig(),
		Docs:   billing.ConfigDocs(),
		New: func(_ context.Context, cfg billing.Config, log *slog.Logger) (service.Service, error) {
			return billing.New(cfg, billing.Deps{Logger: log})
		},
	}
}
