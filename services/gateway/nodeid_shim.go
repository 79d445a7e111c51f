package gateway

// Temporary until libs/placement gains NodeIDOf (branch placement).

import (
	"net/netip"

	"github.com/muprotocol/mu/libs/placement"
)

func nodeIDOf(grpcAddr string, generation int64) (placement.NodeID, error) {
	ap, err := netip.ParseAddrPort(grpcAddr)
	if err != nil {
		return placement.NodeID{}, err
	}
	return placement.NewNodeID(ap.Addr(), ap.Port(), generation), nil
}
