// Package ledgerpb converts ledger accounts (package libs/ledger) to the
// proto messages that carry them, mu.chainindexer.v1's Provider, Region
// and Stack and mu.types.v1's Rates, and back. The chain indexer serves
// them, and mu.ledger.v1.LedgerService (libs/ledger/ledgerrpc) answers
// its writes with them.
//
// The *Proto functions copy every byte slice, so a message never aliases
// a backend's memory. The Parse functions check every key's size and
// name the field that is wrong.
package ledgerpb

import (
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// ProviderProto is the message of p.
func ProviderProto(p ledger.Provider) *chainindexerv1.Provider {
	return &chainindexerv1.Provider{
		Id:         p.ID.Bytes(),
		Owner:      p.Owner.Bytes(),
		Name:       p.Name,
		Deposit:    p.Deposit,
		Authorized: p.Authorized,
	}
}

// ParseProvider is the provider of m.
func ParseProvider(m *chainindexerv1.Provider) (ledger.Provider, error) {
	if m == nil {
		return ledger.Provider{}, fmt.Errorf("provider: missing")
	}
	var k keys
	p := ledger.Provider{
		ID:         k.key("provider.id", m.GetId()),
		Owner:      k.key("provider.owner", m.GetOwner()),
		Name:       m.GetName(),
		Deposit:    m.GetDeposit(),
		Authorized: m.GetAuthorized(),
	}
	return p, k.err
}

// RatesProto is the message of r.
func RatesProto(r ledger.Rates) *typesv1.Rates {
	return &typesv1.Rates{
		FunctionPerTeraMbInstructions: r.FunctionPerTeraMBInstructions,
		DbPerMillionReads:             r.DBPerMillionReads,
		DbPerMillionWrites:            r.DBPerMillionWrites,
		DbPerGibMonthStored:           r.DBPerGiBMonthStored,
		GatewayPerMillionRequests:     r.GatewayPerMillionRequests,
		GatewayPerGibTraffic:          r.GatewayPerGiBTraffic,
		StoragePerGibMonthStored:      r.StoragePerGiBMonthStored,
		StoragePerGibTraffic:          r.StoragePerGiBTraffic,
	}
}

// ParseRates is the rates of m (all zero for nil).
func ParseRates(m *typesv1.Rates) ledger.Rates {
	return ledger.Rates{
		FunctionPerTeraMBInstructions: m.GetFunctionPerTeraMbInstructions(),
		DBPerMillionReads:             m.GetDbPerMillionReads(),
		DBPerMillionWrites:            m.GetDbPerMillionWrites(),
		DBPerGiBMonthStored:           m.GetDbPerGibMonthStored(),
		GatewayPerMillionRequests:     m.GetGatewayPerMillionRequests(),
		GatewayPerGiBTraffic:          m.GetGatewayPerGibTraffic(),
		StoragePerGiBMonthStored:      m.GetStoragePerGibMonthStored(),
		StoragePerGiBTraffic:          m.GetStoragePerGibTraffic(),
	}
}

// RegionProto is the message of r; usage_signer is empty when r has none.
func RegionProto(r ledger.Region) *chainindexerv1.Region {
	out := &chainindexerv1.Region{
		Id:                         r.ID.Bytes(),
		ProviderId:                 r.Provider.Bytes(),
		RegionNum:                  r.Number,
		Name:                       r.Name,
		BaseUrl:                    r.BaseURL,
		Rates:                      RatesProto(r.Rates),
		MinEscrowBalance:           r.MinEscrowBalance,
		MaxGigaInstructionsPerCall: r.MaxGigaInstructionsPerCall,
		MinMemoryLimitBytes:        r.MinMemoryLimitBytes,
		MaxMemoryLimitBytes:        r.MaxMemoryLimitBytes,
	}
	if !r.UsageSigner.IsZero() { // "empty when none is set"
		out.UsageSigner = r.UsageSigner.Bytes()
	}
	return out
}

// ParseRegion is the region of m.
func ParseRegion(m *chainindexerv1.Region) (ledger.Region, error) {
	if m == nil {
		return ledger.Region{}, fmt.Errorf("region: missing")
	}
	var k keys
	r := ledger.Region{
		ID:       k.key("region.id", m.GetId()),
		Provider: k.key("region.provider_id", m.GetProviderId()),
		Number:   m.GetRegionNum(),
		RegionConfig: ledger.RegionConfig{
			Name:                       m.GetName(),
			BaseURL:                    m.GetBaseUrl(),
			Rates:                      ParseRates(m.GetRates()),
			MinEscrowBalance:           m.GetMinEscrowBalance(),
			MaxGigaInstructionsPerCall: m.GetMaxGigaInstructionsPerCall(),
			MinMemoryLimitBytes:        m.GetMinMemoryLimitBytes(),
			MaxMemoryLimitBytes:        m.GetMaxMemoryLimitBytes(),
		},
	}
	if len(m.GetUsageSigner()) > 0 {
		r.UsageSigner = k.key("region.usage_signer", m.GetUsageSigner())
	}
	return r, k.err
}

// StackStateProto is the message's form of s.
func StackStateProto(s ledger.StackState) chainindexerv1.StackState {
	switch s {
	case ledger.StackActive:
		return chainindexerv1.StackState_STACK_STATE_ACTIVE
	case ledger.StackDeleted:
		return chainindexerv1.StackState_STACK_STATE_DELETED
	}
	return chainindexerv1.StackState_STACK_STATE_UNSPECIFIED
}

// StackProto is the message of s; a stack that is not active is never
// enabled in it.
func StackProto(s ledger.Stack) *chainindexerv1.Stack {
	state := StackStateProto(s.State)
	return &chainindexerv1.Stack{
		Id:       s.ID.Bytes(),
		Owner:    s.Owner.Bytes(),
		RegionId: s.Region.Bytes(),
		Seed:     s.Seed,
		Revision: s.Revision,
		Manifest: append([]byte(nil), s.Manifest...),
		State:    state,
		// The ledger decides; a stack that is not active is never served.
		Enabled: s.Enabled && state == chainindexerv1.StackState_STACK_STATE_ACTIVE,
	}
}

// ParseStack is the stack of m.
func ParseStack(m *chainindexerv1.Stack) (ledger.Stack, error) {
	if m == nil {
		return ledger.Stack{}, fmt.Errorf("stack: missing")
	}
	var k keys
	s := ledger.Stack{
		ID:       k.key("stack.id", m.GetId()),
		Owner:    k.key("stack.owner", m.GetOwner()),
		Region:   k.key("stack.region_id", m.GetRegionId()),
		Seed:     m.GetSeed(),
		Revision: m.GetRevision(),
		Manifest: append([]byte(nil), m.GetManifest()...),
		Enabled:  m.GetEnabled(),
	}
	switch m.GetState() {
	case chainindexerv1.StackState_STACK_STATE_ACTIVE:
		s.State = ledger.StackActive
	case chainindexerv1.StackState_STACK_STATE_DELETED:
		s.State = ledger.StackDeleted
	default:
		if k.err == nil {
			k.err = fmt.Errorf("stack.state: %v is no stack state", m.GetState())
		}
	}
	return s, k.err
}

// keys parses the keys of one message, keeping the first error.
type keys struct{ err error }

func (k *keys) key(field string, b []byte) ledger.Pubkey {
	p, err := ledger.PubkeyFromBytes(field, b)
	if err != nil && k.err == nil {
		k.err = err
	}
	return p
}
