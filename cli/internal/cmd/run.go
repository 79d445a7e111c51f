package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/project"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/region"
	"github.com/muprotocol/mu/services/runtime/logs"
)

func newRunCommand() *cobra.Command {
	var gatewayAddr, dataDir string
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Build a project and serve it on a local region",
		Long: `Run builds the project in DIR (default .) to WebAssembly, starts a local
region — the gateway, the runtime, muDB and storage in this process, on
127.0.0.1, with embedded defaults — uploads the binaries to storage (signed
with the stack's key), deploys the stack, prints each endpoint URL and then
the storage service's base URL on lines of their own, and streams the
functions' logs until Ctrl-C or SIGTERM.

The stack id is kept in DIR/.mu/stack.key, so URLs stay the same between
runs; the stack's tables (the embedded TiKV store), its boxes and binaries
(a local directory) and compiled artifacts are kept under DIR/.mu/data, so
data written in one run is there in the next.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runProject(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, gatewayAddr, dataDir)
		},
	}
	cmd.Flags().StringVar(&gatewayAddr, "gateway-addr", "127.0.0.1:12080", "address of the local gateway's HTTP listener")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where the local region keeps its data (default DIR/.mu/data)")
	return cmd
}

// loadProject loads DIR, reporting manifest problems line by line.
func loadProject(stderr io.Writer, dir string) (*project.Project, error) {
	p, err := project.Load(dir)
	if err != nil {
		var verr *manifest.ValidationError
		var serr *manifest.SyntaxError
		if errors.As(err, &verr) || errors.As(err, &serr) || errors.Is(err, manifest.ErrTooLarge) {
			reportManifestError(stderr, filepath.Join(dir, project.ManifestFile), err)
			return nil, &exitError{code: ExitInvalid}
		}
		return nil, &exitError{code: ExitUsage, err: err}
	}
	return p, nil
}

func buildProject(ctx context.Context, stderr io.Writer, p *project.Project) (*project.Build, error) {
	if err := syncSDK(ctx, stderr, p); err != nil {
		return nil, err
	}
	b, err := p.Build(ctx, func(fn, dir string) {
		fmt.Fprintf(stderr, "building %s (%s)\n", fn, dir)
	})
	if err != nil {
		return nil, &exitError{code: ExitInvalid, err: err}
	}
	return b, nil
}

func runProject(ctx context.Context, stdout, stderr io.Writer, dir, gatewayAddr, dataDir string) error {
	p, err := loadProject(stderr, dir)
	if err != nil {
		return err
	}
	b, err := buildProject(ctx, stderr, p)
	if err != nil {
		return err
	}
	id, key, err := p.StackKey()
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if dataDir == "" {
		dataDir = filepath.Join(p.StateDir(), "data")
	}
	local, err := region.Start(ctx, region.Options{
		DataDir:     dataDir,
		Mudb:        &region.MudbOptions{},
		Storage:     &region.StorageOptions{},
		UploaderKey: key,
		Runtime:     &region.RuntimeOptions{},
		Gateway:     &region.GatewayOptions{HTTPAddr: gatewayAddr},
	})
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("start local region: %w", err)}
	}
	defer local.Close()
	sub := local.Runtime().Server().Logs().Subscribe(logs.Filter{Stack: id})
	defer sub.Close()
	start := time.Now()
	if err := local.Deploy(ctx, id, uint64(start.Unix()), b.Manifest, b.Binaries); err != nil {
		return &exitError{code: ExitInvalid, err: err}
	}
	fmt.Fprintf(stderr, "stack %s %q deployed in %s\n", id, b.Manifest.Name, time.Since(start).Round(time.Millisecond))
	printed := map[string]bool{}
	for _, e := range local.URLs(id, b.Manifest) {
		if !printed[e.URL] { // one line per URL, whatever its methods
			printed[e.URL] = true
			fmt.Fprintf(stdout, "%s\n", e.URL)
		}
		fmt.Fprintf(stderr, "  %s %s → %s\n", e.Method, e.URL, e.Function)
	}
	if st := local.Storage(); st != nil {
		fmt.Fprintf(stdout, "%s\n", st.URL())
		fmt.Fprintf(stderr, "  storage: public boxes at %s/%s/{box}/{key}, binary uploads at %s/binaries\n", st.URL(), id, st.URL())
	}
	fmt.Fprintln(stderr, "serving; press Ctrl-C to stop")
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "stopping")
			local.Close()
			printUsage(stderr, local.Usage, id)
			return nil
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if e.Dropped > 0 {
				fmt.Fprintf(stderr, "(%d log lines dropped)\n", e.Dropped)
			}
			fn := e.Function
			if fn == "" {
				fn = "runtime"
			}
			fmt.Fprintf(stdout, "%s %-5s %s: %s\n", e.Time.Format("15:04:05.000"), strings.ToUpper(e.Level.String()), fn, e.Body)
		}
	}
}

// printUsage prints what the stack used during the run, in billing units.
func printUsage(w io.Writer, m *usage.Memory, id ids.StackID) {
	fmt.Fprintf(w, "usage: %d requests, %d traffic bytes, %d megabyte-instructions, %d db reads, %d db writes, %d storage bytes moved\n",
		m.Total(id, usage.GatewayRequests), m.Total(id, usage.GatewayTrafficBytes), m.Total(id, usage.FunctionMBInstructions),
		m.Total(id, usage.DBReads), m.Total(id, usage.DBWrites), m.Total(id, usage.StorageTrafficBytes))
}
