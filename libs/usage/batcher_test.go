package usage

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

var batchStack = ids.StackID{7}

func testBatchConfig() BatchConfig {
	return BatchConfig{
		BatchSize:     4,
		QueueSize:     100,
		FlushInterval: time.Hour, // tests flush explicitly unless they test the interval
		ReportTimeout: time.Second,
		RetryMin:      time.Millisecond,
		RetryMax:      5 * time.Millisecond,
		CloseTimeout:  time.Second,
	}
}

// flakySink fails the first `fail` calls, then forwards to a Memory sink,
// recording every batch it was offered.
type flakySink struct {
	mem  *Memory
	mu   sync.Mutex
	fail int
	all  [][]Record
	gate chan struct{} // when set, Report waits for it
}

func (s *flakySink) Report(ctx context.Context, recs ...Record) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.all = append(s.all, append([]Record(nil), recs...))
	failing := s.fail > 0
	if failing {
		s.fail--
	}
	s.mu.Unlock()
	if failing {
		return errors.New("billing unavailable")
	}
	return s.mem.Report(ctx, recs...)
}

func (s *flakySink) calls() [][]Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]Record(nil), s.all...)
}

func mustBatcher(t testing.TB, sink Sink, cfg BatchConfig) *Batcher {
	t.Helper()
	b, err := NewBatcher(sink, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recs(keys *Keys, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Stack: batchStack, Kind: GatewayRequests, Amount: 1, Key: keys.Next()}
	}
	return out
}

func TestBatcher_FlushSendsInBatches(t *testing.T) {
	sink := &flakySink{mem: NewMemory()}
	b := mustBatcher(t, sink, testBatchConfig())
	defer b.Close(context.Background())
	keys := NewKeys("t")
	b.Add(recs(keys, 3)...)
	b.Add(recs(keys, 7)...)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.mem.Total(batchStack, GatewayRequests); got != 10 {
		t.Fatalf("total = %d", got)
	}
	for _, c := range sink.calls() {
		if len(c) > 4 {
			t.Fatalf("batch of %d records, BatchSize is 4", len(c))
		}
	}
	if b.Pending() != 0 {
		t.Fatalf("pending = %d", b.Pending())
	}
}

func TestBatcher_RetriesWithSameKeys(t *testing.T) {
	sink := &flakySink{mem: NewMemory(), fail: 3}
	b := mustBatcher(t, sink, testBatchConfig())
	defer b.Close(context.Background())
	keys := NewKeys("t")
	b.Add(recs(keys, 2)...)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := sink.calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 3 failures + 1 success", len(calls))
	}
	for _, c := range calls[1:] {
		if c[0].Key != calls[0][0].Key || c[1].Key != calls[0][1].Key {
			t.Fatal("a retry changed the idempotency keys")
		}
	}
	if b.Failures() != 3 || sink.mem.Records() != 2 {
		t.Fatalf("failures %d, records %d", b.Failures(), sink.mem.Records())
	}
}

func TestBatcher_IntervalSendsWithoutFlush(t *testing.T) {
	cfg := testBatchConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	sink := &flakySink{mem: NewMemory()}
	b := mustBatcher(t, sink, cfg)
	defer b.Close(context.Background())
	b.Add(recs(NewKeys("t"), 1)...)
	deadline := time.Now().Add(5 * time.Second)
	for sink.mem.Records() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("record not sent by the interval")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatcher_CloseFlushesEverything(t *testing.T) {
	sink := &flakySink{mem: NewMemory(), fail: 2}
	b := mustBatcher(t, sink, testBatchConfig())
	b.Add(recs(NewKeys("t"), 9)...)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.mem.Records(); got != 9 {
		t.Fatalf("records = %d", got)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close with nothing pending: %v", err)
	}
	// After Close, Add reports directly.
	b.Add(recs(NewKeys("u"), 1)...)
	if got := sink.mem.Records(); got != 10 {
		t.Fatalf("records after late Add = %d", got)
	}
}

func TestBatcher_CloseDeadlineReportsLoss(t *testing.T) {
	sink := &flakySink{mem: NewMemory(), fail: 1 << 30}
	b := mustBatcher(t, sink, testBatchConfig())
	b.Add(recs(NewKeys("t"), 3)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); err == nil {
		t.Fatal("Close reported no loss")
	}
}

func TestBatcher_FullQueueBlocksAdd(t *testing.T) {
	cfg := testBatchConfig()
	cfg.QueueSize = 2
	cfg.BatchSize = 2
	sink := &flakySink{mem: NewMemory(), gate: make(chan struct{})}
	b := mustBatcher(t, sink, cfg)
	defer b.Close(context.Background())
	keys := NewKeys("t")
	b.Add(recs(keys, 2)...) // fills the queue; the worker blocks in Report
	added := make(chan struct{})
	go func() {
		b.Add(recs(keys, 1)...)
		close(added)
	}()
	select {
	case <-added:
		t.Fatal("Add did not wait for room in the queue")
	case <-time.After(20 * time.Millisecond):
	}
	close(sink.gate)
	select {
	case <-added:
	case <-time.After(5 * time.Second):
		t.Fatal("Add still blocked after the sink accepted the batch")
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.mem.Records(); got != 3 {
		t.Fatalf("records = %d", got)
	}
}

// Without a deadline of its own, Close gives up after the config's
// CloseTimeout and reports the loss.
func TestBatcher_CloseIsBoundedByCloseTimeout(t *testing.T) {
	sink := &flakySink{mem: NewMemory(), fail: 1 << 30}
	cfg := testBatchConfig()
	cfg.CloseTimeout = 30 * time.Millisecond
	b := mustBatcher(t, sink, cfg)
	b.Add(recs(NewKeys("t"), 3)...)
	done := make(chan error, 1)
	go func() { done <- b.Close(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "3 usage records not accepted") {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close ignored CloseTimeout")
	}
}
