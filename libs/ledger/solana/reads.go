package solana

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// account is one account as read from the node.
type account struct {
	addr  sol.PublicKey
	owner sol.PublicKey
	data  []byte
}

// SPL token layouts (the program's token accounts and the mint).
const (
	tokenAccountSize = 165
	tokMintOffset    = 0
	tokOwnerOffset   = 32
	tokAmountOffset  = 64
	mintSize         = 82
	mintSupplyOffset = 36
)

// tokenAmount is a token account's mint, owner and balance; ok is false
// for data that is not a token account.
func tokenAmount(a *account) (mint, owner sol.PublicKey, amount uint64, ok bool) {
	if a == nil || a.owner != sol.TokenProgramID || len(a.data) != tokenAccountSize {
		return mint, owner, 0, false
	}
	copy(mint[:], a.data[tokMintOffset:])
	copy(owner[:], a.data[tokOwnerOffset:])
	return mint, owner, binary.LittleEndian.Uint64(a.data[tokAmountOffset:]), true
}

func (l *Ledger) readOpts() *rpc.GetAccountInfoOpts {
	return &rpc.GetAccountInfoOpts{Encoding: sol.EncodingBase64, Commitment: l.commitment}
}

// getAccounts reads addrs at once (nil for each missing one) and the slot
// of the read.
func (l *Ledger) getAccounts(ctx context.Context, op string, addrs ...sol.PublicKey) ([]*account, uint64, error) {
	if err := l.usable(op); err != nil {
		return nil, 0, err
	}
	out := make([]*account, len(addrs))
	var slot uint64
	for start := 0; start < len(addrs); start += 100 { // the node's limit per call
		end := min(start+100, len(addrs))
		var res *rpc.GetMultipleAccountsResult
		err := l.send.call(ctx, op+": get accounts", func(ctx context.Context) (err error) {
			o := rpc.GetMultipleAccountsOpts(*l.readOpts())
			res, err = l.rpc.GetMultipleAccountsWithOpts(ctx, addrs[start:end], &o)
			return err
		})
		if err != nil {
			return nil, 0, readErr(op, err)
		}
		slot = max(slot, res.Context.Slot)
		for i, a := range res.Value {
			if a != nil && a.Lamports > 0 && i < end-start {
				out[start+i] = &account{addr: addrs[start+i], owner: a.Owner, data: a.Data.GetBinary()}
			}
		}
	}
	return out, slot, nil
}

func (l *Ledger) getAccount(ctx context.Context, op string, addr sol.PublicKey) (*account, error) {
	as, _, err := l.getAccounts(ctx, op, addr)
	if err != nil {
		return nil, err
	}
	return as[0], nil
}

// programAccounts lists the accounts of program matching filters.
func (l *Ledger) programAccounts(ctx context.Context, op string, program sol.PublicKey, filters ...rpc.RPCFilter) ([]account, error) {
	if err := l.usable(op); err != nil {
		return nil, err
	}
	var res rpc.GetProgramAccountsResult
	err := l.send.call(ctx, op+": get program accounts", func(ctx context.Context) (err error) {
		res, err = l.rpc.GetProgramAccountsWithOpts(ctx, program, &rpc.GetProgramAccountsOpts{
			Commitment: l.commitment, Encoding: sol.EncodingBase64, Filters: filters})
		return err
	})
	if err != nil {
		return nil, readErr(op, err)
	}
	out := make([]account, 0, len(res))
	for _, ka := range res {
		if ka == nil || ka.Account == nil {
			continue
		}
		out = append(out, account{addr: ka.Pubkey, owner: ka.Account.Owner, data: ka.Account.Data.GetBinary()})
	}
	slices.SortFunc(out, func(a, b account) int { return bytes.Compare(a.addr[:], b.addr[:]) })
	return out, nil
}

// ofKind lists the program's accounts whose discriminator is disc.
func (l *Ledger) ofKind(ctx context.Context, op string, disc marketplace.Discriminator) ([]account, error) {
	return l.programAccounts(ctx, op, l.prog.ID, rpc.RPCFilter{Memcmp: &rpc.RPCFilterMemcmp{
		Offset: marketplace.DiscriminatorOffset, Bytes: sol.Base58(disc[:])}})
}

// mintAccounts lists every token account of the mint.
func (l *Ledger) mintAccounts(ctx context.Context, op string, mint sol.PublicKey) ([]account, error) {
	return l.programAccounts(ctx, op, sol.TokenProgramID,
		rpc.RPCFilter{DataSize: tokenAccountSize},
		rpc.RPCFilter{Memcmp: &rpc.RPCFilterMemcmp{Offset: tokMintOffset, Bytes: sol.Base58(mint[:])}})
}

// readErr words a read's error: context and ledger errors as they are,
// anything else (a node's refusal) as ErrUnavailable.
func readErr(op string, err error) error {
	if errors.Is(err, ledger.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return unavailable(op, err)
}

// state reads the state account (ErrNotInitialized when absent) and
// remembers the mint.
func (l *Ledger) state(ctx context.Context, op string) (marketplace.MuState, error) {
	a, err := l.getAccount(ctx, op, l.statePDA)
	if err != nil {
		return marketplace.MuState{}, err
	}
	if a == nil || a.owner != l.prog.ID {
		return marketplace.MuState{}, fail(op, ledger.ErrNotInitialized, "no state account at %s; run Initialize first", l.statePDA)
	}
	st, err := marketplace.DecodeMuState(a.data)
	if err != nil {
		return st, unavailable(op, err)
	}
	m := st.Mint
	l.mint.Store(&m)
	return st, nil
}

func publicState(st marketplace.MuState) ledger.State {
	return ledger.State{
		Authority:         ledgerKey(st.Authority),
		ProviderDeposit:   st.ProviderDeposit,
		CommissionMicros:  st.CommissionRateMicros,
		DepositVault:      ledgerKey(st.DepositToken),
		CommissionAccount: ledgerKey(st.CommissionToken),
	}
}

// State returns the state account (ErrNotInitialized before Initialize).
func (l *Ledger) State(ctx context.Context) (ledger.State, error) {
	st, err := l.state(ctx, "state")
	if err != nil {
		return ledger.State{}, err
	}
	return publicState(st), nil
}

// mintOf is the mint, read from the state the first time.
func (l *Ledger) mintOf(ctx context.Context, op string) (sol.PublicKey, error) {
	if m := l.mint.Load(); m != nil {
		return *m, nil
	}
	st, err := l.state(ctx, op)
	return st.Mint, err
}

// Balance returns the tokens in account's wallet (its associated token
// account; 0 when it has none, or before Initialize).
func (l *Ledger) Balance(ctx context.Context, account ledger.Pubkey) (uint64, error) {
	const op = "balance"
	mint, err := l.mintOf(ctx, op)
	if errors.Is(err, ledger.ErrNotInitialized) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	a, err := l.getAccount(ctx, op, l.ata(solKey(account), mint))
	if err != nil {
		return 0, err
	}
	_, _, amount, _ := tokenAmount(a)
	return amount, nil
}

// decodeProvider reads a provider account (ok false if a is not one).
func decodeProvider(a *account, program sol.PublicKey) (ledger.Provider, bool) {
	if a == nil || a.owner != program || marketplace.KindOf(a.data) != marketplace.AccountProvider {
		return ledger.Provider{}, false
	}
	p, err := marketplace.DecodeProvider(a.data)
	if err != nil {
		return ledger.Provider{}, false
	}
	return ledger.Provider{ID: ledgerKey(a.addr), Owner: ledgerKey(p.Owner), Name: p.Name, Deposit: p.Deposit, Authorized: p.Authorized}, true
}

// Provider returns one provider (ErrNotFound).
func (l *Ledger) Provider(ctx context.Context, id ledger.Pubkey) (ledger.Provider, error) {
	const op = "provider"
	a, err := l.getAccount(ctx, op, solKey(id))
	if err != nil {
		return ledger.Provider{}, err
	}
	p, ok := decodeProvider(a, l.prog.ID)
	if !ok {
		return p, fail(op, ledger.ErrNotFound, "no provider %s", id)
	}
	return p, nil
}

// Providers returns every provider, ordered by id.
func (l *Ledger) Providers(ctx context.Context) ([]ledger.Provider, error) {
	as, err := l.ofKind(ctx, "providers", marketplace.ProviderDiscriminator)
	if err != nil {
		return nil, err
	}
	out := []ledger.Provider{}
	for i := range as {
		if p, ok := decodeProvider(&as[i], l.prog.ID); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func decodeRegion(a *account, program sol.PublicKey) (marketplace.ProviderRegion, bool) {
	if a == nil || a.owner != program || marketplace.KindOf(a.data) != marketplace.AccountProviderRegion {
		return marketplace.ProviderRegion{}, false
	}
	r, err := marketplace.DecodeProviderRegion(a.data)
	return r, err == nil
}

func decodeSigner(a *account, program sol.PublicKey) (marketplace.AuthorizedUsageSigner, bool) {
	if a == nil || a.owner != program || marketplace.KindOf(a.data) != marketplace.AccountAuthorizedUsageSigner {
		return marketplace.AuthorizedUsageSigner{}, false
	}
	s, err := marketplace.DecodeAuthorizedUsageSigner(a.data)
	return s, err == nil
}

func publicRates(r marketplace.ServiceRates) ledger.Rates {
	return ledger.Rates{
		FunctionPerTeraMBInstructions: r.FunctionMBTeraInstructions,
		DBPerMillionReads:             r.MillionDBReads,
		DBPerMillionWrites:            r.MillionDBWrites,
		DBPerGiBMonthStored:           r.DBGigabyteMonths,
		GatewayPerMillionRequests:     r.MillionGatewayRequests,
		GatewayPerGiBTraffic:          r.GigabytesGatewayTraffic,
	}
}

func programRates(r ledger.Rates) marketplace.ServiceRates {
	return marketplace.ServiceRates{
		FunctionMBTeraInstructions: r.FunctionPerTeraMBInstructions,
		DBGigabyteMonths:           r.DBPerGiBMonthStored,
		MillionDBReads:             r.DBPerMillionReads,
		MillionDBWrites:            r.DBPerMillionWrites,
		MillionGatewayRequests:     r.GatewayPerMillionRequests,
		GigabytesGatewayTraffic:    r.GatewayPerGiBTraffic,
	}
}

func publicRegion(id sol.PublicKey, r marketplace.ProviderRegion, signer *marketplace.AuthorizedUsageSigner) ledger.Region {
	g := ledger.Region{
		ID:       ledgerKey(id),
		Provider: ledgerKey(r.Provider),
		Number:   r.RegionNum,
		RegionConfig: ledger.RegionConfig{
			Name:                       r.Name,
			BaseURL:                    r.BaseURL,
			Rates:                      publicRates(r.Rates),
			MinEscrowBalance:           r.MinEscrowBalance,
			MaxGigaInstructionsPerCall: uint64(r.MaxGigaInstructionsPerCall),
		},
	}
	if signer != nil {
		g.UsageSigner = ledgerKey(signer.Signer)
	}
	return g
}

// region reads a region and its usage signer (ok false if id is none).
func (l *Ledger) region(ctx context.Context, op string, id sol.PublicKey) (marketplace.ProviderRegion, *marketplace.AuthorizedUsageSigner, bool, error) {
	as, _, err := l.getAccounts(ctx, op, id, l.signerPDA(id))
	if err != nil {
		return marketplace.ProviderRegion{}, nil, false, err
	}
	r, ok := decodeRegion(as[0], l.prog.ID)
	if !ok {
		return r, nil, false, nil
	}
	if s, ok := decodeSigner(as[1], l.prog.ID); ok {
		return r, &s, true, nil
	}
	return r, nil, true, nil
}

// Region returns one region (ErrNotFound).
func (l *Ledger) Region(ctx context.Context, id ledger.Pubkey) (ledger.Region, error) {
	const op = "region"
	r, s, ok, err := l.region(ctx, op, solKey(id))
	if err != nil {
		return ledger.Region{}, err
	}
	if !ok {
		return ledger.Region{}, fail(op, ledger.ErrNotFound, "no region %s", id)
	}
	return publicRegion(solKey(id), r, s), nil
}

// Regions returns every region, ordered by id.
func (l *Ledger) Regions(ctx context.Context) ([]ledger.Region, error) {
	const op = "regions"
	rs, err := l.ofKind(ctx, op, marketplace.ProviderRegionDiscriminator)
	if err != nil {
		return nil, err
	}
	ss, err := l.ofKind(ctx, op, marketplace.AuthorizedUsageSignerDiscriminator)
	if err != nil {
		return nil, err
	}
	signers := map[sol.PublicKey]marketplace.AuthorizedUsageSigner{}
	for i := range ss {
		if s, ok := decodeSigner(&ss[i], l.prog.ID); ok {
			signers[ss[i].addr] = s
		}
	}
	out := []ledger.Region{}
	for i := range rs {
		r, ok := decodeRegion(&rs[i], l.prog.ID)
		if !ok {
			continue
		}
		var sp *marketplace.AuthorizedUsageSigner
		if s, ok := signers[l.signerPDA(rs[i].addr)]; ok {
			sp = &s
		}
		out = append(out, publicRegion(rs[i].addr, r, sp))
	}
	return out, nil
}

// Escrow returns one escrow (ErrNotFound).
func (l *Ledger) Escrow(ctx context.Context, developer, provider ledger.Pubkey) (ledger.Escrow, error) {
	const op = "escrow"
	a, err := l.getAccount(ctx, op, l.escrowPDA(solKey(developer), solKey(provider)))
	if err != nil {
		return ledger.Escrow{}, err
	}
	_, owner, amount, ok := tokenAmount(a)
	if !ok || owner != l.statePDA {
		return ledger.Escrow{}, fail(op, ledger.ErrNotFound, "no escrow of %s with provider %s", developer, provider)
	}
	return ledger.Escrow{Developer: developer, Provider: provider, Balance: amount}, nil
}

// holdings is every token account of the mint, classified.
type holdings struct {
	supply  uint64
	wallets map[sol.PublicKey]uint64 // by owner, for associated token accounts
	other   []account                // token accounts that are not wallets
	escrow  map[sol.PublicKey]uint64 // token accounts the state owns, deposit vault included
}

func (l *Ledger) holdings(ctx context.Context, op string) (holdings, error) {
	h := holdings{wallets: map[sol.PublicKey]uint64{}, escrow: map[sol.PublicKey]uint64{}}
	mint, err := l.mintOf(ctx, op)
	if errors.Is(err, ledger.ErrNotInitialized) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	as, err := l.mintAccounts(ctx, op, mint)
	if err != nil {
		return h, err
	}
	m, err := l.getAccount(ctx, op, mint)
	if err != nil {
		return h, err
	}
	if m != nil && len(m.data) >= mintSize {
		h.supply = binary.LittleEndian.Uint64(m.data[mintSupplyOffset:])
	}
	for i := range as {
		_, owner, amount, ok := tokenAmount(&as[i])
		switch {
		case !ok:
		case owner == l.statePDA:
			h.escrow[as[i].addr] = amount
		case l.ata(owner, mint) == as[i].addr:
			h.wallets[owner] = amount
		default:
			h.other = append(h.other, as[i])
		}
	}
	return h, nil
}

// TokenAccounts returns every token account of the mint with a balance,
// and the mint's supply. Wallets are named by their owner; the deposit
// vault, the commission account and escrows by their address; a token
// account of the mint that is none of these (made outside the ledger) is
// listed as a "wallet" under its own address.
func (l *Ledger) TokenAccounts(ctx context.Context) ([]ledger.TokenAccount, uint64, error) {
	h, err := l.holdings(ctx, "token accounts")
	if err != nil {
		return nil, 0, err
	}
	out := []ledger.TokenAccount{}
	for owner, amount := range h.wallets {
		if amount > 0 {
			out = append(out, ledger.TokenAccount{Address: ledgerKey(owner), Kind: "wallet", Balance: amount})
		}
	}
	for addr, amount := range h.escrow {
		kind := "escrow"
		if addr == l.depositPDA {
			kind = "deposit_vault"
		}
		if amount > 0 {
			out = append(out, ledger.TokenAccount{Address: ledgerKey(addr), Kind: kind, Balance: amount})
		}
	}
	for i := range h.other {
		_, _, amount, _ := tokenAmount(&h.other[i])
		kind := "wallet"
		if h.other[i].addr == l.commissionPDA {
			kind = "commission"
		}
		if amount > 0 {
			out = append(out, ledger.TokenAccount{Address: ledgerKey(h.other[i].addr), Kind: kind, Balance: amount})
		}
	}
	slices.SortFunc(out, func(a, b ledger.TokenAccount) int {
		if c := bytes.Compare([]byte(a.Kind), []byte(b.Kind)); c != 0 {
			return c
		}
		return bytes.Compare(a.Address[:], b.Address[:])
	})
	return out, h.supply, nil
}

// Escrows returns every escrow, ordered by (developer, provider). An
// escrow account names neither, so each is matched against derived escrow
// addresses: first those of the stacks' (owner, provider) pairs, then,
// while some escrow is still unmatched, those of every (wallet owner,
// provider) pair. CreateEscrow makes the developer's wallet, so every
// escrow made through a Ledger is found.
func (l *Ledger) Escrows(ctx context.Context) ([]ledger.Escrow, error) {
	const op = "escrows"
	h, err := l.holdings(ctx, op)
	if err != nil {
		return nil, err
	}
	unmatched := map[sol.PublicKey]bool{}
	for addr := range h.escrow {
		if addr != l.depositPDA {
			unmatched[addr] = true
		}
	}
	out := []ledger.Escrow{}
	match := func(user, provider sol.PublicKey) {
		if a := l.escrowPDA(user, provider); unmatched[a] {
			delete(unmatched, a)
			out = append(out, ledger.Escrow{Developer: ledgerKey(user), Provider: ledgerKey(provider), Balance: h.escrow[a]})
		}
	}
	if len(unmatched) > 0 {
		ss, err := l.ofKind(ctx, op, marketplace.StackDiscriminator)
		if err != nil {
			return nil, err
		}
		rs, err := l.ofKind(ctx, op, marketplace.ProviderRegionDiscriminator)
		if err != nil {
			return nil, err
		}
		providerOf := map[sol.PublicKey]sol.PublicKey{}
		for i := range rs {
			if r, ok := decodeRegion(&rs[i], l.prog.ID); ok {
				providerOf[rs[i].addr] = r.Provider
			}
		}
		for i := range ss {
			if s, ok := decodeStack(&ss[i], l.prog.ID); ok {
				if p, ok := providerOf[s.Region]; ok {
					match(s.User, p)
				}
			}
		}
	}
	if len(unmatched) > 0 {
		ps, err := l.Providers(ctx)
		if err != nil {
			return nil, err
		}
	search:
		for owner := range h.wallets {
			for _, p := range ps {
				match(owner, solKey(p.ID))
				if len(unmatched) == 0 {
					break search
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b ledger.Escrow) int {
		if c := bytes.Compare(a.Developer[:], b.Developer[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.Provider[:], b.Provider[:])
	})
	return out, nil
}

func decodeStack(a *account, program sol.PublicKey) (marketplace.Stack, bool) {
	if a == nil || a.owner != program || marketplace.KindOf(a.data) != marketplace.AccountStack {
		return marketplace.Stack{}, false
	}
	s, err := marketplace.DecodeStack(a.data)
	return s, err == nil
}

// publicStack is s as a ledger stack; enabled says the owner's escrow
// meets the region's minimum.
func publicStack(id sol.PublicKey, s marketplace.Stack, enabled bool) ledger.Stack {
	out := ledger.Stack{ID: ledgerKey(id), Owner: ledgerKey(s.User), Region: ledgerKey(s.Region), Seed: s.Seed, State: ledger.StackDeleted}
	if s.State.Active() {
		out.State = ledger.StackActive
		out.Revision = uint64(s.State.Revision)
		out.Manifest = s.State.StackData
		out.Enabled = enabled
	}
	return out
}

// Stack returns one stack, deleted ones included (ErrNotFound). Enabled
// is computed: active, and the owner's escrow with the region's provider
// holds at least the region's minimum.
func (l *Ledger) Stack(ctx context.Context, id ledger.Pubkey) (ledger.Stack, error) {
	const op = "stack"
	a, err := l.getAccount(ctx, op, solKey(id))
	if err != nil {
		return ledger.Stack{}, err
	}
	s, ok := decodeStack(a, l.prog.ID)
	if !ok {
		return ledger.Stack{}, fail(op, ledger.ErrNotFound, "no stack %s", id)
	}
	enabled, err := l.enabled(ctx, op, s)
	if err != nil {
		return ledger.Stack{}, err
	}
	return publicStack(solKey(id), s, enabled), nil
}

// enabled reads whether s's escrow meets its region's minimum.
func (l *Ledger) enabled(ctx context.Context, op string, s marketplace.Stack) (bool, error) {
	if !s.State.Active() {
		return false, nil
	}
	ra, err := l.getAccount(ctx, op, s.Region)
	if err != nil {
		return false, err
	}
	r, ok := decodeRegion(ra, l.prog.ID)
	if !ok {
		return false, nil
	}
	ea, err := l.getAccount(ctx, op, l.escrowPDA(s.User, r.Provider))
	if err != nil {
		return false, err
	}
	_, owner, amount, ok := tokenAmount(ea)
	return ok && owner == l.statePDA && amount >= r.MinEscrowBalance, nil
}

// Stacks returns every stack, deleted ones included, ordered by id.
func (l *Ledger) Stacks(ctx context.Context) ([]ledger.Stack, error) {
	const op = "stacks"
	as, err := l.ofKind(ctx, op, marketplace.StackDiscriminator)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return []ledger.Stack{}, nil
	}
	rs, err := l.ofKind(ctx, op, marketplace.ProviderRegionDiscriminator)
	if err != nil {
		return nil, err
	}
	regions := map[sol.PublicKey]marketplace.ProviderRegion{}
	for i := range rs {
		if r, ok := decodeRegion(&rs[i], l.prog.ID); ok {
			regions[rs[i].addr] = r
		}
	}
	h, err := l.holdings(ctx, op)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Stack, 0, len(as))
	for i := range as {
		s, ok := decodeStack(&as[i], l.prog.ID)
		if !ok {
			continue
		}
		enabled := false
		if r, ok := regions[s.Region]; ok {
			amount, ok := h.escrow[l.escrowPDA(s.User, r.Provider)]
			enabled = ok && amount >= r.MinEscrowBalance
		}
		out = append(out, publicStack(as[i].addr, s, enabled))
	}
	return out, nil
}
