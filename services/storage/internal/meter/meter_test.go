package meter

import (
	"math"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

func TestStored_ByteSecondsAreExactAndCarryRemainders(t *testing.T) {
	var a, b ids.StackID
	a[0], b[0] = 1, 2
	t0 := time.Unix(1000, 0)
	s := NewStored()
	s.Reset(map[ids.StackID]int64{a: 100}, t0)
	s.Add(a, 50, t0.Add(2*time.Second))               // 100 B × 2 s
	s.Add(b, 3, t0.Add(2*time.Second))                // b starts
	got := s.Collect(t0.Add(2500 * time.Millisecond)) // a: 150 × 0.5 s; b: 3 × 0.5 s = 1.5
	if got[a] != 200+75 || got[b] != 1 {
		t.Fatalf("first collect %v", got)
	}
	got = s.Collect(t0.Add(3 * time.Second)) // b: 3 × 0.5 s + 0.5 carried = 2
	if got[a] != 75 || got[b] != 2 {
		t.Fatalf("second collect %v", got)
	}
	s.Add(a, -1000, t0.Add(3*time.Second)) // never below zero
	if s.Bytes(a) != 0 || s.Total() != 3 {
		t.Fatalf("bytes %d total %d", s.Bytes(a), s.Total())
	}
	if got := s.Collect(t0.Add(time.Hour)); got[a] != 0 || got[b] != 3*3597 {
		t.Fatalf("after delete %v", got)
	}
	// Time going backwards counts as none.
	if got := s.Collect(t0); len(got) != 0 {
		t.Fatalf("backwards %v", got)
	}
}

func TestStored_HugeAmountsDoNotOverflow(t *testing.T) {
	var a ids.StackID
	t0 := time.Unix(0, 0)
	s := NewStored()
	s.Add(a, 1<<40, t0) // 1 TiB: byte-nanoseconds pass 2^64
	got := s.Collect(t0.Add(24 * time.Hour))
	if got[a] != (1<<40)*86400 {
		t.Fatalf("got %d", got[a])
	}
	s.Add(a, math.MaxInt64-(1<<40), t0.Add(24*time.Hour))
	if got := s.Collect(t0.Add(48 * time.Hour)); got[a] != math.MaxUint64 {
		t.Fatalf("saturation: %d", got[a])
	}
}
