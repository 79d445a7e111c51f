package gobuild

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeModule(t *testing.T, dir, body string) {
	t.Helper()
	for name, content := range map[string]string{
		"go.mod":  "module example.com/fn\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { println(" + body + ") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCached_RebuildsOnlyWhenSourcesChange(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Go")
	}
	ctx := context.Background()
	src, cache := t.TempDir(), t.TempDir()
	writeModule(t, src, `"one"`)
	p1, err := Cached(ctx, src, cache, Command)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p1)
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s is not wasm", p1)
	}
	st1, _ := os.Stat(p1)
	p2, err := Cached(ctx, src, cache, Command)
	if err != nil || p2 != p1 {
		t.Fatalf("second build: %s %v", p2, err)
	}
	if st2, _ := os.Stat(p2); !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatal("unchanged sources were rebuilt")
	}
	if p4, err := Cached(ctx, src, cache, Reactor); err != nil || p4 == p1 {
		t.Fatalf("reactor build of the same sources must be its own entry: %s %v", p4, err)
	}
	writeModule(t, src, `"two"`)
	p3, err := Cached(ctx, src, cache, Command)
	if err != nil || p3 == p1 {
		t.Fatalf("changed sources: %s %v", p3, err)
	}
}

func TestBuild_ReportsCompilerErrors(t *testing.T) {
	src := t.TempDir()
	writeModule(t, src, `undefinedThing`)
	err := Build(context.Background(), src, filepath.Join(t.TempDir(), "x.wasm"), Command)
	if err == nil || !strings.Contains(err.Error(), "undefinedThing") {
		t.Fatalf("got %v", err)
	}
}
