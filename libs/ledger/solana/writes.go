package solana

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"unicode/utf8"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// key is the public key of a call's signer (ErrBadSigner for none).
func key(op string, s ledger.Signer) (sol.PublicKey, error) {
	if s == nil {
		return sol.PublicKey{}, fail(op, ledger.ErrBadSigner, "no signer given")
	}
	return solKey(s.Pubkey()), nil
}

// write sends t and reads back what it touched.
func (l *Ledger) write(ctx context.Context, t txn) (landed, error) {
	if err := l.usable(t.op); err != nil {
		return landed{}, err
	}
	at, err := l.send.send(ctx, t)
	if err != nil {
		return landed{}, err
	}
	l.observeWrite(ctx, t.op, t, at)
	return at, nil
}

// Initialize creates the mint (from mint_keypair, or a fresh key), the
// state account and the provider authorizer of the authority, in one
// transaction.
func (l *Ledger) Initialize(ctx context.Context, authority ledger.Signer, p ledger.InitParams) error {
	const op = "initialize"
	if p.CommissionMicros > 1_000_000 {
		return fail(op, ledger.ErrInvalidArgument, "commission_micros is %d, limit 1000000", p.CommissionMicros)
	}
	auth, err := key(op, authority)
	if err != nil {
		return err
	}
	mintKey := l.mintKey
	if mintKey == nil {
		if mintKey, err = ledger.GenerateKeypair(); err != nil {
			return fail(op, ledger.ErrUnavailable, "%v", err)
		}
	}
	mint := solKey(mintKey.Pubkey())
	existing, err := l.getAccount(ctx, op, mint)
	if err != nil {
		return err
	}
	t := txn{op: op, signers: []ledger.Signer{authority, mintKey}, errs: errMap{exists: ledger.ErrAlreadyInitialized}}
	if existing == nil {
		var lamports uint64
		if err := l.send.call(ctx, op+": rent of the mint", func(ctx context.Context) (err error) {
			lamports, err = l.rpc.GetMinimumBalanceForRentExemption(ctx, mintSize, l.commitment)
			return err
		}); err != nil {
			return readErr(op, err)
		}
		t.add(kindSystem, l.ixCreateMint(mint, lamports))
		t.add(kindToken, l.ixInitializeMint(mint, auth))
	} else if existing.owner != sol.TokenProgramID || len(existing.data) != mintSize {
		return fail(op, ledger.ErrInvalidArgument, "mint_keypair's address %s holds an account that is not a mint", mint)
	} else if leU32(existing.data) != 1 || sol.PublicKeyFromBytes(existing.data[4:36]) != auth {
		return fail(op, ledger.ErrInvalidArgument, "mint %s (mint_keypair) exists and %s is not its mint authority", mint, auth)
	}
	if err := l.fundRent(ctx, &t, auth, 0, marketplace.MuStateSpace, marketplace.TokenAccountSpace, marketplace.TokenAccountSpace,
		marketplace.ProviderAuthorizerSpace); err != nil {
		return err
	}
	t.add(kindMarketplace, l.ixInitialize(auth, mint, p.CommissionMicros, p.ProviderDeposit))
	t.add(kindMarketplace, l.ixCreateProviderAuthorizer(auth, auth))
	_, err = l.write(ctx, t)
	return err
}

// Mint creates amount tokens in to's wallet (SPL mint_to, the authority
// as mint authority), creating the wallet if needed.
func (l *Ledger) Mint(ctx context.Context, authority ledger.Signer, to ledger.Pubkey, amount uint64) error {
	const op = "mint"
	if amount == 0 {
		return fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	auth, err := key(op, authority)
	if err != nil {
		return err
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return err
	}
	dest := l.ata(solKey(to), mint)
	t := txn{op: op, signers: []ledger.Signer{authority}}
	t.add(kindATA, l.ixCreateATA(solKey(to), mint))
	t.add(kindToken, l.ixMintTo(mint, dest, auth, amount))
	t.check = func(ctx context.Context) error {
		m, err := l.getAccount(ctx, op, mint)
		if err != nil {
			return err
		}
		if m != nil && len(m.data) >= mintSize {
			var authority sol.PublicKey
			copy(authority[:], m.data[4:36])
			if m.data[0] != 1 || authority != auth {
				return fail(op, ledger.ErrBadSigner, "signed by %s, the mint authority is %s", auth, authority)
			}
			if supply := leU64(m.data[mintSupplyOffset:]); supply > math.MaxUint64-amount {
				return fail(op, ledger.ErrOverflow, "supply %d + %d exceeds 2^64-1", supply, amount)
			}
		}
		return nil
	}
	_, err = l.write(ctx, t)
	return err
}

// Transfer moves tokens between wallets (SPL transfer between the
// associated token accounts), creating the receiver's if needed.
func (l *Ledger) Transfer(ctx context.Context, from ledger.Signer, to ledger.Pubkey, amount uint64) error {
	const op = "transfer"
	if amount == 0 {
		return fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	owner, err := key(op, from)
	if err != nil {
		return err
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return err
	}
	src := l.ata(owner, mint)
	t := txn{op: op, signers: []ledger.Signer{from}, errs: errMap{missing: ledger.ErrInsufficientFunds}}
	t.add(kindATA, l.ixCreateATA(solKey(to), mint))
	t.add(kindToken, l.ixTransfer(src, l.ata(solKey(to), mint), owner, amount))
	t.check = func(ctx context.Context) error { return l.needFunds(ctx, op, owner, src, amount) }
	_, err = l.write(ctx, t)
	return err
}

// needFunds checks that wallet src of owner holds amount.
func (l *Ledger) needFunds(ctx context.Context, op string, owner, src sol.PublicKey, amount uint64) error {
	a, err := l.getAccount(ctx, op, src)
	if err != nil {
		return err
	}
	if _, _, held, _ := tokenAmount(a); held < amount {
		return fail(op, ledger.ErrInsufficientFunds, "the wallet of %s holds %d, needs %d", owner, held, amount)
	}
	return nil
}

func leU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// checkName checks a provider or region name: UTF-8, 1..max_name_bytes.
func (l *Ledger) checkName(op, field, name string) error {
	switch {
	case name == "":
		return fail(op, ledger.ErrInvalidArgument, "%s is empty", field)
	case len(name) > l.cfg.MaxNameBytes:
		return fail(op, ledger.ErrInvalidArgument, "%s is %d bytes, limit %d", field, len(name), l.cfg.MaxNameBytes)
	case !utf8.ValidString(name):
		return fail(op, ledger.ErrInvalidArgument, "%s is not valid UTF-8", field)
	}
	return nil
}

// CreateProvider registers owner's provider, moving the state's deposit
// from owner's wallet to the deposit vault.
func (l *Ledger) CreateProvider(ctx context.Context, owner ledger.Signer, name string) (ledger.Provider, error) {
	const op = "create provider"
	if err := l.checkName(op, "name", name); err != nil {
		return ledger.Provider{}, err
	}
	o, err := key(op, owner)
	if err != nil {
		return ledger.Provider{}, err
	}
	st, err := l.state(ctx, op)
	if err != nil {
		return ledger.Provider{}, err
	}
	wallet := l.ata(o, st.Mint)
	id := l.providerPDA(o)
	t := txn{op: op, signers: []ledger.Signer{owner}, errs: errMap{missing: ledger.ErrInsufficientFunds}}
	t.add(kindATA, l.ixCreateATA(o, st.Mint))
	if err := l.fundRent(ctx, &t, o, 0, marketplace.ProviderSpace(len(name))); err != nil {
		return ledger.Provider{}, err
	}
	t.add(kindMarketplace, l.ixCreateProvider(o, wallet, name))
	t.check = func(ctx context.Context) error {
		as, _, err := l.getAccounts(ctx, op, id, wallet)
		if err != nil {
			return err
		}
		if as[0] != nil {
			return fail(op, ledger.ErrAlreadyExists, "%s already has provider %s", o, id)
		}
		if _, _, held, _ := tokenAmount(as[1]); held < st.ProviderDeposit {
			return fail(op, ledger.ErrInsufficientFunds, "the deposit is %d, the wallet of %s holds %d", st.ProviderDeposit, o, held)
		}
		return nil
	}
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Provider{}, err
	}
	return l.Provider(ctx, ledgerKey(id))
}

// AuthorizeProvider marks a provider authorized, signed by the provider
// authorizer (the state's authority).
func (l *Ledger) AuthorizeProvider(ctx context.Context, authority ledger.Signer, provider ledger.Pubkey) error {
	const op = "authorize provider"
	auth, err := key(op, authority)
	if err != nil {
		return err
	}
	p, err := l.Provider(ctx, provider)
	if err != nil {
		return err
	}
	// A signer that is no authorizer has no authorizer account: the
	// program fails it as AccountNotInitialized.
	t := txn{op: op, signers: []ledger.Signer{authority}, errs: errMap{missing: ledger.ErrBadSigner}}
	t.add(kindMarketplace, l.ixAuthorizeProvider(auth, solKey(provider), solKey(p.Owner)))
	t.check = func(ctx context.Context) error {
		a, err := l.getAccount(ctx, op, l.authorizerPDA(auth))
		if err != nil {
			return err
		}
		if a == nil {
			return fail(op, ledger.ErrBadSigner, "%s is not a provider authorizer", auth)
		}
		return nil
	}
	_, err = l.write(ctx, t)
	return err
}

// UpdateProviderDeposit sets the provider deposit. The program checks no
// signer here; the backend requires the state's authority.
func (l *Ledger) UpdateProviderDeposit(ctx context.Context, authority ledger.Signer, amount uint64) error {
	const op = "update provider deposit"
	auth, err := key(op, authority)
	if err != nil {
		return err
	}
	st, err := l.state(ctx, op)
	if err != nil {
		return err
	}
	t := txn{op: op, signers: []ledger.Signer{authority}}
	t.add(kindMarketplace, l.ixUpdateProviderDeposit(auth, amount))
	t.check = func(context.Context) error {
		if auth != st.Authority {
			return fail(op, ledger.ErrBadSigner, "signed by %s, the authority is %s", auth, st.Authority)
		}
		return nil
	}
	_, err = l.write(ctx, t)
	return err
}

// checkRegionConfig checks a region's settings: the bounds of local's, and
// what the program cannot hold (ErrUnsupported).
func (l *Ledger) checkRegionConfig(op string, cfg ledger.RegionConfig) error {
	if err := l.checkName(op, "name", cfg.Name); err != nil {
		return err
	}
	switch {
	case cfg.BaseURL == "":
		return fail(op, ledger.ErrInvalidArgument, "base_url is empty")
	case len(cfg.BaseURL) > l.cfg.MaxURLBytes:
		return fail(op, ledger.ErrInvalidArgument, "base_url is %d bytes, limit %d", len(cfg.BaseURL), l.cfg.MaxURLBytes)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(op, ledger.ErrInvalidArgument, "base_url %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.MinMemoryLimitBytes != 0 && cfg.MaxMemoryLimitBytes != 0 && cfg.MinMemoryLimitBytes > cfg.MaxMemoryLimitBytes {
		return fail(op, ledger.ErrInvalidArgument, "min_memory_limit_bytes %d is above max_memory_limit_bytes %d",
			cfg.MinMemoryLimitBytes, cfg.MaxMemoryLimitBytes)
	}
	if cfg.Rates.StoragePerGiBMonthStored != 0 || cfg.Rates.StoragePerGiBTraffic != 0 {
		return fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapStorage,
			fmt.Sprintf("storage rates %d per GiB-month and %d per GiB: the program's regions have no storage rates",
				cfg.Rates.StoragePerGiBMonthStored, cfg.Rates.StoragePerGiBTraffic)))
	}
	if cfg.MinMemoryLimitBytes != 0 || cfg.MaxMemoryLimitBytes != 0 {
		return fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapMemoryBounds,
			fmt.Sprintf("memory bounds %d..%d bytes: the program's regions have none", cfg.MinMemoryLimitBytes, cfg.MaxMemoryLimitBytes)))
	}
	if cfg.MaxGigaInstructionsPerCall > math.MaxUint32 {
		return fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapWideInstructionCap,
			fmt.Sprintf("max_giga_instructions_per_call %d exceeds the program's 32 bits", cfg.MaxGigaInstructionsPerCall)))
	}
	return nil
}

// CreateRegion creates region number of owner's provider.
func (l *Ledger) CreateRegion(ctx context.Context, owner ledger.Signer, number uint32, cfg ledger.RegionConfig) (ledger.Region, error) {
	const op = "create region"
	if err := l.checkRegionConfig(op, cfg); err != nil {
		return ledger.Region{}, err
	}
	o, err := key(op, owner)
	if err != nil {
		return ledger.Region{}, err
	}
	pid := l.providerPDA(o)
	p, err := l.Provider(ctx, ledgerKey(pid))
	if err != nil {
		return ledger.Region{}, fail(op, ledger.ErrNotFound, "%s has no provider", o)
	}
	id, _ := l.prog.Region(o, number)
	t := txn{op: op, signers: []ledger.Signer{owner}}
	if err := l.fundRent(ctx, &t, o, 0, marketplace.RegionSpace(len(cfg.Name), len(cfg.BaseURL))); err != nil {
		return ledger.Region{}, err
	}
	t.add(kindMarketplace, l.ixCreateRegion(o, pid, number, cfg))
	t.check = func(ctx context.Context) error {
		if !p.Authorized {
			return fail(op, ledger.ErrUnauthorizedProvider, "provider %s is not authorized", pid)
		}
		a, err := l.getAccount(ctx, op, id)
		if err != nil {
			return err
		}
		if a != nil {
			return fail(op, ledger.ErrAlreadyExists, "region %d of %s exists", number, pid)
		}
		return nil
	}
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Region{}, err
	}
	return l.Region(ctx, ledgerKey(id))
}

// UpdateRegion is not supported: the program has no instruction for it.
func (l *Ledger) UpdateRegion(context.Context, ledger.Signer, ledger.Pubkey, ledger.RegionConfig) (ledger.Region, error) {
	return ledger.Region{}, fmt.Errorf("ledger/solana: update region: %w",
		ledger.Unsupported(ledger.CapUpdateRegion, "the program has no instruction to change a region"))
}

// CreateUsageSigner sets a region's usage signer, once (the program
// creates its account once), with the provider owner's wallet as the
// account usage payments go to.
func (l *Ledger) CreateUsageSigner(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, signer ledger.Pubkey) error {
	const op = "create usage signer"
	if signer.IsZero() {
		return fail(op, ledger.ErrInvalidArgument, "the usage signer is the zero key")
	}
	o, err := key(op, owner)
	if err != nil {
		return err
	}
	r, existing, ok, err := l.region(ctx, op, solKey(region))
	if err != nil {
		return err
	}
	if !ok {
		return fail(op, ledger.ErrUnknownRegion, "no region %s", region)
	}
	p, err := l.Provider(ctx, ledgerKey(r.Provider))
	if err != nil {
		return err
	}
	if solKey(p.Owner) != o {
		return fail(op, ledger.ErrBadSigner, "signed by %s, the region's provider is owned by %s", o, p.Owner)
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return err
	}
	t := txn{op: op, signers: []ledger.Signer{owner}}
	t.add(kindATA, l.ixCreateATA(o, mint))
	if err := l.fundRent(ctx, &t, o, 0, marketplace.AuthorizedUsageSignerSpace); err != nil {
		return err
	}
	t.add(kindMarketplace, l.ixCreateUsageSigner(o, r.Provider, solKey(region), solKey(signer), l.ata(o, mint)))
	t.check = func(context.Context) error {
		if existing != nil {
			return fmt.Errorf("ledger/solana: %s: %w", op, ledger.Unsupported(ledger.CapReplaceUsageSigner,
				fmt.Sprintf("region %s has usage signer %s; the program creates it once", region, existing.Signer)))
		}
		return nil
	}
	_, err = l.write(ctx, t)
	return err
}

// CreateEscrow opens developer's escrow token account with an authorized
// provider (authorization is checked off chain: the program does not),
// and developer's wallet if it has none, so Escrows finds it.
func (l *Ledger) CreateEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey) (ledger.Escrow, error) {
	const op = "create escrow"
	dev, err := key(op, developer)
	if err != nil {
		return ledger.Escrow{}, err
	}
	p, err := l.Provider(ctx, provider)
	if err != nil {
		return ledger.Escrow{}, err
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return ledger.Escrow{}, err
	}
	t := txn{op: op, signers: []ledger.Signer{developer}}
	t.add(kindATA, l.ixCreateATA(dev, mint))
	if err := l.fundRent(ctx, &t, dev, 0, marketplace.TokenAccountSpace); err != nil {
		return ledger.Escrow{}, err
	}
	t.add(kindMarketplace, l.ixCreateEscrow(dev, solKey(provider), mint))
	t.check = func(context.Context) error {
		if !p.Authorized {
			return fail(op, ledger.ErrUnauthorizedProvider, "provider %s is not authorized", provider)
		}
		return nil
	}
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Escrow{}, err
	}
	return l.Escrow(ctx, ledgerKey(dev), provider)
}

// RechargeEscrow moves amount from developer's wallet into the escrow (an
// SPL transfer the developer signs).
func (l *Ledger) RechargeEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	const op = "recharge escrow"
	if amount == 0 {
		return ledger.Escrow{}, fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	dev, err := key(op, developer)
	if err != nil {
		return ledger.Escrow{}, err
	}
	if _, err := l.Escrow(ctx, ledgerKey(dev), provider); err != nil {
		return ledger.Escrow{}, err
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return ledger.Escrow{}, err
	}
	src := l.ata(dev, mint)
	t := txn{op: op, signers: []ledger.Signer{developer}, errs: errMap{missing: ledger.ErrInsufficientFunds}}
	t.add(kindToken, l.ixTransfer(src, l.escrowPDA(dev, solKey(provider)), dev, amount))
	t.check = func(ctx context.Context) error { return l.needFunds(ctx, op, dev, src, amount) }
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Escrow{}, err
	}
	return l.Escrow(ctx, ledgerKey(dev), provider)
}

// WithdrawEscrow moves amount from the escrow to developer's wallet;
// the region minimum of the developer's active stacks is kept off chain.
func (l *Ledger) WithdrawEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	const op = "withdraw escrow"
	if amount == 0 {
		return ledger.Escrow{}, fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	dev, err := key(op, developer)
	if err != nil {
		return ledger.Escrow{}, err
	}
	e, err := l.Escrow(ctx, ledgerKey(dev), provider)
	if err != nil {
		return ledger.Escrow{}, err
	}
	mint, err := l.mintOf(ctx, op)
	if err != nil {
		return ledger.Escrow{}, err
	}
	t := txn{op: op, signers: []ledger.Signer{developer}, errs: errMap{short: ledger.ErrInsufficientEscrow}}
	t.add(kindATA, l.ixCreateATA(dev, mint))
	t.add(kindMarketplace, l.ixWithdraw(dev, solKey(provider), l.ata(dev, mint), amount))
	t.check = func(ctx context.Context) error {
		if e.Balance < amount {
			return fail(op, ledger.ErrInsufficientEscrow, "the escrow holds %d, asked for %d", e.Balance, amount)
		}
		need, err := l.minimumOf(ctx, op, dev, solKey(provider))
		if err != nil {
			return err
		}
		if left := e.Balance - amount; left < need {
			return fail(op, ledger.ErrBelowMinimum, "%d would be left, the developer's active stacks need %d", left, need)
		}
		return nil
	}
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Escrow{}, err
	}
	return l.Escrow(ctx, ledgerKey(dev), provider)
}

// minimumOf is the highest region minimum among developer's active stacks
// in provider's regions (0 with none).
func (l *Ledger) minimumOf(ctx context.Context, op string, developer, provider sol.PublicKey) (uint64, error) {
	ss, err := l.programAccounts(ctx, op, l.prog.ID,
		rpc.RPCFilter{Memcmp: &rpc.RPCFilterMemcmp{Offset: marketplace.DiscriminatorOffset, Bytes: sol.Base58(marketplace.StackDiscriminator[:])}},
		rpc.RPCFilter{Memcmp: &rpc.RPCFilterMemcmp{Offset: marketplace.StackUserOffset, Bytes: sol.Base58(developer[:])}})
	if err != nil {
		return 0, err
	}
	regions := map[sol.PublicKey]bool{}
	var addrs []sol.PublicKey
	for i := range ss {
		if s, ok := decodeStack(&ss[i], l.prog.ID); ok && s.State.Active() && !regions[s.Region] {
			regions[s.Region] = true
			addrs = append(addrs, s.Region)
		}
	}
	rs, _, err := l.getAccounts(ctx, op, addrs...)
	if err != nil {
		return 0, err
	}
	var need uint64
	for _, a := range rs {
		if r, ok := decodeRegion(a, l.prog.ID); ok && r.Provider == provider {
			need = max(need, r.MinEscrowBalance)
		}
	}
	return need, nil
}

// stackOf reads a stack for a write by owner: ErrNotFound, ErrBadSigner
// for another owner, ErrStackDeleted.
// The size is the account's, in bytes.
func (l *Ledger) stackOf(ctx context.Context, op string, owner, id sol.PublicKey) (marketplace.Stack, int, error) {
	a, err := l.getAccount(ctx, op, id)
	if err != nil {
		return marketplace.Stack{}, 0, err
	}
	s, ok := decodeStack(a, l.prog.ID)
	switch {
	case !ok:
		return s, 0, fail(op, ledger.ErrNotFound, "no stack %s", id)
	case s.User != owner:
		return s, 0, fail(op, ledger.ErrBadSigner, "signed by %s, stack %s is owned by %s", owner, id, s.User)
	case !s.State.Active():
		return s, 0, fail(op, ledger.ErrStackDeleted, "stack %s is deleted", id)
	}
	return s, len(a.data), nil
}

// checkManifest bounds a manifest: not empty, and within what one
// transaction can carry (the sender checks the transaction's size: 792
// bytes of manifest fit a create_stack, a little more an update).
func checkManifest(op string, m []byte) error {
	switch {
	case len(m) == 0:
		return fail(op, ledger.ErrInvalidArgument, "the manifest is empty")
	case len(m) > maxTransactionBytes:
		return fail(op, ledger.ErrInvalidArgument, "the manifest is %d bytes; a transaction carries at most %d", len(m), maxTransactionBytes)
	}
	return nil
}

// CreateStack posts a stack (revision 1); the region minimum of the
// owner's escrow is checked off chain.
func (l *Ledger) CreateStack(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, seed uint64, manifest []byte) (ledger.Stack, error) {
	const op = "create stack"
	if err := checkManifest(op, manifest); err != nil {
		return ledger.Stack{}, err
	}
	o, err := key(op, owner)
	if err != nil {
		return ledger.Stack{}, err
	}
	ra, err := l.getAccount(ctx, op, solKey(region))
	if err != nil {
		return ledger.Stack{}, err
	}
	r, ok := decodeRegion(ra, l.prog.ID)
	if !ok {
		return ledger.Stack{}, fail(op, ledger.ErrUnknownRegion, "no region %s", region)
	}
	id, _ := l.prog.Stack(o, solKey(region), seed)
	escrow := l.escrowPDA(o, r.Provider)
	t := txn{op: op, signers: []ledger.Signer{owner}}
	if err := l.fundRent(ctx, &t, o, 0, marketplace.StackSpace(len(stackName), len(manifest))); err != nil {
		return ledger.Stack{}, err
	}
	t.add(kindMarketplace, l.ixCreateStack(o, r.Provider, solKey(region), seed, manifest))
	t.check = func(ctx context.Context) error {
		as, _, err := l.getAccounts(ctx, op, id, escrow)
		if err != nil {
			return err
		}
		if as[0] != nil {
			return fail(op, ledger.ErrAlreadyExists, "stack %s (seed %d) exists", id, seed)
		}
		_, eo, held, ok := tokenAmount(as[1])
		if !ok || eo != l.statePDA {
			return fail(op, ledger.ErrInsufficientEscrow, "%s has no escrow with provider %s", o, r.Provider)
		}
		if held < r.MinEscrowBalance {
			return fail(op, ledger.ErrInsufficientEscrow, "the escrow holds %d, the region's minimum is %d", held, r.MinEscrowBalance)
		}
		return nil
	}
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Stack{}, err
	}
	return l.Stack(ctx, ledgerKey(id))
}

// UpdateStack replaces an active stack's manifest (revision + 1).
func (l *Ledger) UpdateStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey, manifest []byte) (ledger.Stack, error) {
	const op = "update stack"
	if err := checkManifest(op, manifest); err != nil {
		return ledger.Stack{}, err
	}
	o, err := key(op, owner)
	if err != nil {
		return ledger.Stack{}, err
	}
	s, size, err := l.stackOf(ctx, op, o, solKey(stack))
	if err != nil {
		return ledger.Stack{}, err
	}
	t := txn{op: op, signers: []ledger.Signer{owner}}
	if err := l.fundRent(ctx, &t, o, size, marketplace.StackSpace(len(stackName), len(manifest))); err != nil {
		return ledger.Stack{}, err
	}
	t.add(kindMarketplace, l.ixUpdateStack(o, s.Region, solKey(stack), s.Seed, manifest))
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Stack{}, err
	}
	return l.Stack(ctx, stack)
}

// DeleteStack marks a stack deleted; the program frees its data (see
// ledger.CapDeletedStackData).
func (l *Ledger) DeleteStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey) (ledger.Stack, error) {
	const op = "delete stack"
	o, err := key(op, owner)
	if err != nil {
		return ledger.Stack{}, err
	}
	s, _, err := l.stackOf(ctx, op, o, solKey(stack)) // it shrinks: no rent to add
	if err != nil {
		return ledger.Stack{}, err
	}
	t := txn{op: op, signers: []ledger.Signer{owner}}
	t.add(kindMarketplace, l.ixDeleteStack(o, s.Region, solKey(stack), s.Seed))
	if _, err := l.write(ctx, t); err != nil {
		return ledger.Stack{}, err
	}
	return l.Stack(ctx, stack)
}

// UpdateUsage charges a stack's escrow at its region's rates with the
// program's price rule (programCharge): whole tokens per unit only, and
// only what the escrow can pay in full.
func (l *Ledger) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	const op = "update usage"
	sk, err := key(op, signer)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	sa, err := l.getAccount(ctx, op, solKey(stack))
	if err != nil {
		return ledger.UsageResult{}, err
	}
	s, ok := decodeStack(sa, l.prog.ID)
	if !ok {
		return ledger.UsageResult{}, fail(op, ledger.ErrNotFound, "no stack %s", stack)
	}
	r, us, ok, err := l.region(ctx, op, s.Region)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	if !ok {
		return ledger.UsageResult{}, fail(op, ledger.ErrNotFound, "stack %s names region %s, which does not exist", stack, s.Region)
	}
	if us == nil {
		return ledger.UsageResult{}, fail(op, ledger.ErrBadSigner, "region %s has no usage signer", s.Region)
	}
	if us.Signer != sk {
		return ledger.UsageResult{}, fail(op, ledger.ErrBadSigner, "signed by %s, the region's usage signer is %s", sk, us.Signer)
	}
	st, err := l.state(ctx, op)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	su, due, commission, err := programCharge(op, r.Rates, u, st.CommissionRateMicros)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	escrow, bump := l.prog.Escrow(s.User, r.Provider)
	update, _ := l.prog.Update(solKey(stack), s.Region, seed)
	t := txn{op: op, signers: []ledger.Signer{signer}, errs: errMap{exists: ledger.ErrReplayedSeed, short: ledger.ErrInsufficientEscrow}}
	if err := l.fundRent(ctx, &t, sk, 0, marketplace.UsageUpdateSpace); err != nil {
		return ledger.UsageResult{}, err
	}
	t.add(kindMarketplace, l.ixUpdateUsage(sk, s.Region, solKey(stack), escrow, bump, us.TokenAccount, st.CommissionToken, seed, su))
	t.check = func(ctx context.Context) error {
		as, _, err := l.getAccounts(ctx, op, update, escrow)
		if err != nil {
			return err
		}
		if as[0] != nil {
			return fail(op, ledger.ErrReplayedSeed, "seed %s was used for stack %s", seed, stack)
		}
		_, _, held, _ := tokenAmount(as[1])
		if held < due {
			return fmt.Errorf("ledger/solana: %s: %w: the escrow holds %d, the usage costs %d (%w)", op, ledger.ErrInsufficientEscrow, held, due,
				ledger.Unsupported(ledger.CapPartialCharge, "the program charges in full or not at all"))
		}
		return nil
	}
	at, err := l.write(ctx, t)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	return ledger.UsageResult{Due: ledger.U128(due), Charged: due, Commission: commission, Slot: at.slot}, nil
}
