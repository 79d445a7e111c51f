// Package project is a mu project on disk: a directory with mu.yaml and the
// Go sources of its functions. A Function service named N is built from
// DIR/N when that directory holds Go files, otherwise from DIR itself.
// Build outputs and the local stack key live in DIR/.mu/.
package project

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
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

// StackKey returns the project's local stack key, creating it on first use
// (DIR/.mu/stack.key, hex seed, mode 0600), so the stack keeps its id — and
// its URLs — from one `mu run` to the next.
func (p *Project) StackKey() (ids.StackID, ed25519.PrivateKey, error) {
	path := filepath.Join(p.StateDir(), "stack.key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		seed, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(seed) != ed25519.SeedSize {
			return ids.StackID{}, nil, fmt.Errorf("%s: not a hex ed25519 seed; delete it to make a new stack id", path)
		}
		priv := ed25519.NewKeyFromSeed(seed)
		var id ids.StackID
		copy(id[:], priv.Public().(ed25519.PublicKey))
		return id, priv, nil
	case errors.Is(err, fs.ErrNotExist):
		id, priv, err := ids.NewStackID()
		if err != nil {
			return ids.StackID{}, nil, err
		}
		if err := os.MkdirAll(p.StateDir(), 0o755); err != nil {
			return ids.StackID{}, nil, err
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
			return ids.StackID{}, nil, err
		}
		return id, priv, nil
	default:
		return ids.StackID{}, nil, err
	}
}
