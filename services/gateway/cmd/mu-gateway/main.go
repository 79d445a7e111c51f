// Command mu-gateway runs a mu gateway node: the public HTTP edge that
// routes /{stack_id}/{gateway}/{path} to functions on a runtime node.
//
// Configuration starts from gateway.DefaultConfig; a YAML file (--config),
// MU_GATEWAY_<FIELD> environment variables and --<field> flags override it
// (libs/config). Until the chain-indexer feeds stacks, --stacks
// ID=manifest.yaml[,ID=manifest.yaml] installs stacks from files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/muprotocol/mu/libs/config"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/gateway"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "mu-gateway:", err)
		os.Exit(1)
	}
}

// options are the gateway's Config plus this command's own settings.
type options struct {
	gateway.Config
	// RuntimeAddr is the gRPC address of the runtime that serves every stack.
	RuntimeAddr string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Stacks installs stacks from manifest files, each BASE58_ID=PATH.
	Stacks []string
}

func run(args []string) error {
	o := options{Config: gateway.DefaultConfig(), LogLevel: "info"}
	if err := config.Load("gateway", &o, args); err != nil {
		return err
	}
	cfg := o.Config
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.RuntimeAddr == "" {
		return errors.New("runtime_addr (--runtime-addr, MU_GATEWAY_RUNTIME_ADDR) is required")
	}
	stacks := o.Stacks

	conns := gateway.NewConns()
	defer conns.Close()
	rt, err := gateway.DialRuntime(conns, o.RuntimeAddr)
	if err != nil {
		return err
	}
	log.Warn("no billing service configured yet: usage records are discarded")
	srv, err := gateway.New(cfg, gateway.Deps{Runtimes: rt, Usage: usage.Discard{}, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, spec := range stacks {
		if err := installStack(srv, spec); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-srv.Err():
		srv.Close()
		return err
	}
	return srv.Close()
}

func installStack(srv *gateway.Server, spec string) error {
	idText, path, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("stacks %q: want BASE58_ID=PATH", spec)
	}
	id, err := ids.ParseStackID(idText)
	if err != nil {
		return fmt.Errorf("stacks: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stacks: %w", err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return fmt.Errorf("stacks %s: %w", path, err)
	}
	return srv.PutStack(id, m, 1)
}
