package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/service"
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
	// inProcess says client calls a runtime in this process
	// (NewLocalStaticRuntime), for mu_gateway_invokes_total.
	inProcess bool
}

// NewLocalStaticRuntime returns a resolver that sends every stack to the
// runtime in this process that c calls (runtime.Server.InProcessClient):
// the gateway calls it through the RuntimeService interface without
// encoding messages or crossing a socket. target names the runtime in
// GatewayService.Placement (its gRPC address, say).
func NewLocalStaticRuntime(c runtimev1.RuntimeServiceClient, target string) *StaticRuntime {
	return &StaticRuntime{client: c, target: target, inProcess: true}
}

// counted is a copy of s whose client counts its Invoke calls in the
// gateway's mu_gateway_invokes_total.
func (s *StaticRuntime) counted(m *metrics) *StaticRuntime {
	c := *s
	c.client = m.countInvokes(s.client, s.inProcess)
	return &c
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

// LocalRuntimes are the runtimes that run in the gateway's own process
// (`mu run`, mu-executor), by the gRPC address each advertises to its
// region's member list, with a client that calls each in process
// (runtime.Server.InProcessClient). In cluster mode (Deps.Local) a runtime
// member whose advertised address is here is called through that client:
// the gateway dials no connection to it. Membership, placement, retries,
// limits, errors and metering are the same either way. LocalRuntimes is
// safe for concurrent use; the gateway reads it when it rebuilds its view
// of the cluster, not per request, and rebuilds it when an address is
// added or removed.
type LocalRuntimes struct {
	mu      sync.Mutex
	clients map[string]runtimev1.RuntimeServiceClient
	watch   []func() // called on every Add and Remove, outside mu
}

// NewLocalRuntimes returns an empty set.
func NewLocalRuntimes() *LocalRuntimes {
	return &LocalRuntimes{clients: map[string]runtimev1.RuntimeServiceClient{}}
}

// Add registers c as the in-process client of the runtime that advertises
// grpcAddr, replacing any before it.
func (l *LocalRuntimes) Add(grpcAddr string, c runtimev1.RuntimeServiceClient) {
	l.mu.Lock()
	l.clients[grpcAddr] = c
	watch := l.watch
	l.mu.Unlock()
	for _, fn := range watch {
		fn()
	}
}

// Remove forgets the runtime at grpcAddr (it was closed, or left the
// process); gateways call it over gRPC again.
func (l *LocalRuntimes) Remove(grpcAddr string) {
	l.mu.Lock()
	_, ok := l.clients[grpcAddr]
	delete(l.clients, grpcAddr)
	watch := l.watch
	l.mu.Unlock()
	if ok {
		for _, fn := range watch {
			fn()
		}
	}
}

// Get returns the in-process client of the runtime at grpcAddr, or nil
// when it does not run here. A nil LocalRuntimes holds none.
func (l *LocalRuntimes) Get(grpcAddr string) runtimev1.RuntimeServiceClient {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients[grpcAddr]
}

// onChange registers fn to be called after every Add and Remove.
func (l *LocalRuntimes) onChange(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watch = append(l.watch, fn)
}

// The transport label values of mu_gateway_invokes_total.
const (
	transportInProcess = "in_process"
	transportGRPC      = "grpc"
)

// countInvokes wraps c so that its Invoke calls count under their
// transport.
func (m *metrics) countInvokes(c runtimev1.RuntimeServiceClient, inProcess bool) runtimev1.RuntimeServiceClient {
	t := transportGRPC
	if inProcess {
		t = transportInProcess
	}
	return &countedClient{RuntimeServiceClient: c, invokes: m.invokes.WithLabelValues(t)}
}

// countedClient counts the Invoke calls of a runtime client by transport.
type countedClient struct {
	runtimev1.RuntimeServiceClient
	invokes prometheus.Counter
}

func (c *countedClient) Invoke(ctx context.Context, in *runtimev1.InvokeRequest, opts ...grpc.CallOption) (*runtimev1.InvokeResponse, error) {
	c.invokes.Inc()
	return c.RuntimeServiceClient.Invoke(ctx, in, opts...)
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
// none, RuntimeDialOptions of the default windows and plaintext (insecure
// credentials), for tests and local regions on loopback.
func NewConns(opts ...grpc.DialOption) *Conns {
	if len(opts) == 0 {
		plain, _ := service.NewTLS(service.Base{Plaintext: true}, nil) // plaintext loads nothing
		opts = RuntimeDialOptions(service.Base{GRPCStreamWindow: service.DefaultGRPCStreamWindow, GRPCConnWindow: service.DefaultGRPCConnWindow}, plain)
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
