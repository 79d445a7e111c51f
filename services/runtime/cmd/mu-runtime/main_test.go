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

func TestRun_BadSettingsExit2NamingEachField(t *testing.T) {
	code, out := run("--max-fuel-per-call=0", "--call-timeout=0s", "--grpc-addr=127.0.0.1:0", "--admin-addr=")
	if code != service.ExitUsage {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"max_fuel_per_call", "call_timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
	if code, out := run("--max-fuel-per-call=lots"); code != service.ExitUsage || !strings.Contains(out, "max_fuel_per_call (--max-fuel-per-call)") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestRun_HelpDocumentsEverySetting(t *testing.T) {
	code, out := run("--help")
	if code != service.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--max-fuel-per-call int (default 5000000000)", "MaxFuelPerCall is the fuel budget of one call",
		"--call-timeout duration (default 10s)", "CallTimeout is the wall-clock budget",
		"--usage-flush-interval duration (default 1s)", "FlushInterval is the longest a usage record waits",
		"--max-message-bytes int (default 67108864)", "MaxMessageBytes bounds one gRPC message",
		"env MU_RUNTIME_DATA_DIR",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestBinary_ServesAdminAndStopsOnSIGTERM runs the real binary: its admin
// port serves /metrics, /healthz and /readyz, and SIGTERM exits 0.
func TestBinary_ServesAdminAndStopsOnSIGTERM(t *testing.T) {
	servicetest.CheckBinary(t, ".", []string{"--data-dir=" + t.TempDir()}, "mu_runtime_fuel_total")
}
