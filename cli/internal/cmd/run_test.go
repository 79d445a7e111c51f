package cmd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
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
		done <- Run(runCtx, []string{"run", "--gateway-addr", "127.0.0.1:0", "--chain-indexer-addr", "127.0.0.1:0", "--billing-addr", "127.0.0.1:0", dir}, nil, pw, &stderr)
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
	// The region's addresses are recorded for mu usage while it runs.
	rec, recPath, err := readRegionFile()
	if err != nil {
		t.Fatalf("mu run recorded no region: %v", err)
	}
	if rec.StartedBy != "mu run" || rec.PID != os.Getpid() || !strings.HasPrefix(url, rec.Gateway+"/") ||
		rec.ChainIndexer == "" || rec.StorageGRPC == "" || !strings.HasPrefix(rec.StorageHTTP, "http://") ||
		len(rec.Runtimes) != 1 || rec.Mudb == "" || len(rec.Stacks) != 1 || !strings.Contains(url, rec.Stacks[0]) {
		t.Fatalf("recorded region %+v does not match the run (endpoint %s)", rec, url)
	}
	checkIndexer(t, rec.ChainIndexer)
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
	if _, err := os.Stat(recPath); !os.IsNotExist(err) {
		t.Errorf("mu run left its region file %s behind: %v", recPath, err)
	}
	if !strings.Contains(stderr.String(), "): 1 requests, ") {
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

// startRun runs `mu run` on dir in the background until the returned stop
// is called, and returns the first URL it printed and the chain-indexer's
// address (the first printed line that is not a URL).
func startRun(t *testing.T, dir, dataDir string, flags ...string) (url, indexer string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr lockedBuffer // --trace writes from the requests' goroutines
	done := make(chan int, 1)
	args := append([]string{"run", "--gateway-addr", "127.0.0.1:0", "--chain-indexer-addr", "127.0.0.1:0", "--billing-addr", "127.0.0.1:0", "--data-dir", dataDir},
		append(flags, dir)...)
	go func() {
		done <- Run(ctx, args, nil, pw, &stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		l := lines.Text()
		if !strings.HasPrefix(l, "http://") {
			indexer = l
			break
		}
		if url == "" {
			url = l
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" || indexer == "" {
		cancel()
		<-done
		t.Fatalf("run printed no URL or no indexer address\n%s", stderr.String())
	}
	return url, indexer, func() string {
		cancel()
		select {
		case code := <-done:
			if code != ExitOK {
				t.Fatalf("run exit %d\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("run did not stop after cancel\n%s", stderr.String())
		}
		return stderr.String()
	}
}

// TestRun_TodoKeepsItsDataAcrossRuns is examples/todo served by mu run,
// stopped and run again: the todo written in the first run is there in
// the second (muDB's embedded store under --data-dir).
// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRun_TodoKeepsItsDataAcrossRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	dir := todoProject(t)
	dataDir := t.TempDir()
	do := func(method, url, body string) (int, string) { t.Helper(); return todoDo(t, method, url, body) }

	url, indexer, stop := startRun(t, dir, dataDir)
	checkIndexer(t, indexer)
	if !strings.HasSuffix(url, "/todo/") {
		t.Fatalf("first URL %q", url)
	}
	if code, body := do("POST", url, `{"title": "milk", "done": false}`); code != 201 {
		t.Fatalf("POST: %d %s", code, body)
	}
	if out := stop(); !strings.Contains(out, "2 db reads, 2 db writes") || !strings.Contains(out, "revision 1 (created on the ledger)") {
		t.Fatalf("usage summary of the first run:\n%s", out)
	}

	url2, _, stop := startRun(t, dir, dataDir)
	pathOf := func(u string) string { return u[strings.Index(u[len("http://"):], "/")+len("http://"):] }
	if pathOf(url2) != pathOf(url) { // the port is picked anew
		t.Fatalf("stack URL changed between runs: %s then %s", url, url2)
	}
	if code, body := do("GET", url2, ""); code != 200 || body != `[{"title":"milk","done":false}]` {
		t.Fatalf("GET after a restart: %d %s", code, body)
	}
	if out := stop(); !strings.Contains(out, "revision 1 (unchanged on the ledger)") {
		t.Fatalf("second run of the same code:\n%s", out)
	}
}

// todoDo sends one request as user ann and returns the status and body.
func todoDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("x-user-id", "ann")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// todoProject copies examples/todo outside the checkout, on the
// checkout's SDK, and returns its directory.
func todoProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"main.go", "mu.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../../examples/todo", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sdk, _ := filepath.Abs("../../../sdk/go")
	fnproto, _ := filepath.Abs("../../../libs/fnproto")
	goMod := "module todo\n\ngo 1.26\n\nrequire (\n\tgithub.com/muprotocol/mu/sdk/go v0.0.0\n\tgithub.com/muprotocol/mu/libs/fnproto v0.0.0\n)\n\n" +
		"replace github.com/muprotocol/mu/sdk/go => " + sdk + "\n\nreplace github.com/muprotocol/mu/libs/fnproto => " + fnproto + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkIndexer asks the chain-indexer mu run printed for the stacks it
// knows, over gRPC, as an integrator's grpcurl would: the one stack.
func checkIndexer(t *testing.T, addr string) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := chainindexerv1.NewChainIndexerServiceClient(cc).ListStacks(ctx, &chainindexerv1.ListStacksRequest{})
	if err != nil {
		t.Fatalf("chain-indexer at %q: %v", addr, err)
	}
	if len(resp.GetStacks()) != 1 || !resp.GetStacks()[0].GetEnabled() {
		t.Fatalf("chain-indexer lists %v, want one enabled stack", resp.GetStacks())
	}
}

// TestRun_EditedCodeIsServedAtTheNextRevision edits a project between two
// runs: the second run posts update_stack and serves the new code.
func TestRun_EditedCodeIsServedAtTheNextRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	sdk, _ := filepath.Abs("../../../sdk/go")
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"init", dir, "--sdk-dir", sdk}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("init: exit %d\n%s", code, errb.String())
	}
	dataDir := t.TempDir()
	greet := func(url string) string {
		t.Helper()
		resp, err := http.Get(strings.Replace(url, "{name}", "dev", 1))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	url, _, stop := startRun(t, dir, dataDir)
	if got := greet(url); got != "Hello, dev!" {
		t.Fatalf("first run: %q", got)
	}
	stop()
	src := filepath.Join(dir, "main.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"Hello, "`, `"Howdy, "`, 1)
	if edited == string(b) {
		t.Fatalf("the template's greeting is not where the test looks for it:\n%s", b)
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	url2, _, stop := startRun(t, dir, dataDir)
	if got := greet(url2); got != "Howdy, dev!" {
		t.Fatalf("second run serves %q, want the edited code", got)
	}
	if out := stop(); !strings.Contains(out, "revision 2 (updated on the ledger)") {
		t.Fatalf("second run did not update the stack:\n%s", out)
	}
}

// TestRunWatch_EditsAreServedWithoutDroppingRequestsAndABrokenBuildKeepsTheLastGood
// runs mu run --watch under a load of GETs: an edit is served at the next
// revision with no request failing on the way, and an edit that does not
// compile is reported while the last good revision keeps serving.
func TestRunWatch_EditsAreServedWithoutDroppingRequestsAndABrokenBuildKeepsTheLastGood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm")
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	sdk, _ := filepath.Abs("../../../sdk/go")
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"init", dir, "--sdk-dir", sdk}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("init: exit %d\n%s", code, errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	stderr := &followed{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"run", "--watch", "--gateway-addr", "127.0.0.1:0", "--chain-indexer-addr", "127.0.0.1:0", "--billing-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), dir}, nil, pw, stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "http://") {
			url = strings.Replace(l, "{name}", "dev", 1)
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" || !stderr.waitFor("watching", 10*time.Second) {
		t.Fatalf("run --watch printed no URL or is not watching\n%s", stderr.String())
	}
	l := startLoad(url, 2, func(string) bool { return true })
	src := filepath.Join(dir, "main.go")
	orig, _ := os.ReadFile(src)
	edit := func(s string) {
		if err := os.WriteFile(src, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit(strings.Replace(string(orig), `"Hello, "`, `"Howdy, "`, 1))
	if !stderr.waitFor("revision 2 served", 2*time.Minute) {
		t.Fatalf("the edit was not served\n%s", stderr.String())
	}
	for end := time.Now().Add(10 * time.Second); l.last.Load() != "Howdy, dev!" && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := l.last.Load(); got != "Howdy, dev!" {
		t.Fatalf("after the edit the stack answers %v", got)
	}
	edit(strings.Replace(string(orig), `"Hello, "`, `"Howdy, " + undefinedName`, 1))
	if !stderr.waitFor("revision 2 keeps serving", 2*time.Minute) {
		t.Fatalf("a broken build was not reported\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "build failed") || !strings.Contains(stderr.String(), "undefinedName") {
		t.Fatalf("the build error is not shown\n%s", stderr.String())
	}
	time.Sleep(200 * time.Millisecond)
	served, failed := l.stop()
	if got := l.last.Load(); got != "Howdy, dev!" {
		t.Fatalf("after the broken edit the stack answers %v, want the last good revision", got)
	}
	if failed != 0 {
		t.Fatalf("%d of %d requests failed across the redeploys", failed, failed+served)
	}
	t.Logf("%d requests served across two edits, 0 failed", served)
	cancel()
	// Stopping hands billing the usage of every request served (tens of
	// thousands here): the gateway keeps sending it for up to its
	// usage close_timeout (30 s) while billing, under a loaded CI machine,
	// writes it behind; so the bound is past that, and the goroutines are
	// shown if it is passed.
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatal("run --watch did not stop")
	}
}
