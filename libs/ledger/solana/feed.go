package solana

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/ws"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// feed turns what the ledger sees of the chain into ledger.Changes: the
// accounts its own writes touched (read back once confirmed), the
// notifications of a program subscription and a token-account
// subscription (every account of the mint), and a full read every
// resync_interval. It keeps the last state of every account it tracks and
// the last view of every ledger account it emitted, and emits a Change
// whenever a view differs: an escrow whose balance moved, a stack whose
// Enabled flag flipped with it, a region whose usage signer appeared.
//
// A Change is stamped with the slot it was observed at, never below the
// latest slot already in the log, so the log stays in slot order; a
// change first seen by a resync is stamped with the slot the node was at
// when the resync's reads were done (the data is no newer).
type feed struct {
	l *Ledger

	mu        sync.Mutex
	raw       map[sol.PublicKey]tracked // the accounts' last seen state
	views     map[sol.PublicKey]string  // the last emitted view of each ledger account, by address
	log       []ledger.Change
	logSlot   uint64 // the latest slot in log
	compacted uint64 // changes through this slot are not (or no longer) kept

	// indexes
	escrows      map[sol.PublicKey][2]sol.PublicKey // escrow address → (developer, provider)
	providers    map[sol.PublicKey]bool
	wallets      map[sol.PublicKey]bool                   // owners of wallets (associated token accounts)
	regionsOf    map[sol.PublicKey]map[sol.PublicKey]bool // provider → its regions
	stacksIn     map[sol.PublicKey]map[sol.PublicKey]bool // region → its stacks
	signerRegion map[sol.PublicKey]sol.PublicKey          // authorized signer address → region

	mint     sol.PublicKey
	mintSeen chan struct{} // closed once the state (and so the mint) is known
	mintOnce sync.Once
}

type tracked struct {
	acct *account
	slot uint64
}

// obs is one account's state at an observation (acct nil: it is gone).
type obs struct {
	addr sol.PublicKey
	acct *account
}

func newFeed(l *Ledger) *feed {
	return &feed{
		l: l, raw: map[sol.PublicKey]tracked{}, views: map[sol.PublicKey]string{},
		escrows: map[sol.PublicKey][2]sol.PublicKey{}, providers: map[sol.PublicKey]bool{}, wallets: map[sol.PublicKey]bool{},
		regionsOf: map[sol.PublicKey]map[sol.PublicKey]bool{}, stacksIn: map[sol.PublicKey]map[sol.PublicKey]bool{},
		signerRegion: map[sol.PublicKey]sol.PublicKey{}, mintSeen: make(chan struct{}),
	}
}

// start reads every account once as the baseline: nothing before it is
// kept, so Changes after an earlier slot fail with ErrCompacted when the
// chain already holds a state.
func (f *feed) start(ctx context.Context) error {
	slot, err := f.resync(ctx, false)
	if err != nil {
		return fmt.Errorf("ledger/solana: open: %w", err)
	}
	f.mu.Lock()
	_, initialized := f.raw[f.l.statePDA]
	if initialized {
		f.compacted, f.logSlot = slot, slot
	}
	f.mu.Unlock()
	if initialized {
		f.l.slots.advance(slot)
	}
	return nil
}

// trackedKinds are the program accounts the feed keeps.
var trackedKinds = map[string]bool{
	marketplace.AccountMuState: true, marketplace.AccountProvider: true, marketplace.AccountProviderRegion: true,
	marketplace.AccountAuthorizedUsageSigner: true, marketplace.AccountStack: true,
}

// resync reads every tracked account and observes them, and the absence
// of those it no longer finds; it returns the slot the node was at after
// the reads.
func (f *feed) resync(ctx context.Context, emit bool) (uint64, error) {
	const op = "resync"
	slotNow := func() (slot uint64, err error) {
		err = f.l.send.call(ctx, op+": get slot", func(ctx context.Context) (err error) {
			slot, err = f.l.rpc.GetSlot(ctx, f.l.commitment)
			return err
		})
		if err != nil {
			return 0, readErr(op, err)
		}
		return slot, nil
	}
	// The reads see the chain at some slot between lo and hi: lo guards
	// against taking older data for newer, hi stamps what they find.
	lo, err := slotNow()
	if err != nil {
		return 0, err
	}
	var found []obs
	for _, d := range []marketplace.Discriminator{marketplace.MuStateDiscriminator, marketplace.ProviderDiscriminator,
		marketplace.ProviderRegionDiscriminator, marketplace.AuthorizedUsageSignerDiscriminator, marketplace.StackDiscriminator} {
		as, err := f.l.ofKind(ctx, op, d)
		if err != nil {
			return 0, err
		}
		for i := range as {
			found = append(found, obs{as[i].addr, &as[i]})
		}
	}
	// The state first: it names the mint whose accounts are read next.
	sort.SliceStable(found, func(i, j int) bool { return found[i].addr == f.l.statePDA && found[j].addr != f.l.statePDA })
	var mint sol.PublicKey
	for _, o := range found {
		if o.addr == f.l.statePDA {
			if st, err := marketplace.DecodeMuState(o.acct.data); err == nil {
				mint = st.Mint
			}
		}
	}
	if !mint.IsZero() {
		as, err := f.l.mintAccounts(ctx, op, mint)
		if err != nil {
			return 0, err
		}
		for i := range as {
			found = append(found, obs{as[i].addr, &as[i]})
		}
	}
	seen := map[sol.PublicKey]bool{}
	for _, o := range found {
		seen[o.addr] = true
	}
	f.mu.Lock()
	for addr := range f.raw {
		if !seen[addr] {
			found = append(found, obs{addr: addr})
		}
	}
	f.mu.Unlock()
	hi, err := slotNow()
	if err != nil {
		return 0, err
	}
	f.observe(found, lo, hi, emit)
	return hi, nil
}

// observe applies observations of the chain at a slot between slot and
// hi and emits (when emit) the changes of the ledger accounts they touch,
// stamped hi (or the log's latest slot, if later).
func (f *feed) observe(batch []obs, slot, hi uint64, emit bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var affected []sol.PublicKey
	mark := func(a sol.PublicKey) { affected = append(affected, a) }
	// The state first: it names the mint, which says which token accounts
	// are kept.
	for _, o := range batch {
		if o.addr == f.l.statePDA && o.acct != nil && f.keeps(o.acct) {
			f.index(o.addr, o.acct, func(sol.PublicKey) {})
		}
	}
	for _, o := range batch {
		if t, ok := f.raw[o.addr]; ok && t.slot > slot {
			continue // a later observation already holds newer data
		}
		if o.acct != nil && !f.keeps(o.acct) {
			continue
		}
		old := f.raw[o.addr].acct
		if o.acct == nil {
			if old == nil {
				continue
			}
			delete(f.raw, o.addr)
		} else {
			f.raw[o.addr] = tracked{acct: o.acct, slot: slot}
		}
		cur := o.acct
		if cur == nil {
			cur = old
		}
		f.index(o.addr, cur, mark)
	}
	stamp := max(slot, hi, f.logSlot)
	if read := f.l.slots.lastRead(); emit && stamp <= read && f.emitsLocked(affected) {
		// A late observation (a notification of an earlier slot arriving
		// after a reader was given a later one) that changes what readers
		// see: stamped after what they have taken as seen, or they would
		// never read it. The feed's slots then run ahead of the chain's by
		// the late observations.
		stamp = read + 1
	}
	seen := map[sol.PublicKey]bool{}
	for _, a := range affected {
		if seen[a] {
			continue
		}
		seen[a] = true
		c, view, ok := f.view(a)
		if !ok {
			delete(f.views, a)
			continue
		}
		if f.views[a] == view {
			continue
		}
		f.views[a] = view
		if emit {
			c.Slot = stamp
			f.log = append(f.log, c)
			f.logSlot = stamp
		}
	}
	if emit {
		f.compact()
	}
	if emit && slot > 0 {
		if _, ok := f.raw[f.l.statePDA]; ok {
			f.l.slots.advance(stamp)
		}
	}
}

// emitsLocked says whether observe would emit a change for any of
// affected: a ledger account whose view differs from the last emitted.
func (f *feed) emitsLocked(affected []sol.PublicKey) bool {
	for _, a := range affected {
		_, view, ok := f.view(a)
		if ok && f.views[a] != view {
			return true
		}
	}
	return false
}

// keeps says a is an account the feed tracks: a program account of a
// tracked kind, or a token account of the mint.
func (f *feed) keeps(a *account) bool {
	if a.owner == f.l.prog.ID {
		return trackedKinds[marketplace.KindOf(a.data)]
	}
	mint, _, _, ok := tokenAmount(a)
	return ok && !f.mint.IsZero() && mint == f.mint
}

// index updates the indexes for account addr (in state a, or its last
// state when gone) and marks the ledger accounts whose view it affects.
func (f *feed) index(addr sol.PublicKey, a *account, mark func(sol.PublicKey)) {
	l := f.l
	if a.owner == l.prog.ID {
		switch marketplace.KindOf(a.data) {
		case marketplace.AccountMuState:
			if st, err := marketplace.DecodeMuState(a.data); err == nil && f.mint.IsZero() {
				f.mint = st.Mint
				m := st.Mint
				l.mint.Store(&m)
				f.mintOnce.Do(func() { close(f.mintSeen) })
			}
			mark(addr)
		case marketplace.AccountProvider:
			if !f.providers[addr] {
				f.providers[addr] = true
				for owner := range f.wallets {
					f.addEscrow(owner, addr, mark)
				}
			}
			mark(addr)
		case marketplace.AccountProviderRegion:
			if r, err := marketplace.DecodeProviderRegion(a.data); err == nil {
				set(f.regionsOf, r.Provider, addr)
			}
			f.signerRegion[l.signerPDA(addr)] = addr
			mark(addr)
			for s := range f.stacksIn[addr] {
				mark(s)
			}
		case marketplace.AccountAuthorizedUsageSigner:
			if r, ok := f.signerRegion[addr]; ok {
				mark(r)
			}
		case marketplace.AccountStack:
			if s, err := marketplace.DecodeStack(a.data); err == nil {
				set(f.stacksIn, s.Region, addr)
				if rt, ok := f.raw[s.Region]; ok {
					if r, ok := decodeRegion(rt.acct, l.prog.ID); ok {
						if _, known := f.escrows[l.escrowPDA(s.User, r.Provider)]; !known {
							f.addEscrow(s.User, r.Provider, mark)
						}
					}
				}
			}
			mark(addr)
		}
		return
	}
	_, owner, _, ok := tokenAmount(a)
	if !ok {
		return
	}
	if owner != l.statePDA && l.ata(owner, f.mint) == addr && !f.wallets[owner] {
		f.wallets[owner] = true
		for p := range f.providers {
			f.addEscrow(owner, p, mark)
		}
	}
	if pair, ok := f.escrows[addr]; ok {
		f.markEscrow(addr, pair, mark)
	}
}

func set(m map[sol.PublicKey]map[sol.PublicKey]bool, k, v sol.PublicKey) {
	if m[k] == nil {
		m[k] = map[sol.PublicKey]bool{}
	}
	m[k][v] = true
}

// addEscrow learns the escrow address of (developer, provider).
func (f *feed) addEscrow(developer, provider sol.PublicKey, mark func(sol.PublicKey)) {
	a := f.l.escrowPDA(developer, provider)
	pair := [2]sol.PublicKey{developer, provider}
	f.escrows[a] = pair
	if _, ok := f.raw[a]; ok {
		f.markEscrow(a, pair, mark)
	}
}

// markEscrow marks an escrow and the stacks whose Enabled flag it decides.
func (f *feed) markEscrow(addr sol.PublicKey, pair [2]sol.PublicKey, mark func(sol.PublicKey)) {
	mark(addr)
	for region := range f.regionsOf[pair[1]] {
		for s := range f.stacksIn[region] {
			if t, ok := f.raw[s]; ok {
				if st, err := marketplace.DecodeStack(t.acct.data); err == nil && st.User == pair[0] {
					mark(s)
				}
			}
		}
	}
}

// view is the ledger account at addr as a Change (without slot) and its
// rendering; ok is false if addr holds none.
func (f *feed) view(addr sol.PublicKey) (ledger.Change, string, bool) {
	l := f.l
	t, ok := f.raw[addr]
	if !ok {
		return ledger.Change{}, "", false
	}
	a := t.acct
	if a.owner != l.prog.ID {
		pair, ok := f.escrows[addr]
		_, owner, amount, tok := tokenAmount(a)
		if !ok || !tok || owner != l.statePDA {
			return ledger.Change{}, "", false
		}
		e := ledger.Escrow{Developer: ledgerKey(pair[0]), Provider: ledgerKey(pair[1]), Balance: amount}
		return ledger.Change{Escrow: &e}, fmt.Sprintf("escrow %+v", e), true
	}
	switch marketplace.KindOf(a.data) {
	case marketplace.AccountMuState:
		st, err := marketplace.DecodeMuState(a.data)
		if err != nil {
			return ledger.Change{}, "", false
		}
		s := publicState(st)
		return ledger.Change{State: &s}, fmt.Sprintf("state %+v", s), true
	case marketplace.AccountProvider:
		p, ok := decodeProvider(a, l.prog.ID)
		if !ok {
			return ledger.Change{}, "", false
		}
		return ledger.Change{Provider: &p}, fmt.Sprintf("provider %+v", p), true
	case marketplace.AccountProviderRegion:
		r, ok := decodeRegion(a, l.prog.ID)
		if !ok {
			return ledger.Change{}, "", false
		}
		var sp *marketplace.AuthorizedUsageSigner
		if st, ok := f.raw[l.signerPDA(addr)]; ok {
			if s, ok := decodeSigner(st.acct, l.prog.ID); ok {
				sp = &s
			}
		}
		g := publicRegion(addr, r, sp)
		return ledger.Change{Region: &g}, fmt.Sprintf("region %+v", g), true
	case marketplace.AccountStack:
		s, ok := decodeStack(a, l.prog.ID)
		if !ok {
			return ledger.Change{}, "", false
		}
		enabled := false
		if rt, ok := f.raw[s.Region]; ok {
			if r, ok := decodeRegion(rt.acct, l.prog.ID); ok {
				if et, ok := f.raw[l.escrowPDA(s.User, r.Provider)]; ok {
					_, owner, amount, tok := tokenAmount(et.acct)
					enabled = tok && owner == l.statePDA && amount >= r.MinEscrowBalance
				}
			}
		}
		v := publicStack(addr, s, enabled)
		return ledger.Change{Stack: &v}, fmt.Sprintf("stack %+v", v), true
	}
	return ledger.Change{}, "", false
}

// compact drops the changes of slots more than change_retention behind
// the latest.
func (f *feed) compact() {
	keep := uint64(f.l.cfg.ChangeRetention)
	if f.logSlot <= keep {
		return
	}
	floor := f.logSlot - keep // slots <= floor are dropped
	i := sort.Search(len(f.log), func(i int) bool { return f.log[i].Slot > floor })
	if i == 0 {
		return
	}
	f.log = append([]ledger.Change(nil), f.log[i:]...)
	f.compacted = max(f.compacted, floor)
}

// Changes returns the changes of the slots after after, in slot order,
// whole slots only: a page ends before the slot that would take it past
// limit (capped at max_changes_page), except that the first slot is always
// returned whole. ErrCompacted for slots the ledger does not hold (older
// than change_retention, or before it was opened on a chain that already
// had a state); ErrInvalidArgument for limit < 1.
func (l *Ledger) Changes(ctx context.Context, after uint64, limit int) ([]ledger.Change, error) {
	const op = "changes"
	if limit < 1 {
		return nil, fail(op, ledger.ErrInvalidArgument, "limit is %d, want at least 1", limit)
	}
	if err := l.usable(op); err != nil {
		return nil, err
	}
	limit = min(limit, l.cfg.MaxChangesPage)
	f := l.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if after < f.compacted {
		return nil, fail(op, ledger.ErrCompacted, "changes through slot %d are not kept, asked for those after %d; read the accounts again", f.compacted, after)
	}
	// The reader takes the changes through after, and through the last
	// slot returned, as seen.
	l.slots.readThrough(after)
	i := sort.Search(len(f.log), func(i int) bool { return f.log[i].Slot > after })
	out := []ledger.Change{}
	for i < len(f.log) {
		j := i
		for j < len(f.log) && f.log[j].Slot == f.log[i].Slot {
			j++
		}
		if len(out) > 0 && len(out)+(j-i) > limit {
			break
		}
		for _, c := range f.log[i:j] {
			out = append(out, cloneChange(c))
		}
		i = j
		if len(out) >= limit {
			break
		}
	}
	if len(out) > 0 {
		l.slots.readThrough(out[len(out)-1].Slot)
	}
	return out, nil
}

func cloneChange(c ledger.Change) ledger.Change {
	switch {
	case c.State != nil:
		v := *c.State
		c.State = &v
	case c.Provider != nil:
		v := *c.Provider
		c.Provider = &v
	case c.Region != nil:
		v := *c.Region
		c.Region = &v
	case c.Escrow != nil:
		v := *c.Escrow
		c.Escrow = &v
	case c.Stack != nil:
		v := *c.Stack
		v.Manifest = append([]byte(nil), v.Manifest...)
		c.Stack = &v
	}
	return c
}

// observeWrite reads back the accounts a confirmed write touched and
// observes them, so the write's changes are in the log when it returns.
// A failed read leaves them to the subscriptions and the next resync.
func (l *Ledger) observeWrite(ctx context.Context, op string, t txn, at landed) {
	// The slot moves only once the write's changes are in the log: a
	// reader woken by it (the chain indexer: Slot, then Changes) that
	// found none would take the slot as seen and never read them.
	defer l.slots.advance(at.slot)
	seen := map[sol.PublicKey]bool{solKey(l.payer.Pubkey()): true}
	var addrs []sol.PublicKey
	for _, in := range t.instrs {
		accts := in.Accounts()
		for _, m := range accts {
			if m.IsWritable && !seen[m.PublicKey] {
				seen[m.PublicKey] = true
				addrs = append(addrs, m.PublicKey)
			}
		}
	}
	as, slot, err := l.getAccounts(ctx, op+": read back", addrs...)
	if err != nil {
		l.log.Warn("reading back a write's accounts failed; the feed will deliver them", "op", op, "signature", at.sig.String(), "err", err)
		return
	}
	batch := make([]obs, len(addrs))
	for i, a := range addrs {
		batch[i] = obs{addr: a, acct: as[i]}
	}
	l.feed.observe(batch, max(slot, at.slot), max(slot, at.slot), true)
}

// run keeps the subscriptions up until ctx ends, reconnecting with
// backoff; every (re)connection resyncs, so nothing missed while down is
// lost. Apart from them it resyncs every resync_interval, so a feed whose
// websocket is down still catches up.
func (f *feed) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(f.l.cfg.ResyncInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if _, err := f.resync(ctx, true); err != nil && ctx.Err() == nil {
					f.l.log.Warn("change feed resync failed", "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	failures := 0
	for ctx.Err() == nil {
		err := f.session(ctx, func() { failures = 0 })
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := f.l.cfg.RetryInitial
		for i := 1; i < failures && wait < f.l.cfg.RetryMax; i++ {
			wait *= 2
		}
		wait = min(wait, f.l.cfg.RetryMax)
		f.l.log.Warn("change feed interrupted; reconnecting", "ws_url", f.l.cfg.wsURL(), "err", err, "retry_in", wait)
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

type note struct {
	addr sol.PublicKey
	acct *account
	slot uint64
}

// session is one websocket connection: the program subscription, the
// token subscription once the mint is known, and a resync after
// subscribing. It returns when the connection fails or ctx
// ends; up is called once it is subscribed and resynced.
func (f *feed) session(ctx context.Context, up func()) error {
	l := f.l
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := ws.Connect(ctx, l.cfg.wsURL())
	if err != nil {
		return fmt.Errorf("connect %s: %w", l.cfg.wsURL(), err)
	}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		c.Close()
		wg.Wait()
	}()
	notes := make(chan note, 1024)
	errs := make(chan error, 2)
	pump := func(recv func(context.Context) (note, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := recv(ctx)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				select {
				case notes <- n:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	keyed := func(r *ws.ProgramResult) note {
		n := note{addr: r.Value.Pubkey, slot: r.Context.Slot}
		if a := r.Value.Account; a != nil && a.Lamports > 0 {
			n.acct = &account{addr: r.Value.Pubkey, owner: a.Owner, data: a.Data.GetBinary()}
		}
		return n
	}
	psub, err := c.ProgramSubscribeWithOpts(l.prog.ID, l.commitment, sol.EncodingBase64, nil)
	if err != nil {
		return fmt.Errorf("programSubscribe %s: %w", l.prog.ID, err)
	}
	pump(func(ctx context.Context) (note, error) {
		r, err := psub.Recv(ctx)
		if err != nil {
			return note{}, err
		}
		return keyed(r), nil
	})
	tokens := false
	subscribeTokens := func() error {
		f.mu.Lock()
		mint := f.mint
		f.mu.Unlock()
		tsub, err := c.ProgramSubscribeWithOpts(sol.TokenProgramID, l.commitment, sol.EncodingBase64, []rpc.RPCFilter{
			{DataSize: tokenAccountSize},
			{Memcmp: &rpc.RPCFilterMemcmp{Offset: tokMintOffset, Bytes: sol.Base58(mint[:])}},
		})
		if err != nil {
			return fmt.Errorf("programSubscribe token accounts of %s: %w", mint, err)
		}
		tokens = true
		pump(func(ctx context.Context) (note, error) {
			r, err := tsub.Recv(ctx)
			if err != nil {
				return note{}, err
			}
			return keyed(r), nil
		})
		return nil
	}
	mintSeen := f.mintSeen
	select {
	case <-mintSeen:
		if err := subscribeTokens(); err != nil {
			return err
		}
		mintSeen = nil
	default:
	}
	if _, err := f.resync(ctx, true); err != nil {
		return err
	}
	up()
	for {
		select {
		case n := <-notes:
			f.observe([]obs{{addr: n.addr, acct: n.acct}}, n.slot, n.slot, true)
		case <-mintSeen:
			mintSeen = nil
			if !tokens {
				if err := subscribeTokens(); err != nil {
					return err
				}
				// Token accounts made before the subscription: read them.
				if _, err := f.resync(ctx, true); err != nil {
					return err
				}
			}
		case err := <-errs:
			return fmt.Errorf("subscription: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
}
