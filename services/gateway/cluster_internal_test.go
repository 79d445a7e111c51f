package gateway

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/placement"
	"github.com/muprotocol/mu/libs/usage"
)

const internalRegion = "11111111111111111111111111111111"

// newUnstartedCluster is a clustered Server that is never started: the
// tests drive its member-list callback directly.
func newUnstartedCluster(t *testing.T, stacks int, edit func(*Config)) (*Server, []ids.StackID) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.NodeName = "test"
	cfg.RegionID = internalRegion
	cfg.Cluster.BindAddr = "127.0.0.1:0"
	cfg.Cluster.Plaintext = true
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, Deps{Usage: usage.Discard{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m, err := manifest.Parse([]byte("name: T\nversion: \"1\"\nservices: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out []ids.StackID
	for range stacks {
		id, _, err := ids.NewStackID()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutStack(id, m, 1); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return s, out
}

// runtimeAt is a runtime member of the region at 127.0.0.1:port.
func runtimeAt(port int) membership.Member {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return membership.Member{
		Name: "rt-" + strconv.Itoa(port), Addr: "127.0.0.1:1",
		Meta: membership.Meta{Role: membership.RoleRuntime, Region: internalRegion, GRPCAddr: addr, Generation: int64(port), Ready: true},
	}
}

func nodeOf(m membership.Member) placement.Node {
	ap := netip.MustParseAddrPort(m.Meta.GRPCAddr)
	return placement.Node{ID: placement.NewNodeID(ap.Addr(), ap.Port(), m.Meta.Generation), Name: m.Name}
}

func owners(stacks []ids.StackID, members ...membership.Member) map[ids.StackID]placement.NodeID {
	r := placement.NewRing()
	for _, m := range members {
		r.Add(nodeOf(m))
	}
	out := map[ids.StackID]placement.NodeID{}
	for _, id := range stacks {
		n, _ := r.Owner(placement.Key(id))
		out[id] = n.ID
	}
	return out
}

func moved(a, b map[ids.StackID]placement.NodeID) int {
	n := 0
	for id, o := range a {
		if b[id] != o {
			n++
		}
	}
	return n
}

// TestCluster_OneChangeCountsEachMovedStackOnce: a coalesced change in
// which the owner of a stack leaves and a node closer still joins moves
// the stack once (from the leaver to the joiner), and one that moves back
// where it was is not counted.
func TestCluster_OneChangeCountsEachMovedStackOnce(t *testing.T) {
	s, stacks := newUnstartedCluster(t, 200, nil)
	c := s.cluster
	a, b, d := runtimeAt(1001), runtimeAt(1002), runtimeAt(1003)
	gw := membership.Member{Name: "gw", Meta: membership.Meta{Role: membership.RoleGateway, Region: internalRegion, GRPCAddr: "127.0.0.1:9"}}
	elsewhere := runtimeAt(1004)
	elsewhere.Meta.Region = "22222222222222222222222222222222"
	broken := runtimeAt(1005)
	broken.Meta.GRPCAddr = "runtime.local:1005" // not a literal IP: skipped
	warming := runtimeAt(1006)
	warming.Meta.Ready = false // still deploying what it will own: no stacks yet

	changes := func() float64 { return testutil.ToFloat64(s.metrics.ownerChanges) }
	c.onChange([]membership.Member{gw, elsewhere, broken, warming})
	if changes() != 0 {
		t.Fatalf("no runtime: %v owner changes", changes())
	}
	if n, rt := c.counts(); n != 4 || rt != 0 {
		t.Fatalf("counts = %d members %d runtimes, want 3 and 0", n, rt)
	}

	// The first runtimes: every stack gets an owner.
	c.onChange([]membership.Member{a, b, gw, elsewhere, broken})
	if got := changes(); got != float64(len(stacks)) {
		t.Fatalf("first runtimes: %v owner changes, want all %d stacks", got, len(stacks))
	}
	if n, rt := c.counts(); n != 5 || rt != 2 {
		t.Fatalf("counts = %d members %d runtimes, want 5 and 2", n, rt)
	}

	// b leaves and d joins in one change.
	before := changes()
	c.onChange([]membership.Member{a, d, gw})
	want := moved(owners(stacks, a, b), owners(stacks, a, d))
	if got := changes() - before; got != float64(want) {
		t.Errorf("b→d in one change: %v owner changes, want %d", got, want)
	}
	for id, o := range owners(stacks, a, d) {
		if got, _ := c.table.Owner(placement.Key(id)); got.ID != o {
			t.Fatalf("stack %s: table owner %s, want %s", id, got.ID, o)
		}
	}

	// A suspect member keeps its stacks.
	before = changes()
	ds := d
	ds.Suspect = true
	c.onChange([]membership.Member{a, ds, gw})
	if got := changes() - before; got != 0 {
		t.Errorf("suspicion moved %v stacks", got)
	}
	if !c.view.Load().nodes[nodeOf(d).ID].suspect {
		t.Error("the view does not show d as suspect")
	}

	// Every runtime gone: every stack loses its owner.
	before = changes()
	c.onChange([]membership.Member{gw})
	if got := changes() - before; got != float64(len(stacks)) {
		t.Errorf("last runtime gone: %v owner changes, want %d", got, len(stacks))
	}
	if got := s.runtimes.Candidates(stacks[0], 3, nil); len(got) != 0 {
		t.Errorf("candidates with no runtime: %v", got)
	}
}

func TestCluster_CandidatesDoNotAllocate(t *testing.T) {
	s, stacks := newUnstartedCluster(t, 1, nil)
	var members []membership.Member
	for i := range 10 {
		members = append(members, runtimeAt(2000+i))
	}
	s.cluster.onChange(members)
	dst := make([]Candidate, 0, 4)
	if n := testing.AllocsPerRun(1000, func() { dst = s.runtimes.Candidates(stacks[0], 3, dst[:0]) }); n != 0 {
		t.Errorf("Candidates allocates %v times per call", n)
	}
	if len(dst) != 3 {
		t.Fatalf("%d candidates, want 3", len(dst))
	}
	r := placement.NewRing()
	for _, m := range members {
		r.Add(nodeOf(m))
	}
	for i, n := range r.Candidates(placement.Key(stacks[0]), 3, nil) {
		if dst[i].Node != n.Name || dst[i].Client == nil {
			t.Errorf("candidate %d = %q, want %q", i, dst[i].Node, n.Name)
		}
	}
}

func (c *Conns) has(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.conns[addr]
	return ok
}

// TestCluster_DropsConnectionsOfDepartedMembers: a member's connection is
// closed twice InvokeTimeout after it left, unless it came back (or a new
// generation took its address) in between.
func TestCluster_DropsConnectionsOfDepartedMembers(t *testing.T) {
	s, _ := newUnstartedCluster(t, 0, func(c *Config) { c.InvokeTimeout = 20 * time.Millisecond })
	c := s.cluster
	a, b := runtimeAt(3001), runtimeAt(3002)
	c.onChange([]membership.Member{a, b})
	if !c.conns.has(a.Meta.GRPCAddr) || !c.conns.has(b.Meta.GRPCAddr) {
		t.Fatal("no connections for the members")
	}
	c.onChange([]membership.Member{a})
	// b's address is taken by a new generation before the drop fires.
	b2 := b
	b2.Name, b2.Meta.Generation = "rt-3002-2", b.Meta.Generation+1
	c.onChange([]membership.Member{b2})
	time.Sleep(200 * time.Millisecond)
	if !c.conns.has(b.Meta.GRPCAddr) {
		t.Error("the connection of an address back in use was closed")
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.conns.has(a.Meta.GRPCAddr) {
		if time.Now().After(deadline) {
			t.Fatal("the connection of a departed member is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
