// Command mu-runtime runs a runtime node: it runs stacks' WebAssembly
// functions and serves mu.runtime.v1.RuntimeService. Settings start from
// runtime.DefaultConfig; a YAML file (--config), MU_RUNTIME_<FIELD>
// environment variables and --<field> flags override it (--help lists every
// setting). Exit codes: 0 after SIGINT/SIGTERM, 2 for bad settings, 1 for
// failures.
package main

import (
	"context"
	"log/slog"

	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/services/runtime"
)

func main() { service.Main(command()) }

func command() service.Command[runtime.Config] {
	return service.Command[runtime.Config]{
		Name:   "runtime",
		Config: runtime.DefaultConfig(),
		Docs:   runtime.ConfigDocs(),
		New: func(_ context.Context, cfg runtime.Config, log *slog.Logger) (service.Service, error) {
			if cfg.BillingAddr == "" {
				log.Warn("no billing_addr: usage is discarded, nothing is billed")
			}
			return runtime.New(cfg, runtime.Deps{Logger: log})
		},
	}
}
