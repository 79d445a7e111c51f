package local

import (
	"context"
	"fmt"
	"net/url"
	"unicode/utf8"

	"github.com/muprotocol/mu/libs/ledger"
)

// state reads the state account (ErrNotInitialized when absent).
func (r *rtx) state() (stateRec, error) {
	var s stateRec
	found, err := r.get(keyState, kindState, &s)
	if err == nil && !found {
		err = fail(r.op, ledger.ErrNotInitialized, "no state account; run Initialize first")
	}
	return s, err
}

// requireAuthority reads the state and checks signer is its authority.
func (w *wtx) requireAuthority(signer ledger.Pubkey) (stateRec, error) {
	st, err := w.state()
	if err != nil {
		return st, err
	}
	if signer != st.Authority {
		return st, w.fail(ledger.ErrBadSigner, "signed by %s, the authority is %s", signer, st.Authority)
	}
	return st, nil
}

func (r *rtx) provider(id ledger.Pubkey) (providerRec, bool, error) {
	var p providerRec
	found, err := r.get(providerKey(id), kindProvider, &p)
	return p, found, err
}

func (r *rtx) region(id ledger.Pubkey) (regionRec, bool, error) {
	var g regionRec
	found, err := r.get(regionKey(id), kindRegion, &g)
	return g, found, err
}

// checkName checks a provider or region name: UTF-8, 1..MaxNameBytes.
func (c *Config) checkName(op, field, name string) error {
	switch {
	case name == "":
		return fail(op, ledger.ErrInvalidArgument, "%s is empty", field)
	case len(name) > c.MaxNameBytes:
		return fail(op, ledger.ErrInvalidArgument, "%s is %d bytes, limit %d", field, len(name), c.MaxNameBytes)
	case !utf8.ValidString(name):
		return fail(op, ledger.ErrInvalidArgument, "%s is not valid UTF-8", field)
	}
	return nil
}

// checkRegionConfig checks the bounds of a region's settings. Rates may be
// 0 (a unit the region does not charge for).
func (c *Config) checkRegionConfig(op string, cfg ledger.RegionConfig) error {
	if err := c.checkName(op, "name", cfg.Name); err != nil {
		return err
	}
	switch {
	case cfg.BaseURL == "":
		return fail(op, ledger.ErrInvalidArgument, "base_url is empty")
	case len(cfg.BaseURL) > c.MaxURLBytes:
		return fail(op, ledger.ErrInvalidArgument, "base_url is %d bytes, limit %d", len(cfg.BaseURL), c.MaxURLBytes)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(op, ledger.ErrInvalidArgument, "base_url %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.MinMemoryLimitBytes != 0 && cfg.MaxMemoryLimitBytes != 0 && cfg.MinMemoryLimitBytes > cfg.MaxMemoryLimitBytes {
		return fail(op, ledger.ErrInvalidArgument, "min_memory_limit_bytes %d is above max_memory_limit_bytes %d",
			cfg.MinMemoryLimitBytes, cfg.MaxMemoryLimitBytes)
	}
	return nil
}

type initArgs struct {
	ProviderDeposit  uint64
	CommissionMicros uint32
}

// Initialize creates the state account; see ledger.Ledger.
func (l *Ledger) Initialize(ctx context.Context, authority ledger.Signer, p ledger.InitParams) error {
	const op = "initialize"
	if p.CommissionMicros > 1_000_000 {
		return fail(op, ledger.ErrInvalidArgument, "commission_micros is %d, limit 1000000", p.CommissionMicros)
	}
	signer, err := authorize(op, authority, initializeInstr(p))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		var st stateRec
		found, err := w.get(keyState, kindState, &st)
		if err != nil {
			return err
		}
		if found {
			return w.fail(ledger.ErrAlreadyInitialized, "the authority is %s", st.Authority)
		}
		st = stateRec{Authority: signer, ProviderDeposit: p.ProviderDeposit, CommissionMicros: p.CommissionMicros}
		if err := w.put(keyState, kindState, &st); err != nil {
			return err
		}
		return w.emit(kindState, ledger.Pubkey{}, false, &st)
	})
	return err
}

type depositArgs struct{ Amount uint64 }

// UpdateProviderDeposit sets the provider deposit; see ledger.Ledger.
func (l *Ledger) UpdateProviderDeposit(ctx context.Context, authority ledger.Signer, amount uint64) error {
	const op = "update provider deposit"
	signer, err := authorize(op, authority, updateProviderDepositInstr(amount))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		st, err := w.requireAuthority(signer)
		if err != nil {
			return err
		}
		st.ProviderDeposit = amount
		if err := w.put(keyState, kindState, &st); err != nil {
			return err
		}
		return w.emit(kindState, ledger.Pubkey{}, false, &st)
	})
	return err
}

type createProviderArgs struct{ Name string }

// CreateProvider registers the signer's provider; see ledger.Ledger.
func (l *Ledger) CreateProvider(ctx context.Context, owner ledger.Signer, name string) (ledger.Provider, error) {
	const op = "create provider"
	if err := l.cfg.checkName(op, "name", name); err != nil {
		return ledger.Provider{}, err
	}
	signer, err := authorize(op, owner, createProviderInstr(name))
	if err != nil {
		return ledger.Provider{}, err
	}
	id := ProviderAddress(signer)
	var out ledger.Provider
	_, err = l.write(ctx, op, func(w *wtx) error {
		st, err := w.state()
		if err != nil {
			return err
		}
		if _, found, err := w.provider(id); err != nil || found {
			if found {
				return w.fail(ledger.ErrAlreadyExists, "owner %s already has provider %s", signer, id)
			}
			return err
		}
		if err := w.debit(signer, st.ProviderDeposit, "the provider deposit"); err != nil {
			return err
		}
		if w.head.DepositVault, err = w.add(w.head.DepositVault, st.ProviderDeposit, "deposit vault"); err != nil {
			return err
		}
		p := providerRec{Owner: signer, Name: name, Deposit: st.ProviderDeposit}
		if err := w.put(providerKey(id), kindProvider, &p); err != nil {
			return err
		}
		out = p.public(id)
		return w.emit(kindProvider, id, false, &p)
	})
	return out, err
}

type authorizeProviderArgs struct{ Provider ledger.Pubkey }

// AuthorizeProvider marks a provider authorized; see ledger.Ledger.
// Authorizing an authorized provider succeeds and changes nothing but the
// slot.
func (l *Ledger) AuthorizeProvider(ctx context.Context, authority ledger.Signer, provider ledger.Pubkey) error {
	const op = "authorize provider"
	signer, err := authorize(op, authority, authorizeProviderInstr(provider))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		if _, err := w.requireAuthority(signer); err != nil {
			return err
		}
		p, found, err := w.provider(provider)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrNotFound, "no provider %s", provider)
		}
		p.Authorized = true
		if err := w.put(providerKey(provider), kindProvider, &p); err != nil {
			return err
		}
		return w.emit(kindProvider, provider, false, &p)
	})
	return err
}

type regionArgs struct {
	Region                     ledger.Pubkey
	Number                     uint32
	Name                       string
	BaseURL                    string
	Rates                      [ledger.NumUnits]uint64
	MinEscrowBalance           uint64
	MaxGigaInstructionsPerCall uint64
	MinMemoryLimitBytes        uint64
	MaxMemoryLimitBytes        uint64
}

func newRegionArgs(region ledger.Pubkey, number uint32, c ledger.RegionConfig) regionArgs {
	return regionArgs{region, number, c.Name, c.BaseURL, ratesArray(c.Rates), c.MinEscrowBalance,
		c.MaxGigaInstructionsPerCall, c.MinMemoryLimitBytes, c.MaxMemoryLimitBytes}
}

// CreateRegion creates region number of the signer's provider; see
// ledger.Ledger.
func (l *Ledger) CreateRegion(ctx context.Context, owner ledger.Signer, number uint32, cfg ledger.RegionConfig) (ledger.Region, error) {
	op := fmt.Sprintf("create region %d", number)
	if err := l.cfg.checkRegionConfig(op, cfg); err != nil {
		return ledger.Region{}, err
	}
	signer, err := authorize(op, owner, createRegionInstr(number, cfg))
	if err != nil {
		return ledger.Region{}, err
	}
	pid := ProviderAddress(signer)
	id := RegionAddress(pid, number)
	var out ledger.Region
	_, err = l.write(ctx, op, func(w *wtx) error {
		p, found, err := w.provider(pid)
		if err != nil {
			return err
		}
		if !found {
			return w.fail(ledger.ErrNotFound, "owner %s has no provider", signer)
		}
		if !p.Authorized {
			return w.fail(ledger.ErrUnauthorizedProvider, "provider %s", pid)
		}
		if _, found, err := w.region(id); err != nil || found {
			if found {
				return w.fail(ledger.ErrAlreadyExists, "provider %s already has region %d (%s)", pid, number, id)
			}
			return err
		}
		g := regionRec{Provider: pid, Number: number}
		g.setConfig(cfg)
		if err := w.put(regionKey(id), kindRegion, &g); err != nil {
			return err
		}
		out = g.public(id)
		return w.emit(kindRegion, id, false, &g)
	})
	return out, err
}

// ownedRegion reads region and checks signer owns its provider.
func (w *wtx) ownedRegion(id, signer ledger.Pubkey) (regionRec, providerRec, error) {
	g, found, err := w.region(id)
	if err != nil {
		return g, providerRec{}, err
	}
	if !found {
		return g, providerRec{}, w.fail(ledger.ErrUnknownRegion, "no region %s", id)
	}
	p, found, err := w.provider(g.Provider)
	if err != nil {
		return g, p, err
	}
	if !found {
		return g, p, fmt.Errorf("%w: region %s names provider %s, which does not exist", errCorrupt, id, g.Provider)
	}
	if p.Owner != signer {
		return g, p, w.fail(ledger.ErrBadSigner, "signed by %s, region %s belongs to provider owner %s", signer, id, p.Owner)
	}
	return g, p, nil
}

// UpdateRegion replaces a region's settings; see ledger.Ledger. Stacks
// whose Enabled flag the new minimum flips appear in the write's changes.
func (l *Ledger) UpdateRegion(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, cfg ledger.RegionConfig) (ledger.Region, error) {
	op := fmt.Sprintf("update region %s", region)
	if err := l.cfg.checkRegionConfig(op, cfg); err != nil {
		return ledger.Region{}, err
	}
	signer, err := authorize(op, owner, updateRegionInstr(region, cfg))
	if err != nil {
		return ledger.Region{}, err
	}
	var out ledger.Region
	_, err = l.write(ctx, op, func(w *wtx) error {
		g, _, err := w.ownedRegion(region, signer)
		if err != nil {
			return err
		}
		oldMin := g.MinEscrowBalance
		g.setConfig(cfg)
		if err := w.put(regionKey(region), kindRegion, &g); err != nil {
			return err
		}
		out = g.public(region)
		if err := w.emit(kindRegion, region, false, &g); err != nil {
			return err
		}
		if oldMin == g.MinEscrowBalance {
			return nil
		}
		return w.regionFlips(region, g.Provider, oldMin, g.MinEscrowBalance)
	})
	return out, err
}

// regionFlips emits the stacks of region whose Enabled flag changes when
// its minimum goes from oldMin to newMin.
func (w *wtx) regionFlips(region, provider ledger.Pubkey, oldMin, newMin uint64) error {
	p := key("ri", region[:])
	escrows := map[ledger.Pubkey]escrowRec{}
	var flipped []ledger.Pubkey
	err := w.scan(p, func(k, _ []byte) error {
		if len(k) != len(p)+64 {
			return fmt.Errorf("%w: region index key %x", errCorrupt, k)
		}
		var owner, stack ledger.Pubkey
		copy(owner[:], k[len(p):])
		copy(stack[:], k[len(p)+32:])
		e, ok := escrows[owner]
		if !ok {
			var err error
			if e, err = w.escrowOf(owner, provider); err != nil {
				return err
			}
			escrows[owner] = e
		}
		active := stackRec{State: uint8(ledger.StackActive)}
		if enabled(active, e, oldMin) != enabled(active, e, newMin) {
			flipped = append(flipped, stack)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range flipped {
		s, err := w.stackOf(id)
		if err != nil {
			return err
		}
		if err := w.emit(kindStack, id, enabled(s, escrows[s.Owner], newMin), &s); err != nil {
			return err
		}
	}
	return nil
}

type usageSignerArgs struct {
	Region ledger.Pubkey
	Signer ledger.Pubkey
}

// CreateUsageSigner sets a region's usage signer; see ledger.Ledger.
func (l *Ledger) CreateUsageSigner(ctx context.Context, owner ledger.Signer, region, usageSigner ledger.Pubkey) error {
	op := fmt.Sprintf("create usage signer of region %s", region)
	if usageSigner.IsZero() {
		return fail(op, ledger.ErrInvalidArgument, "signer is the zero key")
	}
	signer, err := authorize(op, owner, createUsageSignerInstr(region, usageSigner))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		g, _, err := w.ownedRegion(region, signer)
		if err != nil {
			return err
		}
		g.UsageSigner = usageSigner
		if err := w.put(regionKey(region), kindRegion, &g); err != nil {
			return err
		}
		return w.emit(kindRegion, region, false, &g)
	})
	return err
}
