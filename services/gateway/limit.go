package gateway

import (
	"net"

	"golang.org/x/net/netutil"
)

// limitConnections returns ln limited to Config.MaxConnections accepted
// connections open at once: while that many are open, Accept waits, so a
// further client's connection stays in the kernel's accept queue
// (connected, nothing read or answered, no goroutine or buffer spent on
// it) until an open one closes. Closing the returned listener ends a
// waiting Accept. It has the signature of a listener wrapper so the public
// listener can be wrapped where it is bound.
//
// Not wired yet: service.Runner binds the public listener in Start and
// offers no way to wrap it, and libs/service belongs to another change.
// With a Runner method
//
//	AddHTTPListener(name, addr string, srv *http.Server, wrap func(net.Listener) net.Listener)
//
// New registers the public listener with
//
//	s.run.AddHTTPListener("http", cfg.HTTPAddr, srv, s.limitConnections)
//
// instead of AddHTTP, and MaxConnections applies.
func (s *Server) limitConnections(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, s.cfg.MaxConnections)
}
