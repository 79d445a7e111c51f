package region

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/placement"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

// clusterStacks are the stacks the cluster test posts: many hello stacks
// (the spread) and a few todo stacks (POSTs, tables and boxes).
const (
	clusterHelloStacks = 200
	clusterTodoStacks  = 4
)

// fullServiceBound is the goal: after a kill -9, the region is
// back to full service within this time.
const fullServiceBound = 5 * time.Second

// TestCluster_SpreadKillJoinAndGracefulStop runs a region of separate
// processes in both topologies — split: a gateway, three runtimes, muDB
// and storage; executors: three mu-executors (gateway and runtime in one
// process each) using one muDB and one storage process — with the ledger
// and the chain-indexer in the test, 200 hello stacks and 4 todo stacks,
// and checks, in turn: every stack is owned by exactly the runtime
// placement names, with a spread that matches each node's share of the
// key space; kill -9 of the busiest owner under a load of GETs (through a
// gateway that is not killed with it) fails no GET and the region is back
// to full service within 5 s; a node that joins under a load of GETs and
// POSTs takes over exactly the stacks now closest to it and fails no
// request; a graceful stop under a load of GETs and POSTs fails no
// request.
func TestCluster_SpreadKillJoinAndGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service commands")
	}
	runtimeConfig := func(c *runtime.Config) {
		c.ChainDeployWorkers = 4
		c.ReleaseGrace = 2 * time.Second
	}
	gatewayConfig := func(c *gateway.Config) { c.InvokeTimeout = 30 * time.Second }
	t.Run("split", func(t *testing.T) {
		clusterScenario(t, func(o *Options) {
			o.Runtime = &RuntimeOptions{
				Nodes:  3,
				Name:   func(i int) string { return fmt.Sprintf("runtime-%d", i+1) },
				Config: func(_ int, c *runtime.Config) { runtimeConfig(c) },
			}
			o.Gateway = &GatewayOptions{Config: gatewayConfig}
		}, func(ctx context.Context, r *Region) (*RuntimeNode, error) { return r.AddRuntime(ctx) })
	})
	t.Run("executors", func(t *testing.T) {
		clusterScenario(t, func(o *Options) {
			o.Executors = &ExecutorOptions{Nodes: 3, Config: func(_ int, c *ExecutorConfig) {
				runtimeConfig(&c.Runtime)
				gatewayConfig(&c.Gateway)
			}}
		}, func(ctx context.Context, r *Region) (*RuntimeNode, error) {
			n, err := r.AddExecutor(ctx)
			if err != nil {
				return nil, err
			}
			return n.Runtime(), nil
		})
	})
}

// clusterScenario is TestCluster_SpreadKillJoinAndGracefulStop on the
// topology that nodes adds to the region's options; add starts one more
// runtime node.
func clusterScenario(t *testing.T, nodes func(o *Options), add func(context.Context, *Region) (*RuntimeNode, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	// The processes' logs outlive a failed run (or any, with
	// MU_TEST_KEEP_LOGS set), for reading.
	logDir, err := os.MkdirTemp("", "mu-cluster-test-logs-")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Mode:    Processes,
		DataDir: t.TempDir(),
		Mudb:    &MudbOptions{},
		Storage: &StorageOptions{},
		Ledger:  &LedgerOptions{},
		Cluster: &ClusterOptions{},
		Process: ProcessOptions{RepoDir: repo, LogDir: logDir, StopTimeout: 30 * time.Second},
	}
	nodes(&opts)
	r, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if t.Failed() || os.Getenv("MU_TEST_KEEP_LOGS") != "" {
			t.Logf("process logs are in %s", logDir)
		} else {
			os.RemoveAll(logDir)
		}
	})

	// Post the stacks and wait until each is served by its owner.
	hello, helloBins := stackFromDir(t, "../examples/hello")
	todo, todoBins := stackFromDir(t, "../examples/todo")
	dev := r.Market().Keys.Developer
	var helloIDs, todoIDs []ids.StackID
	revs := map[ids.StackID]uint64{}
	for i := range clusterHelloStacks + clusterTodoStacks {
		m, bins := hello, helloBins
		if i >= clusterHelloStacks {
			m, bins = todo, todoBins
		}
		st, err := r.Post(ctx, dev, uint64(i+1), m, bins)
		if err != nil {
			t.Fatalf("post stack %d: %v", i, err)
		}
		id := ids.StackID(st.ID)
		revs[id] = st.Revision
		if i < clusterHelloStacks {
			helloIDs = append(helloIDs, id)
		} else {
			todoIDs = append(todoIDs, id)
		}
	}
	start := time.Now()
	for id, rev := range revs {
		if err := r.WaitServed(ctx, id, rev); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d stacks served by their owners %s after they were posted", len(revs), time.Since(start).Round(time.Millisecond))
	all := append(append([]ids.StackID(nil), helloIDs...), todoIDs...)

	// Spread: each stack is owned by the node placement names, and each
	// node's count is within binomial bounds of its share of the key space.
	live := r.Runtimes()
	view := checkPlacement(ctx, t, r, live, all)
	for _, n := range live {
		p := view.ring.Share(view.ids[n.Name()])
		got := len(view.owned[n.Name()])
		mean := p * float64(len(all))
		sd := math.Sqrt(float64(len(all)) * p * (1 - p))
		t.Logf("%s owns %d stacks; its share of the key space is %.3f (expected %.1f ± %.1f)", n.Name(), got, p, mean, sd)
		if math.Abs(float64(got)-mean) > 4*sd+1 {
			t.Errorf("%s owns %d of %d stacks, expected %.1f ± %.1f from its share %.3f", n.Name(), got, len(all), mean, sd, p)
		}
	}

	// The load goes through a gateway that the node stopped does not take
	// down with it (executors: another executor's).
	gets := func(g *GatewayNode) []string {
		var out []string
		for _, id := range helloIDs {
			out = append(out, "http://"+g.Addr()+"/"+id.String()+"/greeting/greet/cluster")
		}
		for _, id := range todoIDs {
			out = append(out, "http://"+g.Addr()+"/"+id.String()+"/todo/")
		}
		return out
	}

	// kill -9 of the busiest owner under a load of GETs.
	t.Run("KillOwnerUnderLoad", func(t *testing.T) {
		victim := live[0]
		for _, n := range live {
			if len(view.owned[n.Name()]) > len(view.owned[victim.Name()]) {
				victim = n
			}
		}
		front := frontGateway(t, r, victim)
		retriesBefore := gatewayCounter(t, front, "mu_gateway_invoke_retries_total")
		l := startLoad(t, 8, gets(front), nil)
		time.Sleep(time.Second)
		killed := time.Now()
		if err := victim.Process().Kill(); err != nil {
			t.Fatal(err)
		}
		rest := without(live, victim)
		elapsed := waitFullService(ctx, t, r, rest, all, killed)
		time.Sleep(time.Second)
		ok, failed, fails := l.stop()
		retries := gatewayCounter(t, front, "mu_gateway_invoke_retries_total") - retriesBefore
		t.Logf("through %s: killed %s (owner of %d stacks): back to full service in %s; %d GETs served, %d failed, %.0f retried on the next candidate",
			front.Name(), victim.Name(), len(view.owned[victim.Name()]), elapsed.Round(time.Millisecond), ok, failed, retries)
		if failed > 0 {
			t.Errorf("%d GETs failed during the kill, first: %v", failed, fails)
		}
		if elapsed > fullServiceBound {
			t.Errorf("full service took %s after the kill, the goal is %s", elapsed, fullServiceBound)
		}
		if retries == 0 {
			t.Error("no request was retried: the load never reached the killed owner")
		}
		live = rest
	})

	// A node that joins takes over exactly the stacks now closest to it.
	t.Run("JoinTakesOverTheClosestStacks", func(t *testing.T) {
		before := checkPlacement(ctx, t, r, live, all)
		front := frontGateway(t, r, nil)
		var posts []string
		for _, id := range todoIDs {
			posts = append(posts, "http://"+front.Addr()+"/"+id.String()+"/todo/")
		}
		l := startLoad(t, 8, gets(front), posts)
		n, err := add(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, n)
		after := waitPlacement(ctx, t, r, live, all)
		waitDeployedByOwners(ctx, t, live, all)
		ok, failed, fails := l.stop()
		t.Logf("join under load: %d requests served, %d failed", ok, failed)
		if failed > 0 {
			t.Errorf("%d requests failed while a node joined, first: %v", failed, fails)
		}
		moved := map[ids.StackID]bool{}
		for _, id := range all {
			if after.owner[id] != before.owner[id] {
				moved[id] = true
				if after.owner[id] != n.Name() {
					t.Errorf("stack %s moved from %s to %s, not to the new node %s", id, before.owner[id], after.owner[id], n.Name())
				}
			}
		}
		// Exactly the stacks closest to the new node moved to it.
		for _, id := range all {
			closest, _ := after.ring.Owner(placement.Key(id))
			if (closest.ID == after.ids[n.Name()]) != moved[id] {
				t.Errorf("stack %s: closest to the new node %v, moved %v", id, closest.ID == after.ids[n.Name()], moved[id])
			}
		}
		t.Logf("%s joined and took over %d stacks (share %.3f)", n.Name(), len(moved), after.ring.Share(after.ids[n.Name()]))
	})

	// A graceful stop under a load of GETs and POSTs fails no request.
	t.Run("GracefulStopUnderLoad", func(t *testing.T) {
		view := checkPlacement(ctx, t, r, live, all)
		// Stop the owner of a todo stack, so POSTs go to it.
		victim := live[0]
		for _, n := range live {
			if slices.Contains(view.owned[n.Name()], todoIDs[0]) {
				victim = n
			}
		}
		front := frontGateway(t, r, victim)
		posts := []string{"http://" + front.Addr() + "/" + todoIDs[0].String() + "/todo/"}
		l := startLoad(t, 8, gets(front), posts)
		time.Sleep(time.Second)
		stopped := time.Now()
		if err := victim.Process().Stop(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s stopped gracefully in %s", victim.Name(), time.Since(stopped).Round(time.Millisecond))
		rest := without(live, victim)
		waitFullService(ctx, t, r, rest, all, stopped)
		time.Sleep(time.Second)
		ok, failed, fails := l.stop()
		t.Logf("graceful stop of %s: %d requests served, %d failed", victim.Name(), ok, failed)
		if failed > 0 {
			t.Errorf("%d requests failed during the graceful stop, first: %v", failed, fails)
		}
		live = rest
	})
}

// placementView is who owns what, as the runtimes report it.
type placementView struct {
	ring  *placement.Ring
	ids   map[string]placement.NodeID // runtime name → id
	owned map[string][]ids.StackID    // runtime name → stacks it owns
	owner map[ids.StackID]string      // stack → runtime name
	names map[placement.NodeID]string // id → runtime name
}

// readPlacement asks each runtime for its status and checks that the ids
// they report are the SHA-256 of their advertised addresses and
// generations.
func readPlacement(ctx context.Context, nodes []*RuntimeNode) (*placementView, error) {
	v := &placementView{ring: placement.NewRing(), ids: map[string]placement.NodeID{}, owned: map[string][]ids.StackID{},
		owner: map[ids.StackID]string{}, names: map[placement.NodeID]string{}}
	for _, n := range nodes {
		st, err := n.Client().Status(ctx, &runtimev1.StatusRequest{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name(), err)
		}
		id, err := placement.NodeIDOf(st.GetGrpcAddr(), st.GetGeneration())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name(), err)
		}
		if id.String() != st.GetNodeId() {
			return nil, fmt.Errorf("%s reports node id %s, but SHA-256 of %s and generation %d is %s", n.Name(), st.GetNodeId(), st.GetGrpcAddr(), st.GetGeneration(), id)
		}
		v.ids[n.Name()], v.names[id] = id, n.Name()
		v.ring.Add(placement.Node{ID: id, Name: n.Name(), Addr: st.GetGrpcAddr()})
		if len(st.GetMembers()) != len(nodes) {
			return nil, fmt.Errorf("%s sees %d members, want %d", n.Name(), len(st.GetMembers()), len(nodes))
		}
		for _, b := range st.GetOwnedStackIds() {
			sid, err := ids.StackIDFromBytes(b)
			if err != nil {
				return nil, err
			}
			if prev, dup := v.owner[sid]; dup {
				return nil, fmt.Errorf("stack %s owned by both %s and %s", sid, prev, n.Name())
			}
			v.owner[sid] = n.Name()
			v.owned[n.Name()] = append(v.owned[n.Name()], sid)
		}
	}
	return v, nil
}

// mismatch reports the first stack whose reported owner is not the node
// placement computes.
func (v *placementView) mismatch(stacks []ids.StackID) error {
	for _, id := range stacks {
		want, _ := v.ring.Owner(placement.Key(id))
		if got := v.owner[id]; got != v.names[want.ID] {
			return fmt.Errorf("stack %s is owned by %q by the runtimes' account, placement says %s", id, got, v.names[want.ID])
		}
	}
	return nil
}

// gatewayAgrees reports the first stack whose owner on a running
// gateway's admin API (GatewayService.Placement, every page) is not the
// one the runtimes report.
func (v *placementView) gatewayAgrees(ctx context.Context, r *Region, stacks []ids.StackID) error {
	for _, g := range liveGateways(r) {
		if err := v.gatewayNodeAgrees(ctx, g, stacks); err != nil {
			return fmt.Errorf("%s: %w", g.Name(), err)
		}
	}
	return nil
}

func (v *placementView) gatewayNodeAgrees(ctx context.Context, g *GatewayNode, stacks []ids.StackID) error {
	owners := map[ids.StackID]string{}
	token := ""
	for {
		resp, err := g.Client().Placement(ctx, &gatewayv1.PlacementRequest{PageSize: 50, PageToken: token})
		if err != nil {
			return err
		}
		if len(resp.GetMembers()) != len(v.ids) {
			return fmt.Errorf("the gateway places stacks on %d runtimes, want %d", len(resp.GetMembers()), len(v.ids))
		}
		for _, sp := range resp.GetStacks() {
			id, err := ids.StackIDFromBytes(sp.GetStackId())
			if err != nil {
				return err
			}
			owners[id] = sp.GetOwner().GetNodeId()
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	for _, id := range stacks {
		want := v.ids[v.owner[id]].String()
		if owners[id] != want {
			return fmt.Errorf("stack %s: the gateway says node %q owns it, the runtimes say %s (%s)", id, owners[id], v.owner[id], want)
		}
	}
	return nil
}

// checkPlacement reads the placement and fails the test unless it is
// what placement computes from the nodes' ids, on the runtimes and on the
// gateway.
func checkPlacement(ctx context.Context, t *testing.T, r *Region, nodes []*RuntimeNode, stacks []ids.StackID) *placementView {
	t.Helper()
	v, err := readPlacement(ctx, nodes)
	if err == nil {
		err = v.mismatch(stacks)
	}
	if err == nil {
		err = v.gatewayAgrees(ctx, r, stacks)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitPlacement waits until the runtimes agree with placement.
func waitPlacement(ctx context.Context, t *testing.T, r *Region, nodes []*RuntimeNode, stacks []ids.StackID) *placementView {
	t.Helper()
	var last error
	for range 600 {
		v, err := readPlacement(ctx, nodes)
		if err == nil {
			err = v.mismatch(stacks)
		}
		if err == nil {
			err = v.gatewayAgrees(ctx, r, stacks)
		}
		if err == nil {
			return v
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("placement did not settle: %v", last)
	return nil
}

// waitDeployedByOwners waits until every stack is deployed on its owner.
func waitDeployedByOwners(ctx context.Context, t *testing.T, nodes []*RuntimeNode, stacks []ids.StackID) {
	t.Helper()
	if err := deployedByOwners(ctx, nodes, stacks, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

func deployedByOwners(ctx context.Context, nodes []*RuntimeNode, stacks []ids.StackID, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		last = func() error {
			served := map[ids.StackID]bool{}
			for _, n := range nodes {
				st, err := n.Client().Status(ctx, &runtimev1.StatusRequest{})
				if err != nil {
					return fmt.Errorf("%s: %w", n.Name(), err)
				}
				if len(st.GetMembers()) != len(nodes) {
					return fmt.Errorf("%s sees %d members, want %d", n.Name(), len(st.GetMembers()), len(nodes))
				}
				for _, s := range st.GetStacks() {
					if s.GetOwned() {
						id, _ := ids.StackIDFromBytes(s.GetStackId())
						served[id] = true
					}
				}
			}
			for _, id := range stacks {
				if !served[id] {
					return fmt.Errorf("stack %s is not deployed on its owner", id)
				}
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// waitFullService waits until the region serves every stack from its
// owner again after a node left at since: the remaining runtimes see only
// each other, the gateway routes to them alone, and every stack is
// deployed on its owner. It returns the time from since.
func waitFullService(ctx context.Context, t *testing.T, r *Region, nodes []*RuntimeNode, stacks []ids.StackID, since time.Time) time.Duration {
	t.Helper()
	for {
		if err := deployedByOwners(ctx, nodes, stacks, time.Minute); err != nil {
			t.Fatal(err)
		}
		all := true
		for _, g := range liveGateways(r) {
			all = all && gatewayGauge(t, g, "mu_gateway_cluster_runtimes") == float64(len(nodes))
		}
		if all {
			return time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func without(nodes []*RuntimeNode, n *RuntimeNode) []*RuntimeNode {
	var out []*RuntimeNode
	for _, x := range nodes {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// loadRuns numbers the loads of a test, so their POSTs never repeat a title.
var loadRuns atomic.Int64

// load sends requests from several goroutines until stop.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	fails  []string
}

// startLoad runs workers that GET the urls in turn (every fourth request
// a POST to one of posts, when given).
func startLoad(t *testing.T, workers int, gets, posts []string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	run := loadRuns.Add(1)
	client := &http.Client{Timeout: 60 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i += workers {
				method, url, body := http.MethodGet, gets[i%len(gets)], ""
				if len(posts) > 0 && i%4 == 0 {
					method, url = http.MethodPost, posts[i%len(posts)]
					body = fmt.Sprintf(`{"title":"t-%d-%d-%d","done":false}`, run, w, i) // unique across loads: a repeat is a 409
				}
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				req.Header.Set("x-user-id", "cluster-test")
				resp, err := client.Do(req)
				if err != nil {
					l.fail(fmt.Sprintf("%s %s: %v", method, url, err))
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					l.fail(fmt.Sprintf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(b))))
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.fails) < 5 {
		l.fails = append(l.fails, msg)
	}
	l.mu.Unlock()
}

// stop ends the load and returns what it saw.
func (l *load) stop() (ok, failed int64, fails []string) {
	l.cancel()
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.fails
}

// liveGateways are the region's gateways whose process runs.
func liveGateways(r *Region) []*GatewayNode {
	var out []*GatewayNode
	for _, g := range r.Gateways() {
		if g.Process() == nil || !exited(g.Process()) {
			out = append(out, g)
		}
	}
	return out
}

// frontGateway is a running gateway that stopping victim (nil: none) does
// not stop too: the region's own gateway, or another executor's.
func frontGateway(t *testing.T, r *Region, victim *RuntimeNode) *GatewayNode {
	t.Helper()
	for _, g := range liveGateways(r) {
		if victim == nil || g.Process() != victim.Process() {
			return g
		}
	}
	t.Fatal("no running gateway outside the node to stop")
	return nil
}

// gatewayMetric sums the samples of a metric on a gateway's /metrics.
func gatewayMetric(t *testing.T, g *GatewayNode, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func gatewayCounter(t *testing.T, g *GatewayNode, name string) float64 {
	return gatewayMetric(t, g, name)
}
func gatewayGauge(t *testing.T, g *GatewayNode, name string) float64 {
	return gatewayMetric(t, g, name)
}
