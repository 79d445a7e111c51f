package local

import (
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
)

// escrowOf reads the escrow of (developer, provider), which must exist
// (every stack's owner has one with its region's provider).
func (r *rtx) escrowOf(developer, provider ledger.Pubkey) (escrowRec, error) {
	e, found, err := r.escrow(developer, provider)
	if err == nil && !found {
		err = fmt.Errorf("%w: no escrow of developer %s with provider %s behind a stack", errCorrupt, developer, provider)
	}
	return e, err
}

func (r *rtx) escrow(developer, provider ledger.Pubkey) (escrowRec, bool, error) {
	var e escrowRec
	found, err := r.get(escrowKey(developer, provider), kindEscrow, &e)
	return e, found, err
}

// escrowStack is one active stack of an escrow with its region's minimum.
type escrowStack struct {
	id         ledger.Pubkey
	minBalance uint64
}

// escrowStacks lists the active stacks of (developer, provider) with
// their regions' minimums, and the highest minimum (0 without stacks).
func (r *rtx) escrowStacks(developer, provider ledger.Pubkey) ([]escrowStack, uint64, error) {
	p := key("ei", developer[:], provider[:])
	mins := map[ledger.Pubkey]uint64{}
	var (
		out    []escrowStack
		maxMin uint64
	)
	err := r.scan(p, func(k, v []byte) error {
		if len(k) != len(p)+32 {
			return fmt.Errorf("%w: escrow index key %x", errCorrupt, k)
		}
		var ix indexRec
		if err := decode(kindIndex, v, &ix); err != nil {
			return err
		}
		m, ok := mins[ix.Region]
		if !ok {
			g, found, err := r.region(ix.Region)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%w: stack in missing region %s", errCorrupt, ix.Region)
			}
			m = g.MinEscrowBalance
			mins[ix.Region] = m
		}
		var id ledger.Pubkey
		copy(id[:], k[len(p):])
		out = append(out, escrowStack{id: id, minBalance: m})
		maxMin = max(maxMin, m)
		return nil
	})
	return out, maxMin, err
}

// putEscrow stores e, emits it, and emits every active stack of it whose
// Enabled flag differs between old and e.
func (w *wtx) putEscrow(old, e escrowRec, stacks []escrowStack) error {
	if err := w.put(escrowKey(e.Developer, e.Provider), kindEscrow, &e); err != nil {
		return err
	}
	if err := w.emit(kindEscrow, EscrowAddress(e.Developer, e.Provider), false, &e); err != nil {
		return err
	}
	active := stackRec{State: uint8(ledger.StackActive)}
	for _, s := range stacks {
		now := enabled(active, e, s.minBalance)
		if enabled(active, old, s.minBalance) == now {
			continue
		}
		rec, err := w.stackOf(s.id)
		if err != nil {
			return err
		}
		if err := w.emit(kindStack, s.id, now, &rec); err != nil {
			return err
		}
	}
	return nil
}

type escrowArgs struct {
	Provider ledger.Pubkey
	Amount   uint64
}

// CreateEscrow opens the signer's escrow with provider; see ledger.Ledger.
func (l *Ledger) CreateEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey) (ledger.Escrow, error) {
	op := fmt.Sprintf("create escrow with provider %s", provider)
	signer, err := authorize(op, developer, createEscrowInstr(provider))
	if err != nil {
		return ledger.Escrow{}, err
	}
	var out ledger.Escrow
	_, err = l.write(ctx, op, func(w *wtx) error {
		p, found, err := w.provider(provider)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrNotFound, "no provider %s", provider)
		}
		if !p.Authorized {
			return w.fail(ledger.ErrUnauthorizedProvider, "provider %s", provider)
		}
		if _, found, err := w.escrow(signer, provider); err != nil || found {
			if found {
				return w.fail(ledger.ErrAlreadyExists, "developer %s already has an escrow with provider %s", signer, provider)
			}
			return err
		}
		e := escrowRec{Developer: signer, Provider: provider}
		out = e.public()
		return w.putEscrow(e, e, nil)
	})
	return out, err
}

// RechargeEscrow moves amount from the signer's wallet into its escrow;
// see ledger.Ledger. An overdrawn escrow is cleared once its balance meets
// the minimum of every region it has active stacks in (at once when it
// has none).
func (l *Ledger) RechargeEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	op := fmt.Sprintf("recharge escrow with provider %s", provider)
	return l.moveEscrow(ctx, op, rechargeEscrowInstr(provider, amount), developer, provider, amount, func(w *wtx, signer ledger.Pubkey, old escrowRec) (escrowRec, []escrowStack, error) {
		if err := w.debit(signer, amount, "the recharge"); err != nil {
			return old, nil, err
		}
		e := old
		var err error
		if e.Balance, err = w.add(e.Balance, amount, "escrow balance"); err != nil {
			return old, nil, err
		}
		stacks, maxMin, err := w.escrowStacks(signer, provider)
		if err != nil {
			return old, nil, err
		}
		if e.Overdrawn && e.Balance >= maxMin {
			e.Overdrawn = false
		}
		return e, stacks, nil
	})
}

// WithdrawEscrow moves amount from the signer's escrow to its wallet; see
// ledger.Ledger.
func (l *Ledger) WithdrawEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	op := fmt.Sprintf("withdraw from escrow with provider %s", provider)
	return l.moveEscrow(ctx, op, withdrawEscrowInstr(provider, amount), developer, provider, amount, func(w *wtx, signer ledger.Pubkey, old escrowRec) (escrowRec, []escrowStack, error) {
		if old.Balance < amount {
			return old, nil, w.fail(ledger.ErrInsufficientEscrow, "withdrawing %d, the escrow holds %d", amount, old.Balance)
		}
		e := old
		e.Balance -= amount
		stacks, maxMin, err := w.escrowStacks(signer, provider)
		if err != nil {
			return old, nil, err
		}
		if e.Balance < maxMin {
			return old, nil, w.fail(ledger.ErrBelowMinimum, "%d would be left, %d active stacks need %d", e.Balance, len(stacks), maxMin)
		}
		if err := w.credit(signer, amount); err != nil {
			return old, nil, err
		}
		return e, stacks, nil
	})
}

// moveEscrow is the shared frame of a recharge and a withdrawal: the
// amount must not be 0, the developer signs the instruction in, and the
// escrow must exist; move computes the new escrow record and the stacks
// whose enabled flag it may flip, in the same transaction.
func (l *Ledger) moveEscrow(ctx context.Context, op string, in instruction, developer ledger.Signer, provider ledger.Pubkey, amount uint64,
	move func(w *wtx, signer ledger.Pubkey, old escrowRec) (escrowRec, []escrowStack, error)) (ledger.Escrow, error) {
	if amount == 0 {
		return ledger.Escrow{}, fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	signer, err := authorize(op, developer, in)
	if err != nil {
		return ledger.Escrow{}, err
	}
	var out ledger.Escrow
	_, err = l.write(ctx, op, func(w *wtx) error {
		old, found, err := w.escrow(signer, provider)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrNotFound, "developer %s has no escrow with provider %s", signer, provider)
		}
		e, stacks, err := move(w, signer, old)
		if err != nil {
			return err
		}
		out = e.public()
		return w.putEscrow(old, e, stacks)
	})
	return out, err
}
