package local

import (
	"context"
	"fmt"

	"github.com/muprotocol/mu/libs/ledger"
)

// The reads each see one snapshot, taken when they start: every write
// acknowledged before.

// State returns the state account; see ledger.Ledger.
func (l *Ledger) State(ctx context.Context) (ledger.State, error) {
	var out ledger.State
	err := l.view(ctx, "state", func(r *rtx) error {
		s, err := r.state()
		out = s.public()
		return err
	})
	return out, err
}

// Provider returns one provider (ErrNotFound).
func (l *Ledger) Provider(ctx context.Context, id ledger.Pubkey) (ledger.Provider, error) {
	var out ledger.Provider
	err := l.view(ctx, "provider", func(r *rtx) error {
		p, found, err := r.provider(id)
		if err != nil {
			return err
		}
		if !found {
			return fail(r.op, ledger.ErrNotFound, "no provider %s", id)
		}
		out = p.public(id)
		return nil
	})
	return out, err
}

// Providers returns every provider, ordered by id.
func (l *Ledger) Providers(ctx context.Context) ([]ledger.Provider, error) {
	var out []ledger.Provider
	err := l.view(ctx, "providers", func(r *rtx) error {
		p := key("p")
		return r.scan(p, func(k, v []byte) error {
			var rec providerRec
			if err := decode(kindProvider, v, &rec); err != nil {
				return err
			}
			out = append(out, rec.public(idAfter(k, p)))
			return nil
		})
	})
	return out, err
}

// idAfter is the 32-byte id following prefix p in key k.
func idAfter(k, p []byte) ledger.Pubkey {
	var id ledger.Pubkey
	copy(id[:], k[len(p):])
	return id
}

// Region returns one region (ErrNotFound).
func (l *Ledger) Region(ctx context.Context, id ledger.Pubkey) (ledger.Region, error) {
	var out ledger.Region
	err := l.view(ctx, "region", func(r *rtx) error {
		g, found, err := r.region(id)
		if err != nil {
			return err
		}
		if !found {
			return fail(r.op, ledger.ErrNotFound, "no region %s", id)
		}
		out = g.public(id)
		return nil
	})
	return out, err
}

// Regions returns every region, ordered by id.
func (l *Ledger) Regions(ctx context.Context) ([]ledger.Region, error) {
	var out []ledger.Region
	err := l.view(ctx, "regions", func(r *rtx) error {
		p := key("r")
		return r.scan(p, func(k, v []byte) error {
			var rec regionRec
			if err := decode(kindRegion, v, &rec); err != nil {
				return err
			}
			out = append(out, rec.public(idAfter(k, p)))
			return nil
		})
	})
	return out, err
}

// Escrow returns one escrow (ErrNotFound).
func (l *Ledger) Escrow(ctx context.Context, developer, provider ledger.Pubkey) (ledger.Escrow, error) {
	var out ledger.Escrow
	err := l.view(ctx, "escrow", func(r *rtx) error {
		e, found, err := r.escrow(developer, provider)
		if err != nil {
			return err
		}
		if !found {
			return fail(r.op, ledger.ErrNotFound, "developer %s has no escrow with provider %s", developer, provider)
		}
		out = e.public()
		return nil
	})
	return out, err
}

// Escrows returns every escrow, ordered by (developer, provider).
func (l *Ledger) Escrows(ctx context.Context) ([]ledger.Escrow, error) {
	var out []ledger.Escrow
	err := l.view(ctx, "escrows", func(r *rtx) error {
		return r.scan(key("e"), func(_, v []byte) error {
			var rec escrowRec
			if err := decode(kindEscrow, v, &rec); err != nil {
				return err
			}
			out = append(out, rec.public())
			return nil
		})
	})
	return out, err
}

// Stack returns one stack, deleted ones included (ErrNotFound).
func (l *Ledger) Stack(ctx context.Context, id ledger.Pubkey) (ledger.Stack, error) {
	var out ledger.Stack
	err := l.view(ctx, "stack", func(r *rtx) error {
		s, found, err := r.stack(id)
		if err != nil {
			return err
		}
		if !found {
			return fail(r.op, ledger.ErrNotFound, "no stack %s", id)
		}
		on, err := r.stackEnabled(s)
		out = s.public(id, on)
		return err
	})
	return out, err
}

// Stacks returns every stack, deleted ones included, ordered by id.
func (l *Ledger) Stacks(ctx context.Context) ([]ledger.Stack, error) {
	var out []ledger.Stack
	err := l.view(ctx, "stacks", func(r *rtx) error {
		regions := map[ledger.Pubkey]regionRec{}
		escrows := map[[64]byte]escrowRec{}
		p := key("s")
		return r.scan(p, func(k, v []byte) error {
			var s stackRec
			if err := decode(kindStack, v, &s); err != nil {
				return err
			}
			g, ok := regions[s.Region]
			if !ok {
				var found bool
				var err error
				if g, found, err = r.region(s.Region); err != nil {
					return err
				} else if !found {
					return fmt.Errorf("%w: stack in missing region %s", errCorrupt, s.Region)
				}
				regions[s.Region] = g
			}
			var ek [64]byte
			copy(ek[:32], s.Owner[:])
			copy(ek[32:], g.Provider[:])
			e, ok := escrows[ek]
			if !ok {
				var err error
				if e, err = r.escrowOf(s.Owner, g.Provider); err != nil {
					return err
				}
				escrows[ek] = e
			}
			out = append(out, s.public(idAfter(k, p), enabled(s, e, g.MinEscrowBalance)))
			return nil
		})
	})
	return out, err
}
