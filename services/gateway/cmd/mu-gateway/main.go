// Command mu-gateway runs a mu gateway node: the public HTTP edge that
// routes /{stack_id}/{gateway}/{path} to functions on a runtime node.
//
// Configuration starts from gateway.DefaultConfig; MU_GATEWAY_<FLAG>
// environment variables (flag name upper-cased, '-' as '_') override it and
// flags override those. Until the chain-indexer feeds stacks, -stack
// ID=manifest.yaml installs a stack from a file (repeatable).
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

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/gateway"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mu-gateway:", err)
		os.Exit(1)
	}
}

type stackFlags []string

func (s *stackFlags) String() string     { return strings.Join(*s, ",") }
func (s *stackFlags) Set(v string) error { *s = append(*s, v); return nil }

func run(args []string) error {
	cfg := gateway.DefaultConfig()
	fs := flag.NewFlagSet("mu-gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "public HTTP listen address (host:port)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "gRPC admin listen address (host:port)")
	fs.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "base URL clients use to reach the HTTP port (default http://<http-addr>)")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this gateway in usage keys and logs, unique in the region")
	fs.Int64Var(&cfg.MaxRequestBodyBytes, "max-request-body-bytes", cfg.MaxRequestBodyBytes, "largest request body, bytes")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", cfg.MaxHeaderBytes, "largest request line + headers, bytes")
	fs.Int64Var(&cfg.MaxResponseBytes, "max-response-bytes", cfg.MaxResponseBytes, "largest function response body, bytes")
	fs.IntVar(&cfg.MaxResponseHeaderBytes, "max-response-header-bytes", cfg.MaxResponseHeaderBytes, "largest function response headers, bytes")
	fs.DurationVar(&cfg.InvokeTimeout, "invoke-timeout", cfg.InvokeTimeout, "longest wait for a function call")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "time to read request headers")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a whole request (0: none)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time to write a response (0: none)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "keep-alive idle time")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "drain time on shutdown")
	fs.IntVar(&cfg.UsageBatchSize, "usage-batch-size", cfg.UsageBatchSize, "usage records per report")
	fs.IntVar(&cfg.UsageQueueSize, "usage-queue-size", cfg.UsageQueueSize, "usage records queued before requests wait")
	fs.DurationVar(&cfg.UsageFlushInterval, "usage-flush-interval", cfg.UsageFlushInterval, "longest wait before usage is sent")
	fs.DurationVar(&cfg.UsageReportTimeout, "usage-report-timeout", cfg.UsageReportTimeout, "deadline of one usage report")
	fs.DurationVar(&cfg.UsageRetryMin, "usage-retry-min", cfg.UsageRetryMin, "first retry wait after a failed usage report")
	fs.DurationVar(&cfg.UsageRetryMax, "usage-retry-max", cfg.UsageRetryMax, "longest retry wait")
	fs.DurationVar(&cfg.UsageCloseTimeout, "usage-close-timeout", cfg.UsageCloseTimeout, "final usage flush time on shutdown")
	runtimeAddr := fs.String("runtime-addr", "", "gRPC address of the runtime that serves every stack (required)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var stacks stackFlags
	fs.Var(&stacks, "stack", "install a stack from a manifest file: BASE58_ID=PATH (repeatable)")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "MU_GATEWAY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", env, err))
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *runtimeAddr == "" {
		return errors.New("-runtime-addr is required")
	}

	conns := gateway.NewConns()
	defer conns.Close()
	rt, err := gateway.DialRuntime(conns, *runtimeAddr)
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
		return fmt.Errorf("-stack %q: want BASE58_ID=PATH", spec)
	}
	id, err := ids.ParseStackID(idText)
	if err != nil {
		return fmt.Errorf("-stack: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-stack: %w", err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return fmt.Errorf("-stack %s: %w", path, err)
	}
	return srv.PutStack(id, m, 1)
}
