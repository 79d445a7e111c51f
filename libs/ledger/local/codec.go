package local

import (
	"encoding/binary"
	"errors"
	"fmt"

	bin "github.com/gagliardetto/binary"

	"github.com/muprotocol/mu/libs/ledger"
)

// Stored values are a one-byte discriminator naming the record kind, a
// one-byte layout version, then the record in Borsh (little-endian
// integers, u32-length-prefixed strings and byte arrays, fixed arrays
// inline). A value whose prefix or length does not match is refused as
// corrupt rather than guessed at.

// recordVersion is the layout version of every record kind.
const recordVersion = 1

// Record discriminators.
const (
	kindHead     byte = 1
	kindState    byte = 2
	kindWallet   byte = 3
	kindProvider byte = 4
	kindRegion   byte = 5
	kindEscrow   byte = 6
	kindStack    byte = 7
	kindUsage    byte = 8
	kindIndex    byte = 9
	kindChanges  byte = 10
)

// errCorrupt marks a stored value that does not decode.
var errCorrupt = errors.New("ledger: stored record is corrupt")

// headRec is the ledger's head: written by every write, so any two
// concurrent writes conflict and the store serializes them.
type headRec struct {
	Slot uint64
	// Supply is every token minted.
	Supply uint64
	// CompactedThrough: the changes of slots up to it are deleted.
	CompactedThrough uint64
	// DepositVault and Commission are those token accounts' balances.
	DepositVault uint64
	Commission   uint64
}

type stateRec struct {
	Authority        ledger.Pubkey
	ProviderDeposit  uint64
	CommissionMicros uint32
}

type walletRec struct {
	Balance uint64
}

type providerRec struct {
	Owner      ledger.Pubkey
	Name       string
	Deposit    uint64
	Authorized bool
}

type regionRec struct {
	Provider                   ledger.Pubkey
	Number                     uint32
	Name                       string
	BaseURL                    string
	Rates                      [ledger.NumUnits]uint64 // indexed by ledger.Unit
	MinEscrowBalance           uint64
	MaxGigaInstructionsPerCall uint64
	MinMemoryLimitBytes        uint64
	MaxMemoryLimitBytes        uint64
	UsageSigner                ledger.Pubkey
	// ActiveStacks counts the region's stacks not deleted.
	ActiveStacks uint32
}

type escrowRec struct {
	Developer ledger.Pubkey
	Provider  ledger.Pubkey
	Balance   uint64
	Overdrawn bool
	// ActiveStacks counts the developer's stacks with the provider not
	// deleted.
	ActiveStacks uint32
}

type stackRec struct {
	Owner    ledger.Pubkey
	Region   ledger.Pubkey
	Seed     uint64
	Revision uint64
	Manifest []byte
	State    uint8
	// Carry is the sub-unit remainder of the stack's usage charges.
	Carry [ledger.NumUnits]uint64
}

// usageRec marks a used usage seed.
type usageRec struct {
	Slot uint64
}

// indexRec is the value of an index entry: the region of the stack an
// escrow index entry names (zero in region index entries).
type indexRec struct {
	Region ledger.Pubkey
}

// changeEntry is one account of a slot's changes: the account's stored
// record (Data, with its own prefix), its id, and for a stack its Enabled
// flag as of that slot.
type changeEntry struct {
	Kind    uint8
	ID      ledger.Pubkey
	Enabled bool
	Data    []byte
}

type changesRec struct {
	Entries []changeEntry
}

func encode(kind byte, v any) ([]byte, error) {
	b, err := bin.MarshalBorsh(v)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode record %d: %w", kind, err)
	}
	return append([]byte{kind, recordVersion}, b...), nil
}

// decode reads a value encode wrote into v (a pointer to the record type
// of kind).
func decode(kind byte, b []byte, v any) error {
	if len(b) < 2 || b[0] != kind || b[1] != recordVersion {
		return fmt.Errorf("%w: want kind %d version %d, have prefix %x", errCorrupt, kind, recordVersion, b[:min(2, len(b))])
	}
	dec := bin.NewBorshDecoder(b[2:])
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: kind %d: %v", errCorrupt, kind, err)
	}
	if n := dec.Remaining(); n != 0 {
		return fmt.Errorf("%w: kind %d: %d trailing bytes", errCorrupt, kind, n)
	}
	return nil
}

// Keys, all under the prefix "ledger/".
const prefix = "ledger/"

var (
	keyHead  = []byte(prefix + "head")
	keyState = []byte(prefix + "state")
)

func key(tag string, parts ...[]byte) []byte {
	k := append([]byte(prefix), tag...)
	k = append(k, '/')
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func walletKey(p ledger.Pubkey) []byte   { return key("w", p[:]) }
func providerKey(p ledger.Pubkey) []byte { return key("p", p[:]) }
func regionKey(p ledger.Pubkey) []byte   { return key("r", p[:]) }
func stackKey(p ledger.Pubkey) []byte    { return key("s", p[:]) }
func usageKey(p ledger.Pubkey) []byte    { return key("u", p[:]) }
func escrowKey(dev, prov ledger.Pubkey) []byte {
	return key("e", dev[:], prov[:])
}

// escrowIndexKey lists the active stacks of (developer, provider).
func escrowIndexKey(dev, prov, stack ledger.Pubkey) []byte {
	return key("ei", dev[:], prov[:], stack[:])
}

// regionIndexKey lists the active stacks of a region with their owners.
func regionIndexKey(region, owner, stack ledger.Pubkey) []byte {
	return key("ri", region[:], owner[:], stack[:])
}

func changeKey(slot uint64) []byte {
	return key("c", binary.BigEndian.AppendUint64(nil, slot))
}

// prefixEnd is the least key above every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Conversions between records and the ledger's types.

func (s stateRec) public() ledger.State {
	return ledger.State{
		Authority:         s.Authority,
		ProviderDeposit:   s.ProviderDeposit,
		CommissionMicros:  s.CommissionMicros,
		DepositVault:      DepositVault(),
		CommissionAccount: CommissionAccount(),
	}
}

func (p providerRec) public(id ledger.Pubkey) ledger.Provider {
	return ledger.Provider{ID: id, Owner: p.Owner, Name: p.Name, Deposit: p.Deposit, Authorized: p.Authorized}
}

func ratesArray(r ledger.Rates) [ledger.NumUnits]uint64 {
	var a [ledger.NumUnits]uint64
	for u := ledger.Unit(0); u < ledger.NumUnits; u++ {
		a[u] = r.Rate(u)
	}
	return a
}

func ratesStruct(a [ledger.NumUnits]uint64) ledger.Rates {
	return ledger.Rates{
		FunctionPerTeraMBInstructions: a[ledger.UnitFunctionMBInstructions],
		DBPerMillionReads:             a[ledger.UnitDBReads],
		DBPerMillionWrites:            a[ledger.UnitDBWrites],
		DBPerGiBMonthStored:           a[ledger.UnitDBStoredByteSeconds],
		GatewayPerMillionRequests:     a[ledger.UnitGatewayRequests],
		GatewayPerGiBTraffic:          a[ledger.UnitGatewayTrafficBytes],
		StoragePerGiBMonthStored:      a[ledger.UnitStorageStoredByteSeconds],
		StoragePerGiBTraffic:          a[ledger.UnitStorageTrafficBytes],
	}
}

func (r *regionRec) setConfig(c ledger.RegionConfig) {
	r.Name = c.Name
	r.BaseURL = c.BaseURL
	r.Rates = ratesArray(c.Rates)
	r.MinEscrowBalance = c.MinEscrowBalance
	r.MaxGigaInstructionsPerCall = c.MaxGigaInstructionsPerCall
	r.MinMemoryLimitBytes = c.MinMemoryLimitBytes
	r.MaxMemoryLimitBytes = c.MaxMemoryLimitBytes
}

func (r regionRec) public(id ledger.Pubkey) ledger.Region {
	return ledger.Region{
		ID:       id,
		Provider: r.Provider,
		Number:   r.Number,
		RegionConfig: ledger.RegionConfig{
			Name:                       r.Name,
			BaseURL:                    r.BaseURL,
			Rates:                      ratesStruct(r.Rates),
			MinEscrowBalance:           r.MinEscrowBalance,
			MaxGigaInstructionsPerCall: r.MaxGigaInstructionsPerCall,
			MinMemoryLimitBytes:        r.MinMemoryLimitBytes,
			MaxMemoryLimitBytes:        r.MaxMemoryLimitBytes,
		},
		UsageSigner: r.UsageSigner,
	}
}

func (e escrowRec) public() ledger.Escrow {
	return ledger.Escrow{Developer: e.Developer, Provider: e.Provider, Balance: e.Balance, Overdrawn: e.Overdrawn}
}

func (s stackRec) public(id ledger.Pubkey, enabled bool) ledger.Stack {
	return ledger.Stack{
		ID:       id,
		Owner:    s.Owner,
		Region:   s.Region,
		Seed:     s.Seed,
		Revision: s.Revision,
		Manifest: append([]byte(nil), s.Manifest...),
		State:    ledger.StackState(s.State),
		Enabled:  enabled,
	}
}

// enabled is the rule for Stack.Enabled.
func enabled(s stackRec, e escrowRec, minBalance uint64) bool {
	return ledger.StackState(s.State) == ledger.StackActive && !e.Overdrawn && e.Balance >= minBalance
}
