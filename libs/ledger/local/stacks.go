package local

import (
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
)

func (r *rtx) stack(id ledger.Pubkey) (stackRec, bool, error) {
	var s stackRec
	found, err := r.get(stackKey(id), kindStack, &s)
	return s, found, err
}

// stackOf reads a stack that an index names (so it must exist).
func (r *rtx) stackOf(id ledger.Pubkey) (stackRec, error) {
	s, found, err := r.stack(id)
	if err == nil && !found {
		err = fmt.Errorf("%w: index names missing stack %s", errCorrupt, id)
	}
	return s, err
}

// stackEnabled derives a stack's Enabled flag from its escrow and region.
func (r *rtx) stackEnabled(s stackRec) (bool, error) {
	if ledger.StackState(s.State) != ledger.StackActive {
		return false, nil
	}
	g, found, err := r.region(s.Region)
	if err != nil {
		return false, err
	}
	if !found {
		return false, fmt.Errorf("%w: stack in missing region %s", errCorrupt, s.Region)
	}
	e, err := r.escrowOf(s.Owner, g.Provider)
	if err != nil {
		return false, err
	}
	return enabled(s, e, g.MinEscrowBalance), nil
}

func (c *Config) checkManifest(op string, m []byte) error {
	switch {
	case len(m) == 0:
		return fail(op, ledger.ErrInvalidArgument, "manifest is empty")
	case len(m) > c.MaxManifestBytes:
		return fail(op, ledger.ErrInvalidArgument, "manifest is %d bytes, limit %d", len(m), c.MaxManifestBytes)
	}
	return nil
}

type createStackArgs struct {
	Region   ledger.Pubkey
	Seed     uint64
	Manifest []byte
}

// CreateStack posts a stack; see ledger.Ledger. The escrow must also not
// be overdrawn (ErrInsufficientEscrow), and the escrow and the region
// must have room under MaxStacksPerEscrow and MaxStacksPerRegion
// (ErrInvalidArgument).
func (l *Ledger) CreateStack(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, seed uint64, manifest []byte) (ledger.Stack, error) {
	op := fmt.Sprintf("create stack %d in region %s", seed, region)
	if err := l.cfg.checkManifest(op, manifest); err != nil {
		return ledger.Stack{}, err
	}
	manifest = append([]byte(nil), manifest...)
	signer, err := authorize(op, owner, createStackInstr(region, seed, manifest))
	if err != nil {
		return ledger.Stack{}, err
	}
	id := StackAddress(signer, region, seed)
	var out ledger.Stack
	_, err = l.write(ctx, op, func(w *wtx) error {
		g, found, err := w.region(region)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrUnknownRegion, "no region %s", region)
		}
		p, found, err := w.provider(g.Provider)
		if err != nil {
			return err
		}
		if !found || !p.Authorized {
			return w.fail(ledger.ErrUnauthorizedProvider, "provider %s of the region", g.Provider)
		}
		if _, found, err := w.stack(id); err != nil || found {
			if found {
				return w.fail(ledger.ErrAlreadyExists, "stack %s exists", id)
			}
			return err
		}
		e, found, err := w.escrow(signer, g.Provider)
		switch {
		case err != nil:
			return err
		case !found:
			return w.fail(ledger.ErrInsufficientEscrow, "developer %s has no escrow with provider %s; the region needs %d", signer, g.Provider, g.MinEscrowBalance)
		case e.Overdrawn:
			return w.fail(ledger.ErrInsufficientEscrow, "the escrow with provider %s is overdrawn; recharge it", g.Provider)
		case e.Balance < g.MinEscrowBalance:
			return w.fail(ledger.ErrInsufficientEscrow, "the escrow holds %d, the region needs %d", e.Balance, g.MinEscrowBalance)
		case int(e.ActiveStacks) >= w.cfg.MaxStacksPerEscrow:
			return w.fail(ledger.ErrInvalidArgument, "developer %s has %d active stacks with provider %s, limit %d", signer, e.ActiveStacks, g.Provider, w.cfg.MaxStacksPerEscrow)
		case int(g.ActiveStacks) >= w.cfg.MaxStacksPerRegion:
			return w.fail(ledger.ErrInvalidArgument, "region %s has %d active stacks, limit %d", region, g.ActiveStacks, w.cfg.MaxStacksPerRegion)
		}
		s := stackRec{Owner: signer, Region: region, Seed: seed, Revision: 1, Manifest: manifest, State: uint8(ledger.StackActive)}
		e.ActiveStacks++
		g.ActiveStacks++
		if err := w.put(stackKey(id), kindStack, &s); err != nil {
			return err
		}
		if err := w.put(escrowKey(signer, g.Provider), kindEscrow, &e); err != nil {
			return err
		}
		if err := w.put(regionKey(region), kindRegion, &g); err != nil {
			return err
		}
		if err := w.put(escrowIndexKey(signer, g.Provider, id), kindIndex, &indexRec{Region: region}); err != nil {
			return err
		}
		if err := w.put(regionIndexKey(region, signer, id), kindIndex, &indexRec{}); err != nil {
			return err
		}
		on := enabled(s, e, g.MinEscrowBalance)
		out = s.public(id, on)
		return w.emit(kindStack, id, on, &s)
	})
	return out, err
}

// ownedStack reads stack id and checks signer owns it and it is active.
func (w *wtx) ownedStack(id, signer ledger.Pubkey) (stackRec, error) {
	s, found, err := w.stack(id)
	if err != nil {
		return s, err
	}
	if !found {
		return s, w.fail(ledger.ErrNotFound, "no stack %s", id)
	}
	if s.Owner != signer {
		return s, w.fail(ledger.ErrBadSigner, "signed by %s, stack %s belongs to %s", signer, id, s.Owner)
	}
	if ledger.StackState(s.State) == ledger.StackDeleted {
		return s, w.fail(ledger.ErrStackDeleted, "stack %s", id)
	}
	return s, nil
}

type updateStackArgs struct {
	Stack    ledger.Pubkey
	Manifest []byte
}

// UpdateStack replaces an active stack's manifest; see ledger.Ledger.
func (l *Ledger) UpdateStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey, manifest []byte) (ledger.Stack, error) {
	op := fmt.Sprintf("update stack %s", stack)
	if err := l.cfg.checkManifest(op, manifest); err != nil {
		return ledger.Stack{}, err
	}
	manifest = append([]byte(nil), manifest...)
	signer, err := authorize(op, owner, updateStackInstr(stack, manifest))
	if err != nil {
		return ledger.Stack{}, err
	}
	var out ledger.Stack
	_, err = l.write(ctx, op, func(w *wtx) error {
		s, err := w.ownedStack(stack, signer)
		if err != nil {
			return err
		}
		s.Manifest = manifest
		s.Revision++
		if err := w.put(stackKey(stack), kindStack, &s); err != nil {
			return err
		}
		on, err := w.stackEnabled(s)
		if err != nil {
			return err
		}
		out = s.public(stack, on)
		return w.emit(kindStack, stack, on, &s)
	})
	return out, err
}

type deleteStackArgs struct{ Stack ledger.Pubkey }

// DeleteStack marks a stack deleted (its revision unchanged, Enabled
// false); see ledger.Ledger.
func (l *Ledger) DeleteStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey) (ledger.Stack, error) {
	op := fmt.Sprintf("delete stack %s", stack)
	signer, err := authorize(op, owner, deleteStackInstr(stack))
	if err != nil {
		return ledger.Stack{}, err
	}
	var out ledger.Stack
	_, err = l.write(ctx, op, func(w *wtx) error {
		s, err := w.ownedStack(stack, signer)
		if err != nil {
			return err
		}
		g, found, err := w.region(s.Region)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: stack %s in missing region %s", errCorrupt, stack, s.Region)
		}
		e, err := w.escrowOf(s.Owner, g.Provider)
		if err != nil {
			return err
		}
		s.State = uint8(ledger.StackDeleted)
		if g.ActiveStacks > 0 {
			g.ActiveStacks--
		}
		if e.ActiveStacks > 0 {
			e.ActiveStacks--
		}
		for _, put := range []struct {
			k    []byte
			kind byte
			v    any
		}{
			{stackKey(stack), kindStack, &s},
			{regionKey(s.Region), kindRegion, &g},
			{escrowKey(s.Owner, g.Provider), kindEscrow, &e},
		} {
			if err := w.put(put.k, put.kind, put.v); err != nil {
				return err
			}
		}
		if err := w.txn.Delete(escrowIndexKey(s.Owner, g.Provider, stack)); err != nil {
			return err
		}
		if err := w.txn.Delete(regionIndexKey(s.Region, s.Owner, stack)); err != nil {
			return err
		}
		out = s.public(stack, false)
		return w.emit(kindStack, stack, false, &s)
	})
	return out, err
}

type usageArgs struct {
	Stack ledger.Pubkey
	Seed  [2]uint64                   // lo, hi: u128 little-endian
	Usage [2 * ledger.NumUnits]uint64 // per unit lo, hi
}

func newUsageArgs(stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) usageArgs {
	a := usageArgs{Stack: stack, Seed: [2]uint64{seed.Lo, seed.Hi}}
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		x := u.Amount(unit)
		a.Usage[2*unit], a.Usage[2*unit+1] = x.Lo, x.Hi
	}
	return a
}

// UpdateUsage charges a stack's escrow for usage; see ledger.Ledger. A
// deleted stack may still be charged (usage reported after its deletion),
// and seeds are unique per stack for ever.
func (l *Ledger) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	op := fmt.Sprintf("update usage of stack %s seed %s", stack, seed)
	key, err := authorize(op, signer, updateUsageInstr(stack, seed, u))
	if err != nil {
		return ledger.UsageResult{}, err
	}
	var res ledger.UsageResult
	slot, err := l.write(ctx, op, func(w *wtx) error {
		res = ledger.UsageResult{}
		st, err := w.state()
		if err != nil {
			return err
		}
		s, found, err := w.stack(stack)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrNotFound, "no stack %s", stack)
		}
		g, found, err := w.region(s.Region)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: stack %s in missing region %s", errCorrupt, stack, s.Region)
		}
		switch {
		case g.UsageSigner.IsZero():
			return w.fail(ledger.ErrBadSigner, "region %s has no usage signer", s.Region)
		case key != g.UsageSigner:
			return w.fail(ledger.ErrBadSigner, "signed by %s, the usage signer of region %s is %s", key, s.Region, g.UsageSigner)
		}
		ukey := usageKey(UsageAddress(stack, seed))
		var used usageRec
		if found, err := w.get(ukey, kindUsage, &used); err != nil || found {
			if found {
				return w.fail(ledger.ErrReplayedSeed, "seed used at slot %d", used.Slot)
			}
			return err
		}
		due, carry, err := ledger.Charge(ratesStruct(g.Rates), u, s.Carry)
		if err != nil {
			return &ruleError{fmt.Errorf("ledger: %s: %w", w.op, err)} // ErrOverflow or ErrInvalidArgument, with detail
		}
		p, found, err := w.provider(g.Provider)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: region %s names missing provider %s", errCorrupt, s.Region, g.Provider)
		}
		old, err := w.escrowOf(s.Owner, g.Provider)
		if err != nil {
			return err
		}
		e := old
		charged := e.Balance
		if d, ok := due.Uint64(); ok && d <= e.Balance {
			charged = d
		}
		e.Balance -= charged
		shortfall, _ := due.Sub(ledger.U128(charged))
		if !shortfall.IsZero() {
			e.Overdrawn = true
		}
		commission := ledger.Commission(charged, st.CommissionMicros)
		if w.head.Commission, err = w.add(w.head.Commission, commission, "commission account"); err != nil {
			return err
		}
		if err := w.credit(p.Owner, charged-commission); err != nil {
			return err
		}
		s.Carry = carry
		if err := w.put(stackKey(stack), kindStack, &s); err != nil {
			return err
		}
		if err := w.put(ukey, kindUsage, &usageRec{Slot: w.head.Slot + 1}); err != nil {
			return err
		}
		if e != old {
			stacks, _, err := w.escrowStacks(s.Owner, g.Provider)
			if err != nil {
				return err
			}
			if err := w.putEscrow(old, e, stacks); err != nil {
				return err
			}
		}
		res = ledger.UsageResult{Due: due, Charged: charged, Commission: commission, Shortfall: shortfall}
		return nil
	})
	if err != nil {
		return ledger.UsageResult{}, err
	}
	res.Slot = slot
	return res, nil
}
