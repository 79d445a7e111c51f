// Package sdksrc carries the sources of the Go SDK (sdk/go) and of the
// function protocol (libs/fnproto) inside the mu binary, so that a project
// made by `mu init` builds with nothing but mu and Go: no checkout of the mu
// repository and no module proxy that knows these modules.
//
// The sources are embedded as sdk.zip, a copy of the two module directories
// (go.mod and the non-test Go files) generated from the checkout with
//
//	go generate ./internal/sdksrc
//
// TestEmbedded_MatchesSources fails when the copy differs from the sources.
// Extract writes them once per content version to
// <user cache dir>/mu/sdk/<version>/, laid out as in the repository, and a
// project's go.mod replaces both modules with those directories.
package sdksrc

//go:generate go test -run ^TestEmbedded_MatchesSources$ -update .

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Module paths of the SDK and of the protocol codec it depends on.
const (
	SDKModule     = "github.com/muprotocol/mu/sdk/go"
	FnprotoModule = "github.com/muprotocol/mu/libs/fnproto"
)

// modules are the embedded modules with their directories, relative to the
// repository root and equally to an extracted tree.
var modules = []struct{ path, dir string }{
	{SDKModule, "sdk/go"},
	{FnprotoModule, "libs/fnproto"},
}

//go:embed sdk.zip
var archive []byte

// versionLen is the number of hex digits of a version.
const versionLen = 16

// file is one embedded file; name is slash-separated, relative to the
// repository root.
type file struct {
	name string
	data []byte
}

// embedded decodes the archive once. An empty or broken sdk.zip still
// compiles, so that `go generate` can always replace it.
var embedded = sync.OnceValues(func() ([]file, error) {
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return nil, fmt.Errorf("embedded SDK: %w (regenerate it: go generate ./internal/sdksrc)", err)
	}
	files := make([]file, 0, len(zr.File))
	for _, zf := range zr.File {
		if !fs.ValidPath(zf.Name) || strings.HasSuffix(zf.Name, "/") {
			return nil, fmt.Errorf("embedded SDK: bad entry %q", zf.Name)
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("embedded SDK: %s: %w", zf.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("embedded SDK: %s: %w", zf.Name, err)
		}
		files = append(files, file{name: zf.Name, data: data})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
})

// contentVersion hashes the names and contents of files, which are sorted
// by name.
func contentVersion(files []file) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:versionLen]
}

// Version identifies the embedded sources by their content: two mu binaries
// that carry the same SDK share one extracted copy.
func Version() (string, error) {
	files, err := embedded()
	if err != nil {
		return "", err
	}
	return contentVersion(files), nil
}

// Dirs maps each of the two module paths to a local directory that holds it.
type Dirs map[string]string

// CacheRoot is where extracted SDKs are kept: <user cache dir>/mu/sdk.
func CacheRoot() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the mu SDK: %w", err)
	}
	return filepath.Join(d, "mu", "sdk"), nil
}

// Extract makes sure the embedded SDK is in CacheRoot()/<version>, exactly
// (a missing, changed or extra file makes it write the tree again), and
// returns its module directories. Files are written read-only so that an
// editor's go-to-definition does not invite edits. Concurrent callers are
// safe: a tree is built beside its final place and renamed into it.
func Extract() (Dirs, error) {
	files, err := embedded()
	if err != nil {
		return nil, err
	}
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, contentVersion(files))
	if matches(dir, files) == nil {
		return dirsIn(dir), nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("mu SDK: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("mu SDK: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		path := filepath.Join(tmp, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("mu SDK: %w", err)
		}
		if err := os.WriteFile(path, f.data, 0o444); err != nil {
			return nil, fmt.Errorf("mu SDK: %w", err)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		// A damaged tree: move it aside first, since rename does not
		// replace a directory that has entries.
		old := tmp + "-old"
		if err := os.Rename(dir, old); err != nil && matches(dir, files) != nil {
			return nil, fmt.Errorf("mu SDK: replace %s: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another mu may have put the same tree in place meanwhile.
		if matches(dir, files) != nil {
			return nil, fmt.Errorf("mu SDK: %w", err)
		}
	}
	return dirsIn(dir), nil
}

func dirsIn(root string) Dirs {
	d := Dirs{}
	for _, m := range modules {
		d[m.path] = filepath.Join(root, filepath.FromSlash(m.dir))
	}
	return d
}

// matches reports, as an error, the first difference between the tree at
// dir and files.
func matches(dir string, files []file) error {
	want := make(map[string][]byte, len(files))
	for _, f := range files {
		want[f.name] = f.data
	}
	seen := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		data, ok := want[name]
		if !ok {
			return fmt.Errorf("unexpected file %s", name)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("%s differs", name)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(files) {
		err = fmt.Errorf("%d of %d files present", seen, len(files))
	}
	return err
}

// FromCheckout returns the module directories of a mu checkout, given its
// sdk/go directory: for developing the SDK itself.
func FromCheckout(sdkDir string) (Dirs, error) {
	abs, err := filepath.Abs(sdkDir)
	if err != nil {
		return nil, err
	}
	d := Dirs{SDKModule: abs, FnprotoModule: filepath.Join(abs, "..", "..", "libs", "fnproto")}
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join(d[m.path], "go.mod")); err != nil {
			return nil, fmt.Errorf("%s is not the sdk/go directory of a mu checkout: no %s at %s", sdkDir, m.path, d[m.path])
		}
	}
	return d, nil
}

// goMod is the part of `go mod edit -json` that Sync reads.
type goMod struct {
	Require []struct{ Path string }
	Replace []struct {
		Old struct{ Path string }
		New struct{ Path, Version string }
	}
}

// Replace points the go.mod of the module containing dir at d: one replace
// directive per module (go mod edit, which quotes paths as needed).
func Replace(ctx context.Context, dir string, d Dirs) error {
	args := []string{"mod", "edit"}
	for _, m := range modules {
		args = append(args, "-replace="+m.path+"="+d[m.path])
	}
	_, err := goModCommand(ctx, dir, args...)
	return err
}

// Sync prepares the module containing dir for a build: when it requires the
// SDK, each of the two modules whose replace directive is missing or points
// into a mu SDK cache (any user's, any version) is pointed at this binary's
// SDK, which is extracted if it is not in the cache. Replace directives
// that point anywhere else (a checkout, see FromCheckout) are left alone.
// It returns the modules it re-pointed. Without a go.mod there is nothing
// to do; the build itself reports that.
func Sync(ctx context.Context, dir string) ([]string, error) {
	if !inModule(dir) {
		return nil, nil
	}
	out, err := goModCommand(ctx, dir, "mod", "edit", "-json")
	if err != nil {
		return nil, err
	}
	var mod goMod
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("go mod edit -json: %w", err)
	}
	if !slices.ContainsFunc(mod.Require, func(r struct{ Path string }) bool { return r.Path == SDKModule }) {
		return nil, nil
	}
	replaced := map[string]string{} // module path → local directory, "" for a module replacement
	for _, r := range mod.Replace {
		replaced[r.Old.Path] = r.New.Path
		if r.New.Version != "" {
			replaced[r.Old.Path] = ""
		}
	}
	var stale []string
	var d Dirs
	for _, m := range modules {
		p, ok := replaced[m.path]
		if ok && !inSDKCache(p, m.dir) {
			continue // replaced with something of the developer's own
		}
		if d == nil {
			if d, err = Extract(); err != nil {
				return nil, err
			}
		}
		if p != d[m.path] {
			stale = append(stale, m.path)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	args := []string{"mod", "edit"}
	for _, mp := range stale {
		args = append(args, "-replace="+mp+"="+d[mp])
	}
	if _, err := goModCommand(ctx, dir, args...); err != nil {
		return nil, err
	}
	return stale, nil
}

// inSDKCache reports whether dir is the directory of module directory
// modDir in an extracted SDK: an absolute .../mu/sdk/<version>/<modDir>.
func inSDKCache(dir, modDir string) bool {
	if !filepath.IsAbs(dir) {
		return false
	}
	rest, ok := strings.CutSuffix(filepath.ToSlash(filepath.Clean(dir)), "/"+modDir)
	if !ok {
		return false
	}
	parent, version := path.Split(rest)
	return len(version) == versionLen && strings.Trim(version, "0123456789abcdef") == "" &&
		strings.HasSuffix(parent, "/mu/sdk/")
}

// inModule reports whether dir or one of its parents has a go.mod.
func inModule(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

// goModCommand runs the go command in dir on the module's own go.mod
// (GOWORK=off) and returns its standard output.
func goModCommand(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s in %s: %v: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
