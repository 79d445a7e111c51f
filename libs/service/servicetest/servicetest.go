// Package servicetest checks that a service binary keeps the service
// contract from the outside: it builds the binary, runs it on free loopback
// ports, reads the admin address from its JSON log, checks /healthz,
// /readyz and /metrics, and stops it with SIGTERM.
package servicetest

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CheckBinary builds the main package in dir (relative to the test's
// directory) and runs it with args plus --grpc-addr, --admin-addr,
// --log-format and --plaintext (it runs on loopback) flags of its own. It
// fails t unless the admin port answers 200 on /healthz, /readyz and
// /metrics (whose body must contain every string in wantMetrics) and the
// binary exits 0 after SIGTERM.
func CheckBinary(t *testing.T, dir string, args []string, wantMetrics ...string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "service")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", dir, err, out)
	}
	cmd := exec.Command(bin, append(args, "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--log-format=json", "--plaintext")...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	re := regexp.MustCompile(`"admin":"([^"]+)"`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the binary never logged its admin address:\n%s", logs.String())
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d %s", path, resp.StatusCode, body)
		}
		if path == "/metrics" {
			for _, want := range append(wantMetrics, "grpc_server_started_total", "go_goroutines") {
				if !strings.Contains(string(body), want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
