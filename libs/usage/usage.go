// Package usage carries metered usage from the services that measure it
// (gateway, runtime, mudb, storage) to billing. A Sink receives records;
// every record has an idempotency key so a retried batch is never counted
// twice. A Batcher takes records off a service's request path and delivers
// them to a Sink in the background; every service reports through one.
package usage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// Kind is a metered quantity (the proto enum, so records need no mapping on the wire).
type Kind = typesv1.UsageKind

// The kinds this package's users report.
const (
	FunctionMBInstructions   = typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS
	DBReads                  = typesv1.UsageKind_USAGE_KIND_DB_READS
	DBWrites                 = typesv1.UsageKind_USAGE_KIND_DB_WRITES
	GatewayRequests          = typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS
	GatewayTrafficBytes      = typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES
	StorageTrafficBytes      = typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES
	StorageStoredByteSeconds = typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS
	DBStoredByteSeconds      = typesv1.UsageKind_USAGE_KIND_DB_STORED_BYTE_SECONDS
)

// Record is one metered amount for one stack.
type Record struct {
	Stack  ids.StackID
	Kind   Kind
	Amount uint64
	// Key is unique per record across the region (see Keys); billing drops a
	// record whose key it has seen.
	Key  string
	Time time.Time
}

// Sink receives usage. Report returns nil only once the records are safe
// (persisted or handed to something that retries until they are);
// implementations must be safe for concurrent use.
type Sink interface {
	Report(ctx context.Context, records ...Record) error
}

// Keys makes idempotency keys unique to one process: a prefix (node or
// service name), the process start in nanoseconds and a sequence number.
type Keys struct {
	prefix string
	seq    atomic.Uint64
}

// NewKeys returns a key generator for prefix.
func NewKeys(prefix string) *Keys {
	return &Keys{prefix: fmt.Sprintf("%s/%d", prefix, time.Now().UnixNano())}
}

// Next returns a new key: the prefix, '/' and the sequence number. It
// allocates the key's string and nothing else.
func (k *Keys) Next() string {
	var num [20]byte // the digits of a uint64
	seq := strconv.AppendUint(num[:0], k.seq.Add(1), 10)
	var b strings.Builder
	b.Grow(len(k.prefix) + 1 + len(seq))
	b.WriteString(k.prefix)
	b.WriteByte('/')
	b.Write(seq)
	return b.String()
}

// Discard is a Sink that drops everything.
type Discard struct{}

// Report implements Sink.
func (Discard) Report(context.Context, ...Record) error { return nil }

// Memory is a Sink that keeps totals per stack and kind in memory (for `mu
// run` and tests). A record whose key it has seen among the last
// DedupWindow keys is ignored, as billing ignores replays; the window keeps
// its memory bounded however long it runs (retries resend a batch within
// seconds, far inside it).
type Memory struct {
	mu     sync.Mutex
	totals map[ids.StackID]map[Kind]uint64
	seen   map[string]struct{}
	ring   []string // the last len(ring) keys, oldest at next
	next   int
	count  int
}

// DedupWindow is how many recent idempotency keys a Memory sink remembers.
const DedupWindow = 100_000

// NewMemory returns an empty Memory sink.
func NewMemory() *Memory { return newMemory(DedupWindow) }

func newMemory(window int) *Memory {
	return &Memory{
		totals: make(map[ids.StackID]map[Kind]uint64),
		seen:   make(map[string]struct{}, window),
		ring:   make([]string, 0, window),
	}
}

// Report implements Sink.
func (m *Memory) Report(_ context.Context, records ...Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range records {
		if r.Key != "" {
			if _, dup := m.seen[r.Key]; dup {
				continue
			}
			m.remember(r.Key)
		}
		t := m.totals[r.Stack]
		if t == nil {
			t = make(map[Kind]uint64)
			m.totals[r.Stack] = t
		}
		t[r.Kind] += r.Amount
		m.count++
	}
	return nil
}

// remember adds key to the window, forgetting the oldest when it is full.
func (m *Memory) remember(key string) {
	if len(m.ring) < cap(m.ring) {
		m.ring = append(m.ring, key)
	} else {
		delete(m.seen, m.ring[m.next])
		m.ring[m.next] = key
		m.next = (m.next + 1) % len(m.ring)
	}
	m.seen[key] = struct{}{}
}

// Total returns the sum reported for stack and kind.
func (m *Memory) Total(stack ids.StackID, kind Kind) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.totals[stack][kind]
}

// Records is the number of distinct records accepted.
func (m *Memory) Records() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}
