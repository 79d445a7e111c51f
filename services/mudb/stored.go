package mudb

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/usage"
	"github.com/muprotocol/mu/services/mudb/internal/keyspace"
)

// storedMeter integrates each stack's stored bytes, as last sampled, over
// time into byte-seconds, exactly: a sample or a report settles the time
// since the last one at the bytes of the last sample, in 128-bit
// byte-nanoseconds, and a report hands out whole byte-seconds, carrying
// the remainder to the next. Safe for concurrent use; a time before an
// earlier one counts as no time.
type storedMeter struct {
	mu     sync.Mutex
	stacks map[ids.StackID]*storedAccount
}

type storedAccount struct {
	bytes  uint64
	since  time.Time
	hi, lo uint64 // byte-nanoseconds not yet reported
}

func newStoredMeter() *storedMeter {
	return &storedMeter{stacks: make(map[ids.StackID]*storedAccount)}
}

func (a *storedAccount) settle(now time.Time) {
	dt := now.Sub(a.since)
	if dt <= 0 {
		return
	}
	if a.bytes > 0 {
		hi, lo := bits.Mul64(a.bytes, uint64(dt))
		var carry uint64
		a.lo, carry = bits.Add64(a.lo, lo, 0)
		a.hi += hi + carry
	}
	a.since = now
}

// set records a sample taken at now: totals are every stack's stored
// bytes (stacks left out store nothing).
func (m *storedMeter) set(totals map[ids.StackID]uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, a := range m.stacks {
		a.settle(now)
		if _, ok := totals[id]; !ok {
			a.bytes = 0
		}
	}
	for id, n := range totals {
		a := m.stacks[id]
		if a == nil {
			a = &storedAccount{since: now}
			m.stacks[id] = a
		}
		a.bytes = n
	}
}

// bytes returns stack's stored bytes at the last sample.
func (m *storedMeter) bytes(stack ids.StackID) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.stacks[stack]; a != nil {
		return a.bytes
	}
	return 0
}

// collect settles every stack at now and returns the whole byte-seconds
// accrued since the last collect (stacks with none are left out); stacks
// that store and owe nothing are forgotten.
func (m *storedMeter) collect(now time.Time) map[ids.StackID]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[ids.StackID]uint64)
	for id, a := range m.stacks {
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
			delete(m.stacks, id)
		}
	}
	return out
}

// countStored scans every data key of every stack, in pages of
// max_scan_page keys each read at a fresh snapshot (so that no snapshot
// lives as long as the whole scan), and returns each stack's stored
// bytes: user key plus user value of every live entry (the layout's
// prefix, table name and value envelope are not billed, nor are expired
// entries the TTL sweeper has yet to remove).
func (s *Server) countStored(ctx context.Context) (map[ids.StackID]uint64, error) {
	totals := make(map[ids.StackID]uint64)
	start := []byte(keyspace.DataPrefix)
	end := keyspace.PrefixEnd(start)
	for start != nil {
		var next []byte
		err := s.view(ctx, "count stored bytes", func(r *readTxn) error {
			it, err := r.txn.Iter(start, end)
			if err != nil {
				return err
			}
			defer it.Close()
			for n := 0; it.Valid(); n++ {
				if n == s.cfg.MaxScanPage {
					next = bytes.Clone(it.Key())
					return nil
				}
				if stack, ukey, ok := splitDataKey(it.Key()); ok {
					if v, exp, err := keyspace.Unwrap(it.Value()); err == nil && keyspace.Live(exp, r.nowMs) {
						totals[stack] += uint64(len(ukey) + len(v))
					}
				}
				if err := it.Next(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("mudb: count stored bytes: %w", err)
		}
		start = next
	}
	return totals, nil
}

// splitDataKey returns the stack and user key of a data key.
func splitDataKey(k []byte) (ids.StackID, []byte, bool) {
	var stack ids.StackID
	rest, ok := bytes.CutPrefix(k, []byte(keyspace.DataPrefix))
	if !ok || len(rest) < len(stack)+1 {
		return stack, nil, false
	}
	copy(stack[:], rest)
	rest = rest[len(stack):]
	tlen := int(rest[0])
	if len(rest) < 1+tlen {
		return stack, nil, false
	}
	return stack, rest[1+tlen:], true
}

// sampleStored counts every stack's stored bytes and records the sample
// at the time the count ends.
func (s *Server) sampleStored(ctx context.Context) error {
	totals, err := s.countStored(ctx)
	if err != nil {
		return err
	}
	s.stored.set(totals, s.now())
	return nil
}

// reportStored queues the stored byte-seconds accrued since the last
// report, one DB_STORED_BYTE_SECONDS record per stack.
func (s *Server) reportStored() {
	now := s.now()
	var recs []usage.Record
	for id, n := range s.stored.collect(now) {
		recs = append(recs, usage.Record{Stack: id, Kind: usage.DBStoredByteSeconds,
			Amount: n, Key: s.keys.Next(), Time: now})
	}
	s.usage.Add(recs...)
}

// storedLoop samples stored bytes at start and every
// stored_sample_interval, and reports byte-seconds every
// stored_report_interval, until Close.
func (s *Server) storedLoop() {
	defer close(s.storedDone)
	sample := func() {
		if err := s.sampleStored(s.sweepCtx); err != nil && s.sweepCtx.Err() == nil {
			s.log.Warn("stored bytes sample failed; the last sample stands until the next", "err", err)
		}
	}
	sample()
	st := time.NewTicker(s.cfg.StoredSampleInterval)
	defer st.Stop()
	rt := time.NewTicker(s.cfg.StoredReportInterval)
	defer rt.Stop()
	for {
		select {
		case <-s.sweepCtx.Done():
			return
		case <-st.C:
			sample()
		case <-rt.C:
			s.reportStored()
		}
	}
}
