package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
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
otherwise from DIR.`,
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
