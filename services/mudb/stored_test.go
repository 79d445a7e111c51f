package mudb

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/muprotocol/mu/libs/usage"
	mudbv1 "github.com/muprotocol/mu/proto/mu/mudb/v1"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startClocked runs a node whose stored-bytes clock is clock, with the
// sampling loop off (the test samples and reports itself).
func startClocked(t *testing.T, clock *fakeClock) *testNode {
	t.Helper()
	cfg := testConfig()
	cfg.StoredSampleInterval = 0
	cfg.MaxScanPage = 3 // several pages per count
	cfg.DefaultScanPage = 3
	mem := usage.NewMemory()
	s, err := New(cfg, Deps{Usage: mem, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		s.Close()
	})
	return &testNode{s: s, c: mudbv1.NewMudbServiceClient(conn), usage: mem}
}

func TestStored_ByteSecondsAreBytesOfLastSampleTimesSeconds(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	n := startClocked(t, clock)
	ctx := ctxT(t)
	a, b := newStack(t), newStack(t)
	n.create(t, a, "todos", "a-much-longer-table-name")
	n.create(t, b, "other")
	n.put(t, a, "todos", "k1", "hello")                        // 2 + 5
	n.put(t, a, "todos", "key-2", strings.Repeat("v", 1000))   // 5 + 1000
	n.put(t, a, "a-much-longer-table-name", "k", "")           // 1 + 0
	n.put(t, a, "a-much-longer-table-name", "k3", "value-3")   // 2 + 7
	n.put(t, b, "other", "neighbour", strings.Repeat("x", 90)) // 9 + 90
	// An expired entry (not yet swept, or swept) is not billed.
	if _, err := n.c.Put(ctx, &mudbv1.PutRequest{StackId: a.Bytes(), Table: "todos", Key: []byte("gone"),
		Value: []byte(strings.Repeat("e", 500)), Ttl: durationpb.New(time.Second)}); err != nil { // TTLs are whole seconds
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	const bytesA, bytesB = 7 + 1005 + 1 + 9, 99

	if err := n.s.sampleStored(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.s.stored.bytes(a); got != bytesA {
		t.Fatalf("stack a stores %d bytes, want %d", got, bytesA)
	}
	clock.Advance(100 * time.Second)
	n.s.reportStored()
	// Stack a grows; the next sample sees it.
	clock.Advance(50 * time.Second)
	n.put(t, a, "todos", "late", strings.Repeat("z", 996)) // 4 + 996
	if err := n.s.sampleStored(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10*time.Second + 500*time.Millisecond)
	n.s.reportStored()
	if err := n.s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	wantA := uint64(bytesA*150) + uint64(bytesA+1000)*10 + uint64(bytesA+1000)/2
	wantB := uint64(bytesB*160) + bytesB/2 // the half byte-second carries to the next report
	if got := n.usage.Total(a, usage.DBStoredByteSeconds); got != wantA {
		t.Errorf("stack a: %d byte-seconds, want %d", got, wantA)
	}
	if got := n.usage.Total(b, usage.DBStoredByteSeconds); got != wantB {
		t.Errorf("stack b: %d byte-seconds, want %d", got, wantB)
	}
	// The carried half byte-second of b shows up with the next one.
	clock.Advance(500 * time.Millisecond)
	n.s.reportStored()
	if err := n.s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.usage.Total(b, usage.DBStoredByteSeconds); got != bytesB*161 {
		t.Errorf("stack b after 161s: %d byte-seconds, want %d", got, bytesB*161)
	}
}

func TestStored_DeletedDataStopsAccruingAtTheNextSample(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	n := startClocked(t, clock)
	ctx := ctxT(t)
	a := newStack(t)
	n.create(t, a, "t")
	n.put(t, a, "t", "k", "0123456789") // 11 bytes
	if err := n.s.sampleStored(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	if _, err := n.c.Delete(ctx, &mudbv1.DeleteRequest{StackId: a.Bytes(), Table: "t", Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := n.s.sampleStored(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	n.s.reportStored()
	if err := n.s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.usage.Total(a, usage.DBStoredByteSeconds); got != 11*20 {
		t.Fatalf("%d byte-seconds, want %d", got, 11*20)
	}
}

func TestConfig_StoredIntervals(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Plaintext = true // tests run on loopback
	cfg.StoredSampleInterval = -time.Second
	cfg.StoredReportInterval = 0
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "stored_sample_interval") {
		t.Fatalf("Validate: %v", err)
	}
	cfg.StoredSampleInterval = time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "stored_report_interval") {
		t.Fatalf("Validate: %v", err)
	}
}
