package runtime

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/membership"
	"github.com/muprotocol/mu/libs/placement"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// cluster is the node's view of its region's runtime nodes and of which of
// the region's stacks (those the chain follower knows) it owns. Without
// cluster_bind_addr the node is alone and owns every stack. Its methods are
// safe for concurrent use.
type cluster struct {
	s    *Server
	gen  int64            // generation: the node's start time in ns
	list *membership.List // nil without cluster_bind_addr, and until start

	leaveOnce sync.Once

	mu      sync.Mutex
	table   *placement.Table
	self    placement.Node       // zero until start
	members []membership.Runtime // the ring's members, by name
	// onMove receives the stacks whose ownership moved to or away from
	// this node (the chain follower queues them). Called without mu held.
	onMove func([]ids.StackID)
}

func newCluster(s *Server) *cluster {
	return &cluster{s: s, gen: time.Now().UnixNano(), table: placement.NewTable()}
}

// start places the node: alone, with the id of its bound gRPC address, or
// as a member of the gossip list. Called once the gRPC listener is bound.
func (c *cluster) start() error {
	cfg := c.s.cfg
	if !cfg.Cluster.Enabled() {
		id, err := placement.NodeIDOf(c.s.Addr(), c.gen)
		if err != nil {
			return fmt.Errorf("runtime: node id: %w", err)
		}
		self := placement.Node{ID: id, Name: cfg.NodeName, Addr: c.s.Addr()}
		c.mu.Lock()
		c.self = self
		moves := c.table.AddNode(self)
		c.members = []membership.Runtime{{ID: id, Member: membership.Member{Name: cfg.NodeName, Meta: membership.Meta{
			Role: membership.RoleRuntime, Region: cfg.RegionID, GRPCAddr: c.s.Addr(), Generation: c.gen, Ready: true}}}}
		c.mu.Unlock()
		c.notify(moves)
		return nil
	}
	_, portText, err := net.SplitHostPort(c.s.Addr())
	if err != nil {
		return fmt.Errorf("runtime: grpc address %q: %w", c.s.Addr(), err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("runtime: grpc port %q: %w", portText, err)
	}
	list, err := membership.Start(cfg.Cluster, membership.Options{
		NodeName:   cfg.NodeName,
		Role:       membership.RoleRuntime,
		Region:     cfg.RegionID,
		GRPCPort:   port,
		Generation: c.gen,
		// A node that follows the chain warms up first: gateways and the
		// other runtimes leave it out of their rings until it has deployed
		// the stacks it will own (setReady).
		Warming:  c.s.follow != nil,
		Logger:   c.s.log,
		OnChange: c.onMembers,
	})
	if err != nil {
		return fmt.Errorf("runtime: cluster: %w", err)
	}
	local := list.Local()
	id, err := placement.NodeIDOf(local.Meta.GRPCAddr, local.Meta.Generation)
	if err != nil {
		list.Close()
		return fmt.Errorf("runtime: node id: %w", err)
	}
	// The list delivers every change, the first before Start returned,
	// through onMembers, one call at a time; a view read here could be
	// older than the one it last delivered.
	c.mu.Lock()
	c.list = list
	c.self = placement.Node{ID: id, Name: local.Name, Addr: local.Meta.GRPCAddr}
	c.mu.Unlock()
	c.s.log.Info("joined the region's member list", "gossip_addr", list.Addr(), "node_id", id.String(),
		"grpc_addr", local.Meta.GRPCAddr, "join", cfg.Cluster.Join)
	return nil
}

// onMembers rebuilds the ring from the runtime members of the node's
// region and re-places the stacks whose owner changed.
func (c *cluster) onMembers(all []membership.Member) {
	runtimes, bad := membership.Runtimes(all, c.s.cfg.RegionID, membership.MemberName(c.s.cfg.NodeName, c.gen))
	for name, err := range bad {
		c.s.log.Warn("ignoring a member with a bad gRPC address", "member", name, "err", err)
	}
	want := map[placement.NodeID]placement.Node{}
	for _, m := range runtimes {
		want[m.ID] = placement.Node{ID: m.ID, Name: m.Name, Addr: m.Meta.GRPCAddr}
	}
	c.mu.Lock()
	var moves []placement.Move
	var joined, left int
	for _, n := range c.table.Ring().Nodes() {
		if _, ok := want[n.ID]; !ok {
			moves = append(moves, c.table.RemoveNode(n.ID)...)
			left++
		}
	}
	for id, n := range want {
		if _, ok := c.table.Ring().Get(id); !ok {
			moves = append(moves, c.table.AddNode(n)...)
			joined++
		}
	}
	c.members = runtimes
	self := c.self.ID
	c.mu.Unlock()
	if joined+left == 0 {
		return
	}
	mine := 0
	for _, mv := range moves {
		if concerns(mv, self) {
			mine++
		}
	}
	if f := c.s.follow; f != nil && f.standby != nil {
		f.standby.poke()
	}
	c.s.metrics.ownershipMoves.Add(float64(len(moves)))
	c.s.log.Info("region membership changed", "runtimes", len(want), "joined", joined, "left", left,
		"stacks_moved", len(moves), "moved_to_or_from_this_node", mine)
	c.notify(moves)
}

// notify hands the moved stacks that concern this node to onMove. A move
// is re-evaluated by the follower, which reads ownership afresh, so a
// stack queued twice does no harm.
func (c *cluster) notify(moves []placement.Move) {
	c.mu.Lock()
	fn, self := c.onMove, c.self.ID
	c.mu.Unlock()
	if fn == nil || len(moves) == 0 {
		return
	}
	var out []ids.StackID
	for _, mv := range moves {
		if concerns(mv, self) {
			out = append(out, ids.StackID(mv.Stack))
		}
	}
	if len(out) > 0 {
		fn(out)
	}
}

// concerns reports whether a move is to or from node self.
func concerns(mv placement.Move, self placement.NodeID) bool {
	return (mv.HasFrom && mv.From == self) || (mv.HasTo && mv.To == self)
}

// setOnMove sets the receiver of moved stacks.
func (c *cluster) setOnMove(fn func([]ids.StackID)) {
	c.mu.Lock()
	c.onMove = fn
	c.mu.Unlock()
}

// place adds a stack of the region to the table.
func (c *cluster) place(id ids.StackID) {
	c.mu.Lock()
	c.table.AddStack(placement.Key(id))
	c.mu.Unlock()
}

// unplace forgets a stack (deleted, or no longer active).
func (c *cluster) unplace(id ids.StackID) {
	c.mu.Lock()
	c.table.RemoveStack(placement.Key(id))
	c.mu.Unlock()
}

// owns reports whether this node owns stack id, and the owner's name.
func (c *cluster) owns(id ids.StackID) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.table.Owner(placement.Key(id))
	if !ok {
		return false, ""
	}
	return n.ID == c.self.ID && c.self.Name != "", n.Name
}

// ownedCount is how many placed stacks this node owns.
func (c *cluster) ownedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.self.Name == "" {
		return 0
	}
	n := 0
	c.table.Each(func(_ placement.Key, owner placement.Node) bool {
		if owner.ID == c.self.ID {
			n++
		}
		return true
	})
	return n
}

// memberCount is how many runtime members of the region the node sees.
func (c *cluster) memberCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table.Ring().Len()
}

// status fills the placement part of a Status answer; only, if set,
// restricts owned_stack_ids to one stack.
func (c *cluster) status(resp *runtimev1.StatusResponse, only *ids.StackID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp.NodeId = c.self.ID.String()
	resp.NodeName = c.s.cfg.NodeName
	resp.Generation = c.gen
	resp.GrpcAddr = c.self.Addr
	resp.PlacedStacks = uint32(c.table.Stacks())
	owned := map[placement.NodeID]uint32{}
	c.table.Each(func(stack placement.Key, owner placement.Node) bool {
		owned[owner.ID]++
		if owner.ID == c.self.ID && (only == nil || *only == ids.StackID(stack)) {
			resp.OwnedStackIds = append(resp.OwnedStackIds, append([]byte(nil), stack[:]...))
		}
		return true
	})
	for _, m := range c.members {
		resp.Members = append(resp.Members, &runtimev1.RuntimeMember{
			Name: m.Name, NodeId: m.ID.String(), GrpcAddr: m.Meta.GRPCAddr, Generation: m.Meta.Generation,
			Suspect: m.Suspect, Self: m.ID == c.self.ID, OwnedStacks: owned[m.ID],
		})
	}
	slices.SortFunc(resp.Members, func(a, b *runtimev1.RuntimeMember) int { return strings.Compare(a.Name, b.Name) })
}

// setReady tells the region the node has deployed the stacks it owns:
// gateways and the other runtimes put it in their rings from now on.
func (c *cluster) setReady() {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	if list == nil {
		return
	}
	if err := list.SetReady(true); err != nil {
		c.s.log.Warn("telling the region this node is ready", "err", err)
		return
	}
	c.s.log.Info("ready: the node has the stacks it owns and takes traffic from the region", "owned_stacks", c.ownedCount())
}

// leave takes the node out of the gossip list and keeps it serving for
// LeaveDrain, so gateways route elsewhere before the listeners close.
// Once; a no-op without membership.
func (c *cluster) leave() {
	c.leaveOnce.Do(func() {
		c.mu.Lock()
		list := c.list
		c.mu.Unlock()
		if list == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.Cluster.LeaveTimeout)
		err := list.Leave(ctx)
		cancel()
		if err != nil {
			c.s.log.Warn("leaving the member list", "err", err)
		}
		c.s.log.Info("left the member list; draining", "leave_drain", c.s.cfg.LeaveDrain)
		time.Sleep(c.s.cfg.LeaveDrain)
	})
}

// close stops gossiping. Safe twice.
func (c *cluster) close() {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	if list != nil {
		_ = list.Close()
	}
}

// gossipAddr is the bound gossip address, "" without membership.
func (c *cluster) gossipAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list == nil {
		return ""
	}
	return c.list.Addr()
}
