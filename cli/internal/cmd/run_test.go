package cmd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInitBuildRun_NewProjectServesItsEndpoint follows a developer's first
// minutes: mu init, mu build, mu run, a request, Ctrl-C.
func TestInitBuildRun_NewProjectServesItsEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "greeter")
	sdk, _ := filepath.Abs("../../../sdk/go")
	var out, errb bytes.Buffer
	if code := Run(ctx, []string{"init", dir, "--sdk-dir", sdk}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("init: exit %d\n%s", code, errb.String())
	}
	for _, f := range []string{"mu.yaml", "main.go", "go.mod", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("init did not write %s: %v", f, err)
		}
	}
	goMod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	fnproto, _ := filepath.Abs("../../../libs/fnproto")
	if !strings.Contains(string(goMod), "github.com/muprotocol/mu/sdk/go => "+sdk) || !strings.Contains(string(goMod), "github.com/muprotocol/mu/libs/fnproto => "+fnproto) {
		t.Fatalf("go.mod should replace the SDK with the checkout's:\n%s", goMod)
	}
	if code := Run(ctx, []string{"init", dir, "--sdk-dir", sdk}, nil, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "already exists") {
		t.Fatalf("second init: exit %d\n%s", code, errb.String())
	}

	out.Reset()
	errb.Reset()
	if code := Run(ctx, []string{"build", dir}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("build: exit %d\n%s", code, errb.String())
	}
	fields := strings.Fields(out.String())
	if len(fields) < 5 || fields[0] != "greeter" || !strings.HasSuffix(fields[4], "greeter.wasm") {
		t.Fatalf("build output %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, ".mu", "build", "mu.yaml")); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(runCtx, []string{"run", "--gateway-addr", "127.0.0.1:0", dir}, nil, pw, &stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "http://") {
			url = l
			break
		}
	}
	if !strings.HasSuffix(url, "/api/hello/{name}") {
		t.Fatalf("run printed %q\n%s", url, stderr.String())
	}
	go io.Copy(io.Discard, pr) // keep the log stream flowing
	resp, err := http.Get(strings.Replace(url, "{name}", "dev", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello, dev!" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("run exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if !strings.Contains(stderr.String(), "usage: 1 requests") {
		t.Fatalf("no usage summary:\n%s", stderr.String())
	}
}

func TestRun_InvalidManifestNamesTheField(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mu.yaml"), []byte("name: x\nversion: \"1\"\nservices:\n  - type: Function\n    name: f\n    binary: b\n    runtime: wasi9\n    memory_limit: 1MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"run", dir}, nil, &out, &errb)
	if code != ExitInvalid || !strings.Contains(errb.String(), "runtime") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
