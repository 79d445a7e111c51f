package region

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/gobuild"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/runtime"
)

// stackFromDir builds the Go function in dir (cached between test runs) and
// returns its manifest with the binary id filled in.
func stackFromDir(t testing.TB, dir string) (*manifest.Manifest, map[string][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	path, err := gobuild.Cached(ctx, dir, gobuild.TestCacheDir(), gobuild.Reactor)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mu.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	id := ids.BinaryID(wasm)
	m.Functions[0].Binary = id
	return m, map[string][]byte{id: wasm}
}

// startRegion starts a runtime and a gateway in this process, as `mu run`
// does, on free ports.
func startRegion(t *testing.T, opts Options) *Region {
	t.Helper()
	if opts.Runtime == nil {
		opts.Runtime = &RuntimeOptions{}
	}
	if opts.Gateway == nil {
		opts.Gateway = &GatewayOptions{}
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	r, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInProcess_HelloEndToEnd(t *testing.T) {
	bothPaths(t, func(t *testing.T, p *path) {
		r := p.start(t, Options{})
		m, bins := stackFromDir(t, "../examples/hello")
		// The same stack id on both paths (each has its own region): the id
		// is in the URLs and in the 404's body, so its base58 length (43 or
		// 44) would change the metered traffic.
		id := ids.StackID{0x4d, 0x75}
		if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
			t.Fatal(err)
		}
		urls := r.URLs(id, m)
		if len(urls) != 1 || !strings.HasSuffix(urls[0].URL, "/"+id.String()+"/greeting/greet/{name}") || !strings.HasPrefix(urls[0].URL, "http://") {
			t.Fatalf("urls %v", urls)
		}
		base := strings.TrimSuffix(urls[0].URL, "{name}")
		for _, name := range []string{"world", "mu"} {
			if code, body := get(t, base+name); code != 200 || body != "Hello, "+name+"!" {
				t.Fatalf("GET %s: %d %q", name, code, body)
			}
		}
		if code, _ := get(t, strings.TrimSuffix(base, "greet/")+"nope"); code != 404 {
			t.Fatalf("unknown path: %d", code)
		}
		if err := r.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := r.Usage.Total(id, usage.GatewayRequests); got != 3 {
			t.Fatalf("requests metered %d, want 3", got)
		}
		// Megabyte-instructions are fuel × 64 (memory_limit 64MiB).
		if mbi := r.Usage.Total(id, usage.FunctionMBInstructions); mbi == 0 || mbi%64 != 0 {
			t.Fatalf("megabyte-instructions %d", mbi)
		}
		p.record(t, "requests", "%d", r.Usage.Total(id, usage.GatewayRequests))
		p.record(t, "traffic", "%d", r.Usage.Total(id, usage.GatewayTrafficBytes))
	})
}

type errorBody struct {
	Error struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestInProcess_MisbehavingFunctionsGetClearErrorsAndNeighboursKeepAnswering(t *testing.T) {
	r := startRegion(t, Options{Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) {
		// /spin must run out of fuel before it runs out of time: 500 M
		// fuel takes well under a second even on a loaded 2-core machine,
		// far inside the 3 s deadline that /sleep hits.
		c.MaxFuelPerCall = 500_000_000
		c.CallTimeout = 3 * time.Second
	}}})
	hello, helloBins := stackFromDir(t, "../examples/hello")
	bad, badBins := stackFromDir(t, "testdata/misbehave")
	helloID, _, _ := ids.NewStackID()
	badID, _, _ := ids.NewStackID()
	ctx := context.Background()
	if err := r.Deploy(ctx, helloID, 1, hello, helloBins); err != nil {
		t.Fatal(err)
	}
	if err := r.Deploy(ctx, badID, 1, bad, badBins); err != nil {
		t.Fatal(err)
	}
	badBase := "http://" + r.Gateway().Addr() + "/" + badID.String() + "/api"
	helloURL := "http://" + r.Gateway().Addr() + "/" + helloID.String() + "/greeting/greet/n"

	// The neighbour is hammered while every failure happens.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Get(helloURL)
			if err != nil || resp.StatusCode != 200 {
				failed++
			} else {
				served++
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()

	cases := []struct {
		path, kind, msg string
		status          int
	}{
		{"/spin", "fuel_exhausted", "fuel", 500},
		{"/sleep", "deadline_exceeded", "deadline", 504},
		{"/exit", "crash", "status 3", 502},
		{"/panic", "function_error", "boom", 500},
		{"/fail", "function_error", "no luck", 500},
		{"/hog", "memory_limit", "33554432-byte limit", 502},
	}
	for _, tc := range cases {
		code, body := get(t, badBase+tc.path)
		var eb errorBody
		if err := json.Unmarshal([]byte(body), &eb); err != nil {
			t.Fatalf("%s: %d %q is not a JSON error", tc.path, code, body)
		}
		if code != tc.status || eb.Error.Kind != tc.kind || !strings.Contains(eb.Error.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %s containing %q", tc.path, code, eb.Error, tc.status, tc.kind, tc.msg)
		}
		// The stack itself keeps working after each failure.
		if code, body := get(t, badBase+"/ok"); code != 200 || body != "ok" {
			t.Fatalf("after %s: %d %q", tc.path, code, body)
		}
	}
	if code, body := get(t, badBase+"/db"); code != 200 || !strings.Contains(body, "muDB is not configured") {
		t.Errorf("db call: %d %q", code, body)
	}
	close(stop)
	wg.Wait()
	if failed > 0 || served == 0 {
		t.Fatalf("neighbour: %d served, %d failed", served, failed)
	}
	t.Logf("neighbour served %d requests while the other stack failed", served)
}
