package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/muprotocol/mu/libs/config"
)

// Service is what a binary runs: the contract of every mu service.
type Service interface {
	Start(ctx context.Context) error
	Addr() string
	Err() <-chan error
	Close() error
}

// Settings is any Config that embeds Base.
type Settings interface {
	ServiceBase() Base
}

// Command describes a service binary for Main.
type Command[C Settings] struct {
	// Name is the service's name: the binary is mu-<Name>, the
	// environment prefix MU_<NAME>_.
	Name string
	// Config holds the defaults that the YAML file, environment and flags
	// override.
	Config C
	// Docs are the doc comments of the config's fields, for --help.
	Docs config.Docs
	// New builds the service from the loaded settings; log is the
	// binary's logger. Errors wrapping ErrInvalidConfig exit with 2.
	New func(ctx context.Context, cfg C, log *slog.Logger) (Service, error)
	// Check, if set, checks what the command's own settings require
	// beyond Base and the config's Validate (such as settings that exclude
	// each other); New must refuse what it refuses. --check-config runs it.
	Check func(cfg C) error
}

// validator is a Config with a Validate that reports every problem.
type validator interface{ Validate() error }

// check runs every check of the loaded settings that needs no I/O: Base,
// the config's Validate and the command's Check.
func (c Command[C]) check(cfg C) error {
	if errs := cfg.ServiceBase().Validate(); len(errs) > 0 {
		return Invalid(c.Name, errs)
	}
	if v, ok := any(cfg).(validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if c.Check != nil {
		return c.Check(cfg)
	}
	return nil
}

// Exit codes of a service binary.
const (
	ExitOK      = 0 // stopped by a signal and closed cleanly, or --help
	ExitFailure = 1 // failed to start, failed while serving, or closed with errors
	ExitUsage   = 2 // bad flags, environment, config file or settings
)

// Main runs the binary until SIGINT or SIGTERM and exits the process.
func Main[C Settings](c Command[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal during the drain ends the process at once
	}()
	code := Run(ctx, c, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// Run is Main without the process: it loads settings from args and the
// environment, starts the service, serves until ctx ends or a listener
// fails, closes it, and returns the exit code. Errors are written to
// stderr, as is the log.
func Run[C Settings](ctx context.Context, c Command[C], args []string, stderr io.Writer) int {
	prog := "mu-" + c.Name
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return code
	}
	cfg := c.Config
	if err := config.LoadWithDocsTo(c.Name, &cfg, args, c.Docs, stderr); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return ExitOK
		case errors.Is(err, config.ErrCheckConfig):
			if err := c.check(cfg); err != nil {
				return fail(ExitUsage, err)
			}
			fmt.Fprintf(stderr, "%s: settings are valid\n", prog)
			return ExitOK
		}
		return fail(ExitUsage, err)
	}
	base := cfg.ServiceBase()
	if errs := base.Validate(); len(errs) > 0 {
		return fail(ExitUsage, Invalid(c.Name, errs))
	}
	log, err := base.NewLogger(stderr)
	if err != nil {
		return fail(ExitUsage, err)
	}
	svc, err := c.New(ctx, cfg, log)
	if err != nil {
		if errors.Is(err, ErrInvalidConfig) {
			return fail(ExitUsage, err)
		}
		return fail(ExitFailure, err)
	}
	if err := svc.Start(ctx); err != nil {
		svc.Close()
		return fail(ExitFailure, err)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "signal", context.Cause(ctx))
		if err := svc.Close(); err != nil {
			return fail(ExitFailure, err)
		}
		return ExitOK
	case err := <-svc.Err():
		svc.Close()
		return fail(ExitFailure, err)
	}
}
