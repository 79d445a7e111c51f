// Package project is a mu project on disk: a directory with mu.yaml and the
// Go sources of its functions. A Function service named N is built from
// DIR/N when that directory holds Go files, otherwise from DIR itself.
// Build outputs and the local keys live in DIR/.mu/.
package project

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/manifest"
)

// ManifestFile is the manifest's file name in a project directory.
const ManifestFile = "mu.yaml"

// Project is a loaded project.
type Project struct {
	Dir      string
	Manifest *manifest.Manifest
}

// Load reads and validates DIR/mu.yaml.
func Load(dir string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(abs, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return &Project{Dir: abs, Manifest: m}, nil
}

// StateDir is DIR/.mu, where builds and keys go.
func (p *Project) StateDir() string { return filepath.Join(p.Dir, ".mu") }

// SourceDir is where function fn's Go main package is.
func (p *Project) SourceDir(fn string) string {
	sub := filepath.Join(p.Dir, fn)
	if files, _ := filepath.Glob(filepath.Join(sub, "*.go")); len(files) > 0 {
		return sub
	}
	return p.Dir
}

// Build is the result of building a project.
type Build struct {
	// Manifest is the project's manifest with each function's binary set to
	// the content id of its wasm.
	Manifest *manifest.Manifest
	// Binaries maps binary ids to wasm bytes.
	Binaries map[string][]byte
	// Files maps function names to the wasm files written under .mu/build.
	Files map[string]string
}

// Build compiles every function to wasm (GOOS=wasip1; unchanged sources are
// not rebuilt, see gobuild.Cached), writes the wasm and
// the manifest with content ids under DIR/.mu/build, and returns them.
// progress, if not nil, is told about each function before it is built.
func (p *Project) Build(ctx context.Context, progress func(fn, dir string)) (*Build, error) {
	out := &Build{Binaries: map[string][]byte{}, Files: map[string]string{}}
	m := *p.Manifest
	m.Functions = append([]manifest.Function(nil), p.Manifest.Functions...)
	buildDir := filepath.Join(p.StateDir(), "build")
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return nil, err
	}
	built := map[string]string{}     // source dir → binary id, so functions sharing a package build once
	builtFile := map[string]string{} // source dir → wasm file
	for i := range m.Functions {
		fn := &m.Functions[i]
		src := p.SourceDir(fn.Name)
		if id, ok := built[src]; ok {
			fn.Binary = id
			out.Files[fn.Name] = builtFile[src]
			continue
		}
		if progress != nil {
			progress(fn.Name, src)
		}
		cached, err := gobuild.Cached(ctx, src, filepath.Join(p.StateDir(), "cache"), gobuild.Reactor)
		if err != nil {
			return nil, fmt.Errorf("function %q: %w", fn.Name, err)
		}
		wasm, err := os.ReadFile(cached)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(buildDir, fn.Name+".wasm")
		if err := os.WriteFile(file, wasm, 0o644); err != nil {
			return nil, err
		}
		id := ids.BinaryID(wasm)
		fn.Binary = id
		built[src] = id
		builtFile[src] = file
		out.Binaries[id] = wasm
		out.Files[fn.Name] = file
	}
	out.Manifest = &m
	yml, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(buildDir, ManifestFile), yml, 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// Keypair returns the project's local key NAME (DIR/.mu/keys/NAME.json,
// Solana's JSON keypair format, mode 0600), creating it on first use. `mu
// run` keeps its dev market's keys there (authority, provider, developer),
// so the stack, whose id the ledger derives from its developer key, keeps
// its id and its URLs from one run to the next.
func (p *Project) Keypair(name string) (*ledger.Keypair, error) {
	return ledger.LoadOrCreateKeypair(filepath.Join(p.StateDir(), "keys", name+".json"))
}
