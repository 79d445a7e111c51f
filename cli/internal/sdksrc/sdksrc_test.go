package sdksrc

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite sdk.zip from the sources in the checkout")

// repoRoot is the checkout this package is in.
const repoRoot = "../../.."

// TestEmbedded_MatchesSources keeps sdk.zip equal to sdk/go and
// libs/fnproto: file by file, so that a stale copy fails here, not in a
// user's build. With -update (what go generate runs) it rewrites sdk.zip.
func TestEmbedded_MatchesSources(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot, "sdk", "go", "go.mod")); err != nil {
		t.Skip("not in a mu checkout:", err)
	}
	want, err := sources(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		b, err := pack(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("sdk.zip", b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote sdk.zip: %d files, %d bytes, version %s", len(want), len(b), contentVersion(want))
		return
	}
	got, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	gotByName := map[string][]byte{}
	for _, f := range got {
		gotByName[f.name] = f.data
	}
	var stale []string
	for _, f := range want {
		if data, ok := gotByName[f.name]; !ok || !bytes.Equal(data, f.data) {
			stale = append(stale, f.name)
		}
		delete(gotByName, f.name)
	}
	for name := range gotByName {
		stale = append(stale, name+" (removed from the sources)")
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Fatalf("the SDK embedded in mu differs from the sources in %s; run 'go generate ./internal/sdksrc' in cli", quoteList(stale))
	}
}

// TestEmbedded_SDKStandsAlone checks that the embedded modules build with
// nothing else: fnproto requires nothing, the SDK only fnproto (found
// beside it in the tree), and every import is the standard library or one
// of the two.
func TestEmbedded_SDKStandsAlone(t *testing.T) {
	files, err := embedded()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		dir      string
		requires []string
	}{
		{"sdk/go", []string{FnprotoModule}},
		{"libs/fnproto", nil},
	} {
		mod := editJSON(t, filepath.Join(root, tc.dir))
		var req []string
		for _, r := range mod.Require {
			req = append(req, r.Path)
		}
		if !slices.Equal(req, tc.requires) {
			t.Errorf("%s requires %q, want %q", tc.dir, req, tc.requires)
		}
		for _, r := range mod.Replace {
			if target := filepath.Join(root, tc.dir, r.New.Path); r.New.Version != "" || !strings.HasPrefix(target, root) {
				t.Errorf("%s replaces %s with %s, outside the SDK", tc.dir, r.Old.Path, r.New.Path)
			}
		}
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if !strings.HasSuffix(f.name, ".go") {
			continue
		}
		ast, err := parser.ParseFile(fset, f.name, f.data, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.Split(p, "/")[0], ".")
			if !std && !strings.HasPrefix(p, SDKModule) && !strings.HasPrefix(p, FnprotoModule) {
				t.Errorf("%s imports %s, which the SDK does not carry", f.name, p)
			}
		}
	}
}

// tempCache points the user cache directory at a new temporary directory
// for the test, keeping the go command's own caches where they are.
func tempCache(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output()
	if err != nil {
		t.Skip("no go command:", err)
	}
	envs := strings.Fields(string(out))
	t.Setenv("GOCACHE", envs[0])
	t.Setenv("GOMODCACHE", envs[1])
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	root, err := CacheRoot()
	if err != nil || !strings.HasPrefix(root, dir) {
		t.Skipf("the user cache directory does not follow XDG_CACHE_HOME here (%s, %v)", root, err)
	}
	return root
}

func TestExtract_WritesTheTreeAndRepairsIt(t *testing.T) {
	root := tempCache(t)
	version, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Extract()
	if err != nil {
		t.Fatal(err)
	}
	want := Dirs{
		SDKModule:     filepath.Join(root, version, "sdk", "go"),
		FnprotoModule: filepath.Join(root, version, "libs", "fnproto"),
	}
	if len(d) != 2 || d[SDKModule] != want[SDKModule] || d[FnprotoModule] != want[FnprotoModule] {
		t.Fatalf("Extract = %v, want %v", d, want)
	}
	files, _ := embedded()
	if err := matches(filepath.Join(root, version), files); err != nil {
		t.Fatal(err)
	}
	goMod := filepath.Join(d[SDKModule], "go.mod")
	if st, err := os.Stat(goMod); err != nil || st.Mode().Perm()&0o222 != 0 {
		t.Fatalf("extracted files should be read-only: %v %v", st.Mode(), err)
	}

	// Intact: nothing is written again.
	before, _ := os.Stat(goMod)
	if _, err := Extract(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(goMod); !os.SameFile(before, after) {
		t.Fatal("an intact tree was written again")
	}

	// Damaged: a changed file, a missing one and an extra one.
	app := filepath.Join(d[SDKModule], "app.go")
	if err := os.Chmod(app, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app, []byte("package mu\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d[FnprotoModule], "codec.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d[SDKModule], "extra.go"), []byte("package mu\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(); err != nil {
		t.Fatal(err)
	}
	if err := matches(filepath.Join(root, version), files); err != nil {
		t.Fatalf("after repair: %v", err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != version {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("cache root holds %q, want only %s", names, version)
	}

	// Cleared: extracted again.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(); err != nil {
		t.Fatal(err)
	}
	if err := matches(filepath.Join(root, version), files); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}

func editJSON(t *testing.T, dir string) goMod {
	t.Helper()
	out, err := goModCommand(context.Background(), dir, "mod", "edit", "-json")
	if err != nil {
		t.Fatal(err)
	}
	var mod goMod
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	return mod
}

func TestSync_PointsMissingAndCachedReplacesAtThisSDK(t *testing.T) {
	tempCache(t)
	version, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	// Another user's cache, and another version in ours.
	root, _ := CacheRoot()
	foreign := "/home/someone/.cache/mu/sdk/0123456789abcdef"
	older := filepath.Join(root, "fedcba9876543210")
	checkout := "/src/mu"
	const head = "module app\n\ngo 1.26\n\nrequire github.com/muprotocol/mu/sdk/go v0.0.0\n"
	tests := []struct {
		name      string
		goMod     string   // "" for no go.mod at all
		want      []string // re-pointed modules
		unchanged bool
	}{
		{"no replace", head, []string{SDKModule, FnprotoModule}, false},
		{"another user's cache", head + "replace (\n\tgithub.com/muprotocol/mu/sdk/go => " + foreign + "/sdk/go\n\tgithub.com/muprotocol/mu/libs/fnproto => " + foreign + "/libs/fnproto\n)\n",
			[]string{SDKModule, FnprotoModule}, false},
		{"an older SDK", head + "replace github.com/muprotocol/mu/sdk/go => " + older + "/sdk/go\n", []string{SDKModule, FnprotoModule}, false},
		{"a checkout", head + "replace (\n\tgithub.com/muprotocol/mu/sdk/go => " + checkout + "/sdk/go\n\tgithub.com/muprotocol/mu/libs/fnproto => " + checkout + "/libs/fnproto\n)\n", nil, true},
		{"no SDK", "module app\n\ngo 1.26\n", nil, true},
		{"no go.mod", "", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.goMod != "" {
				if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(tc.goMod), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Sync(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Sync = %q, want %q", got, tc.want)
			}
			if tc.goMod == "" {
				return
			}
			after, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
			if tc.unchanged {
				if string(after) != tc.goMod {
					t.Fatalf("go.mod changed:\n%s", after)
				}
				return
			}
			replaced := map[string]string{}
			for _, r := range editJSON(t, dir).Replace {
				replaced[r.Old.Path] = r.New.Path
			}
			for _, m := range modules {
				if want := filepath.Join(root, version, filepath.FromSlash(m.dir)); replaced[m.path] != want {
					t.Errorf("%s => %s, want %s", m.path, replaced[m.path], want)
				}
			}
			if again, err := Sync(context.Background(), dir); err != nil || again != nil {
				t.Errorf("second Sync = %q, %v; want nothing to do", again, err)
			}
		})
	}
}

func TestInSDKCache(t *testing.T) {
	tests := []struct {
		dir, modDir string
		want        bool
	}{
		{"/home/a/.cache/mu/sdk/0123456789abcdef/sdk/go", "sdk/go", true},
		{"/home/a/.cache/mu/sdk/0123456789abcdef/libs/fnproto", "libs/fnproto", true},
		{"/home/a/.cache/mu/sdk/0123456789abcdef/libs/fnproto", "sdk/go", false},
		{"/home/a/.cache/mu/sdk/0123456789ABCDEF/sdk/go", "sdk/go", false},
		{"/home/a/.cache/mu/sdk/0123/sdk/go", "sdk/go", false},
		{"/home/a/.cache/other/sdk/0123456789abcdef/sdk/go", "sdk/go", false},
		{"/src/mu/sdk/go", "sdk/go", false},
		{"../../sdk/go", "sdk/go", false},
		{"mu/sdk/0123456789abcdef/sdk/go", "sdk/go", false},
	}
	for _, tc := range tests {
		if got := inSDKCache(filepath.FromSlash(tc.dir), tc.modDir); got != tc.want {
			t.Errorf("inSDKCache(%q, %q) = %t, want %t", tc.dir, tc.modDir, got, tc.want)
		}
	}
}

// quoteList formats names for an error message.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// sources reads the files that make up the SDK from the checkout at repo:
// go.mod, go.sum and the non-test Go files of each module directory and its
// subdirectories, except testdata, hidden and _ directories and nested
// modules.
func sources(repo string) ([]file, error) {
	var files []file
	for _, m := range modules {
		base := filepath.Join(repo, filepath.FromSlash(m.dir))
		err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if path == base {
					return nil
				}
				if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
				return nil
			}
			if name != "go.mod" && name != "go.sum" && (!strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go")) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(repo, path)
			if err != nil {
				return err
			}
			files = append(files, file{name: filepath.ToSlash(rel), data: data})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("SDK sources: %w", err)
		}
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// zipTime is the modification time of every entry, the earliest a zip can
// record.
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// pack writes files as a zip archive with fixed times, so that the same
// sources give the same archive.
func pack(files []file) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: zipTime})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
