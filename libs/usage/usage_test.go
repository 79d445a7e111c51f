package usage

import (
	"context"
	"strings"
	"testing"

	"github.com/muprotocol/mu/libs/ids"
)

func TestMemory_SumsAndDropsDuplicateKeys(t *testing.T) {
	m := NewMemory()
	keys := NewKeys("gw")
	stack := ids.StackID{1}
	k1, k2 := keys.Next(), keys.Next()
	if k1 == k2 || !strings.HasPrefix(k1, "gw/") {
		t.Fatalf("keys %q %q", k1, k2)
	}
	ctx := context.Background()
	_ = m.Report(ctx, Record{Stack: stack, Kind: GatewayRequests, Amount: 1, Key: k1})
	_ = m.Report(ctx, Record{Stack: stack, Kind: GatewayRequests, Amount: 1, Key: k1}) // retried batch
	_ = m.Report(ctx, Record{Stack: stack, Kind: GatewayRequests, Amount: 1, Key: k2},
		Record{Stack: stack, Kind: GatewayTrafficBytes, Amount: 300, Key: keys.Next()})
	if got := m.Total(stack, GatewayRequests); got != 2 {
		t.Fatalf("requests = %d, want 2", got)
	}
	if got := m.Total(stack, GatewayTrafficBytes); got != 300 {
		t.Fatalf("bytes = %d, want 300", got)
	}
	if m.Records() != 3 {
		t.Fatalf("records = %d, want 3", m.Records())
	}
	if got := m.Total(ids.StackID{2}, GatewayRequests); got != 0 {
		t.Fatalf("other stack = %d", got)
	}
}

func TestMemory_DedupWindowIsBounded(t *testing.T) {
	m := newMemory(3)
	ctx := context.Background()
	stack := ids.StackID{2}
	rec := func(key string) Record { return Record{Stack: stack, Kind: DBReads, Amount: 1, Key: key} }
	for _, k := range []string{"a", "b", "c", "a", "d", "b", "a"} {
		_ = m.Report(ctx, rec(k))
	}
	// a, b, c counted; a again within the window: dropped; d pushes a out;
	// b is still in the window (b, c, d): dropped; a is out of it: counted.
	if got := m.Total(stack, DBReads); got != 5 {
		t.Errorf("total %d, want 5", got)
	}
	if len(m.seen) != 3 || len(m.ring) != 3 {
		t.Errorf("window holds %d keys (%d in the ring), want 3", len(m.seen), len(m.ring))
	}
}

func TestKeys_NextIsPrefixSlashSequenceAndAllocatesOnce(t *testing.T) {
	k := NewKeys("gateway/n1")
	first, second := k.Next(), k.Next()
	if !strings.HasPrefix(first, "gateway/n1/") || !strings.HasSuffix(first, "/1") || !strings.HasSuffix(second, "/2") ||
		strings.TrimSuffix(first, "1") != strings.TrimSuffix(second, "2") {
		t.Fatalf("keys %q, %q", first, second)
	}
	if n := testing.AllocsPerRun(100, func() { k.Next() }); n != 1 {
		t.Fatalf("Next allocates %v times, want 1 (the string)", n)
	}
}
