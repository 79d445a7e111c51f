package gateway

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/muprotocol/mu/libs/ids"
	runtimev1 "github.com/muprotocol/mu/proto/mu/runtime/v1"
)

// Candidate is one runtime node to try for a request.
type Candidate struct {
	// Node names the runtime in logs, metrics and GatewayService.Placement
	// (the member name in cluster mode, "static" for a StaticRuntime).
	Node string
	// Client calls the runtime, over a long-lived connection.
	Client runtimev1.RuntimeServiceClient
}

// RuntimeResolver picks the runtime nodes that can serve a stack.
//
// Candidates appends to dst at most limit (≥ 1) runtimes to try for stack,
// in order: the owner first, then the next-closest nodes, and returns the
// extended slice. The gateway asks for one candidate for requests it may
// not replay (POST, PATCH, ...) and for up to Config.InvokeAttempts for
// idempotent ones, and tries the next only when the previous answered
// gRPC UNAVAILABLE. An empty result makes the request fail with 503
// runtime_unavailable and Retry-After.
//
// Candidates is called once per request: it must be safe for concurrent
// use, must not block on the network (hand out clients over long-lived
// connections that connect lazily) and should not allocate when dst has
// room for limit more entries.
type RuntimeResolver interface {
	Candidates(stack ids.StackID, limit int, dst []Candidate) []Candidate
}

// StaticNode is the Candidate.Node of a StaticRuntime's runtime.
const StaticNode = "static"

// StaticRuntime is a RuntimeResolver that sends every stack to one runtime
// (one node, `mu run`, tests). A clustered gateway (Config.Cluster) places
// stacks on the runtimes of its member list instead.
type StaticRuntime struct {
	client runtimev1.RuntimeServiceClient
	target string // the connection's target, for Placement; "" if unknown
}

// NewStaticRuntime returns a resolver whose client uses conn for every
// call, so all requests share its connection. The caller keeps ownership of
// conn and closes it after the Server.
func NewStaticRuntime(conn grpc.ClientConnInterface) *StaticRuntime {
	s := &StaticRuntime{client: runtimev1.NewRuntimeServiceClient(conn)}
	if cc, ok := conn.(*grpc.ClientConn); ok {
		s.target = cc.Target()
	}
	return s
}

// Candidates implements RuntimeResolver: the one runtime, whatever the
// stack.
func (s *StaticRuntime) Candidates(_ ids.StackID, limit int, dst []Candidate) []Candidate {
	if limit < 1 {
		return dst
	}
	return append(dst, Candidate{Node: StaticNode, Client: s.client})
}

// ErrConnsClosed is returned by Conns.Get after Close.
var ErrConnsClosed = errors.New("gateway: runtime connections closed")

// Conns dials each gRPC address once and hands out the same *grpc.ClientConn
// for it afterwards, so requests to a runtime share one HTTP/2 connection.
// Connections are made lazily (grpc.NewClient) and reconnect by themselves.
// Conns is safe for concurrent use.
type Conns struct {
	opts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewConns returns an empty pool. opts are passed to grpc.NewClient; with
// none, connections are plaintext (insecure credentials), which suits
// loopback and a cluster-internal network.
func NewConns(opts ...grpc.DialOption) *Conns {
	if len(opts) == 0 {
		opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, runtimeWindowOptions...)
	}
	return &Conns{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Get returns the connection to addr, creating it on first use. It does
// not block on the network.
func (c *Conns) Get(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrConnsClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: runtime %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// drop closes and forgets the connection to addr, if there is one. RPCs
// still running on it fail (CANCELED), so callers drop only connections no
// request can be using any more.
func (c *Conns) drop(addr string) error {
	c.mu.Lock()
	cc, ok := c.conns[addr]
	delete(c.conns, addr)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	if err := cc.Close(); err != nil {
		return fmt.Errorf("gateway: close runtime %s: %w", addr, err)
	}
	return nil
}

// Close closes every connection. Safe to call twice.
func (c *Conns) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for addr, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: close runtime %s: %w", addr, err))
		}
	}
	c.conns = nil
	return errors.Join(errs...)
}

// DialRuntime returns a StaticRuntime for the runtime at addr over a
// plaintext connection from conns (dialled once, reused by every request).
func DialRuntime(conns *Conns, addr string) (*StaticRuntime, error) {
	cc, err := conns.Get(addr)
	if err != nil {
		return nil, err
	}
	return NewStaticRuntime(cc), nil
}
