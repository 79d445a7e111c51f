package local

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
)

// Slot returns the slot of the latest write (0 before any).
func (l *Ledger) Slot(ctx context.Context) (uint64, error) {
	var slot uint64
	err := l.view(ctx, "slot", func(r *rtx) error {
		h, err := r.head()
		slot = h.Slot
		return err
	})
	return slot, err
}

// Changes returns the changes of the slots after after, in slot order and,
// within a slot, in the order the write touched the accounts. A page holds
// whole slots only: it ends before the slot that would take it past limit
// (capped at MaxChangesPage), except that the first slot is always
// returned whole, so after = the last change's Slot always continues
// correctly. Writes that touch no account (Mint, Transfer) take a slot but
// have no changes. ErrCompacted when slots after after have been dropped
// (only the latest ChangeRetention are kept); ErrInvalidArgument for
// limit < 1.
func (l *Ledger) Changes(ctx context.Context, after uint64, limit int) ([]ledger.Change, error) {
	const op = "changes"
	if limit < 1 {
		return nil, fail(op, ledger.ErrInvalidArgument, "limit is %d, want at least 1", limit)
	}
	limit = min(limit, l.cfg.MaxChangesPage)
	var out []ledger.Change
	err := l.view(ctx, op, func(r *rtx) error {
		h, err := r.head()
		if err != nil {
			return err
		}
		if after >= h.Slot {
			return nil
		}
		if after < h.CompactedThrough {
			return fail(op, ledger.ErrCompacted, "changes through slot %d are dropped, asked for those after %d; read the accounts again", h.CompactedThrough, after)
		}
		it, err := r.txn.Iter(changeKey(after+1), prefixEnd(key("c")))
		if err != nil {
			return err
		}
		defer it.Close()
		for ; it.Valid(); err = it.Next() {
			if err != nil {
				return err
			}
			k := it.Key()
			if len(k) != len(key("c"))+8 {
				return fmt.Errorf("%w: change key %x", errCorrupt, k)
			}
			slot := binary.BigEndian.Uint64(k[len(key("c")):])
			var rec changesRec
			if err := decode(kindChanges, it.Value(), &rec); err != nil {
				return err
			}
			if len(out) > 0 && len(out)+len(rec.Entries) > limit {
				return nil
			}
			for _, e := range rec.Entries {
				c, err := e.change(slot)
				if err != nil {
					return err
				}
				out = append(out, c)
			}
			if len(out) >= limit {
				return nil
			}
		}
		return err
	})
	return out, err
}

// change decodes one stored change.
func (e changeEntry) change(slot uint64) (ledger.Change, error) {
	c := ledger.Change{Slot: slot}
	switch e.Kind {
	case kindState:
		var s stateRec
		if err := decode(kindState, e.Data, &s); err != nil {
			return c, err
		}
		p := s.public()
		c.State = &p
	case kindProvider:
		var p providerRec
		if err := decode(kindProvider, e.Data, &p); err != nil {
			return c, err
		}
		v := p.public(e.ID)
		c.Provider = &v
	case kindRegion:
		var g regionRec
		if err := decode(kindRegion, e.Data, &g); err != nil {
			return c, err
		}
		v := g.public(e.ID)
		c.Region = &v
	case kindEscrow:
		var x escrowRec
		if err := decode(kindEscrow, e.Data, &x); err != nil {
			return c, err
		}
		v := x.public()
		c.Escrow = &v
	case kindStack:
		var s stackRec
		if err := decode(kindStack, e.Data, &s); err != nil {
			return c, err
		}
		v := s.public(e.ID, e.Enabled)
		c.Stack = &v
	default:
		return c, fmt.Errorf("%w: change of slot %d has kind %d", errCorrupt, slot, e.Kind)
	}
	return c, nil
}

// Wait blocks until the slot exceeds after, ctx ends (its error) or poll
// has passed (nil). Writes through any Ledger of this process on the same
// store client wake it at once; writes by other processes are seen when
// poll passes and the caller reads again. poll must be positive
// (ErrInvalidArgument).
func (l *Ledger) Wait(ctx context.Context, after uint64, poll time.Duration) error {
	const op = "wait"
	if poll <= 0 {
		return fail(op, ledger.ErrInvalidArgument, "poll is %v, want a positive duration", poll)
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		next := l.hub.wait() // before reading the slot, so no write is missed
		slot, err := l.Slot(ctx)
		if err != nil {
			return err
		}
		if slot > after {
			return nil
		}
		select {
		case <-next:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("ledger: %s: %w", op, ctx.Err())
		}
	}
}
