// Package gobuild compiles Go function packages to WebAssembly
// (GOOS=wasip1 GOARCH=wasm) with the local Go toolchain, and caches the
// results by the content of every source file that goes into them.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Env is the environment of a function build: the host's, with the target
// set to WASI preview 1 and cgo off.
func Env() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// Mode is the kind of WASI module to build.
type Mode int

const (
	// Reactor builds with -buildmode=c-shared: a module with _initialize and
	// the exports of the mu SDK (mu_init, mu_serve), which the runtime enters
	// once per call. This is how mu functions are built.
	Reactor Mode = iota
	// Command builds a plain WASI command: _start runs main.
	Command
)

func (m Mode) args() []string {
	if m == Reactor {
		return []string{"-buildmode=c-shared"}
	}
	return nil
}

// Build compiles the main package in dir (a directory inside a Go module or
// workspace) into the wasm file out.
func Build(ctx context.Context, dir, out string, mode Mode) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	args := append([]string{"build", "-trimpath"}, mode.args()...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", out, ".")...)
	cmd.Dir = dir
	cmd.Env = Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// SourceHash identifies everything a build of dir depends on: the Go
// version and the contents of the Go files, go.mod, go.sum and go.work of
// every non-standard package in its dependency graph.
func SourceHash(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".")
	cmd.Dir = dir
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("list dependencies of %s: %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	version, err := exec.CommandContext(ctx, "go", "version").Output()
	if err != nil {
		return "", fmt.Errorf("go version: %w", err)
	}
	h := sha256.New()
	h.Write(version)
	dirs := strings.Fields(stdout.String())
	sort.Strings(dirs)
	seen := map[string]bool{}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		for _, up := range []string{d, filepath.Dir(d), filepath.Dir(filepath.Dir(d))} {
			for _, name := range []string{"go.mod", "go.sum", "go.work"} {
				files = append(files, filepath.Join(up, name))
			}
		}
		sort.Strings(files)
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			b, err := os.ReadFile(f)
			if err != nil {
				continue // a go.mod that is not there
			}
			fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Cached builds dir into cacheDir/<hash>.wasm unless an identical build is
// already there, and returns the wasm's path.
func Cached(ctx context.Context, dir, cacheDir string, mode Mode) (string, error) {
	hash, err := SourceHash(ctx, dir)
	if err != nil {
		return "", err
	}
	if mode != Reactor {
		hash = fmt.Sprintf("%x", sha256.Sum256([]byte(hash+"/command")))
	}
	out := filepath.Join(cacheDir, hash[:32]+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := filepath.Join(cacheDir, fmt.Sprintf(".tmp-%s-%d.wasm", hash[:16], os.Getpid()))
	if err := Build(ctx, dir, tmp, mode); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	return out, nil
}

// TestCacheDir is where tests keep built wasm between runs.
func TestCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mu", "test-wasm")
	}
	return filepath.Join(os.TempDir(), "mu-test-wasm")
}
