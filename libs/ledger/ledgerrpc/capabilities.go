package ledgerrpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muprotocol/mu/libs/ledger"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// What the hosted backend lacks (ledger.Lacking) crosses the wire once:
// FetchLacks asks the host and caches its answer, Lacks answers from the
// cache.

// FetchLacks asks the host which capabilities its backend lacks and
// caches the answer for Lacks; after the first answer it returns the
// cached one without a call. A host without GetCapabilities
// (UNIMPLEMENTED: an older chain indexer, whose backend is the local one)
// lacks none. Any other failure is returned (ErrUnavailable when the host
// did not answer) and nothing is cached, so the next call asks again.
// Safe for concurrent use.
func (c *Client) FetchLacks(ctx context.Context) ([]ledger.Capability, error) {
	c.capMu.Lock()
	defer c.capMu.Unlock()
	if c.capKnown {
		return c.lacks, nil
	}
	resp, err := c.c.GetCapabilities(ctx, &ledgerv1.GetCapabilitiesRequest{})
	switch {
	case status.Code(err) == codes.Unimplemented:
		c.lacks = nil
	case err != nil:
		return nil, fromStatus(ctx, "ledgerrpc: capabilities", err)
	default:
		c.lacks = nil
		for _, name := range resp.GetLacks() {
			c.lacks = append(c.lacks, ledger.Capability(name))
		}
	}
	c.capKnown = true
	return c.lacks, nil
}

// Lacks returns what the host's backend lacks as FetchLacks last learnt
// it; before FetchLacks has answered it returns nil, which a caller must
// not read as "lacks none": call FetchLacks first (LacksKnown says whether
// it has answered). It does not block.
func (c *Client) Lacks() []ledger.Capability {
	c.capMu.Lock()
	defer c.capMu.Unlock()
	return c.lacks
}

// LacksKnown reports whether FetchLacks has answered, so Lacks is the
// host's answer.
func (c *Client) LacksKnown() bool {
	c.capMu.Lock()
	defer c.capMu.Unlock()
	return c.capKnown
}

func (s *server) GetCapabilities(ctx context.Context, _ *ledgerv1.GetCapabilitiesRequest) (*ledgerv1.GetCapabilitiesResponse, error) {
	resp := &ledgerv1.GetCapabilitiesResponse{}
	if l, ok := s.l.(ledger.Lacking); ok {
		for _, c := range l.Lacks() {
			resp.Lacks = append(resp.Lacks, string(c))
		}
	}
	return resp, nil
}
