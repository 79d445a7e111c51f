package gateway

import "google.golang.org/grpc"

// Flow-control windows of the gateway's connections to runtimes, in bytes.
//
// Left to itself, gRPC sizes an HTTP/2 receive window by estimating the
// link's bandwidth-delay product: it pings the peer whenever data arrives
// and no ping is out, and the peer answers, which on a small unary call
// over loopback or a LAN is a ping, an ack and their frames for about
// every request (measured by BenchmarkHotPath_HelloGET: 6 allocations and
// 3 read/write syscalls of a hello GET). A fixed window turns the
// estimator off. These are the sizes the estimator would reach at most
// (its own bound is 16 MiB per connection): the largest response the
// default limits allow (Config.MaxResponseBytes, 10 MiB) crosses a 4 MiB
// stream window in three round trips, a few hundred microseconds inside a
// region. A window bounds only what a runtime may send before the gateway
// reads it, not what the gateway keeps.
const (
	runtimeStreamWindow = 4 << 20  // per call
	runtimeConnWindow   = 16 << 20 // per connection, all calls on it
)

// runtimeWindowOptions are the dial options setting the fixed windows.
var runtimeWindowOptions = []grpc.DialOption{
	grpc.WithInitialWindowSize(runtimeStreamWindow),
	grpc.WithInitialConnWindowSize(runtimeConnWindow),
}
