package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validManifest = `name: GreetingApp
version: "0.1"
services:
  - type: Function
    name: greeter_function
    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
    runtime: wasi1.0
    memory_limit: 256MiB
    env: {}
  - type: KeyValueTable
    name: todos
  - type: Storage
    name: attachments
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter_function.greet_user
`

const invalidManifest = `name: GreetingApp
version: "0.1"
services:
  - type: Function
    name: greeter_function
    binary: 8MdU7CQGkZaZPjPgXDwMoIkV
    runtime: wasi1.0
    memory_limit: 8GiB
  - type: KeyValueTable
    name: todos
  - type: Gateway
    name: greeting
    endpoints:
      /greet/{name}:
        - method: get
          route_to: greeter.greet_user
      /greet/{id}: {get: greeter_function.greet_user}
`

// run runs mu in-process and returns its exit code and output.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	valid := writeFile(t, dir, "valid.yaml", validManifest)
	invalid := writeFile(t, dir, "invalid.yaml", invalidManifest)
	syntax := writeFile(t, dir, "syntax.yaml", "name: a\nversion: \"1\"\nservices:\n  - type: Function\n    name: f: g\n")
	empty := writeFile(t, dir, "empty.yaml", "")
	big := writeFile(t, dir, "big.yaml", "name: a\n#"+strings.Repeat("x", 1<<20))
	sub := filepath.Join(dir, "project")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, sub, "mu.yaml", validManifest)
	missing := filepath.Join(dir, "nope.yaml")

	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "valid",
			args:       []string{"validate", valid},
			wantCode:   ExitOK,
			wantStdout: valid + `: valid stack "GreetingApp" 0.1: 1 function, 1 table, 1 storage, 1 gateway (1 endpoint)` + "\n",
		},
		{
			name:     "invalid: every problem on its own line with file and line",
			args:     []string{"validate", invalid},
			wantCode: ExitInvalid,
			wantStderr: invalid + `:8: services[0] (Function "greeter_function"): memory_limit: 8GiB is above the maximum of 4GiB` + "\n" +
				invalid + `:16: services[2] (Gateway "greeting"): endpoints["/greet/{name}"][0].route_to: function "greeter" is not declared` + "\n" +
				invalid + `:17: services[2] (Gateway "greeting"): endpoints["/greet/{id}"].get: GET /greet/{id} conflicts with GET /greet/{name} at endpoints["/greet/{name}"][0]` + "\n",
		},
		{
			name:       "malformed YAML",
			args:       []string{"validate", syntax},
			wantCode:   ExitInvalid,
			wantStderr: syntax + ":5: invalid YAML: mapping values are not allowed in this context\n",
		},
		{
			name:       "empty file",
			args:       []string{"validate", empty},
			wantCode:   ExitInvalid,
			wantStderr: empty + ":1: the manifest is empty\n",
		},
		{
			name:       "too large",
			args:       []string{"validate", big},
			wantCode:   ExitInvalid,
			wantStderr: big + ": the manifest is larger than the limit of 1048576 bytes\n",
		},
		{
			name:       "directory means its mu.yaml",
			args:       []string{"validate", sub},
			wantCode:   ExitOK,
			wantStdout: filepath.Join(sub, "mu.yaml") + `: valid stack "GreetingApp" 0.1: 1 function, 1 table, 1 storage, 1 gateway (1 endpoint)` + "\n",
		},
		{
			name:       "standard input",
			stdin:      "name: Empty\nversion: v2\n",
			args:       []string{"validate", "-"},
			wantCode:   ExitOK,
			wantStdout: `<stdin>: valid stack "Empty" v2: 0 functions, 0 tables, 0 storages, 0 gateways` + "\n",
		},
		{
			name:       "missing file",
			args:       []string{"validate", missing},
			wantCode:   ExitUsage,
			wantStderr: "mu: cannot read manifest: open " + missing + ": no such file or directory\n",
		},
		{
			name:       "too many arguments",
			args:       []string{"validate", valid, invalid},
			wantCode:   ExitUsage,
			wantStderr: "mu: accepts at most 1 arg(s), received 2\nRun 'mu --help' for usage.\n",
		},
		{
			name:       "unknown flag",
			args:       []string{"validate", "--strict", valid},
			wantCode:   ExitUsage,
			wantStderr: "mu: unknown flag: --strict\nRun 'mu --help' for usage.\n",
		},
		{
			name:       "unknown command",
			args:       []string{"deploy-everything"},
			wantCode:   ExitUsage,
			wantStderr: "mu: unknown command \"deploy-everything\" for \"mu\"\nRun 'mu --help' for usage.\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.stdin, tc.args...)
			if code != tc.wantCode || stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("mu %s:\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					strings.Join(tc.args, " "), code, tc.wantCode, stdout, tc.wantStdout, stderr, tc.wantStderr)
			}
		})
	}
}

func TestValidate_DefaultsToMuYAMLInTheWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, _, stderr := run(t, "", "validate")
	if code != ExitUsage || stderr != "mu: cannot read manifest: open mu.yaml: no such file or directory\n" {
		t.Errorf("without mu.yaml: exit %d, stderr %q", code, stderr)
	}
	writeFile(t, dir, "mu.yaml", validManifest)
	code, stdout, _ := run(t, "", "validate")
	want := `mu.yaml: valid stack "GreetingApp" 0.1: 1 function, 1 table, 1 storage, 1 gateway (1 endpoint)` + "\n"
	if code != ExitOK || stdout != want {
		t.Errorf("exit %d, stdout %q; want 0, %q", code, stdout, want)
	}
}

func TestRoot_HelpListsValidate(t *testing.T) {
	code, stdout, stderr := run(t, "", "--help")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Usage:\n  mu [command]", "validate    Check a stack manifest"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help does not contain %q:\n%s", want, stdout)
		}
	}
}

func TestSummary_Plurals(t *testing.T) {
	code, stdout, _ := run(t, `name: S
version: "2"
services:
  - {type: Function, name: a, binary: b, runtime: wasi1.0, memory_limit: 1MiB}
  - {type: Function, name: b, binary: b, runtime: wasi1.0, memory_limit: 1MiB}
  - {type: Storage, name: s}
  - {type: Storage, name: t}
  - {type: Gateway, name: g, endpoints: {/: {get: a.x, post: b.y}}}
  - {type: Gateway, name: h}
`, "validate", "-")
	want := `<stdin>: valid stack "S" 2: 2 functions, 0 tables, 2 storages, 2 gateways (2 endpoints)` + "\n"
	if code != ExitOK || stdout != want {
		t.Errorf("exit %d, stdout %q; want %q", code, stdout, want)
	}
}
