package gateway

import (
	"net"
	"time"
)

// SetClock replaces the clock of the per-stack response counts; call it
// before Start.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// LimitConnections exposes the public listener's connection cap to the
// external tests until service.Runner can apply it.
func (s *Server) LimitConnections(ln net.Listener) net.Listener { return s.limitConnections(ln) }

// MinRequestHead and EndpointNameReserve are the constants of the frame
// bound, for the tests that check it against real encodings.
const (
	MinRequestHead      = minRequestHead
	EndpointNameReserve = endpointNameReserve
)

// RetryAfterSeconds is the Retry-After value of a duration.
var RetryAfterSeconds = retryAfterSeconds
