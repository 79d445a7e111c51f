package gateway

import "net"

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
