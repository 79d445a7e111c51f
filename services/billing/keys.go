package billing

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
)

// Key layout in the TiKV store, all under "billing/" (see doc.go).
var (
	prefixKey        = []byte("billing/k/")  // + idempotency key → u64 BE unix ns when first seen
	prefixKeyTime    = []byte("billing/kt/") // + u64 BE unix ns + u32 BE chunk → keyList (sweeper index)
	prefixBucket     = []byte("billing/b/")  // + stack(32) + u64 BE bucket start unix ns + kind(1) → u128 BE
	prefixStack      = []byte("billing/s/")  // + stack(32) → stackRec (JSON)
	prefixSettlement = []byte("billing/t/")  // + stack(32) + u64 BE seed → billingv1.Settlement
	prefixBurn       = []byte("billing/e/")  // + owner(32) + provider(32) + u64 BE unix ns + stack(32) + seed(8) → u64 BE charged
	prefixReceipt    = []byte("billing/r/")  // + receipt id → billingv1.SignedReceipt
	prefixReceiptIdx = []byte("billing/rs/") // + stack(32) + u64 BE unix ns + receipt id → marker
)

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// prefixEnd is the smallest key above every key with prefix p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

func idemKey(key string) []byte { return cat(prefixKey, []byte(key)) }
func idemTimeKey(ns uint64, chunk uint32) []byte {
	return cat(prefixKeyTime, be64(ns), binary.BigEndian.AppendUint32(nil, chunk))
}

// keysPerChunk is how many idempotency keys one sweeper index entry lists
// (at most 1000 × 129 bytes: far below TiKV's entry size limit).
const keysPerChunk = 1000

// appendKeyList appends key to a sweeper index entry: u8 length + bytes.
func appendKeyList(list []byte, key string) []byte {
	return append(append(list, byte(len(key))), key...)
}

// splitKeyList returns the keys of a sweeper index entry.
func splitKeyList(list []byte) ([]string, error) {
	var keys []string
	for len(list) > 0 {
		n := int(list[0])
		if 1+n > len(list) {
			return nil, fmt.Errorf("billing: sweeper index entry is truncated")
		}
		keys = append(keys, string(list[1:1+n]))
		list = list[1+n:]
	}
	return keys, nil
}
func bucketKey(stack ledger.Pubkey, start uint64, unit ledger.Unit) []byte {
	return cat(prefixBucket, stack[:], be64(start), []byte{byte(unit)})
}
func stackKey(stack ledger.Pubkey) []byte { return cat(prefixStack, stack[:]) }
func settlementKey(stack ledger.Pubkey, seed uint64) []byte {
	return cat(prefixSettlement, stack[:], be64(seed))
}
func burnPrefix(owner, provider ledger.Pubkey) []byte {
	return cat(prefixBurn, owner[:], provider[:])
}
func burnKey(owner, provider ledger.Pubkey, ns uint64, stack ledger.Pubkey, seed uint64) []byte {
	return cat(burnPrefix(owner, provider), be64(ns), stack[:], be64(seed))
}
func receiptKey(id string) []byte { return cat(prefixReceipt, []byte(id)) }
func receiptIdxKey(stack ledger.Pubkey, ns uint64, id string) []byte {
	return cat(prefixReceiptIdx, stack[:], be64(ns), []byte(id))
}

// amounts are per-unit sums, indexed by ledger.Unit.
type amounts [ledger.NumUnits]ledger.Uint128

func (a *amounts) add(b amounts) error {
	for u := range a {
		s, over := a[u].Add(b[u])
		if over {
			return fmt.Errorf("billing: %s total overflows 128 bits", ledger.Unit(u))
		}
		a[u] = s
	}
	return nil
}

func (a amounts) isZero() bool {
	for _, x := range a {
		if !x.IsZero() {
			return false
		}
	}
	return true
}

func (a amounts) usage() ledger.Usage {
	var u ledger.Usage
	for i, x := range a {
		u.Set(ledger.Unit(i), x)
	}
	return u
}

func encodeU128(x ledger.Uint128) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), x.Hi)
	return binary.BigEndian.AppendUint64(b, x.Lo)
}

func decodeU128(b []byte) (ledger.Uint128, error) {
	if len(b) != 16 {
		return ledger.Uint128{}, fmt.Errorf("billing: stored amount is %d bytes, want 16", len(b))
	}
	return ledger.Uint128{Hi: binary.BigEndian.Uint64(b), Lo: binary.BigEndian.Uint64(b[8:])}, nil
}

// stackRec is a stack's settlement state: its unsettled usage, the
// settlement in flight (if any) and the last seed it used.
type stackRec struct {
	Region ledger.Pubkey `json:"region"`
	// Unsettled is usage not yet part of any settlement.
	Unsettled amounts `json:"unsettled"`
	// Oldest is the unix ns of the oldest record in Unsettled (or in
	// Pending, whichever is older); 0 when there is none.
	Oldest int64 `json:"oldest,omitempty"`
	// Pending is the settlement sent (or about to be sent) to the ledger
	// and not yet answered for good.
	Pending *pendingRec `json:"pending,omitempty"`
	// LastSeed is the latest seed this stack used.
	LastSeed uint64 `json:"last_seed,omitempty"`
}

type pendingRec struct {
	Seed     uint64  `json:"seed"`
	Usage    amounts `json:"usage"`
	Oldest   int64   `json:"oldest,omitempty"`
	Created  int64   `json:"created"`
	Attempts int     `json:"attempts"`
	LastErr  string  `json:"last_error,omitempty"`
	// Short: the usage was cut to what the owner's escrow held (a ledger
	// without partial charges); the rest stayed unsettled.
	Short bool `json:"short,omitempty"`
}

// hasUsage reports whether the stack has usage not settled on the ledger.
func (r *stackRec) hasUsage() bool { return r.Pending != nil || !r.Unsettled.isZero() }

func decodeStack(b []byte) (*stackRec, error) {
	r := new(stackRec)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("billing: decode stack record: %w", err)
	}
	return r, nil
}

func (r *stackRec) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

// marker is the value of index keys: TiKV stores no empty values.
var marker = []byte{1}
