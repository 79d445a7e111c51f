package solanatest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bin "github.com/gagliardetto/binary"
	"github.com/gagliardetto/solana-go"
)

// The marketplace program's account and argument layouts (Borsh), read from
// the program source: each account is its 8-byte discriminator
// sha256("account:Name")[:8] and then its fields in order.

type mpRates struct {
	FunctionMBTeraInstructions uint64
	DBGigabyteMonths           uint64
	MillionDBReads             uint64
	MillionDBWrites            uint64
	MillionGatewayRequests     uint64
	GigabytesGatewayTraffic    uint64
}

type mpUsage struct {
	FunctionMBInstructions bin.Uint128
	DBBytesSeconds         bin.Uint128
	DBReads                uint64
	DBWrites               uint64
	GatewayRequests        uint64
	GatewayTrafficBytes    uint64
}

type mpState struct {
	Authority, Mint, DepositToken, CommissionToken solana.PublicKey
	CommissionRateMicros                           uint32
	ProviderDeposit                                uint64
	Bump                                           uint8
}

type mpAuthorizer struct {
	Authorizer solana.PublicKey
	Bump       uint8
}

type mpProvider struct {
	Owner      solana.PublicKey
	Authorized bool
	Name       string
	Deposit    uint64
	Bump       uint8
}

type mpRegion struct {
	Provider                   solana.PublicKey
	RegionNum                  uint32
	Rates                      mpRates
	MinEscrowBalance           uint64
	MaxGigaInstructionsPerCall uint32
	Bump                       uint8
	Name, BaseURL              string
}

type mpStack struct {
	User, Region solana.PublicKey
	Seed         uint64
	Bump         uint8
	Deleted      bool
	Revision     uint32
	Name         string
	StackData    []byte
}

type mpRequestSigner struct {
	Signer, User, Region solana.PublicKey
	Bump                 uint8
	Active               bool
}

type mpUsageSigner struct {
	Signer, TokenAccount solana.PublicKey
}

type mpUsageUpdate struct {
	Region, Stack solana.PublicKey
	Seed          bin.Uint128
	Usage         mpUsage
}

var (
	discState         = bin.SighashAccount("MuState")
	discAuthorizer    = bin.SighashAccount("ProviderAuthorizer")
	discProvider      = bin.SighashAccount("Provider")
	discRegion        = bin.SighashAccount("ProviderRegion")
	discStack         = bin.SighashAccount("Stack")
	discRequestSigner = bin.SighashAccount("ApiRequestSigner")
	discUsageSigner   = bin.SighashAccount("AuthorizedUsageSigner")
	discUsageUpdate   = bin.SighashAccount("UsageUpdate")
)

// borshReader reads Borsh fields, keeping the first error.
type borshReader struct {
	d   *bin.Decoder
	err error
}

func newReader(b []byte) *borshReader { return &borshReader{d: bin.NewBorshDecoder(b)} }

func (r *borshReader) key() (k solana.PublicKey) {
	if r.err != nil {
		return k
	}
	b, err := r.d.ReadNBytes(32)
	if err != nil {
		r.err = err
		return k
	}
	copy(k[:], b)
	return k
}

func (r *borshReader) u8() uint8 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.ReadUint8()
	r.err = err
	return v
}

func (r *borshReader) boolean() bool {
	v := r.u8()
	if r.err == nil && v > 1 {
		r.err = fmt.Errorf("bool byte %d", v)
	}
	return v == 1
}

func (r *borshReader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.ReadUint32(binary.LittleEndian)
	r.err = err
	return v
}

func (r *borshReader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.ReadUint64(binary.LittleEndian)
	r.err = err
	return v
}

func (r *borshReader) u128() bin.Uint128 {
	lo := r.u64()
	hi := r.u64()
	return bin.Uint128{Lo: lo, Hi: hi}
}

func (r *borshReader) bytes() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if int(n) > r.d.Remaining() {
		r.err = fmt.Errorf("length %d exceeds the %d bytes left", n, r.d.Remaining())
		return nil
	}
	b, err := r.d.ReadNBytes(int(n))
	r.err = err
	return append([]byte(nil), b...)
}

func (r *borshReader) str() string { return string(r.bytes()) }

func (r *borshReader) rates() mpRates {
	return mpRates{r.u64(), r.u64(), r.u64(), r.u64(), r.u64(), r.u64()}
}

func (r *borshReader) usage() mpUsage {
	return mpUsage{r.u128(), r.u128(), r.u64(), r.u64(), r.u64(), r.u64()}
}

// borshWriter writes Borsh fields.
type borshWriter struct{ b bytes.Buffer }

func newWriter(disc []byte) *borshWriter {
	w := &borshWriter{}
	w.b.Write(disc)
	return w
}

func (w *borshWriter) key(k solana.PublicKey) { w.b.Write(k[:]) }
func (w *borshWriter) u8(v uint8)             { w.b.WriteByte(v) }
func (w *borshWriter) boolean(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}
func (w *borshWriter) u32(v uint32) { w.b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (w *borshWriter) u64(v uint64) { w.b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (w *borshWriter) u128(v bin.Uint128) {
	w.u64(v.Lo)
	w.u64(v.Hi)
}
func (w *borshWriter) bytes(b []byte) {
	w.u32(uint32(len(b)))
	w.b.Write(b)
}
func (w *borshWriter) str(s string) { w.bytes([]byte(s)) }
func (w *borshWriter) rates(r mpRates) {
	for _, v := range []uint64{r.FunctionMBTeraInstructions, r.DBGigabyteMonths, r.MillionDBReads, r.MillionDBWrites, r.MillionGatewayRequests, r.GigabytesGatewayTraffic} {
		w.u64(v)
	}
}
func (w *borshWriter) usage(u mpUsage) {
	w.u128(u.FunctionMBInstructions)
	w.u128(u.DBBytesSeconds)
	w.u64(u.DBReads)
	w.u64(u.DBWrites)
	w.u64(u.GatewayRequests)
	w.u64(u.GatewayTrafficBytes)
}

// account reader: skips the discriminator (the caller has checked it).
func accountReader(data []byte) *borshReader { return newReader(data[8:]) }

func decodeState(data []byte) (s mpState, err error) {
	r := accountReader(data)
	s = mpState{r.key(), r.key(), r.key(), r.key(), r.u32(), r.u64(), r.u8()}
	return s, r.err
}

func encodeState(s mpState) []byte {
	w := newWriter(discState)
	w.key(s.Authority)
	w.key(s.Mint)
	w.key(s.DepositToken)
	w.key(s.CommissionToken)
	w.u32(s.CommissionRateMicros)
	w.u64(s.ProviderDeposit)
	w.u8(s.Bump)
	return w.b.Bytes()
}

func decodeAuthorizer(data []byte) (a mpAuthorizer, err error) {
	r := accountReader(data)
	a = mpAuthorizer{r.key(), r.u8()}
	return a, r.err
}

func encodeAuthorizer(a mpAuthorizer) []byte {
	w := newWriter(discAuthorizer)
	w.key(a.Authorizer)
	w.u8(a.Bump)
	return w.b.Bytes()
}

func decodeProvider(data []byte) (p mpProvider, err error) {
	r := accountReader(data)
	p.Owner = r.key()
	p.Authorized = r.boolean()
	p.Name = r.str()
	p.Deposit = r.u64()
	p.Bump = r.u8()
	return p, r.err
}

func encodeProvider(p mpProvider) []byte {
	w := newWriter(discProvider)
	w.key(p.Owner)
	w.boolean(p.Authorized)
	w.str(p.Name)
	w.u64(p.Deposit)
	w.u8(p.Bump)
	return w.b.Bytes()
}

func decodeRegion(data []byte) (g mpRegion, err error) {
	r := accountReader(data)
	g.Provider = r.key()
	g.RegionNum = r.u32()
	g.Rates = r.rates()
	g.MinEscrowBalance = r.u64()
	g.MaxGigaInstructionsPerCall = r.u32()
	g.Bump = r.u8()
	g.Name = r.str()
	g.BaseURL = r.str()
	return g, r.err
}

func encodeRegion(g mpRegion) []byte {
	w := newWriter(discRegion)
	w.key(g.Provider)
	w.u32(g.RegionNum)
	w.rates(g.Rates)
	w.u64(g.MinEscrowBalance)
	w.u32(g.MaxGigaInstructionsPerCall)
	w.u8(g.Bump)
	w.str(g.Name)
	w.str(g.BaseURL)
	return w.b.Bytes()
}

func decodeStack(data []byte) (s mpStack, err error) {
	r := accountReader(data)
	s.User = r.key()
	s.Region = r.key()
	s.Seed = r.u64()
	s.Bump = r.u8()
	switch tag := r.u8(); {
	case r.err != nil:
	case tag == 0:
		s.Revision = r.u32()
		s.Name = r.str()
		s.StackData = r.bytes()
	case tag == 1:
		s.Deleted = true
	default:
		r.err = fmt.Errorf("StackState variant %d", tag)
	}
	return s, r.err
}

func encodeStack(s mpStack) []byte {
	w := newWriter(discStack)
	w.key(s.User)
	w.key(s.Region)
	w.u64(s.Seed)
	w.u8(s.Bump)
	if s.Deleted {
		w.u8(1)
	} else {
		w.u8(0)
		w.u32(s.Revision)
		w.str(s.Name)
		w.bytes(s.StackData)
	}
	return w.b.Bytes()
}

func decodeRequestSigner(data []byte) (s mpRequestSigner, err error) {
	r := accountReader(data)
	s = mpRequestSigner{r.key(), r.key(), r.key(), r.u8(), r.boolean()}
	return s, r.err
}

func encodeRequestSigner(s mpRequestSigner) []byte {
	w := newWriter(discRequestSigner)
	w.key(s.Signer)
	w.key(s.User)
	w.key(s.Region)
	w.u8(s.Bump)
	w.boolean(s.Active)
	return w.b.Bytes()
}

func decodeUsageSigner(data []byte) (s mpUsageSigner, err error) {
	r := accountReader(data)
	s = mpUsageSigner{r.key(), r.key()}
	return s, r.err
}

func encodeUsageSigner(s mpUsageSigner) []byte {
	w := newWriter(discUsageSigner)
	w.key(s.Signer)
	w.key(s.TokenAccount)
	return w.b.Bytes()
}

func encodeUsageUpdate(u mpUsageUpdate) []byte {
	w := newWriter(discUsageUpdate)
	w.key(u.Region)
	w.key(u.Stack)
	w.u128(u.Seed)
	w.usage(u.Usage)
	return w.b.Bytes()
}

var errShortData = errors.New("instruction data too short")
