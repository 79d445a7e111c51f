package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/cli/internal/sdksrc"
)

// muBinary is the mu command built once for all the tests of this package.
var muBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if muBinary.dir != "" {
		os.RemoveAll(muBinary.dir)
	}
	os.Exit(code)
}

// buildMu builds mu into a temporary directory, once per test run. It is
// built with -trimpath, so the binary does not even know where the checkout
// it was built from is.
func buildMu(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	muBinary.once.Do(func() {
		start := time.Now()
		muBinary.dir, muBinary.err = os.MkdirTemp("", "mu-test-bin-")
		if muBinary.err != nil {
			return
		}
		path := filepath.Join(muBinary.dir, "mu")
		if out, err := exec.Command(gobin, "build", "-trimpath", "-o", path, ".").CombinedOutput(); err != nil {
			muBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		muBinary.path = path
		t.Logf("built mu in %s", time.Since(start).Round(time.Millisecond))
	})
	if muBinary.err != nil {
		t.Fatal(muBinary.err)
	}
	return muBinary.path
}

// TestBinary builds mu and runs it as a process, checking what only a real
// process shows: the exit codes and which stream gets what.
func TestBinary(t *testing.T) {
	mu := buildMu(t)
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.yaml")
	invalid := filepath.Join(dir, "invalid.yaml")
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(valid, `name: GreetingApp
version: "0.1"
services:
  - {type: Function, name: greeter_function, binary: 8MdU7CQGkZaZ, runtime: wasi1.0, memory_limit: 256MiB}
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}: {get: greeter_function.greet_user}
`)
	write(invalid, `name: GreetingApp
version: "0.1"
services:
  - {type: Function, name: greeter_function, binary: 8MdU7CQGkZaZ, runtime: wasi1.0, memory_limit: 256MiB}
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}: {get: greeter.greet_user}
`)

	tests := []struct {
		args                   []string
		wantCode               int
		wantStdout, wantStderr string
	}{
		{[]string{"validate", valid}, 0,
			valid + `: valid stack "GreetingApp" 0.1: 1 function, 0 tables, 0 storages, 1 gateway (1 endpoint)` + "\n", ""},
		{[]string{"validate", invalid}, 1, "",
			invalid + `:8: services[1] (Gateway "greeting"): endpoints["/greet/{name}"].get: function "greeter" is not declared` + "\n"},
		{[]string{"validate", filepath.Join(dir, "missing.yaml")}, 2, "",
			"mu: cannot read manifest: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory\n"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(mu, tc.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.wantCode || stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
			t.Errorf("mu %s: exit %d, want %d\nstdout: %q\nwant:   %q\nstderr: %q\nwant:   %q",
				strings.Join(tc.args, " "), code, tc.wantCode, stdout.String(), tc.wantStdout, stderr.String(), tc.wantStderr)
		}
	}
}

// TestBinary_InitRunWithoutCheckout is a developer who has only the mu
// binary and Go: mu init, mu run, a request, Ctrl-C. mu is copied out of
// the build directory and runs from a directory outside the checkout with a
// new HOME and cache directory, no workspace (GOWORK=off) and no GOFLAGS.
// The SDK cache is cleared between init and run, so run has to write it
// again. The Go build and module caches stay the real ones, so nothing is
// compiled or downloaded again that need not be.
func TestBinary_InitRunWithoutCheckout(t *testing.T) {
	built := buildMu(t)
	tmp := t.TempDir()
	mu := filepath.Join(tmp, "bin", "mu")
	copyFile(t, built, mu)
	home, cache, work := filepath.Join(tmp, "home"), filepath.Join(tmp, "cache"), filepath.Join(tmp, "work")
	for _, d := range []string{home, cache, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := standaloneEnv(t, home, cache)

	start := time.Now()
	initCmd := exec.Command(mu, "init", "myapp")
	initCmd.Dir, initCmd.Env = work, env
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("mu init: %v\n%s", err, out)
	}
	t.Logf("mu init: %s", time.Since(start).Round(time.Millisecond))
	goMod, err := os.ReadFile(filepath.Join(work, "myapp", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("..")
	sdkCache := filepath.Join(cache, "mu", "sdk")
	if !strings.Contains(string(goMod), sdkCache) || strings.Contains(string(goMod), repo) {
		t.Fatalf("go.mod should point into %s, not at %s:\n%s", sdkCache, repo, goMod)
	}
	if err := os.RemoveAll(sdkCache); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	run := exec.Command(mu, "run", "--gateway-addr", "127.0.0.1:0", "--chain-indexer-addr", "127.0.0.1:0", "--billing-addr", "127.0.0.1:0", "myapp")
	run.Dir, run.Env = work, env
	var stderr lockedBuffer
	run.Stderr = &stderr
	stdout, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			run.Process.Kill()
			<-exited
		}
	}()
	urls := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "http://") {
				urls <- l
				break
			}
		}
		io.Copy(io.Discard, stdout) // keep the log stream flowing
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-exited:
		stopped = true
		t.Fatalf("mu run exited (%v) before printing a URL\n%s", err, stderr.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("mu run printed no URL in 5 minutes\n%s", stderr.String())
	}
	t.Logf("mu run: serving after %s", time.Since(start).Round(time.Millisecond))
	if !strings.HasSuffix(url, "/api/hello/{name}") {
		t.Fatalf("mu run printed %q\n%s", url, stderr.String())
	}
	version, err := sdksrc.Version()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sdkCache, version, "sdk", "go", "go.mod")); err != nil {
		t.Fatalf("mu run did not write the SDK to the cache again: %v", err)
	}

	resp, err := http.Get(strings.Replace(url, "{name}", "dev", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello, dev!" {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
	}

	if err := run.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("mu run after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("mu run did not stop on SIGINT\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "): 1 requests, ") {
		t.Fatalf("no usage summary:\n%s", stderr.String())
	}
}

// standaloneEnv is the environment of a machine with Go and nothing else
// set up: the given HOME and cache directory, no workspace, no GOFLAGS.
// Only the locations and sources of the go command's caches and modules
// are carried over from this one.
func standaloneEnv(t *testing.T, home, cache string) []string {
	t.Helper()
	keep := []string{"GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOTOOLCHAIN"}
	out, err := exec.Command("go", append([]string{"env"}, keep...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CACHE_HOME=" + cache,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"GOWORK=off",
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		env = append(env, "TMPDIR="+d)
	}
	for i, v := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if i < len(keep) && v != "" {
			env = append(env, keep[i]+"="+v)
		}
	}
	return env
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer that a process may write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
