package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds mu and runs it as a process, checking what only a real
// process shows: the exit codes and which stream gets what.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	dir := t.TempDir()
	mu := filepath.Join(dir, "mu")
	build := exec.Command(gobin, "build", "-o", mu, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
