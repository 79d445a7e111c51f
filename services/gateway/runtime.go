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

// RuntimeResolver picks the runtime node that serves a stack. Runtime is
// called once per request; it must be safe for concurrent use and must not
// block on the network (return a client over a long-lived connection, which
// connects lazily). An error makes the request fail with 503.
type RuntimeResolver interface {
	Runtime(stack ids.StackID) (runtimev1.RuntimeServiceClient, error)
}

// StaticRuntime is a RuntimeResolver that sends every stack to one runtime
// (one node, `mu run`, tests). Placement by XOR distance over memberlist
// replaces it once gateways join the member list.
type StaticRuntime struct {
	client runtimev1.RuntimeServiceClient
}

// NewStaticRuntime returns a resolver whose client uses conn for every
// call, so all requests share its connection. The caller keeps ownership of
// conn and closes it after the Server.
func NewStaticRuntime(conn grpc.ClientConnInterface) *StaticRuntime {
	return &StaticRuntime{client: runtimev1.NewRuntimeServiceClient(conn)}
}

// Runtime implements RuntimeResolver.
func (s *StaticRuntime) Runtime(ids.StackID) (runtimev1.RuntimeServiceClient, error) {
	return s.client, nil
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
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
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
