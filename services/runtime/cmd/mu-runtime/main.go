// Command mu-runtime runs a runtime node. Settings: see runtime.Config
// (flags --<field>, environment MU_RUNTIME_<FIELD>, or --config FILE).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/services/runtime"
)

func main() {
	cfg := runtime.DefaultConfig()
	if err := config.Load("runtime", &cfg, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mu-runtime:", err)
		os.Exit(2)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, err := runtime.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mu-runtime:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mu-runtime:", err)
		os.Exit(1)
	}
}
