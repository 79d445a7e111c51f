package marketplace

import (
	"fmt"

	bin "github.com/gagliardetto/binary"

	"github.com/muprotocol/mu/libs/ledger"
)

// ServiceRates are a region's prices in token base units (the program's
// ServiceRates, in its field order): per 10^12 MB-instructions, per GiB-month
// of database storage, per million database reads and writes, per million
// gateway requests and per GiB of gateway traffic. The program has no
// storage-service rates.
type ServiceRates struct {
	FunctionMBTeraInstructions uint64
	DBGigabyteMonths           uint64
	MillionDBReads             uint64
	MillionDBWrites            uint64
	MillionGatewayRequests     uint64
	GigabytesGatewayTraffic    uint64
}

// ServiceRatesSize is the Borsh size of ServiceRates: six u64.
const ServiceRatesSize = 6 * 8

func (r ServiceRates) write(w *writer) {
	w.u64(r.FunctionMBTeraInstructions)
	w.u64(r.DBGigabyteMonths)
	w.u64(r.MillionDBReads)
	w.u64(r.MillionDBWrites)
	w.u64(r.MillionGatewayRequests)
	w.u64(r.GigabytesGatewayTraffic)
}

func (r *ServiceRates) read(rd *reader, field string) {
	r.FunctionMBTeraInstructions = rd.u64(field + ".function_mb_tera_instructions")
	r.DBGigabyteMonths = rd.u64(field + ".db_gigabyte_months")
	r.MillionDBReads = rd.u64(field + ".million_db_reads")
	r.MillionDBWrites = rd.u64(field + ".million_db_writes")
	r.MillionGatewayRequests = rd.u64(field + ".million_gateway_requests")
	r.GigabytesGatewayTraffic = rd.u64(field + ".gigabytes_gateway_traffic")
}

// MarshalWithEncoder writes r's Borsh encoding (bin.BinaryMarshaler).
func (r ServiceRates) MarshalWithEncoder(enc *bin.Encoder) error {
	w := &writer{enc: enc}
	r.write(w)
	return w.err
}

// UnmarshalWithDecoder reads r's Borsh encoding (bin.BinaryUnmarshaler).
func (r *ServiceRates) UnmarshalWithDecoder(dec *bin.Decoder) error {
	rd := newReader(dec, "ServiceRates")
	r.read(rd, "rates")
	return rd.err
}

// ServiceUsage is one usage report (the program's ServiceUsage, in its
// field order): MB-instructions and database byte-seconds as u128, database
// reads and writes, gateway requests and gateway traffic bytes as u64. The
// program has no storage-service usage.
type ServiceUsage struct {
	FunctionMBInstructions ledger.Uint128
	DBBytesSeconds         ledger.Uint128
	DBReads                uint64
	DBWrites               uint64
	GatewayRequests        uint64
	GatewayTrafficBytes    uint64
}

// ServiceUsageSize is the Borsh size of ServiceUsage: two u128, four u64.
const ServiceUsageSize = 2*16 + 4*8

func (u ServiceUsage) write(w *writer) {
	w.u128(u.FunctionMBInstructions)
	w.u128(u.DBBytesSeconds)
	w.u64(u.DBReads)
	w.u64(u.DBWrites)
	w.u64(u.GatewayRequests)
	w.u64(u.GatewayTrafficBytes)
}

func (u *ServiceUsage) read(rd *reader, field string) {
	u.FunctionMBInstructions = rd.u128(field + ".function_mb_instructions")
	u.DBBytesSeconds = rd.u128(field + ".db_bytes_seconds")
	u.DBReads = rd.u64(field + ".db_reads")
	u.DBWrites = rd.u64(field + ".db_writes")
	u.GatewayRequests = rd.u64(field + ".gateway_requests")
	u.GatewayTrafficBytes = rd.u64(field + ".gateway_traffic_bytes")
}

// MarshalWithEncoder writes u's Borsh encoding (bin.BinaryMarshaler).
func (u ServiceUsage) MarshalWithEncoder(enc *bin.Encoder) error {
	w := &writer{enc: enc}
	u.write(w)
	return w.err
}

// UnmarshalWithDecoder reads u's Borsh encoding (bin.BinaryUnmarshaler).
func (u *ServiceUsage) UnmarshalWithDecoder(dec *bin.Decoder) error {
	rd := newReader(dec, "ServiceUsage")
	u.read(rd, "usage")
	return rd.err
}

// StackStateKind is the variant index of the program's StackState enum.
type StackStateKind uint8

const (
	// StackActive is StackState::Active { revision, name, stack_data }.
	StackActive StackStateKind = 0
	// StackDeleted is StackState::Deleted, which has no fields.
	StackDeleted StackStateKind = 1
)

// String names the variant.
func (k StackStateKind) String() string {
	switch k {
	case StackActive:
		return "Active"
	case StackDeleted:
		return "Deleted"
	}
	return fmt.Sprintf("StackStateKind(%d)", uint8(k))
}

// StackState is the program's StackState enum: Kind, and for an active
// stack its revision (1 on creation, +1 per update_stack), name and stack
// data (the manifest bytes). The fields after Kind are encoded only when
// Kind is StackActive; a decoded deleted state has them zero. Encoding a
// Kind other than the two variants writes that index alone (the program
// would refuse to read it), which lets tests build such data.
type StackState struct {
	Kind      StackStateKind
	Revision  uint32
	Name      string
	StackData []byte
}

// Active reports whether the state is StackState::Active.
func (s StackState) Active() bool { return s.Kind == StackActive }

// size is the Borsh size of s.
func (s StackState) size() int {
	if s.Kind != StackActive {
		return 1
	}
	return 1 + 4 + 4 + len(s.Name) + 4 + len(s.StackData)
}

func (s StackState) write(w *writer) {
	w.u8(uint8(s.Kind))
	if s.Kind != StackActive {
		return
	}
	w.u32(s.Revision)
	w.str(s.Name)
	w.vec(s.StackData)
}

func (s *StackState) read(rd *reader, field string) {
	*s = StackState{Kind: StackStateKind(rd.u8(field))}
	if rd.err != nil {
		return
	}
	switch s.Kind {
	case StackActive:
		s.Revision = rd.u32(field + ".revision")
		s.Name = rd.str(field + ".name")
		s.StackData = rd.vec(field + ".stack_data")
	case StackDeleted:
	default:
		rd.fail(field, fmt.Errorf("unknown StackState variant %d", uint8(s.Kind)))
	}
}

// MarshalWithEncoder writes s's Borsh encoding (bin.BinaryMarshaler).
func (s StackState) MarshalWithEncoder(enc *bin.Encoder) error {
	w := &writer{enc: enc}
	s.write(w)
	return w.err
}

// UnmarshalWithDecoder reads s's Borsh encoding (bin.BinaryUnmarshaler).
func (s *StackState) UnmarshalWithDecoder(dec *bin.Decoder) error {
	rd := newReader(dec, "StackState")
	s.read(rd, "state")
	return rd.err
}
