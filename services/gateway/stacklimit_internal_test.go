package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

func TestStackLimiter_AdmittingDoesNotAllocate(t *testing.T) {
	l := newStackLimiter(StackLimit{Rate: 1e12, Burst: 1 << 30, Concurrency: 8})
	var id ids.StackID
	now := time.Now()
	l.enter(id, now) // makes the bucket
	l.leave()
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Microsecond)
		if herr, _ := l.enter(id, now); herr != nil {
			t.Fatal(herr)
		}
		l.leave()
	}); n != 0 {
		t.Fatalf("%v allocations per admitted request", n)
	}
}

func TestStackLimiter_NoLimitsNoState(t *testing.T) {
	if l := newStackLimiter(StackLimit{Burst: 5}); l != nil {
		t.Fatal("state for a stack without limits")
	}
}

// TestStackLimiter_ConcurrentRequestsNeverExceedTheLimit admits and ends
// requests from many goroutines (under -race: the atomics and the lazily
// made bucket): never more than the limit are in flight, every refusal
// gives its slot back, and the bucket admits exactly its burst with time
// standing still.
func TestStackLimiter_ConcurrentRequestsNeverExceedTheLimit(t *testing.T) {
	const limit, burst, workers, each = 3, 500, 8, 200
	l := newStackLimiter(StackLimit{Rate: 1, Burst: burst, Concurrency: limit})
	var id ids.StackID
	now := time.Now()
	var inFlight, most, admitted, byRate atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				herr, reason := l.enter(id, now)
				if herr != nil {
					if reason == limitedRate {
						byRate.Add(1)
					}
					continue
				}
				admitted.Add(1)
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				inFlight.Add(-1)
				l.leave()
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > limit {
		t.Errorf("%d in flight at once, limit %d", m, limit)
	}
	if n := l.inFlight.Load(); n != 0 {
		t.Errorf("%d slots still taken after every request ended", n)
	}
	if a := admitted.Load(); a != burst {
		t.Errorf("%d admitted with a bucket of %d and no time passing", a, burst)
	}
	if byRate.Load() == 0 {
		t.Error("no request was refused for the rate")
	}
	// The refusals left the bucket as they found it: 2 s later, at 1 a
	// second, exactly 2 more are admitted.
	later := now.Add(2 * time.Second)
	n := 0
	for range 5 {
		if herr, _ := l.enter(id, later); herr == nil {
			n++
			l.leave()
		}
	}
	if n != 2 {
		t.Errorf("%d admitted 2 s after the flood at 1 a second, want 2", n)
	}
}
