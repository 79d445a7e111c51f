package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/placement"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// cluster is the gateway's own RuntimeResolver in cluster mode
// (Config.Cluster with no Deps.Runtimes). The gateway is a member of its
// region's member list; on every change of the list it rebuilds the set
// of runtime members of Config.RegionID, places them on a
// placement.Table together with the stacks the gateway serves, and
// publishes an immutable view (a cloned ring and a client per node) that
// requests read without a lock.
//
// Lock order: registry.mu before cluster.mu (PutStack and RemoveStack
// update the table while holding the registry's lock, so that the table
// holds exactly the installed stacks).
type cluster struct {
	s     *Server
	conns *Conns         // the gateway's own connections to the runtimes
	local *LocalRuntimes // runtimes in this process (Deps.Local); may be nil
	view  atomic.Pointer[clusterView]
	list  atomic.Pointer[membership.List] // set by start

	leaveOnce sync.Once

	mu     sync.Mutex
	table  *placement.Table
	nodes  map[placement.NodeID]*clusterNode // the runtime members in the table
	warned map[string]bool                   // members whose metadata was refused, warned about once
	drops  map[string]*time.Timer            // gRPC address → pending close of its connection
	last   []membership.Member               // the members of the last change; nil before the first
	closed bool
}

// clusterNode is one runtime member as the gateway routes to it.
// Immutable once published in a view.
type clusterNode struct {
	id         placement.NodeID
	name       string // member name
	addr       string // gRPC address, ip:port
	generation int64
	suspect    bool
	// inProcess: the runtime runs in this process (LocalRuntimes) and
	// client calls it there; otherwise client is on a gRPC connection.
	inProcess bool
	client    runtimev1.RuntimeServiceClient
}

// clusterView is what requests read: immutable, replaced as a whole.
type clusterView struct {
	ring    *placement.Ring // a clone, never modified after publication
	nodes   map[placement.NodeID]*clusterNode
	members int // live members of the list, every role, this gateway included
}

// candidateBuf is how many candidates a request finds without allocating.
const candidateBuf = 8

func newCluster(s *Server, local *LocalRuntimes) *cluster {
	c := &cluster{
		s:      s,
		conns:  NewConns(RuntimeDialOptions(s.cfg.Base, s.tls)...),
		local:  local,
		table:  placement.NewTable(),
		nodes:  map[placement.NodeID]*clusterNode{},
		warned: map[string]bool{},
		drops:  map[string]*time.Timer{},
	}
	c.view.Store(&clusterView{ring: placement.NewRing(), nodes: map[placement.NodeID]*clusterNode{}})
	if local != nil {
		local.onChange(c.refresh)
	}
	return c
}

// refresh rebuilds the view from the last members when the gateway's
// LocalRuntimes change, so that a runtime registered there after it joined
// is called in process from then on (and over gRPC once removed).
func (c *cluster) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.last == nil {
		return
	}
	c.rebuild(c.last)
}

// Candidates implements RuntimeResolver: the runtime members closest to
// the stack by XOR distance, the owner first. It reads the published view
// without a lock and does not allocate for limits up to candidateBuf.
func (c *cluster) Candidates(stack ids.StackID, limit int, dst []Candidate) []Candidate {
	v := c.view.Load()
	if limit < 1 || v.ring.Len() == 0 {
		return dst
	}
	var buf [candidateBuf]placement.Node
	nodes := buf[:0]
	if limit > len(buf) {
		nodes = make([]placement.Node, 0, limit)
	}
	for _, n := range v.ring.Candidates(placement.Key(stack), limit, nodes) {
		if cn := v.nodes[n.ID]; cn != nil {
			dst = append(dst, Candidate{Node: cn.name, Client: cn.client})
		}
	}
	return dst
}

// start starts the gateway's member, advertising the bound gRPC admin
// port. Called by Server.Start once the listeners are bound.
func (c *cluster) start() error {
	cfg := c.s.cfg
	_, portText, err := net.SplitHostPort(c.s.run.GRPCAddr())
	if err != nil {
		return fmt.Errorf("gateway: cluster: gRPC address: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("gateway: cluster: gRPC port %q: %w", portText, err)
	}
	list, err := membership.Start(cfg.Cluster, membership.Options{
		NodeName: cfg.NodeName,
		Role:     membership.RoleGateway,
		Region:   cfg.RegionID,
		GRPCPort: port,
		Logger:   c.s.log,
		OnChange: c.onChange,
	})
	if err != nil {
		return fmt.Errorf("gateway: cluster: %w", err)
	}
	c.list.Store(list)
	c.s.log.Info("cluster member started", "cluster_addr", list.Addr(), "member", list.Local().Name,
		"join", cfg.Cluster.Join)
	return nil
}

// addr is the bound gossip address, "" before start.
func (c *cluster) addr() string {
	if l := c.list.Load(); l != nil {
		return l.Addr()
	}
	return ""
}

// leave takes the gateway's member out of the list (a graceful leave, so
// the others drop it at once) and stops gossiping. The published view
// stays, so requests still in flight keep routing. Safe to call twice.
func (c *cluster) leave() {
	c.leaveOnce.Do(func() {
		l := c.list.Load()
		if l == nil {
			return
		}
		// Leave waits at most cluster_leave_timeout; the context is only a
		// backstop.
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ShutdownTimeout)
		defer cancel()
		if err := l.Leave(ctx); err != nil {
			c.s.log.Warn("leaving the member list", "err", err)
		}
		if err := l.Close(); err != nil {
			c.s.log.Warn("closing the member list", "err", err)
		}
	})
}

// close drops every runtime connection. Called by Server.Close once no
// request runs any more.
func (c *cluster) close() error {
	c.mu.Lock()
	c.closed = true
	for addr, t := range c.drops {
		t.Stop()
		delete(c.drops, addr)
	}
	c.mu.Unlock()
	return c.conns.Close()
}

// addStack places a stack the gateway now serves. The caller holds the
// registry's lock.
func (c *cluster) addStack(id ids.StackID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.table.AddStack(placement.Key(id))
}

// removeStack forgets a stack the gateway no longer serves. The caller
// holds the registry's lock.
func (c *cluster) removeStack(id ids.StackID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.table.RemoveStack(placement.Key(id))
}

// onChange is the member list's OnChange: it re-places the gateway's
// stacks on the runtime members of the gateway's region and publishes the
// new view. Calls are serialised by the list.
func (c *cluster) onChange(members []membership.Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.last = members
	c.rebuild(members)
}

// rebuild is onChange's work; the caller holds c.mu. A member in
// LocalRuntimes gets its in-process client and no connection; any other
// keeps the connection it had, or one is dialled.
func (c *cluster) rebuild(members []membership.Member) {
	region := c.s.cfg.RegionID
	want := make(map[placement.NodeID]*clusterNode, len(c.nodes)+1)
	warned := make(map[string]bool, len(c.warned))
	// The Ready runtimes of the region, as every runtime computes them;
	// one still warming up is left out until it can serve its stacks.
	runtimes, bad := membership.Runtimes(members, region, "")
	for name, err := range bad {
		if !c.warned[name] {
			c.s.log.Warn("ignoring a runtime member with a bad gRPC address", "member", name, "err", err)
		}
		warned[name] = true
	}
	for _, m := range runtimes {
		want[m.ID] = &clusterNode{id: m.ID, name: m.Name, addr: m.Meta.GRPCAddr, generation: m.Meta.Generation, suspect: m.Suspect}
	}
	c.warned = warned

	// Where each moved stack was before this change, so a stack that
	// moves twice within one change (its owner left, and a new node
	// closer still joined) is counted once, and one that ends where it
	// started is not counted.
	before := map[placement.Key]placement.Move{}
	record := func(moves []placement.Move) {
		for _, mv := range moves {
			if _, seen := before[mv.Stack]; !seen {
				before[mv.Stack] = mv
			}
		}
	}
	var left, joined []string
	for id, old := range c.nodes {
		if want[id] == nil {
			record(c.table.RemoveNode(id))
			left = append(left, old.name)
		}
	}
	for id, n := range want {
		old := c.nodes[id]
		switch lc := c.local.Get(n.addr); {
		case lc != nil:
			n.inProcess = true
			n.client = c.s.metrics.countInvokes(lc, true)
		case old != nil && !old.inProcess:
			n.client = old.client
		default:
			cc, err := c.conns.Get(n.addr)
			if err != nil {
				c.s.log.Warn("ignoring a runtime member", "member", n.name, "grpc_addr", n.addr, "err", err)
				delete(want, id)
				if old != nil {
					record(c.table.RemoveNode(id))
					left = append(left, old.name)
				}
				continue
			}
			n.client = c.s.metrics.countInvokes(runtimev1.NewRuntimeServiceClient(cc), false)
		}
		if old == nil {
			record(c.table.AddNode(placement.Node{ID: id, Name: n.name, Addr: n.addr}))
			joined = append(joined, n.name)
		}
	}
	changed := 0
	for stack, mv := range before {
		owner, ok := c.table.Owner(stack)
		if ok != mv.HasFrom || (ok && owner.ID != mv.From) {
			changed++
		}
	}

	// Connections of members gone (or now called in process) are closed
	// once no request can be using them (see dropLater); one that came
	// back (or whose address a new generation took) keeps its connection.
	// In-process members have none.
	inUse := make(map[string]bool, len(want))
	for _, n := range want {
		if n.inProcess {
			continue
		}
		inUse[n.addr] = true
		if t := c.drops[n.addr]; t != nil {
			t.Stop()
			delete(c.drops, n.addr)
		}
	}
	for _, old := range c.nodes {
		if !old.inProcess && !inUse[old.addr] {
			c.dropLater(old.addr)
		}
	}

	c.nodes = want
	c.view.Store(&clusterView{ring: c.table.Ring().Clone(), nodes: want, members: len(members)})
	if changed > 0 {
		c.s.metrics.ownerChanges.Add(float64(changed))
	}
	if len(left) > 0 || len(joined) > 0 || changed > 0 {
		slices.Sort(left)
		slices.Sort(joined)
		c.s.log.Info("runtime members changed", "joined", joined, "left", left, "runtimes", len(want),
			"members", len(members), "owner_changes", changed, "stacks", c.table.Stacks())
	}
}

// dropLater closes the connection to addr after twice InvokeTimeout: every
// request that picked the node before it left has ended by then. The
// caller holds c.mu.
func (c *cluster) dropLater(addr string) {
	if c.drops[addr] != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(2*c.s.cfg.InvokeTimeout, func() {
		c.mu.Lock()
		if c.closed || c.drops[addr] != t {
			c.mu.Unlock()
			return
		}
		delete(c.drops, addr)
		c.mu.Unlock()
		if err := c.conns.drop(addr); err != nil && !errors.Is(err, ErrConnsClosed) {
			c.s.log.Warn("closing the connection of a departed runtime", "grpc_addr", addr, "err", err)
		}
	})
	c.drops[addr] = t
}

// memberPlacement is one runtime member as GatewayService.Placement
// reports it.
type memberPlacement struct {
	node   *clusterNode
	stacks int     // of the gateway's stacks it owns
	share  float64 // of the key space
}

// placementMembers lists the runtime members by name, each with the
// number of the gateway's stacks it owns and its share of the key space.
func (c *cluster) placementMembers() []memberPlacement {
	c.mu.Lock()
	defer c.mu.Unlock()
	ring := c.table.Ring()
	out := make([]memberPlacement, 0, len(c.nodes))
	var owned []placement.Key
	for id, n := range c.nodes {
		owned = c.table.OwnedBy(id, owned[:0])
		out = append(out, memberPlacement{node: n, stacks: len(owned), share: ring.Share(id)})
	}
	slices.SortFunc(out, func(a, b memberPlacement) int { return strings.Compare(a.node.name, b.node.name) })
	return out
}

// nodeCandidates is Candidates with the node ids, for Placement.
func (c *cluster) nodeCandidates(stack ids.StackID, limit int) []*clusterNode {
	v := c.view.Load()
	if v.ring.Len() == 0 {
		return nil
	}
	var out []*clusterNode
	for _, n := range v.ring.Candidates(placement.Key(stack), limit, nil) {
		if cn := v.nodes[n.ID]; cn != nil {
			out = append(out, cn)
		}
	}
	return out
}

// counts are the live members of the list (every role) and the runtime
// members of the gateway's region, as of the last change.
func (c *cluster) counts() (members, runtimes int) {
	v := c.view.Load()
	return v.members, len(v.nodes)
}
