package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
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

The SDK is not published to a module proxy yet, so go.mod points at a local
copy of it: --sdk-dir, else $MU_SDK_DIR, else the sdk/go directory of the mu
source tree this command was built from.`,
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
	cmd.Flags().StringVar(&sdkDir, "sdk-dir", "", "local path of the mu Go SDK (sdk/go of the mu repository)")
	cmd.Flags().BoolVar(&noTidy, "no-tidy", false, "do not run 'go mod tidy' after writing go.mod")
	return cmd
}

// findSDK locates sdk/go: the flag, $MU_SDK_DIR, or the source tree of this binary.
func findSDK(flag string) (string, error) {
	candidates := []string{flag, os.Getenv("MU_SDK_DIR")}
	if _, file, _, ok := goruntime.Caller(0); ok && filepath.IsAbs(file) {
		// file is <repo>/cli/internal/cmd/init.go when built from source.
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", "..", "sdk", "go"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err == nil {
			return abs, nil
		}
		if c == flag {
			return "", fmt.Errorf("--sdk-dir %s: no go.mod there", c)
		}
	}
	return "", errors.New("cannot find the mu Go SDK: pass --sdk-dir (the sdk/go directory of the mu repository) or set MU_SDK_DIR")
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
	"go.mod": `module {{.Name}}

go 1.26

require github.com/muprotocol/mu/sdk/go v0.0.0

replace (
	github.com/muprotocol/mu/sdk/go => {{.SDK}}
	github.com/muprotocol/mu/libs => {{.Libs}}
	github.com/muprotocol/mu/proto => {{.Proto}}
)
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
	sdk, err := findSDK(sdkFlag)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	repo := filepath.Dir(filepath.Dir(sdk))
	data := map[string]string{
		"Name":     name,
		"Function": strings.ReplaceAll(name, "-", "_"),
		"SDK":      sdk,
		"Libs":     filepath.Join(repo, "libs"),
		"Proto":    filepath.Join(repo, "proto"),
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
