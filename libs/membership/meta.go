package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// wireMeta is Meta as gossiped: JSON with one-letter keys, so a member's
// metadata stays far below memberlist's 512 bytes. Decoders ignore keys
// they do not know, so later versions may add some.
type wireMeta struct {
	Role       string `json:"r"`
	Region     string `json:"g"`
	GRPCAddr   string `json:"a,omitempty"`
	Generation int64  `json:"n"`
	Warming    bool   `json:"w,omitempty"` // not Ready yet
}

func toWire(m Meta) wireMeta {
	return wireMeta{Role: m.Role, Region: m.Region, GRPCAddr: m.GRPCAddr, Generation: m.Generation, Warming: !m.Ready}
}

func fromWire(w wireMeta) Meta {
	return Meta{Role: w.Role, Region: w.Region, GRPCAddr: w.GRPCAddr, Generation: w.Generation, Ready: !w.Warming}
}

// encodeMeta is m on the wire; an error when it exceeds memberlist's
// metadata limit.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(toWire(m))
	if err != nil {
		return nil, fmt.Errorf("encode node meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node meta is %d bytes, over memberlist's limit of %d (role %d bytes, region %d bytes, gRPC address %d bytes)",
			len(b), memberlist.MetaMaxSize, len(m.Role), len(m.Region), len(m.GRPCAddr))
	}
	return b, nil
}

// decodeMeta decodes another member's metadata: outside input, checked
// rather than trusted. It needs a role, a generation above 0 and, if there
// is a gRPC address, a usable ip:port.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, fmt.Errorf("node meta is %d bytes, over the limit of %d", len(b), memberlist.MetaMaxSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode node meta: %w", err)
	}
	var errs []error
	if w.Role == "" {
		errs = append(errs, errors.New("no role"))
	}
	if w.Generation <= 0 {
		errs = append(errs, fmt.Errorf("generation %d is not positive", w.Generation))
	}
	if w.GRPCAddr != "" {
		ap, err := netip.ParseAddrPort(w.GRPCAddr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("gRPC address: %w", err))
		case ap.Addr().Zone() != "" || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() || ap.Port() == 0:
			errs = append(errs, fmt.Errorf("gRPC address %q is not a unicast ip:port", w.GRPCAddr))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Meta{}, fmt.Errorf("decode node meta: %w", err)
	}
	return fromWire(w), nil
}
