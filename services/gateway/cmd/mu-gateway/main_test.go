package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/service"
	"github.com/muprotocol/mu/libs/service/servicetest"
)

// run runs the command with args and -plaintext (these tests are about
// other settings).
func run(args ...string) (int, string) {
	var out bytes.Buffer
	code := service.Run(context.Background(), command(), append([]string{"-plaintext"}, args...), &out)
	return code, out.String()
}

func TestRun_RequiresRuntimeAddrOrClusterBindAddr(t *testing.T) {
	code, out := run("-http-addr", "127.0.0.1:0")
	if code != service.ExitUsage || !strings.Contains(out, "runtime_addr") || !strings.Contains(out, "cluster_bind_addr") {
		t.Fatalf("neither: exit %d: %s", code, out)
	}
	code, out = run("-http-addr", "127.0.0.1:0", "-runtime-addr", "127.0.0.1:1", "-cluster-bind-addr", "127.0.0.1:0")
	if code != service.ExitUsage || !strings.Contains(out, "exclude each other") {
		t.Fatalf("both: exit %d: %s", code, out)
	}
	t.Setenv("MU_GATEWAY_CLUSTER_PROBE_INTERVAL", "0s")
	code, out = run("-http-addr", "127.0.0.1:0", "-cluster-bind-addr", "127.0.0.1:0")
	if code != service.ExitUsage || !strings.Contains(out, "cluster_probe_interval") {
		t.Fatalf("bad cluster setting: exit %d: %s", code, out)
	}
}

func TestRun_EnvironmentOverridesDefaultsAndFlagsOverrideEnvironment(t *testing.T) {
	t.Setenv("MU_GATEWAY_MAX_HEADER_BYTES", "0")
	code, out := run("-runtime-addr", "127.0.0.1:1")
	if code != service.ExitUsage || !strings.Contains(out, "max_header_bytes") {
		t.Fatalf("env not applied: %d %s", code, out)
	}
	t.Setenv("MU_GATEWAY_INVOKE_TIMEOUT", "5m") // above write_timeout
	code, out = run("-runtime-addr", "127.0.0.1:1", "-max-header-bytes", "1024")
	if code != service.ExitUsage || strings.Contains(out, "max_header_bytes") || !strings.Contains(out, "invoke_timeout") {
		t.Fatalf("flag did not override env: %d %s", code, out)
	}
}

func TestRun_RejectsBadStackFlag(t *testing.T) {
	for _, spec := range []string{"no-equals", "bad!id=x.yaml", "11111111111111111111111111111111=/does/not/exist.yaml"} {
		code, out := run("-runtime-addr", "127.0.0.1:1", "-http-addr", "127.0.0.1:0", "-stacks", spec)
		if code != service.ExitUsage || !strings.Contains(out, "stacks") {
			t.Errorf("-stacks %s: exit %d: %s", spec, code, out)
		}
	}
}

func TestRun_HelpDocumentsEverySetting(t *testing.T) {
	code, out := run("--help")
	if code != service.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--runtime-addr string", "RuntimeAddr is the gRPC address",
		"--max-request-body-bytes int (default 8212549)", "MaxRequestBodyBytes is the largest request body",
		"--usage-batch-size int (default 1000)", "BatchSize is the most usage records",
		"--admin-addr string (default \"127.0.0.1:12082\")", "AdminAddr is the host:port of the admin HTTP listener",
		"env MU_GATEWAY_NODE_NAME",
		"--invoke-attempts int (default 3)", "InvokeAttempts is how many runtimes",
		"--cluster-bind-addr string", "--cluster-join list", "env MU_GATEWAY_CLUSTER_JOIN",
		"Either it or cluster_bind_addr is",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestBinary_ServesAdminAndStopsOnSIGTERM runs the real binary: its admin
// port serves /metrics, /healthz and /readyz, and SIGTERM exits 0.
func TestBinary_ServesAdminAndStopsOnSIGTERM(t *testing.T) {
	servicetest.CheckBinary(t, ".", []string{"--runtime-addr=127.0.0.1:1", "--http-addr=127.0.0.1:0"}, "mu_gateway_stacks")
}

// TestBinary_ClusteredWithoutRuntimeAddr runs the binary with a member
// list and no runtime_addr.
func TestBinary_ClusteredWithoutRuntimeAddr(t *testing.T) {
	servicetest.CheckBinary(t, ".", []string{"--cluster-bind-addr=127.0.0.1:0", "--cluster-plaintext", "--http-addr=127.0.0.1:0"},
		"mu_gateway_cluster_members", "mu_gateway_owner_changes_total")
}
