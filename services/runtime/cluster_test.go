package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mr-tron/base58"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/chainwatch/chainwatchtest"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/placement"
	"github.com/muprotocol/mu/libs/rpcerr"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// clusterNode is a runtime member of a gossip list on 127.0.0.1, following
// a shared fake indexer, with fake muDB and storage.
func clusterNode(t *testing.T, x *chainwatchtest.Indexer, mdb *fakeMudb, st *fakeStorage, name string, join []string, adjust func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.NodeName = name
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ChainIndexerAddr = x.Addr()
	cfg.RegionID = base58.Encode(testRegion)
	cfg.ChainRetry = chainTestRetry
	cfg.MudbAddr = serveFakeMudb(t, mdb)
	cfg.StorageAddr = serveFakeStorage(t, st)
	cfg.Cluster.BindAddr = "127.0.0.1:0"
	cfg.Cluster.Plaintext = true // one machine
	cfg.Cluster.Join = join
	cfg.LeaveDrain = 100 * time.Millisecond
	// The first node owns every stack until the others join; it lets go
	// of theirs soon after.
	cfg.ReleaseGrace = 100 * time.Millisecond
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &harness{srv: srv, client: runtimev1.NewRuntimeServiceClient(conn), conn: conn}
}

func nodeStatus(t *testing.T, h *harness) *runtimev1.StatusResponse {
	t.Helper()
	st, err := h.client.Status(context.Background(), &runtimev1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// ringOf is the ring of the nodes as their Status describes them.
func ringOf(t *testing.T, hs ...*harness) (*placement.Ring, map[placement.NodeID]*harness) {
	t.Helper()
	r := placement.NewRing()
	by := map[placement.NodeID]*harness{}
	for _, h := range hs {
		st := nodeStatus(t, h)
		id, err := placement.NodeIDOf(st.GetGrpcAddr(), st.GetGeneration())
		if err != nil {
			t.Fatal(err)
		}
		if id.String() != st.GetNodeId() {
			t.Fatalf("node id %s, want SHA-256 of %s and %d = %s", st.GetNodeId(), st.GetGrpcAddr(), st.GetGeneration(), id)
		}
		name := st.GetNodeName()
		for _, m := range st.GetMembers() {
			if m.GetSelf() {
				name = m.GetName() // the member name: node name and generation
			}
		}
		r.Add(placement.Node{ID: id, Name: name, Addr: st.GetGrpcAddr()})
		by[id] = h
	}
	return r, by
}

func deployed(h *harness, id ids.StackID) bool {
	h.srv.mu.RLock()
	defer h.srv.mu.RUnlock()
	return h.srv.stacks[id] != nil
}

// wantsActive reports whether h's chain follower still holds id as an
// active stack (it has not applied a delete of it yet).
func wantsActive(h *harness, id ids.StackID) bool {
	f := h.srv.follow
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.want[id]
	return w != nil && w.stack.GetState() == chainindexerv1.StackState_STACK_STATE_ACTIVE
}

func TestCluster_LoneNodeOwnsEveryStackAndSaysWhoItIs(t *testing.T) {
	h := newChainHarness(t, testRegionObject())
	a, b := ids.StackID{0xa1}, ids.StackID{0xb2}
	h.x.PutStack(chainStack(a, 1, h.okID))
	h.x.PutStack(chainStack(b, 1, h.okID))
	eventually(t, "both deployed", func() bool { return h.revision(a) == 1 && h.revision(b) == 1 })
	st := nodeStatus(t, h.harness)
	want, err := placement.NodeIDOf(h.srv.Addr(), h.srv.Generation())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNodeId() != want.String() || st.GetGrpcAddr() != h.srv.Addr() || st.GetGeneration() != h.srv.Generation() {
		t.Fatalf("status identity %q %q %d, want %s %s %d", st.GetNodeId(), st.GetGrpcAddr(), st.GetGeneration(), want, h.srv.Addr(), h.srv.Generation())
	}
	if len(st.GetMembers()) != 1 || !st.GetMembers()[0].GetSelf() || st.GetMembers()[0].GetOwnedStacks() != 2 {
		t.Fatalf("members %v, want itself owning 2", st.GetMembers())
	}
	if len(st.GetOwnedStackIds()) != 2 || st.GetPlacedStacks() != 2 {
		t.Fatalf("owned %d placed %d, want 2 and 2", len(st.GetOwnedStackIds()), st.GetPlacedStacks())
	}
	for _, s := range st.GetStacks() {
		if !s.GetOwned() || s.GetOwner() != h.srv.cfg.NodeName {
			t.Fatalf("stack status %v, want owned by %s", s, h.srv.cfg.NodeName)
		}
	}
	if g := gauge(t, h.srv, "mu_runtime_owned_stacks"); g != 2 {
		t.Fatalf("mu_runtime_owned_stacks %v, want 2", g)
	}
}

// threeNodes starts three members over one fake indexer holding n stacks
// and waits until each has deployed exactly the stacks it owns.
func threeNodes(t *testing.T, n int, adjust func(*Config)) (*chainwatchtest.Indexer, []*harness, []ids.StackID, string) {
	t.Helper()
	x := chainwatchtest.New(t)
	x.PutRegion(testRegionObject())
	mdb, st := newFakeMudb(), newFakeStorage()
	ok := wat(t, okWAT)
	st.binaries[ids.BinaryID(ok)] = ok
	var stacks []ids.StackID
	for i := range n {
		id := ids.StackID{byte(i), byte(i * 7), byte(i * 13), 0x42}
		stacks = append(stacks, id)
		x.PutStack(chainStack(id, 1, ids.BinaryID(ok)))
	}
	a := clusterNode(t, x, mdb, st, "a", nil, adjust)
	b := clusterNode(t, x, mdb, st, "b", []string{a.srv.ClusterAddr()}, adjust)
	c := clusterNode(t, x, mdb, st, "c", []string{a.srv.ClusterAddr()}, adjust)
	hs := []*harness{a, b, c}
	eventually(t, "three members everywhere", func() bool {
		for _, h := range hs {
			if len(nodeStatus(t, h).GetMembers()) != 3 {
				return false
			}
		}
		return true
	})
	ring, by := ringOf(t, hs...)
	eventually(t, "each stack deployed on its owner only", func() bool {
		for _, id := range stacks {
			owner, _ := ring.Owner(placement.Key(id))
			for nid, h := range by {
				if deployed(h, id) != (nid == owner.ID) {
					return false
				}
			}
		}
		return true
	})
	return x, hs, stacks, ids.BinaryID(ok)
}

func TestCluster_EachStackIsDeployedOnItsOwnerOnly(t *testing.T) {
	_, hs, stacks, _ := threeNodes(t, 24, nil)
	ring, by := ringOf(t, hs...)
	total := 0
	for nid, h := range by {
		st := nodeStatus(t, h)
		owned := 0
		for _, id := range stacks {
			if o, _ := ring.Owner(placement.Key(id)); o.ID == nid {
				owned++
			}
		}
		if len(st.GetOwnedStackIds()) != owned {
			t.Errorf("%s reports %d owned stacks, placement gives it %d", st.GetNodeName(), len(st.GetOwnedStackIds()), owned)
		}
		total += len(st.GetOwnedStackIds())
		for _, m := range st.GetMembers() {
			mid, _ := placement.NodeIDOf(m.GetGrpcAddr(), m.GetGeneration())
			want := 0
			for _, id := range stacks {
				if o, _ := ring.Owner(placement.Key(id)); o.ID == mid {
					want++
				}
			}
			if int(m.GetOwnedStacks()) != want {
				t.Errorf("%s says %s owns %d, placement says %d", st.GetNodeName(), m.GetName(), m.GetOwnedStacks(), want)
			}
		}
	}
	if total != len(stacks) {
		t.Fatalf("%d stacks owned in all, want %d", total, len(stacks))
	}
}

func TestCluster_ANonOwnerServesACallAndReleasesTheStackAfterTheGrace(t *testing.T) {
	_, hs, stacks, _ := threeNodes(t, 6, func(c *Config) { c.ReleaseGrace = 300 * time.Millisecond })
	ring, by := ringOf(t, hs...)
	id := stacks[0]
	owner, _ := ring.Owner(placement.Key(id))
	var other *harness
	for nid, h := range by {
		if nid != owner.ID {
			other = h
			break
		}
	}
	before := gauge(t, other.srv, "mu_runtime_on_demand_deploys_total")
	releasedBefore := gauge(t, other.srv, "mu_runtime_stacks_released_total")
	resp, err := (&chainHarness{harness: other}).invoke(id)
	if err != nil || resp.GetResponse().GetStatus() != 200 {
		t.Fatalf("a call on a node that does not own the stack: %v %v, want it served", resp, err)
	}
	if got := gauge(t, other.srv, "mu_runtime_on_demand_deploys_total") - before; got != 1 {
		t.Fatalf("%v on-demand deploys, want 1", got)
	}
	st, err := other.client.Status(context.Background(), &runtimev1.StatusRequest{StackId: id.Bytes()})
	if err != nil || len(st.GetStacks()) != 1 || st.GetStacks()[0].GetOwned() || st.GetStacks()[0].GetOwner() != owner.Name {
		t.Fatalf("status on the non-owner: %v %v, want deployed, not owned, owner %s", st, err, owner.Name)
	}
	eventually(t, "the stack released after the grace period", func() bool { return !deployed(other, id) })
	if g := gauge(t, other.srv, "mu_runtime_stacks_released_total") - releasedBefore; g != 1 {
		t.Fatalf("mu_runtime_stacks_released_total went up by %v, want 1", g)
	}
	if !deployed(by[owner.ID], id) {
		t.Fatal("the owner lost the stack")
	}
}

func TestCluster_ALeavingNodesStacksGoToTheNextClosest(t *testing.T) {
	_, hs, stacks, _ := threeNodes(t, 24, func(c *Config) { c.ReleaseGrace = 0 })
	ring, by := ringOf(t, hs...)
	leaver := hs[0]
	st := nodeStatus(t, leaver)
	leaverID, _ := placement.NodeIDOf(st.GetGrpcAddr(), st.GetGeneration())
	if err := leaver.srv.Close(); err != nil {
		t.Fatal(err)
	}
	rest := ring.Clone()
	rest.Remove(leaverID)
	eventually(t, "every stack on its new owner", func() bool {
		for _, id := range stacks {
			owner, _ := rest.Owner(placement.Key(id))
			for nid, h := range by {
				if nid == leaverID {
					continue
				}
				if deployed(h, id) != (nid == owner.ID) {
					return false
				}
			}
		}
		return true
	})
	for _, h := range hs[1:] {
		if n := len(nodeStatus(t, h).GetMembers()); n != 2 {
			t.Fatalf("%d members after a leave, want 2", n)
		}
	}
}

func TestCluster_ACallBeforeTheNodeHasCaughtUpIsUnavailable(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutRegion(testRegionObject())
	x.FailWatches(1000, fmt.Errorf("not yet"))
	mdb, st := newFakeMudb(), newFakeStorage()
	h := clusterNode(t, x, mdb, st, "a", nil, nil)
	_, err := (&chainHarness{harness: h}).invoke(ids.StackID{0x77})
	if code(err) != codes.Unavailable || rpcerr.ReasonOf(err) != rpcerr.NotReady {
		t.Fatalf("call before the node caught up: %v, want Unavailable NOT_READY (a gateway tries another node)", err)
	}
}

func TestCluster_TheNextCandidateHasTheBinaryCompiledBeforeATakeover(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutRegion(testRegionObject())
	mdb, st := newFakeMudb(), newFakeStorage()
	other := wat(t, strings.Replace(okWAT, `"hi"`, `"ho"`, 1))
	bin := ids.BinaryID(other)
	st.binaries[bin] = other
	a := clusterNode(t, x, mdb, st, "a", nil, nil)
	b := clusterNode(t, x, mdb, st, "b", []string{a.srv.ClusterAddr()}, nil)
	c := clusterNode(t, x, mdb, st, "c", []string{a.srv.ClusterAddr()}, nil)
	hs := []*harness{a, b, c}
	eventually(t, "three members everywhere", func() bool {
		for _, h := range hs {
			if len(nodeStatus(t, h).GetMembers()) != 3 {
				return false
			}
		}
		return true
	})
	id := ids.StackID{0x5b, 0x7a}
	x.PutStack(chainStack(id, 1, bin))
	ring, by := ringOf(t, hs...)
	cand := ring.Candidates(placement.Key(id), 3, nil)
	owner, next, last := by[cand[0].ID], by[cand[1].ID], by[cand[2].ID]
	eventually(t, "the stack deployed on its owner", func() bool { return deployed(owner, id) })
	// The artifact lands in the cache inside the compile and the counter
	// moves after it: wait for both, then require exactly one compile.
	eventually(t, "the binary compiled into the next candidate's artifact cache", func() bool {
		return next.srv.engine.HasCached(bin) && gauge(t, next.srv, "mu_runtime_standby_compiles_total") >= 1
	})
	if g := gauge(t, next.srv, "mu_runtime_standby_compiles_total"); g != 1 {
		t.Fatalf("standby compiles on the next candidate: %v, want 1", g)
	}
	if deployed(next, id) {
		t.Fatal("the next candidate deployed the stack; it should only have compiled its binary")
	}
	if last.srv.engine.HasCached(bin) || gauge(t, last.srv, "mu_runtime_standby_compiles_total") != 0 {
		t.Fatal("the third candidate compiled the binary too")
	}
	// The owner leaves: the next candidate takes over from its cache.
	if err := owner.srv.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the next candidate serves the stack", func() bool { return deployed(next, id) })
	if got := testutil.ToFloat64(next.srv.metrics.binaries.WithLabelValues("cache")); got != 1 {
		t.Fatalf("the takeover loaded %v binaries from the artifact cache, want 1", got)
	}
	if got := testutil.ToFloat64(next.srv.metrics.binaries.WithLabelValues("storage")); got != 0 {
		t.Fatalf("the takeover fetched and compiled %v binaries, want 0", got)
	}
}

func TestCluster_ANonOwnerRefusesADisabledAnUndeployableAndADeletedStack(t *testing.T) {
	x, hs, stacks, okID := threeNodes(t, 3, nil)
	ring, by := ringOf(t, hs...)
	nonOwner := func(id ids.StackID) *chainHarness {
		owner, _ := ring.Owner(placement.Key(id))
		for nid, h := range by {
			if nid != owner.ID {
				return &chainHarness{harness: h}
			}
		}
		t.Fatal("no other node")
		return nil
	}
	// Disabled: refused at once, though the node never deployed it.
	off := ids.StackID{0xd1, 0x5a}
	st := chainStack(off, 1, okID)
	st.Enabled = false
	x.PutStack(st)
	h := nonOwner(off)
	eventually(t, "the disabled state known", func() bool {
		_, err := h.invoke(off)
		return rpcerr.ReasonOf(err) == rpcerr.StackDisabled
	})
	if deployed(h.harness, off) {
		t.Fatal("a disabled stack was deployed for a call")
	}
	// Undeployable (its binary exists nowhere): FailedPrecondition, which
	// gateways do not retry elsewhere.
	bad := ids.StackID{0xba, 0xd0}
	x.PutStack(chainStack(bad, 1, "11111111111111111111111111111111"))
	h = nonOwner(bad)
	eventually(t, "the stack known", func() bool {
		_, err := h.invoke(bad)
		return code(err) != codes.NotFound
	})
	if _, err := h.invoke(bad); code(err) != codes.FailedPrecondition || rpcerr.ReasonOf(err) != rpcerr.NotDeployable {
		t.Fatalf("call of an undeployable stack: %v, want FailedPrecondition NOT_DEPLOYABLE", err)
	}
	// Deleted: NotFound on a node that did not have it, never redeployed.
	gone := stacks[0]
	del := chainStack(gone, 2, okID)
	del.State = chainindexerv1.StackState_STACK_STATE_DELETED
	x.PutStack(del)
	h = nonOwner(gone)
	// Known everywhere: no node wants it active any more (the non-owner
	// never deployed it, so "not deployed" alone holds before it has
	// heard of the delete, and a call then would deploy it on demand).
	eventually(t, "the delete known everywhere", func() bool {
		for _, n := range hs {
			if deployed(n, gone) || wantsActive(n, gone) {
				return false
			}
		}
		return true
	})
	if _, err := h.invoke(gone); code(err) != codes.NotFound {
		t.Fatalf("call of a deleted stack on a non-owner: %v, want NotFound", err)
	}
	if deployed(h.harness, gone) {
		t.Fatal("a call deployed a deleted stack")
	}
}
