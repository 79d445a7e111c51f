// Package cmd implements the mu command line: one file per command, all
// built fresh by NewRootCommand so that tests can run them in-process.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes of mu.
const (
	ExitOK      = 0 // success
	ExitInvalid = 1 // the input (such as a manifest) is invalid
	ExitUsage   = 2 // bad usage, or an I/O error
)

// exitError ends a command with an exit code. A nil err means the command has
// already reported the problem.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// NewRootCommand returns the mu command with all its subcommands. Its output
// goes to the command's Out and Err writers (cobra's SetOut and SetErr).
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mu",
		Short: "mu builds, deploys and runs stacks on the mu decentralized serverless cloud",
		Long: `mu is the developer's command line for mu, a decentralized serverless cloud.

A stack is described by a manifest, mu.yaml: its functions (WebAssembly
modules), key/value tables, storage boxes and HTTP gateways. mu checks the
manifest, and runs the stack on any mu provider or on your own machine.`,
		SilenceErrors: true, // Run reports errors and picks the exit code
		SilenceUsage:  true,
	}
	root.PersistentFlags().String("profile", "", "the profile (a region's endpoints, ledger and keypair; see mu config) to use instead of the current one")
	root.AddCommand(newValidateCommand(), newRunCommand(), newBuildCommand(), newInitCommand(), newClusterCommand(), newUsageCommand(), newAuditCommand(),
		newConfigCommand(), newKeygenCommand(), newProviderCommand(), newListCommand(), newWalletCommand(), newEscrowCommand(), newDeployCommand(),
		newStackCommand(), newLogsCommand(), newConsoleCommand(), newCertsCommand())
	return root
}

// Execute runs mu with the process's arguments and standard streams, and
// returns the exit code. SIGINT and SIGTERM cancel the command's context.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs mu with args (without the program name) and the given streams,
// and returns the exit code: ExitOK, ExitInvalid or ExitUsage.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var xerr *exitError
	if errors.As(err, &xerr) {
		if xerr.err != nil {
			fmt.Fprintf(stderr, "mu: %v\n", xerr.err)
		}
		return xerr.code
	}
	// Errors from cobra itself: unknown commands and flags, wrong arguments.
	fmt.Fprintf(stderr, "mu: %v\nRun 'mu --help' for usage.\n", err)
	return ExitUsage
}
