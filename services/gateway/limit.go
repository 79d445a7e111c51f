package gateway

import (
	"net"
	"sync"
)

// limitConnections returns ln limited to Config.MaxConnections accepted
// connections open at once: while that many are open, Accept waits, so a
// further client's connection stays in the kernel's accept queue
// (connected, nothing read or answered, no goroutine or buffer spent on
// it) until an open one closes. Closing the returned listener ends a
// waiting Accept. New hands it to the service runner, which wraps the
// public listener with it as soon as the listener is bound.
//
// It is golang.org/x/net/netutil.LimitListener's idea with one difference
// that matters here: the connections it returns keep CloseWrite, which
// net/http uses to half-close after answering a request it will not read
// (431, 413), so the client reads the answer instead of a reset.
//
// With MaxConnections 0 (no cap) it returns ln as it is.
func (s *Server) limitConnections(ln net.Listener) net.Listener {
	if s.cfg.MaxConnections == 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, s.cfg.MaxConnections), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one element per open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
