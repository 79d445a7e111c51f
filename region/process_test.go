package region

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

// isChild tells whether pid is a live (or unreaped) child of this process.
func isChild(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ppid …; comm may hold spaces, so split after ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
}

// TestProcesses_HelloEndToEndThenRuntimeKilledGets503 runs muDB, the
// runtime and the gateway as child processes built from this repository,
// serves hello and todo (its tables in the muDB process) through them, kills the runtime for real and checks that the gateway
// answers 503, and that Close leaves no child behind.
func TestProcesses_HelloEndToEndThenRuntimeKilledGets503(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service commands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	r, err := Start(ctx, Options{
		Mode:    Processes,
		DataDir: t.TempDir(),
		Mudb:    &MudbOptions{},
		Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) { c.CallTimeout = 5 * time.Second }},
		Gateway: &GatewayOptions{Config: func(c *gateway.Config) { c.InvokeTimeout = 10 * time.Second }},
		Process: ProcessOptions{RepoDir: repo, LogDir: logDir, StopTimeout: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.Runtime().Server() != nil || r.Gateway().Server() != nil || r.Mudb().Server() != nil {
		t.Fatal("process mode started a server in this process")
	}
	procs := r.Processes()
	if len(procs) != 3 || procs[0] != r.Runtime().Process() || procs[1] != r.Gateway().Process() || procs[2] != r.Mudb().Process() {
		t.Fatalf("processes %v", procs)
	}
	for _, p := range procs {
		if !isChild(p.Pid()) {
			t.Fatalf("%s (pid %d) is not a child of the test", p.Name(), p.Pid())
		}
		if want := filepath.Join(logDir, p.Name()+".log"); p.LogFile() != want {
			t.Fatalf("%s logs to %q, want %q", p.Name(), p.LogFile(), want)
		}
	}

	m, bins := stackFromDir(t, "../examples/hello")
	id, _, _ := ids.NewStackID()
	if err := r.Deploy(ctx, id, 1, m, bins); err != nil {
		t.Fatal(err)
	}
	urls := r.URLs(id, m)
	if len(urls) != 1 || !strings.HasPrefix(urls[0].URL, "http://"+r.Gateway().Addr()+"/") {
		t.Fatalf("urls %v", urls)
	}
	url := strings.Replace(urls[0].URL, "{name}", "world", 1)
	if code, body := get(t, url); code != 200 || body != "Hello, world!" {
		t.Fatalf("GET %s: %d %q", url, code, body)
	}
	todoID, _, _ := ids.NewStackID()
	todo := deployTodo(t, r, todoID)
	todo.want("POST", "/", "ann", `{"title":"milk"}`, 201, "")
	todo.want("GET", "/", "ann", "", 200, `[{"title":"milk","done":false}]`)

	rt := r.Runtime().Process()
	if err := rt.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case <-rt.Done():
	default:
		t.Fatal("Kill returned before the runtime exited")
	}
	if isChild(rt.Pid()) {
		t.Fatalf("killed runtime (pid %d) is still a child", rt.Pid())
	}
	code, body := get(t, url)
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || code != 503 || eb.Error.Kind != gateway.KindRuntimeUnavailable {
		t.Fatalf("with the runtime dead: %d %q, want 503 %s", code, body, gateway.KindRuntimeUnavailable)
	}

	gw := r.Gateway().Process()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range procs {
		if isChild(p.Pid()) {
			t.Errorf("%s (pid %d) outlived Close", p.Name(), p.Pid())
		}
		if err := syscall.Kill(p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Close: %v", p.Name(), p.Pid(), err)
		}
	}
	if err := gw.Wait(); err != nil {
		t.Errorf("the gateway did not stop cleanly on SIGTERM: %v", err)
	}
	if b, err := os.ReadFile(gw.LogFile()); err != nil || !strings.Contains(string(b), "gateway listening") {
		t.Errorf("gateway log %q: %v", b, err)
	}
}
