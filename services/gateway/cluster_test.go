package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/placement"
	"github.com/muprotocol/mu/libs/usage"
	gatewayv1 "github.com/muprotocol/mu/proto/mu/gateway/v1"
	"github.com/muprotocol/mu/services/gateway"
)

// testRegion is the region of the clustered gateways and their runtimes.
var testRegion = func() string {
	id, _, err := ids.NewStackID() // any 32 bytes in base58
	if err != nil {
		panic(err)
	}
	return id.String()
}()

// clusterHarness is a clustered gateway (its own resolver over the member
// list) and the runtime members the test starts beside it.
type clusterHarness struct {
	*harness
	admin  gatewayv1.GatewayServiceClient
	stacks []ids.StackID // installed, in id order
}

func newClusterHarness(t *testing.T, stacks int, opts ...harnessOpt) *clusterHarness {
	t.Helper()
	sink := usage.NewMemory()
	cfg := testConfig()
	cfg.RegionID = testRegion
	cfg.Cluster.BindAddr = "127.0.0.1:0"
	cfg.Cluster.Plaintext = true // one machine
	deps := gateway.Deps{Usage: sink, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := gateway.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.ClusterAddr() == "" {
		t.Fatal("no ClusterAddr after Start")
	}
	ch := &clusterHarness{harness: &harness{t: t, srv: srv, sink: sink, base: "http://" + srv.Addr()}}
	ch.admin = gatewayv1.NewGatewayServiceClient(adminConn(t, ch.harness))
	m, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	for range stacks {
		id, _, err := ids.NewStackID()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.PutStack(id, m, 1); err != nil {
			t.Fatal(err)
		}
		ch.stacks = append(ch.stacks, id)
	}
	slices.SortFunc(ch.stacks, func(a, b ids.StackID) int { return bytes.Compare(a[:], b[:]) })
	return ch
}

func (ch *clusterHarness) stackURL(id ids.StackID, path string) string {
	return ch.base + "/" + id.String() + "/" + path
}

// runtimeMember is a fake runtime with its own member of the list.
type runtimeMember struct {
	*fakeRuntime
	list *membership.List
	node placement.Node // as the test computes it
}

func memberConfig(join string) membership.Config {
	cfg := membership.DefaultConfig()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Plaintext = true // one machine
	cfg.Join = []string{join}
	return cfg
}

// joinRuntime starts a fake runtime and a runtime member for it in the
// test region, joined through the gateway.
func (ch *clusterHarness) joinRuntime(name string) *runtimeMember {
	t := ch.t
	t.Helper()
	f := startRuntime(t)
	_, portText, _ := net.SplitHostPort(f.addr)
	port, _ := strconv.Atoi(portText)
	l, err := membership.Start(memberConfig(ch.srv.ClusterAddr()), membership.Options{
		NodeName: name, Role: membership.RoleRuntime, Region: testRegion, GRPCPort: port, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	local := l.Local()
	if local.Meta.GRPCAddr != f.addr {
		t.Fatalf("member advertises %s, the runtime listens on %s", local.Meta.GRPCAddr, f.addr)
	}
	// The node id from its parts (design section 5), independently of
	// the gateway's placement.NodeIDOf.
	ap := netip.MustParseAddrPort(local.Meta.GRPCAddr)
	id := placement.NewNodeID(ap.Addr(), ap.Port(), local.Meta.Generation)
	return &runtimeMember{fakeRuntime: f, list: l, node: placement.Node{ID: id, Name: local.Name, Addr: f.addr}}
}

// ring is the placement the test expects from members, computed without
// the gateway.
func ring(members ...*runtimeMember) *placement.Ring {
	r := placement.NewRing()
	for _, m := range members {
		r.Add(m.node)
	}
	return r
}

func ownerOf(r *placement.Ring, id ids.StackID) placement.Node {
	n, _ := r.Owner(placement.Key(id))
	return n
}

func (ch *clusterHarness) status() *gatewayv1.StatusResponse {
	ch.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := ch.admin.Status(ctx, &gatewayv1.StatusRequest{})
	if err != nil {
		ch.t.Fatalf("Status: %v", err)
	}
	return st
}

// waitRuntimes waits until the gateway places stacks on exactly members.
func (ch *clusterHarness) waitRuntimes(members ...*runtimeMember) {
	ch.t.Helper()
	want := make([]string, len(members))
	for i, m := range members {
		want[i] = m.node.Name
	}
	slices.Sort(want)
	var got []string
	eventually(ch.t, "the gateway places stacks on "+strings.Join(want, ", "), func() bool {
		got = got[:0]
		for _, m := range ch.placement(nil, 0).GetMembers() {
			got = append(got, m.GetName())
		}
		return slices.Equal(got, want)
	})
}

func (ch *clusterHarness) placement(stacks []ids.StackID, pageSize uint32) *gatewayv1.PlacementResponse {
	ch.t.Helper()
	req := &gatewayv1.PlacementRequest{PageSize: pageSize}
	for _, id := range stacks {
		req.StackIds = append(req.StackIds, id.Bytes())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := ch.admin.Placement(ctx, req)
	if err != nil {
		ch.t.Fatalf("Placement: %v", err)
	}
	return resp
}

// wantPlacement checks the Placement RPC against the ring the test
// computes: every stack's owner and candidates, every member's stacks.
func (ch *clusterHarness) wantPlacement(members ...*runtimeMember) {
	t := ch.t
	t.Helper()
	r := ring(members...)
	resp := ch.placement(nil, 0)
	if resp.GetMode() != gatewayv1.PlacementMode_PLACEMENT_MODE_CLUSTER {
		t.Errorf("mode = %v", resp.GetMode())
	}
	if len(resp.GetStacks()) != len(ch.stacks) || resp.GetNextPageToken() != "" {
		t.Fatalf("%d stacks (next %q), want all %d on one page", len(resp.GetStacks()), resp.GetNextPageToken(), len(ch.stacks))
	}
	owned := map[string]int{}
	for i, sp := range resp.GetStacks() {
		id := ch.stacks[i]
		if !bytes.Equal(sp.GetStackId(), id[:]) || !sp.GetServed() {
			t.Fatalf("stack %d = %x served %v, want %s in id order", i, sp.GetStackId(), sp.GetServed(), id)
		}
		want := r.Candidates(placement.Key(id), 3, nil)
		var got []string
		for _, c := range sp.GetCandidates() {
			got = append(got, c.GetName()+"/"+c.GetNodeId())
		}
		var wantNames []string
		for _, n := range want {
			wantNames = append(wantNames, n.Name+"/"+n.ID.String())
		}
		if !slices.Equal(got, wantNames) {
			t.Errorf("stack %s candidates %v, want %v", id, got, wantNames)
		}
		if sp.GetOwner().GetName() != want[0].Name || sp.GetOwner().GetNodeId() != want[0].ID.String() {
			t.Errorf("stack %s owner %v, want %s", id, sp.GetOwner(), want[0].Name)
		}
		owned[want[0].Name]++
	}
	var share float64
	for _, m := range resp.GetMembers() {
		var rm *runtimeMember
		for _, x := range members {
			if x.node.Name == m.GetName() {
				rm = x
			}
		}
		if rm == nil {
			t.Fatalf("member %s is not one of the runtimes", m.GetName())
		}
		if m.GetNodeId() != rm.node.ID.String() || m.GetGrpcAddr() != rm.addr || m.GetGeneration() != rm.list.Local().Meta.Generation {
			t.Errorf("member %v, want id %s addr %s", m, rm.node.ID, rm.addr)
		}
		if int(m.GetOwnedStacks()) != owned[m.GetName()] {
			t.Errorf("member %s owns %d stacks, want %d", m.GetName(), m.GetOwnedStacks(), owned[m.GetName()])
		}
		if want := r.Share(rm.node.ID); m.GetShare() != want {
			t.Errorf("member %s share %v, want %v", m.GetName(), m.GetShare(), want)
		}
		share += m.GetShare()
	}
	if len(resp.GetMembers()) != len(members) || share < 0.999 || share > 1.001 {
		t.Errorf("%d members with shares summing to %v, want %d summing to 1", len(resp.GetMembers()), share, len(members))
	}
}

// served returns, per fake, the stacks whose calls it received.
func callsByStack(rts ...*runtimeMember) map[ids.StackID][]string {
	out := map[ids.StackID][]string{}
	for _, rt := range rts {
		rt.mu.Lock()
		for _, c := range rt.calls {
			id, _ := ids.StackIDFromBytes(c.GetStackId())
			out[id] = append(out[id], rt.node.Name)
		}
		rt.mu.Unlock()
	}
	return out
}

func TestCluster_RoutesEachStackToItsOwner(t *testing.T) {
	ch := newClusterHarness(t, 16)
	rts := []*runtimeMember{ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b"), ch.joinRuntime("rt-c")}
	// Another gateway is a member too, and never gets stacks.
	other, err := membership.Start(memberConfig(ch.srv.ClusterAddr()), membership.Options{
		NodeName: "gw-2", Role: membership.RoleGateway, Region: testRegion, GRPCPort: 1, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	ch.waitRuntimes(rts...)
	eventually(t, "5 members", func() bool { return ch.status().GetClusterMembers() == 5 })

	r := ring(rts...)
	for _, id := range ch.stacks {
		resp, body := ch.do("GET", ch.stackURL(id, "web/todos"), nil, nil)
		if resp.StatusCode != 200 || string(body) != "api.list" {
			t.Fatalf("stack %s: %d %s", id, resp.StatusCode, body)
		}
	}
	got := callsByStack(rts...)
	for _, id := range ch.stacks {
		if want := ownerOf(r, id).Name; !slices.Equal(got[id], []string{want}) {
			t.Errorf("stack %s was served by %v, want its owner %s alone", id, got[id], want)
		}
	}
	if n := totalRetries(ch.harness); n != 0 {
		t.Errorf("retries = %v with every runtime up", n)
	}
	ch.wantPlacement(rts...)

	st := ch.status()
	if st.GetClusterMembers() != 5 || st.GetClusterRuntimes() != 3 || st.GetClusterAddr() != ch.srv.ClusterAddr() {
		t.Errorf("Status cluster fields = %d members, %d runtimes, addr %q; want 5, 3, %q",
			st.GetClusterMembers(), st.GetClusterRuntimes(), st.GetClusterAddr(), ch.srv.ClusterAddr())
	}
	if v := ch.metric("mu_gateway_cluster_runtimes"); v != 3 {
		t.Errorf("mu_gateway_cluster_runtimes = %v", v)
	}
	if v := ch.metric("mu_gateway_cluster_members"); v != 5 {
		t.Errorf("mu_gateway_cluster_members = %v", v)
	}
}

func TestCluster_PlacementPagesAndFilters(t *testing.T) {
	ch := newClusterHarness(t, 11)
	rts := []*runtimeMember{ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b")}
	ch.waitRuntimes(rts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var got []ids.StackID
	req := &gatewayv1.PlacementRequest{PageSize: 4}
	pages := 0
	for {
		resp, err := ch.admin.Placement(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(resp.GetMembers()) != 2 {
			t.Errorf("page %d lists %d members, want 2 on every page", pages, len(resp.GetMembers()))
		}
		for _, sp := range resp.GetStacks() {
			id, _ := ids.StackIDFromBytes(sp.GetStackId())
			got = append(got, id)
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if pages != 3 || !slices.Equal(got, ch.stacks) {
		t.Fatalf("%d pages listing %d stacks, want 3 pages listing all %d in order", pages, len(got), len(ch.stacks))
	}

	// A filter, with a stack the gateway does not serve: placed all the same.
	stranger, _, _ := ids.NewStackID()
	resp := ch.placement([]ids.StackID{ch.stacks[3], stranger, ch.stacks[3]}, 0)
	if len(resp.GetStacks()) != 2 {
		t.Fatalf("filter of 2 distinct stacks gave %d", len(resp.GetStacks()))
	}
	r := ring(rts...)
	for _, sp := range resp.GetStacks() {
		id, _ := ids.StackIDFromBytes(sp.GetStackId())
		if sp.GetServed() != (id == ch.stacks[3]) {
			t.Errorf("stack %s served = %v", id, sp.GetServed())
		}
		if want := ownerOf(r, id); sp.GetOwner().GetNodeId() != want.ID.String() {
			t.Errorf("stack %s owner %v, want %s", id, sp.GetOwner(), want.Name)
		}
		if len(sp.GetCandidates()) != 2 {
			t.Errorf("stack %s has %d candidates, want both runtimes", id, len(sp.GetCandidates()))
		}
	}

	for _, bad := range []*gatewayv1.PlacementRequest{
		{StackIds: [][]byte{{1, 2, 3}}},
		{PageToken: "not-a-token"},
	} {
		if _, err := ch.admin.Placement(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Placement(%v) = %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}

func TestCluster_NoRuntimeYetGets503(t *testing.T) {
	ch := newClusterHarness(t, 1)
	resp, body := ch.do("GET", ch.stackURL(ch.stacks[0], "web/todos"), nil, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
	}
	sp := ch.placement(nil, 0).GetStacks()[0]
	if sp.GetOwner() != nil || len(sp.GetCandidates()) != 0 {
		t.Errorf("placement with no runtime: %v", sp)
	}
}

// TestCluster_KilledOwnerCostsNoFailedIdempotentRequest kills a runtime's
// gRPC server while its member stays in the list (the window before the
// list declares it dead): GETs of its stacks succeed on the next
// candidate, POSTs get 503 with Retry-After. Then its member dies without
// a leave: once the list notices, its stacks move to exactly those next
// candidates, and no request needs a retry any more.
func TestCluster_KilledOwnerCostsNoFailedIdempotentRequest(t *testing.T) {
	ch := newClusterHarness(t, 24)
	rts := []*runtimeMember{ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b"), ch.joinRuntime("rt-c")}
	ch.waitRuntimes(rts...)
	r := ring(rts...)
	victim := rts[0]
	var theirs []ids.StackID
	for _, id := range ch.stacks {
		if ownerOf(r, id).ID == victim.node.ID {
			theirs = append(theirs, id)
		}
	}
	if len(theirs) == 0 {
		t.Skip("the victim owns none of the stacks") // 1 in 3^24
	}
	changes := ch.metric("mu_gateway_owner_changes_total")

	victim.kill()
	for _, id := range theirs {
		resp, body := ch.do("GET", ch.stackURL(id, "web/todos"), nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET of stack %s with its owner down: %d %s", id, resp.StatusCode, body)
		}
		resp, body = ch.do("POST", ch.stackURL(id, "web/todos"), strings.NewReader("x"), nil)
		wantError(t, resp, body, http.StatusServiceUnavailable, gateway.KindRuntimeUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if got := retries(ch.harness, "GET"); got != float64(len(theirs)) {
		t.Errorf("GET retries = %v, want one per stack of the victim: %d", got, len(theirs))
	}
	got := callsByStack(rts...)
	for _, id := range theirs {
		next := r.Candidates(placement.Key(id), 2, nil)[1].Name
		if !slices.Equal(got[id], []string{next}) {
			t.Errorf("stack %s was served by %v, want the next candidate %s alone (no POST anywhere)", id, got[id], next)
		}
	}

	// The node dies for good (no leave): the list removes it.
	victim.list.Close()
	ch.waitRuntimes(rts[1:]...)
	if d := ch.metric("mu_gateway_owner_changes_total") - changes; d != float64(len(theirs)) {
		t.Errorf("owner changes = %v, want the victim's %d stacks", d, len(theirs))
	}
	ch.wantPlacement(rts[1:]...)
	before := retries(ch.harness, "GET")
	for _, id := range theirs {
		if resp, body := ch.do("GET", ch.stackURL(id, "web/todos"), nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET of stack %s after failover: %d %s", id, resp.StatusCode, body)
		}
	}
	if d := retries(ch.harness, "GET") - before; d != 0 {
		t.Errorf("%v retries after the dead node left the ring", d)
	}
}

func TestCluster_LeaveAndJoinMoveExactlyTheAffectedStacks(t *testing.T) {
	ch := newClusterHarness(t, 32)
	a, b := ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b")
	ch.waitRuntimes(a, b)
	ch.wantPlacement(a, b)
	changes := ch.metric("mu_gateway_owner_changes_total")

	// b leaves gracefully: exactly its stacks move, all to a.
	owned := 0
	for _, id := range ch.stacks {
		if ownerOf(ring(a, b), id).ID == b.node.ID {
			owned++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.list.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	b.list.Close()
	ch.waitRuntimes(a)
	if d := ch.metric("mu_gateway_owner_changes_total") - changes; d != float64(owned) {
		t.Errorf("leave: owner changes = %v, want b's %d stacks", d, owned)
	}
	ch.wantPlacement(a)
	changes = ch.metric("mu_gateway_owner_changes_total")

	// c joins: exactly the stacks closer to c than to a move.
	c := ch.joinRuntime("rt-c")
	moved := 0
	for _, id := range ch.stacks {
		if ownerOf(ring(a, c), id).ID == c.node.ID {
			moved++
		}
	}
	ch.waitRuntimes(a, c)
	if d := ch.metric("mu_gateway_owner_changes_total") - changes; d != float64(moved) {
		t.Errorf("join: owner changes = %v, want the %d stacks now closest to c", d, moved)
	}
	ch.wantPlacement(a, c)

	// Stacks installed and removed while clustered are placed too, and
	// removed ones no longer count.
	changes = ch.metric("mu_gateway_owner_changes_total")
	ch.srv.RemoveStack(ch.stacks[0])
	ch.stacks = ch.stacks[1:]
	d := ch.joinRuntime("rt-d")
	moved = 0
	for _, id := range ch.stacks {
		if ownerOf(ring(a, c, d), id).ID == d.node.ID {
			moved++
		}
	}
	ch.waitRuntimes(a, c, d)
	if got := ch.metric("mu_gateway_owner_changes_total") - changes; got != float64(moved) {
		t.Errorf("join after a removal: owner changes = %v, want %d", got, moved)
	}
	ch.wantPlacement(a, c, d)
	for _, id := range ch.stacks {
		if resp, body := ch.do("GET", ch.stackURL(id, "web/todos"), nil, nil); resp.StatusCode != 200 {
			t.Fatalf("stack %s: %d %s", id, resp.StatusCode, body)
		}
	}
	got := callsByStack(a, c, d)
	r := ring(a, c, d)
	for _, id := range ch.stacks {
		if want := ownerOf(r, id).Name; !slices.Equal(got[id], []string{want}) {
			t.Errorf("stack %s was served by %v, want %s", id, got[id], want)
		}
	}
}

func TestCluster_CloseLeavesTheList(t *testing.T) {
	ch := newClusterHarness(t, 0)
	a := ch.joinRuntime("rt-a")
	ch.waitRuntimes(a)
	eventually(t, "the runtime sees the gateway", func() bool { return len(a.list.Members()) == 2 })
	if err := ch.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if ch.srv.ClusterAddr() == "" {
		t.Error("ClusterAddr forgot the address after Close")
	}
	eventually(t, "the runtime sees the gateway go", func() bool { return len(a.list.Members()) == 1 })
	if err := ch.srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestGateway_PlacementInStaticMode(t *testing.T) {
	h := newHarness(t)
	c := gatewayv1.NewGatewayServiceClient(adminConn(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Placement(ctx, &gatewayv1.PlacementRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMode() != gatewayv1.PlacementMode_PLACEMENT_MODE_STATIC || len(resp.GetMembers()) != 1 {
		t.Fatalf("static placement: %v", resp)
	}
	m := resp.GetMembers()[0]
	if m.GetName() != gateway.StaticNode || m.GetNodeId() != "" || m.GetGrpcAddr() != h.rt.addr || m.GetOwnedStacks() != 1 || m.GetShare() != 1 {
		t.Errorf("static member = %v", m)
	}
	if len(resp.GetStacks()) != 1 {
		t.Fatalf("stacks = %v", resp.GetStacks())
	}
	sp := resp.GetStacks()[0]
	if !bytes.Equal(sp.GetStackId(), h.stack[:]) || !sp.GetServed() || sp.GetOwner().GetName() != gateway.StaticNode ||
		len(sp.GetCandidates()) != 1 || sp.GetCandidates()[0].GetNodeId() != "" {
		t.Errorf("static stack placement = %v", sp)
	}
	st, err := c.Status(ctx, &gatewayv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetClusterMembers() != 0 || st.GetClusterRuntimes() != 0 || st.GetClusterAddr() != "" || h.srv.ClusterAddr() != "" {
		t.Errorf("static gateway reports cluster %d %d %q %q", st.GetClusterMembers(), st.GetClusterRuntimes(), st.GetClusterAddr(), h.srv.ClusterAddr())
	}
}

func TestCluster_BadMemberListSettingsFailStart(t *testing.T) {
	cfg := testConfig()
	cfg.RegionID = testRegion
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the gossip port is taken
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.Cluster.BindAddr = ln.Addr().String()
	cfg.Cluster.Plaintext = true
	srv, err := gateway.New(cfg, gateway.Deps{Usage: usage.Discard{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a taken gossip port: %v", err)
	}
}

// TestCluster_KillUnderLoadFailsNoIdempotentRequest kills a runtime the
// way kill -9 does (its gRPC connections cut and its member gone without
// a leave, at once) while clients send GETs to every stack: none fails.
// It logs how long the gateway took to drop the dead node from its ring
// (from then on no request needs a retry).
func TestCluster_KillUnderLoadFailsNoIdempotentRequest(t *testing.T) {
	ch := newClusterHarness(t, 12)
	rts := []*runtimeMember{ch.joinRuntime("rt-a"), ch.joinRuntime("rt-b"), ch.joinRuntime("rt-c")}
	ch.waitRuntimes(rts...)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, bad  int
		failures []string
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				id := ch.stacks[i%len(ch.stacks)]
				resp, err := client.Get(ch.stackURL(id, "web/todos"))
				mu.Lock()
				switch {
				case err != nil:
					bad++
					failures = append(failures, err.Error())
				case resp.StatusCode != 200:
					bad++
					failures = append(failures, id.String()+": "+resp.Status)
				default:
					ok++
				}
				mu.Unlock()
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	victim := rts[1]
	killed := time.Now()
	victim.kill()
	victim.list.Close()
	ch.waitRuntimes(rts[0], rts[2])
	recovered := time.Since(killed)
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%d GETs, %d failed; %v retries; the dead node left the gateway's ring %v after the kill",
		ok+bad, bad, retries(ch.harness, "GET"), recovered.Round(10*time.Millisecond))
	if bad > 0 || ok == 0 {
		t.Fatalf("%d of %d GETs failed: %v", bad, ok+bad, failures[:min(len(failures), 5)])
	}
}
