package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ids"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
	storagev1 "github.com/muprotocol/mu/proto/mu/storage/v1"
)

// muCLI runs the built mu binary with its own config and state dirs.
type muCLI struct {
	t          *testing.T
	bin        string
	env        []string
	configDir  string
	deployWall time.Duration
}

// buildMu builds the mu command into a temporary directory.
func buildMu(t *testing.T, repo string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mu")
	cmd := exec.Command("go", "build", "-o", bin, "./cli")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cli: %v\n%s", err, out)
	}
	return bin
}

// run runs mu with args and returns its exit code, stdout and stderr.
func (m *muCLI) run(args ...string) (int, string, string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, args...)
	cmd.Env = m.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			m.t.Fatalf("mu %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// ok runs mu and fails the test unless it succeeds.
func (m *muCLI) ok(args ...string) string {
	m.t.Helper()
	code, out, errs := m.run(args...)
	if code != 0 {
		m.t.Fatalf("mu %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// fails runs mu, wants it to fail, and its error to say every one of want.
func (m *muCLI) fails(want []string, args ...string) {
	m.t.Helper()
	code, out, errs := m.run(args...)
	if code == 0 {
		m.t.Fatalf("mu %s succeeded, want an error saying %q\n%s", strings.Join(args, " "), want, out)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			m.t.Fatalf("mu %s: error\n%s\ndoes not say %q", strings.Join(args, " "), errs, w)
		}
	}
}

// TestDeployFlow_ProviderToDeleteAgainstAClusterOfProcesses is the issue's
// flow through the built mu binary against a region of processes with the
// local ledger (mu cluster up, as make cluster): a provider registers, is
// authorized, creates a region and its signer; a developer funds escrow,
// deploys, calls, updates under load, follows logs, reads usage and
// deletes. Every actionable error is triggered on the way.
func TestDeployFlow_ProviderToDeleteAgainstAClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mu and the services and starts a region of processes")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	m := &muCLI{t: t, bin: buildMu(t, repo), configDir: filepath.Join(home, "config")}
	m.env = append(os.Environ(), "MU_CONFIG_DIR="+m.configDir, "MU_STATE_DIR="+filepath.Join(home, "state"), "NO_COLOR=1")
	clusterDir := filepath.Join(home, "cluster")
	t.Cleanup(func() { m.run("cluster", "down", "--dir", clusterDir) })
	m.ok("cluster", "up", "--repo", repo, "--dir", clusterDir, "--runtimes", "2")
	authority := filepath.Join(clusterDir, "keys", "authority.json")

	// A profile for the region (the first becomes the current one), and a
	// broken one: the error names the endpoint and the profile.
	rec, _, err := readRegionFileIn(filepath.Join(home, "state"))
	if err != nil {
		t.Fatal(err)
	}
	m.ok("config", "set", "cluster", "gateway="+rec.Gateway, "storage="+rec.StorageHTTP, "indexer="+rec.ChainIndexer, "billing="+rec.Billing)
	m.ok("config", "set", "broken", "indexer=127.0.0.1:1")
	m.fails([]string{"127.0.0.1:1", "profile broken", "unreachable"}, "list", "regions", "--profile", "broken", "--timeout", "2s")

	// A provider registers, is authorized and creates a region.
	providerKey := filepath.Join(home, "provider.json")
	pk := strings.TrimSpace(m.ok("keygen", "--out", providerKey))
	m.fails([]string{"holds 0", "mu wallet mint " + pk}, "provider", "create", "acme", "--deposit", "1000000", "--keypair", providerKey)
	m.ok("wallet", "mint", pk, "1000000", "--keypair", authority)
	m.fails([]string{"not --deposit 1"}, "provider", "create", "acme", "--deposit", "1", "--keypair", providerKey)
	created := m.ok("provider", "create", "acme", "--deposit", "1000000", "--keypair", providerKey)
	if !strings.Contains(created, "mu provider authorize") {
		t.Fatalf("provider create does not say who authorizes:\n%s", created)
	}
	rates := filepath.Join(home, "rates.yaml")
	if err := os.WriteFile(rates, []byte(rateExample), 0o600); err != nil {
		t.Fatal(err)
	}
	regionArgs := []string{"provider", "region", "create", "--name", "east", "--base-url", "http://east.example", "--number", "7", "--min-escrow", "5000", "--rates", rates, "--keypair", providerKey}
	m.fails([]string{"not authorized", "mu provider authorize"}, append(regionArgs, "--yes")...)
	m.fails([]string{"only the marketplace authority"}, "provider", "authorize", "acme", "--keypair", providerKey)
	m.ok("provider", "authorize", "acme", "--keypair", authority)
	m.fails([]string{"pass --yes"}, regionArgs...) // stdin is not a terminal
	shown := m.ok(append(regionArgs, "--yes")...)
	for _, w := range []string{"0.0002 per request", "200 per 1M requests", "25 per 256 MiB", "100 per GiB", "mu provider signer create"} {
		if !strings.Contains(shown, w) {
			t.Fatalf("region create does not show %q:\n%s", w, shown)
		}
	}
	var listed []regionJSON
	if err := json.Unmarshal([]byte(m.ok("list", "regions", "--provider", "acme", "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Rates["gateway_requests"] != 200 || listed[0].MinEscrow != 5000 || listed[0].UsageSigner != "" || listed[0].SampleCost == "" {
		t.Fatalf("listed %+v", listed)
	}
	if out := m.ok("provider", "region", "list", "--keypair", providerKey); !strings.Contains(out, "east") || !strings.Contains(out, "1M hello requests") {
		t.Fatalf("region list:\n%s", out)
	}

	// A developer.
	devKey := filepath.Join(m.configDir, "keys", "id.json")
	dev := strings.TrimSpace(m.ok("keygen"))
	proj := newProject(t, repo, home)
	// No usage signer in acme's region yet.
	m.fails([]string{"no usage signer", "mu provider signer create --region"}, "deploy", proj, "--provider", "acme", "--region", "east")
	m.ok("provider", "signer", "create", "--region", "east", "--keypair", providerKey)
	m.fails([]string{"no escrow", "mu escrow create acme"}, "deploy", proj, "--provider", "acme", "--region", "east")

	// The cluster's own provider ("local") serves its region: deploy there.
	m.fails([]string{"no escrow", "mu escrow create local"}, "deploy", proj, "--provider", "local")
	m.fails([]string{"no escrow", "mu escrow create local"}, "escrow", "recharge", "local", "10")
	m.ok("escrow", "create", "local")
	m.fails([]string{"under region local's minimum of 1000", "add at least 1000", "mu escrow recharge local 1000"}, "deploy", proj, "--provider", "local")
	m.fails([]string{"holds 0", "mu wallet mint " + dev}, "escrow", "recharge", "local", "10")
	m.ok("wallet", "mint", dev, "50000000", "--keypair", authority)
	m.ok("escrow", "recharge", "local", "20000000")
	if out := m.ok("escrow", "view", "local"); !strings.Contains(out, "20,000,000") || !strings.Contains(out, "minimum") {
		t.Fatalf("escrow view:\n%s", out)
	}

	// Deploy, plain progress (stdout and stderr are pipes).
	start := time.Now()
	code, out, errs := m.run("deploy", proj, "--provider", "local")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errs)
	}
	url := strings.Replace(strings.TrimSpace(out), "{name}", "dev", 1)
	if body := getBody(t, url); body != "Hello, dev!" {
		t.Fatalf("GET %s: %q", url, body)
	}
	m.deployWall = time.Since(start)
	timing := ""
	for _, l := range strings.Split(errs, "\n") {
		if strings.HasPrefix(l, "served in ") || strings.HasPrefix(l, "uploaded ") {
			timing += "; " + l
		}
	}
	t.Logf("mu deploy → first request served: %s%s", m.deployWall.Round(time.Millisecond), timing)
	for _, w := range []string{"uploading greeter: ", "uploading greeter: 50%", "uploaded greeter: ", "created in region local"} {
		if !strings.Contains(errs, w) {
			t.Fatalf("plain deploy output lacks %q:\n%s", w, errs)
		}
	}
	if strings.Contains(errs, "\r") {
		t.Fatalf("plain output has carriage returns:\n%q", errs)
	}
	stackID := strings.Split(strings.TrimPrefix(url, "http://"), "/")[1]
	if _, err := ids.ParseStackID(stackID); err != nil {
		t.Fatalf("URL %s: %v", url, err)
	}

	// Follow the logs while requests are served.
	logs, stopLogs := m.follow(t, "logs", stackID, "-f", "--tail", "0")
	defer stopLogs()

	// Update under a load of GETs: none fails, and the new text is served.
	src := filepath.Join(proj, "main.go")
	b, _ := os.ReadFile(src)
	if err := os.WriteFile(src, []byte(strings.Replace(string(b), `"Hello, "`, `"Howdy, "`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	load := startLoad(url, 4, func(body string) bool { return body == "Hello, dev!" || body == "Howdy, dev!" })
	ptyOut := deployOnPty(t, m, proj)
	served, failed := load.stop()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed during the update", failed, failed+served)
	}
	t.Logf("update under load: %d requests served, 0 failed", served)
	if body := getBody(t, url); body != "Howdy, dev!" {
		t.Fatalf("after the update: %q", body)
	}
	for _, w := range []string{"\r", "ETA", "[", "updated in region local"} {
		if !strings.Contains(ptyOut, w) {
			t.Fatalf("terminal deploy output lacks %q:\n%q", w, ptyOut)
		}
	}

	// The log stream shows the requests.
	if !logs.waitFor("greeting", 20*time.Second) {
		t.Fatalf("mu logs -f showed no request:\n%s", logs.String())
	}
	// The history without -f, of one function, by the stack's name; and
	// only the owner reads it.
	if out := m.ok("logs", "greeter", "greeter", "--tail", "5"); !strings.Contains(out, "greeting") || strings.Count(out, "\n") > 5 {
		t.Fatalf("mu logs greeter greeter --tail 5:\n%s", out)
	}
	m.fails([]string{"403", "is owned by " + dev}, "logs", stackID, "--keypair", providerKey)

	// Usage reaches billing.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := m.ok("usage", stackID)
		if strings.Contains(out, "requests") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage shows no requests:\n%s", out)
		}
		time.Sleep(time.Second)
	}

	// Listings for scripts.
	var stacks []stackJSON
	if err := json.Unmarshal([]byte(m.ok("stack", "list", "-o", "json")), &stacks); err != nil {
		t.Fatal(err)
	}
	if len(stacks) != 1 || stacks[0].ID != stackID || stacks[0].Revision != 2 || stacks[0].Name != "greeter" {
		t.Fatalf("stack list %+v", stacks)
	}
	if out := m.ok("stack", "status", "greeter"); !strings.Contains(out, "revision 2 installed true") {
		t.Fatalf("stack status:\n%s", out)
	}

	// Delete: 404 afterwards, tables and boxes gone.
	id, _ := ids.ParseStackID(stackID)
	if n, boxes := stackData(t, rec, id); n != 1 || boxes != 1 {
		t.Fatalf("before delete: %d tables, %d boxes; want 1 and 1", n, boxes)
	}
	m.fails([]string{"pass --yes"}, "stack", "delete", stackID)
	m.ok("stack", "delete", stackID, "--yes")
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after delete: %d, want 404", resp.StatusCode)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		n, boxes := stackData(t, rec, id)
		if n == 0 && boxes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after delete: %d tables and %d boxes remain", n, boxes)
		}
		time.Sleep(500 * time.Millisecond)
	}
	m.fails([]string{"was deleted", "--seed"}, "deploy", proj, "--provider", "local")
	_ = devKey
}

// newProject makes a project with mu init plus a table and a box.
func newProject(t *testing.T, repo, home string) string {
	t.Helper()
	dir := filepath.Join(home, "greeter")
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"init", dir, "--sdk-dir", filepath.Join(repo, "sdk", "go")}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("init: exit %d\n%s", code, errb.String())
	}
	f, err := os.OpenFile(filepath.Join(dir, "mu.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "  - type: KeyValueTable\n    name: notes\n  - type: Storage\n    name: files\n")
	f.Close()
	return dir
}

// deployOnPty runs mu deploy with a terminal for its output.
func deployOnPty(t *testing.T, m *muCLI, proj string) string {
	t.Helper()
	cmd := exec.Command(m.bin, "deploy", proj, "--provider", "local")
	cmd.Env = m.env
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, f); close(done) }()
	werr := cmd.Wait()
	<-done // the pty reads EIO once the child is gone
	if werr != nil {
		t.Fatalf("deploy on a terminal: %v\n%s", werr, out.String())
	}
	return out.String()
}

// followed is the output of a mu command that runs until stopped.
type followed struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (f *followed) String() string { f.mu.Lock(); defer f.mu.Unlock(); return f.buf.String() }

// Write makes a followed an io.Writer safe for concurrent use.
func (f *followed) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(b)
}

func (f *followed) waitFor(s string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if strings.Contains(f.String(), s) {
			return true
		}
	}
	return false
}

// follow starts mu args in the background.
func (m *muCLI) follow(t *testing.T, args ...string) (*followed, func()) {
	cmd := exec.Command(m.bin, args...)
	cmd.Env = m.env
	out := &followed{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.mu.Lock()
			out.buf.WriteString(sc.Text() + "\n")
			out.mu.Unlock()
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			pw.Close()
		})
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// readRegionFileIn reads region.json of a state dir.
func readRegionFileIn(dir string) (regionFile, string, error) {
	old, had := os.LookupEnv("MU_STATE_DIR")
	os.Setenv("MU_STATE_DIR", dir)
	defer func() {
		if had {
			os.Setenv("MU_STATE_DIR", old)
		}
	}()
	return readRegionFile()
}

// stackData counts the tables muDB and the boxes storage hold for id.
func stackData(t *testing.T, rec regionFile, id ids.StackID) (tables, boxes int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(addr string) *grpc.ClientConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	mc := dial(rec.Mudb)
	defer mc.Close()
	tl, err := mudbv1.NewMudbServiceClient(mc).TableList(ctx, &mudbv1.TableListRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatalf("muDB TableList: %v", err)
	}
	sc := dial(rec.StorageGRPC)
	defer sc.Close()
	bl, err := storagev1.NewStorageServiceClient(sc).ListBoxes(ctx, &storagev1.ListBoxesRequest{StackId: id.Bytes()})
	if err != nil {
		t.Fatalf("storage ListBoxes: %v", err)
	}
	return len(tl.GetTables()), len(bl.GetBoxes())
}

func TestCompletion_ShellScriptsNameTheCommands(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), []string{"completion", shell}, nil, &out, &errb); code != ExitOK {
			t.Fatalf("completion %s: exit %d\n%s", shell, code, errb.String())
		}
		if !strings.Contains(out.String(), "mu") || out.Len() < 500 {
			t.Fatalf("completion %s printed %d bytes", shell, out.Len())
		}
	}
	// Dynamic completion of subcommands, as the shells call it.
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"__complete", "esc"}, nil, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "escrow") {
		t.Fatalf("__complete esc: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := Run(context.Background(), []string{"__complete", "provider", "region", ""}, nil, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "create") || !strings.Contains(out.String(), "list") {
		t.Fatalf("__complete provider region: exit %d, %q", code, out.String())
	}
}

// load is GETs of one URL from several goroutines until stopped.
type load struct {
	served, failed atomic.Int64
	last           atomic.Value // the latest good body
	done           chan struct{}
	wg             sync.WaitGroup
}

// startLoad GETs url from n goroutines; an answer is good when its
// status is 200 and ok accepts its body.
func startLoad(url string, n int, ok func(body string) bool) *load {
	l := &load{done: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				resp, err := http.Get(url)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !ok(string(b)) {
					l.failed.Add(1)
					continue
				}
				l.served.Add(1)
				l.last.Store(string(b))
			}
		}()
	}
	return l
}

// stop ends the load and returns how many requests were served and failed.
func (l *load) stop() (served, failed int64) {
	close(l.done)
	l.wg.Wait()
	return l.served.Load(), l.failed.Load()
}
