package cmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/cli/internal/sdksrc"
	"github.com/muprotocol/mu/libs/project"
)

func newBuildCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "build [DIR]",
		Short: "Build a project's functions to WebAssembly",
		Long: `Build compiles every function of the project in DIR (default .) with
GOOS=wasip1 GOARCH=wasm and writes DIR/.mu/build/<function>.wasm, plus
DIR/.mu/build/mu.yaml: the manifest with each function's binary set to the
content id of its wasm (base58 SHA-256), ready to deploy.

A function named N is built from DIR/N when that directory holds Go files,
otherwise from DIR.

A project made by mu init builds against the Go SDK built into mu: build
writes it to the user cache again if the cache was cleared, and when go.mod
points at another mu's SDK (an older version, or another user's cache) it is
pointed at this one. A go.mod that replaces the SDK with a checkout is left
alone.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			p, err := loadProject(cmd.ErrOrStderr(), dir)
			if err != nil {
				return err
			}
			b, err := buildProject(cmd.Context(), cmd.ErrOrStderr(), p)
			if err != nil {
				return err
			}
			for _, fn := range b.Manifest.Functions {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%d bytes\t%s\n", fn.Name, fn.Binary, len(b.Binaries[fn.Binary]), b.Files[fn.Name])
			}
			return nil
		},
	}
}

// syncSDK makes sure the module of every function of p finds the SDK: see
// sdksrc.Sync.
func syncSDK(ctx context.Context, stderr io.Writer, p *project.Project) error {
	done := map[string]bool{}
	for _, fn := range p.Manifest.Functions {
		dir := p.SourceDir(fn.Name)
		if done[dir] {
			continue
		}
		done[dir] = true
		changed, err := sdksrc.Sync(ctx, dir)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		for _, m := range changed {
			fmt.Fprintf(stderr, "go.mod: %s now points at the SDK built into mu\n", m)
		}
	}
	return nil
}
