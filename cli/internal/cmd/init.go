package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/cli/internal/sdksrc"
)

func newInitCommand() *cobra.Command {
	var name, sdkDir string
	var noTidy bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create a new Go function project",
		Long: `Init creates a mu project in DIR (default .): mu.yaml with one function and
one HTTP gateway, main.go with a handler written against the Go SDK, go.mod
and .gitignore. Existing files are never overwritten.

The Go SDK is built into mu: init writes it to the user cache directory
(<cache>/mu/sdk/<version>) and go.mod replaces the SDK's modules with it, so
the project builds with mu and Go alone. mu build and mu run write it again
if the cache was cleared, and point go.mod at their own SDK when it names
another mu's. To build against a checkout of the SDK instead, pass --sdk-dir
(or set $MU_SDK_DIR) to its sdk/go directory.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return initProject(cmd, dir, name, sdkDir, !noTidy)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "stack and module name (default: the directory's name)")
	cmd.Flags().StringVar(&sdkDir, "sdk-dir", "", "build against the Go SDK of a mu checkout (its sdk/go directory) instead of the one built into mu")
	cmd.Flags().BoolVar(&noTidy, "no-tidy", false, "do not run 'go mod tidy' after writing go.mod")
	return cmd
}

// sdkDirs returns where the project's go.mod should find the SDK: the
// checkout named by the flag or $MU_SDK_DIR, else the SDK built into mu,
// extracted to the user cache.
func sdkDirs(flag string) (sdksrc.Dirs, error) {
	if flag == "" {
		flag = os.Getenv("MU_SDK_DIR")
	}
	if flag != "" {
		return sdksrc.FromCheckout(flag)
	}
	return sdksrc.Extract()
}

var projectFiles = map[string]string{
	"mu.yaml": `name: {{.Name}}
version: "0.1"
services:
  - type: Function
    name: {{.Function}}
    binary: {{.Function}}   # replaced by the content id of the wasm at build time
    runtime: wasi1.0
    memory_limit: 64MiB
  - type: Gateway
    name: api
    endpoints:
      /hello/{name}:
        - method: get
          route_to: {{.Function}}.hello
`,
	"main.go": `// Command {{.Function}} is a mu function: build it with 'mu build' and serve it
// locally with 'mu run'.
package main

import (
	mu "github.com/muprotocol/mu/sdk/go"
)

func main() {
	mu.Handle("hello", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		name := req.Param("name")
		ctx.Logger().Info("greeting", "name", name)
		return mu.Text(200, "Hello, "+name+"!"), nil
	})
	mu.Run()
}
`,
	// The replace directives for the two modules are added by
	// sdksrc.Replace, which quotes paths as go.mod needs.
	"go.mod": `module {{.Name}}

go 1.26

require github.com/muprotocol/mu/sdk/go v0.0.0

require github.com/muprotocol/mu/libs/fnproto v0.0.0 // indirect
`,
	".gitignore": `.mu/
`,
}

func initProject(cmd *cobra.Command, dir, name, sdkFlag string, tidy bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	if !validName(name) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("name %q: use 1-64 letters, digits, '_' or '-', starting with a letter (pass --name)", name)}
	}
	sdk, err := sdkDirs(sdkFlag)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	data := map[string]string{
		"Name":     name,
		"Function": strings.ReplaceAll(name, "-", "_"),
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	for _, f := range []string{"mu.yaml", "main.go", "go.mod", ".gitignore"} {
		path := filepath.Join(abs, f)
		if _, err := os.Stat(path); err == nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("%s already exists; init never overwrites files", path)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &exitError{code: ExitUsage, err: err}
		}
	}
	for _, f := range []string{"mu.yaml", "main.go", "go.mod", ".gitignore"} {
		var buf bytes.Buffer
		if err := template.Must(template.New(f).Parse(projectFiles[f])).Execute(&buf, data); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		if err := os.WriteFile(filepath.Join(abs, f), buf.Bytes(), 0o644); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "created %s\n", filepath.Join(dir, f))
	}
	if err := sdksrc.Replace(cmd.Context(), abs, sdk); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if tidy {
		c := exec.CommandContext(cmd.Context(), "go", "mod", "tidy")
		c.Dir = abs
		c.Env = append(os.Environ(), "GOWORK=off")
		if out, err := c.CombinedOutput(); err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("go mod tidy in %s: %v\n%s", dir, err, out)}
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "project %q ready in %s: run 'mu run %s'\n", name, dir, dir)
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !(letter || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}
