package chainindexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	"github.com/muprotocol/mu/services/chain-indexer/internal/index"
)

// follower keeps the index up to date with the ledger: a full read at
// start, then the ledger's change log, and a full read again when the log
// no longer has what it needs. While the ledger fails it retries with
// capped exponential backoff and leaves the index alone, so the last view
// keeps being served as it was. One goroutine runs it.
type follower struct {
	led ledger.Ledger
	idx *index.Index
	cfg Config
	log *slog.Logger
	m   *metrics
	now func() time.Time

	mu        sync.Mutex
	reachable bool
	lastErr   string
	lastErrAt time.Time
}

// ledgerState is the follower's view of the ledger, for GetStatus.
type ledgerState struct {
	reachable bool
	lastErr   string
	lastErrAt time.Time
}

func (f *follower) state() ledgerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ledgerState{f.reachable, f.lastErr, f.lastErrAt}
}

// errResync asks the loop for a full read of the ledger.
var errResync = errors.New("full read needed")

// ledgerError is a failed ledger call (already counted and recorded).
type ledgerError struct {
	op  string
	err error
}

func (e *ledgerError) Error() string { return "ledger " + e.op + ": " + e.err.Error() }
func (e *ledgerError) Unwrap() error { return e.err }

// run follows the ledger until ctx ends.
func (f *follower) run(ctx context.Context) {
	resync := true
	var wait time.Duration
	for ctx.Err() == nil {
		var err error
		if resync {
			if err = f.resync(ctx); err == nil {
				resync = false
			}
		} else {
			err = f.step(ctx)
		}
		switch {
		case err == nil:
			wait = 0
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, errResync), !resync && errors.Is(err, ledger.ErrCompacted):
			// The change log cannot say what changed: read everything now.
			f.log.Info("reading the whole ledger again", "reason", err)
			resync = true
			continue
		}
		wait = min(max(2*wait, f.cfg.RetryMin), f.cfg.RetryMax)
		var le *ledgerError
		if errors.Is(err, ledger.ErrCompacted) {
			// Writes outran the full read: read again after a pause.
			f.log.Info("the ledger's change log moved on during a full read; reading again", "retry_in", wait)
		} else if errors.As(err, &le) {
			f.log.Warn("ledger call failed; serving the last view", "op", le.op, "err", le.err, "retry_in", wait)
		} else {
			f.log.Error("cannot apply ledger changes to the view", "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// call runs one ledger call under ledger_timeout (plus extra) and records
// its outcome. An error is a *ledgerError, except when ctx itself ended.
func (f *follower) call(ctx context.Context, op string, extra time.Duration, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, f.cfg.LedgerTimeout+extra)
	err := fn(cctx)
	cancel()
	if err == nil || errors.Is(err, ledger.ErrCompacted) {
		// A compacted change log is an answer: the ledger is up.
		f.mu.Lock()
		f.reachable = true
		f.mu.Unlock()
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.m.ledgerErrors.Inc()
	f.mu.Lock()
	f.reachable = false
	f.lastErr = fmt.Sprintf("%s: %v", op, err)
	f.lastErrAt = f.now()
	f.mu.Unlock()
	return &ledgerError{op: op, err: err}
}

// changes reads the ledger's changes after slot, whole slots only (a
// write's changes share its slot, and a page cut inside a slot would lose
// the rest of it): about changes_batch of them, more when one write alone
// has more. upto is the last slot read (after when none); more says the
// page was full, so further changes may follow.
func (f *follower) changes(ctx context.Context, after uint64) (cs []ledger.Change, upto uint64, more bool, err error) {
	prev := -1
	for limit := f.cfg.ChangesBatch; ; limit *= 2 {
		err = f.call(ctx, "changes", 0, func(ctx context.Context) (err error) {
			cs, err = f.led.Changes(ctx, after, limit)
			return err
		})
		if err != nil {
			return nil, after, false, err
		}
		// Defensive: only changes after the slot asked for, in order.
		kept := make([]ledger.Change, 0, len(cs))
		for _, c := range cs {
			if c.Slot > after && (len(kept) == 0 || c.Slot >= kept[len(kept)-1].Slot) {
				kept = append(kept, c)
			}
		}
		switch {
		case len(kept) == 0:
			return nil, after, false, nil
		case len(cs) < limit:
			return kept, kept[len(kept)-1].Slot, false, nil
		case len(cs) > limit, len(cs) == prev:
			// The backend returned a whole slot past the limit, or no more
			// for a larger one: it does not split slots (the local ledger
			// never does).
			return kept, kept[len(kept)-1].Slot, true, nil
		}
		last := kept[len(kept)-1].Slot
		if kept[0].Slot != last {
			// Drop the last slot, which the page may have cut.
			i := len(kept)
			for kept[i-1].Slot == last {
				i--
			}
			return kept[:i], kept[i-1].Slot, true, nil
		}
		if limit > 1<<20 {
			return nil, after, false, fmt.Errorf("%w: one ledger slot has more than %d changes", errResync, limit)
		}
		// One write fills the page: ask again with room for more of it.
		prev = len(cs)
	}
}

// step applies the next changes, or waits for the ledger to move.
func (f *follower) step(ctx context.Context) error {
	pos := f.idx.Position()
	// The slot first: if no changes follow, none happened up to it (writes
	// such as Mint take a slot without changing a served account).
	var slot uint64
	if err := f.call(ctx, "slot", 0, func(ctx context.Context) (err error) {
		slot, err = f.led.Slot(ctx)
		return err
	}); err != nil {
		return err
	}
	if slot < pos.Slot {
		return fmt.Errorf("%w: the ledger is at slot %d, behind the view's %d", errResync, slot, pos.Slot)
	}
	cs, upto, more, err := f.changes(ctx, pos.Slot)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		now := f.now()
		if slot > pos.Slot {
			if _, err := f.idx.Apply(nil, slot, now); err != nil {
				return err
			}
		} else {
			f.idx.Synced(now)
		}
		return f.call(ctx, "wait", f.cfg.PollInterval, func(ctx context.Context) error {
			return f.led.Wait(ctx, slot, f.cfg.PollInterval)
		})
	}
	us := make([]index.Update, 0, len(cs))
	for _, c := range cs {
		if o, ok := changeObject(c); ok {
			us = append(us, index.Update{Object: o, Slot: c.Slot})
		}
	}
	var synced time.Time
	if !more {
		synced = f.now()
	}
	evs, err := f.idx.Apply(us, upto, synced)
	if err != nil {
		return err
	}
	f.count(evs)
	return nil
}

// resync reads the whole ledger and makes the index equal to it. The
// reads are separate calls, so it brackets them with the slot before (s0)
// and after (s1) and lays the changes in (s0, s1] over them: every object
// then has its state at s1.
func (f *follower) resync(ctx context.Context) error {
	f.m.resyncs.Inc()
	var s0, s1 uint64
	var providers []ledger.Provider
	var regions []ledger.Region
	var stacks []ledger.Stack
	var escrows []ledger.Escrow
	steps := []struct {
		op string
		fn func(context.Context) error
	}{
		{"slot", func(ctx context.Context) (err error) { s0, err = f.led.Slot(ctx); return err }},
		{"providers", func(ctx context.Context) (err error) { providers, err = f.led.Providers(ctx); return err }},
		{"regions", func(ctx context.Context) (err error) { regions, err = f.led.Regions(ctx); return err }},
		{"stacks", func(ctx context.Context) (err error) { stacks, err = f.led.Stacks(ctx); return err }},
		{"escrows", func(ctx context.Context) (err error) { escrows, err = f.led.Escrows(ctx); return err }},
		{"slot", func(ctx context.Context) (err error) { s1, err = f.led.Slot(ctx); return err }},
	}
	for _, s := range steps {
		if err := f.call(ctx, s.op, 0, s.fn); err != nil {
			return err
		}
	}
	var order []string
	objs := map[string]index.Object{}
	put := func(o index.Object) {
		k := o.Kind().String() + "/" + o.Key()
		if _, ok := objs[k]; !ok {
			order = append(order, k)
		}
		objs[k] = o
	}
	for _, p := range providers {
		put(index.Object{Provider: ledgerpb.ProviderProto(p)})
	}
	for _, r := range regions {
		put(index.Object{Region: ledgerpb.RegionProto(r)})
	}
	for _, s := range stacks {
		put(index.Object{Stack: ledgerpb.StackProto(s)})
	}
	for _, e := range escrows {
		put(index.Object{Escrow: escrowProto(e)})
	}
	for after := s0; after < s1; {
		cs, upto, _, err := f.changes(ctx, after)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if c.Slot > s1 {
				break
			}
			if o, ok := changeObject(c); ok {
				put(o)
			}
		}
		after = upto
	}
	list := make([]index.Object, len(order))
	for i, k := range order {
		list[i] = objs[k]
	}
	evs, err := f.idx.Replace(list, s1, f.now())
	if err != nil {
		return err
	}
	f.count(evs)
	f.log.Info("read the whole ledger", "slot", s1, "objects", len(list), "events", len(evs))
	return nil
}

func (f *follower) count(evs []*index.Event) {
	for _, e := range evs {
		f.m.events.WithLabelValues(e.Kind().String(), eventTypeLabel(e)).Inc()
	}
}

func eventTypeLabel(e *index.Event) string {
	if e.Delete {
		return "delete"
	}
	return "upsert"
}
