package ledger

import (
	"context"

	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// UsageUpdater is the one ledger write billing makes; every Ledger is one,
// and so is the client of a ledger hosted in another process
// (libs/ledger/ledgerrpc). See Ledger.UpdateUsage.
type UsageUpdater interface {
	UpdateUsage(ctx context.Context, signer Signer, stack Pubkey, seed Uint128, u Usage) (UsageResult, error)
}

var kindUnits = map[typesv1.UsageKind]Unit{
	typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS:    UnitFunctionMBInstructions,
	typesv1.UsageKind_USAGE_KIND_DB_READS:                    UnitDBReads,
	typesv1.UsageKind_USAGE_KIND_DB_WRITES:                   UnitDBWrites,
	typesv1.UsageKind_USAGE_KIND_DB_STORED_BYTE_SECONDS:      UnitDBStoredByteSeconds,
	typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS:            UnitGatewayRequests,
	typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES:       UnitGatewayTrafficBytes,
	typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS: UnitStorageStoredByteSeconds,
	typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES:       UnitStorageTrafficBytes,
}

var unitKinds = func() (k [NumUnits]typesv1.UsageKind) {
	for kind, u := range kindUnits {
		k[u] = kind
	}
	return k
}()

// UnitOf returns the billed unit of a usage kind; ok is false for
// USAGE_KIND_UNSPECIFIED and kinds this build does not know.
func UnitOf(kind typesv1.UsageKind) (u Unit, ok bool) {
	u, ok = kindUnits[kind]
	return u, ok
}

// Kind returns the proto usage kind of u (USAGE_KIND_UNSPECIFIED for an
// unknown unit).
func (u Unit) Kind() typesv1.UsageKind {
	if u < 0 || u >= NumUnits {
		return typesv1.UsageKind_USAGE_KIND_UNSPECIFIED
	}
	return unitKinds[u]
}

// Set sets the amount of unit u (an unknown unit is ignored).
func (x *Usage) Set(u Unit, amount Uint128) {
	switch u {
	case UnitFunctionMBInstructions:
		x.FunctionMBInstructions = amount
	case UnitDBReads:
		x.DBReads = amount
	case UnitDBWrites:
		x.DBWrites = amount
	case UnitDBStoredByteSeconds:
		x.DBStoredByteSeconds = amount
	case UnitGatewayRequests:
		x.GatewayRequests = amount
	case UnitGatewayTrafficBytes:
		x.GatewayTrafficBytes = amount
	case UnitStorageStoredByteSeconds:
		x.StorageStoredByteSeconds = amount
	case UnitStorageTrafficBytes:
		x.StorageTrafficBytes = amount
	}
}

// IsZero reports whether every amount is zero.
func (x Usage) IsZero() bool {
	for u := Unit(0); u < NumUnits; u++ {
		if !x.Amount(u).IsZero() {
			return false
		}
	}
	return true
}

// Set sets the rate of unit u (an unknown unit is ignored).
func (r *Rates) Set(u Unit, rate uint64) {
	switch u {
	case UnitFunctionMBInstructions:
		r.FunctionPerTeraMBInstructions = rate
	case UnitDBReads:
		r.DBPerMillionReads = rate
	case UnitDBWrites:
		r.DBPerMillionWrites = rate
	case UnitDBStoredByteSeconds:
		r.DBPerGiBMonthStored = rate
	case UnitGatewayRequests:
		r.GatewayPerMillionRequests = rate
	case UnitGatewayTrafficBytes:
		r.GatewayPerGiBTraffic = rate
	case UnitStorageStoredByteSeconds:
		r.StoragePerGiBMonthStored = rate
	case UnitStorageTrafficBytes:
		r.StoragePerGiBTraffic = rate
	}
}
