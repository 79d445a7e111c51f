package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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

func TestRun_BadSettingsExit2NamingEachField(t *testing.T) {
	code, out := run("--runtime-max-fuel-per-call=0", "--runtime-mudb-addr=x:1", "--chain-indexer-addr=i:1", "--mudb-addr=nope")
	if code != service.ExitUsage {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"runtime_max_fuel_per_call", "runtime_mudb_addr: is set by the executor; set mudb_addr", "region_id: is required", `mudb_addr: "nope"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
}

func TestRun_YAMLSectionsConfigureTheParts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "executor.yaml")
	yml := "node_name: exec-a\nmudb_addr: mudb:1\nruntime:\n  max_fuel_per_call: 0\nmudb:\n  pd_endpoints: [pd:2379]\n"
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := run("--config", file)
	if code != service.ExitUsage {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"runtime_max_fuel_per_call: must be positive", "mudb_pd_endpoints: is set, but mudb_addr mudb:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
}

func TestRun_HelpDocumentsEverySection(t *testing.T) {
	code, out := run("--help")
	if code != service.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--mudb-addr string", "MudbAddr, if set, is host:port of a muDB elsewhere",
		"--cluster-join list", "Join lists members to join through",
		"--cluster-gateway-bind-addr string", "--gateway-http-addr string (default \"127.0.0.1:12080\")",
		"--runtime-max-fuel-per-call int", "--mudb-pd-endpoints list", "--storage-s3-endpoint string",
		"env MU_EXECUTOR_RUNTIME_DATA_DIR",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestBinary_ServesAdminAndStopsOnSIGTERM runs the real binary with every
// part on free ports (the parts' admin listeners off, so the admin address
// the check reads is the executor's): its admin port serves /metrics,
// /healthz and /readyz, and SIGTERM exits 0.
func TestBinary_ServesAdminAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the executor")
	}
	dir := t.TempDir()
	servicetest.CheckBinary(t, ".", []string{
		"--gateway-http-addr=127.0.0.1:0", "--gateway-grpc-addr=127.0.0.1:0", "--gateway-admin-addr=",
		"--runtime-grpc-addr=127.0.0.1:0", "--runtime-admin-addr=", "--runtime-data-dir=" + filepath.Join(dir, "runtime"),
		"--mudb-grpc-addr=127.0.0.1:0", "--mudb-admin-addr=", "--mudb-data-dir=" + filepath.Join(dir, "mudb"),
		"--storage-grpc-addr=127.0.0.1:0", "--storage-http-addr=127.0.0.1:0", "--storage-admin-addr=", "--storage-data-dir=" + filepath.Join(dir, "storage"),
	}, "go_goroutines")
}
