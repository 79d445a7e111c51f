// Package meter integrates the bytes each stack stores over time into
// byte-seconds (USAGE_KIND_STORAGE_STORED_BYTE_SECONDS), exactly: every
// change settles the time since the last one at the old size, in 128-bit
// byte-nanoseconds, and Collect hands out whole byte-seconds, carrying the
// remainder to the next collection.
package meter

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/muprotocol/mu/libs/ids"
)

// Stored tracks stored bytes per stack. Its methods are safe for concurrent
// use; a time before an earlier one counts as no time.
type Stored struct {
	mu     sync.Mutex
	stacks map[ids.StackID]*account
}

type account struct {
	bytes  int64
	since  time.Time
	hi, lo uint64 // byte-nanoseconds not yet collected
}

// NewStored returns an empty tracker.
func NewStored() *Stored { return &Stored{stacks: make(map[ids.StackID]*account)} }

func (s *Stored) account(stack ids.StackID, now time.Time) *account {
	a := s.stacks[stack]
	if a == nil {
		a = &account{since: now}
		s.stacks[stack] = a
	}
	a.settle(now)
	return a
}

func (a *account) settle(now time.Time) {
	dt := now.Sub(a.since)
	if dt > 0 && a.bytes > 0 {
		hi, lo := bits.Mul64(uint64(a.bytes), uint64(dt))
		var carry uint64
		a.lo, carry = bits.Add64(a.lo, lo, 0)
		a.hi += hi + carry
	}
	if dt > 0 {
		a.since = now
	}
}

// Add changes stack's stored bytes by delta at now (the total never goes
// under zero).
func (s *Stored) Add(stack ids.StackID, delta int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(stack, now)
	a.bytes = max(a.bytes+delta, 0)
}

// Reset replaces every stack's stored bytes with totals at now (a fresh
// count, as at start-up); byte-seconds accrued so far are kept.
func (s *Stored) Reset(totals map[ids.StackID]int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, a := range s.stacks {
		a.settle(now)
		if _, ok := totals[id]; !ok {
			a.bytes = 0
		}
	}
	for id, n := range totals {
		s.account(id, now).bytes = n
	}
}

// Bytes returns stack's stored bytes.
func (s *Stored) Bytes(stack ids.StackID) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.stacks[stack]; a != nil {
		return a.bytes
	}
	return 0
}

// Total returns the stored bytes of every stack together.
func (s *Stored) Total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t int64
	for _, a := range s.stacks {
		t += a.bytes
	}
	return t
}

// Collect settles every stack at now and returns the whole byte-seconds
// accrued since the last Collect (stacks with none are left out). Stacks
// that store nothing and owe nothing are forgotten.
func (s *Stored) Collect(now time.Time) map[ids.StackID]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[ids.StackID]uint64)
	for id, a := range s.stacks {
		a.settle(now)
		qhi := a.hi / uint64(time.Second)
		qlo, rem := bits.Div64(a.hi%uint64(time.Second), a.lo, uint64(time.Second))
		a.hi, a.lo = 0, rem
		if qhi > 0 {
			qlo = math.MaxUint64 // beyond any real store: saturate
		}
		if qlo > 0 {
			out[id] = qlo
		}
		if a.bytes == 0 && a.lo == 0 {
			delete(s.stacks, id)
		}
	}
	return out
}
