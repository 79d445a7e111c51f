package membership

import (
	"github.com/muprotocol/mu/libs/placement"
)

// Runtime is a runtime member with its placement id.
type Runtime struct {
	Member
	ID placement.NodeID
}

// Runtimes picks, from members (sorted by name, as OnChange gives them),
// the runtimes of region that stacks are placed on: the Ready ones, plus
// the member named self if there is one (a runtime places stacks on
// itself while it warms up, to know which it will own). Each comes with
// its placement id, SHA-256 over its gRPC address and generation, so
// gateways and runtimes build the same ring. A member whose gRPC address
// is not a literal ip:port is left out and reported in bad, by name; of
// two members with one id (one node seen under two names, which honest
// members never are) the first is kept.
func Runtimes(members []Member, region, self string) (out []Runtime, bad map[string]error) {
	seen := map[placement.NodeID]bool{}
	for _, m := range members {
		if m.Meta.Role != RoleRuntime || m.Meta.Region != region || (!m.Meta.Ready && m.Name != self) {
			continue
		}
		id, err := placement.NodeIDOf(m.Meta.GRPCAddr, m.Meta.Generation)
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[m.Name] = err
			continue
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, Runtime{Member: m, ID: id})
	}
	return out, bad
}
