package region

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// The suites that end calls in every way (adversarial_test.go) and meter
// them (hello, todo, db, storage) run on both paths from the gateway to a
// runtime in this process: in process, as `mu run` serves, and over
// loopback gRPC (GatewayOptions.ViaGRPC), as between machines. Each path
// records how every call ended and what it was billed; bothPaths then
// requires the two records to be identical.

// path is one of the two ways the region's gateway calls its runtimes.
type path struct {
	name    string
	viaGRPC bool

	mu     sync.Mutex
	region *Region
	seen   map[string]string // what → how it ended and was billed
	order  []string
}

// start starts a region as startRegion does, its gateway on p.
func (p *path) start(t *testing.T, opts Options) *Region {
	t.Helper()
	g := GatewayOptions{}
	if opts.Gateway != nil {
		g = *opts.Gateway
	}
	g.ViaGRPC = p.viaGRPC
	opts.Gateway = &g
	r := startRegion(t, opts)
	p.mu.Lock()
	p.region = r
	p.mu.Unlock()
	return r
}

// record notes how what ended; both paths must note the same.
func (p *path) record(t *testing.T, what string, format string, args ...any) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.seen[what]; dup {
		t.Fatalf("recorded %q twice", what)
	}
	p.seen[what] = fmt.Sprintf(format, args...)
	p.order = append(p.order, what)
}

// transport is the gateway's mu_gateway_invokes_total label a path uses.
func (p *path) transport() string {
	if p.viaGRPC {
		return "grpc"
	}
	return "in_process"
}

// bothPaths runs body as subtests in_process and grpc, checks that each
// subtest's gateway called its runtimes on that path alone, and that both
// recorded the same endings and bills.
func bothPaths(t *testing.T, body func(t *testing.T, p *path)) {
	t.Helper()
	var runs []*path
	for _, via := range []bool{false, true} {
		p := &path{name: "in_process", viaGRPC: via, seen: map[string]string{}}
		if via {
			p.name = "grpc"
		}
		runs = append(runs, p)
		t.Run(p.name, func(t *testing.T) {
			body(t, p)
			if p.region == nil {
				t.Fatal("the body started no region through path.start")
			}
			other := "grpc"
			if p.viaGRPC {
				other = "in_process"
			}
			if n := gatewayInvokes(t, p.region, p.transport()); n == 0 {
				t.Errorf("no invoke went %s", p.transport())
			}
			if n := gatewayInvokes(t, p.region, other); n != 0 {
				t.Errorf("%v invokes went %s, want none", n, other)
			}
		})
	}
	if t.Failed() {
		return
	}
	a, b := runs[0], runs[1]
	if !slices.Equal(a.order, b.order) {
		t.Fatalf("the paths recorded different calls:\n  in_process: %q\n  grpc:       %q", a.order, b.order)
	}
	for _, what := range a.order {
		if a.seen[what] != b.seen[what] {
			t.Errorf("%s: in process %s, over gRPC %s", what, a.seen[what], b.seen[what])
		}
	}
	t.Logf("%d endings identical on both paths", len(a.order))
}

// gatewayInvokes reads mu_gateway_invokes_total{transport} off the
// region's gateway's /metrics.
func gatewayInvokes(t *testing.T, r *Region, transport string) float64 {
	t.Helper()
	return scrape(t, r.Gateway().AdminAddr(), `mu_gateway_invokes_total{transport="`+transport+`"}`)
}

// scrape returns the value of one sample on the /metrics of admin.
func scrape(t *testing.T, admin, sample string) float64 {
	t.Helper()
	code, body := get(t, "http://"+admin+"/metrics")
	if code != 200 {
		t.Fatalf("%s/metrics: %d", admin, code)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("%s/metrics has no %s", admin, sample)
	return 0
}

func TestPaths_InProcessByDefaultAndGRPCWithViaGRPC(t *testing.T) {
	m, bins := stackFromDir(t, "../examples/hello")
	for _, tc := range []struct {
		viaGRPC          bool
		inProcess, grpc_ float64
	}{{false, 3, 0}, {true, 0, 3}} {
		r := startRegion(t, Options{Gateway: &GatewayOptions{ViaGRPC: tc.viaGRPC}})
		id, _, _ := ids.NewStackID()
		if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if code, body := get(t, "http://"+r.Gateway().Addr()+"/"+id.String()+"/greeting/greet/x"); code != 200 || body != "Hello, x!" {
				t.Fatalf("ViaGRPC %v: %d %q", tc.viaGRPC, code, body)
			}
		}
		if got, want := [2]float64{gatewayInvokes(t, r, "in_process"), gatewayInvokes(t, r, "grpc")}, [2]float64{tc.inProcess, tc.grpc_}; got != want {
			t.Errorf("ViaGRPC %v: invokes in_process, grpc = %v, want %v", tc.viaGRPC, got, want)
		}
	}
}

// In a cluster in this process the gateway calls every owner in process,
// runtimes added later included, and none over gRPC.
func TestPaths_ClusterCallsEveryOwnerInProcess(t *testing.T) {
	r := startRegion(t, Options{Runtime: &RuntimeOptions{Nodes: 2}, Cluster: &ClusterOptions{}})
	ctx := context.Background()
	if _, err := r.AddRuntime(ctx); err != nil {
		t.Fatal(err)
	}
	m, bins := stackFromDir(t, "../examples/hello")
	// Deploy puts every stack on every runtime; the gateway routes each to
	// its owner once it sees the three.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		pl, err := r.Gateway().Client().Placement(ctx, &gatewayv1.PlacementRequest{})
		if err == nil && len(pl.GetMembers()) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never saw the 3 runtimes: %v %v", pl, err)
		}
	}
	// With three nodes every one owns at least a quarter of the id space
	// under XOR distance, so 12 random stacks leave one of them without any
	// about 6% of the time: deploy until each owns one (or 48 stacks, when
	// (3/4)^48 makes a miss a real failure).
	ownsAll := func() bool {
		pl, err := r.Gateway().Client().Placement(ctx, &gatewayv1.PlacementRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pl.GetMembers() {
			if m.GetOwnedStacks() == 0 {
				return false
			}
		}
		return true
	}
	var sent int
	for stacks := 0; stacks < 12 || (stacks < 48 && !ownsAll()); stacks++ {
		id, _, _ := ids.NewStackID()
		if err := r.Deploy(ctx, id, 1, m, bins); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if code, body := get(t, "http://"+r.Gateway().Addr()+"/"+id.String()+"/greeting/greet/x"); code != 200 || body != "Hello, x!" {
				t.Fatalf("stack %s: %d %q", id, code, body)
			}
			sent++
		}
	}
	pl, err := r.Gateway().Client().Placement(ctx, &gatewayv1.PlacementRequest{})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, m := range pl.GetMembers() {
		owners[m.GetName()] = int(m.GetOwnedStacks())
	}
	if len(owners) != 3 {
		t.Fatalf("placement members %v, want the 3 runtimes", owners)
	}
	// Every runtime served what it owns, in process.
	var invocations int
	for _, n := range r.Runtimes() {
		st, err := n.Server().InProcessClient().Status(ctx, &runtimev1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		served := 0
		for _, s := range st.GetStacks() {
			for _, f := range s.GetFunctions() {
				served += int(f.GetInvocations())
			}
		}
		invocations += served
		owned := -1
		for name, k := range owners {
			if strings.HasPrefix(name, n.Name()+"@") {
				owned = k
			}
		}
		if owned <= 0 || served != 2*owned {
			t.Errorf("%s served %d calls and owns %d stacks, want it to own some and serve 2 calls each", n.Name(), served, owned)
		}
		t.Logf("%s served %d calls", n.Name(), served)
	}
	if invocations != sent {
		t.Errorf("runtimes served %d calls, the gateway sent %d", invocations, sent)
	}
	if got := gatewayInvokes(t, r, "in_process"); got != float64(sent) {
		t.Errorf("in_process invokes = %v, want %d", got, sent)
	}
	if got := gatewayInvokes(t, r, "grpc"); got != 0 {
		t.Errorf("grpc invokes = %v, want 0", got)
	}
	t.Logf("owned stacks per runtime: %v", owners)
}

// BenchmarkHello_InProcessVsGRPC is one hello request through the gateway
// (HTTP client, gateway, runtime, warm instance) on each path; allocs/op
// counts the whole process: client, gateway and runtime.
func BenchmarkHello_InProcessVsGRPC(b *testing.B) {
	m, bins := stackFromDir(b, "../examples/hello")
	for _, tc := range []struct {
		name    string
		viaGRPC bool
	}{{"in_process", false}, {"grpc", true}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := Start(context.Background(), Options{DataDir: b.TempDir(), Runtime: &RuntimeOptions{},
				Gateway: &GatewayOptions{ViaGRPC: tc.viaGRPC}})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			id, _, _ := ids.NewStackID()
			if err := r.Deploy(context.Background(), id, 1, m, bins); err != nil {
				b.Fatal(err)
			}
			url := "http://" + r.Gateway().Addr() + "/" + id.String() + "/greeting/greet/bench"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			call := func() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for range 100 { // warm: connections, instance, caches
				call()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				call()
			}
			b.StopTimer()
		})
	}
}
