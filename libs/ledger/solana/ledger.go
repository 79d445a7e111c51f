// Package solana is the ledger.Ledger on the marketplace program of mu
// 2023 as deployed on Solana (package marketplace is its client). Writes
// are transactions signed by the call's ledger.Signer (as the
// instruction's authority) and by the configured fee payer, confirmed
// through signature statuses; reads go through getProgramAccounts with
// memcmp filters and getAccountInfo; the change feed comes from program
// and token-account subscriptions with a periodic full resync.
//
// Mapping: a provider's id is its provider PDA, a region's its region PDA,
// a stack's its stack PDA; a wallet of key K is K's associated token
// account for the mint, created idempotently by the write that first pays
// into it. The state's authority is the provider authorizer and the mint
// authority.
//
// The program lacks some rules of design section 7; the Ledger says which
// (Lacks) and refuses with ledger.ErrUnsupported what it cannot keep. It
// keeps these off chain before sending, and only for writes that go
// through it: the minimum escrow on CreateStack and WithdrawEscrow, the
// authority on UpdateProviderDeposit (the program checks none), an
// authorized provider on CreateEscrow, Stack.Enabled computed on read.
package solana

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/solana/marketplace"
)

// lacks is what the program cannot keep (see the capabilities' docs).
var lacks = []ledger.Capability{
	ledger.CapCarries,
	ledger.CapPartialCharge,
	ledger.CapStorage,
	ledger.CapMemoryBounds,
	ledger.CapWideInstructionCap,
	ledger.CapUpdateRegion,
	ledger.CapReplaceUsageSigner,
	ledger.CapDeletedStackData,
}

// Ledger is the marketplace ledger on a Solana node. It is safe for
// concurrent use.
type Ledger struct {
	cfg        Config
	log        *slog.Logger
	prog       marketplace.Program
	rpc        *rpc.Client
	send       *sender
	payer      *ledger.Keypair
	mintKey    *ledger.Keypair // nil: Initialize makes a fresh one
	commitment rpc.CommitmentType

	statePDA, depositPDA, commissionPDA sol.PublicKey

	mint  atomic.Pointer[sol.PublicKey] // known once the state is read
	pdas  sync.Map                      // derived addresses, by derivation
	rents sync.Map                      // rent-exempt minimums, by account size
	feed  *feed
	slots *slotHub

	closed atomic.Bool
	stop   context.CancelFunc
	done   chan struct{}
}

var (
	_ ledger.Ledger  = (*Ledger)(nil)
	_ ledger.Lacking = (*Ledger)(nil)
)

// Open connects to the node of cfg: it loads the keypair files, reads the
// program's accounts once (the feed's starting point) and starts the
// change feed. The fee payer must hold SOL for the fees and the rent of
// the accounts the writes create, which it moves to the instruction's
// authority in the same transaction.
func Open(ctx context.Context, cfg Config) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	payer, err := ledger.LoadKeypair(cfg.FeePayerKeypair)
	if err != nil {
		return nil, fmt.Errorf("ledger/solana: fee_payer_keypair: %w", err)
	}
	l := &Ledger{
		cfg:        cfg,
		log:        slog.Default().With("component", "ledger/solana"),
		prog:       marketplace.Program{ID: sol.MustPublicKeyFromBase58(cfg.ProgramID)},
		rpc:        rpc.New(cfg.RPCURL),
		payer:      payer,
		commitment: rpc.CommitmentType(cfg.Commitment),
		slots:      newSlotHub(),
		done:       make(chan struct{}),
	}
	if cfg.MintKeypair != "" {
		if l.mintKey, err = ledger.LoadKeypair(cfg.MintKeypair); err != nil {
			return nil, fmt.Errorf("ledger/solana: mint_keypair: %w", err)
		}
	}
	l.send = &sender{rpc: l.rpc, payer: payer, cfg: cfg, commitment: l.commitment}
	l.statePDA, _ = l.prog.State()
	l.depositPDA, _ = l.prog.Deposit()
	l.commissionPDA, _ = l.prog.Commission()
	l.feed = newFeed(l)
	if err := l.feed.start(ctx); err != nil {
		l.rpc.Close()
		return nil, err
	}
	fctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go func() {
		defer close(l.done)
		l.feed.run(fctx)
	}()
	return l, nil
}

// Lacks returns the capabilities the program lacks.
func (l *Ledger) Lacks() []ledger.Capability { return slices.Clone(lacks) }

// Close stops the feed; the Ledger is unusable afterwards (ErrUnavailable).
// Safe to call twice.
func (l *Ledger) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.stop()
	<-l.done
	l.slots.close()
	l.rpc.Close() // its idle connections
	return nil
}

func (l *Ledger) usable(op string) error {
	if l.closed.Load() {
		return fail(op, ledger.ErrUnavailable, "the ledger is closed")
	}
	return nil
}

// Slot returns the slot of the latest write the ledger has seen: its own
// confirmed writes and what the feed delivered (0 before the state exists).
func (l *Ledger) Slot(ctx context.Context) (uint64, error) {
	if err := l.usable("slot"); err != nil {
		return 0, err
	}
	return l.slots.got(), nil
}

// Wait blocks until the slot exceeds after, ctx ends (its error) or poll
// has passed (nil). Writes through this Ledger and the feed's
// notifications wake it at once. poll must be positive
// (ErrInvalidArgument).
func (l *Ledger) Wait(ctx context.Context, after uint64, poll time.Duration) error {
	const op = "wait"
	if poll <= 0 {
		return fail(op, ledger.ErrInvalidArgument, "poll is %v, want a positive duration", poll)
	}
	if err := l.usable(op); err != nil {
		return err
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		next := l.slots.wait()
		if l.slots.get() > after {
			return nil
		}
		select {
		case <-next:
			if l.closed.Load() {
				return fail(op, ledger.ErrUnavailable, "the ledger closed")
			}
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("ledger/solana: %s: %w", op, ctx.Err())
		}
	}
}

// slotHub is the ledger's slot and its waiters.
type slotHub struct {
	mu   sync.Mutex
	slot uint64
	next chan struct{}
	// read is the highest slot a reader was given (Slot, and the slots
	// Changes was asked after or returned): a reader may have taken every
	// change through it as seen, so no change may be stamped at or under
	// it (see feed.observe).
	read uint64
}

// got returns the slot and records that a reader was given it.
func (h *slotHub) got() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read = max(h.read, h.slot)
	return h.slot
}

// readThrough records that a reader took the changes through s as seen.
func (h *slotHub) readThrough(s uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read = max(h.read, s)
}

// lastRead is the highest slot a reader was given.
func (h *slotHub) lastRead() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.read
}

func newSlotHub() *slotHub { return &slotHub{next: make(chan struct{})} }

func (h *slotHub) get() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.slot
}

// advance raises the slot to s (never lowers it) and wakes waiters.
func (h *slotHub) advance(s uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s <= h.slot {
		return
	}
	h.slot = s
	close(h.next)
	h.next = make(chan struct{})
}

// wait returns a channel closed at the next advance.
func (h *slotHub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.next
}

func (h *slotHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.next)
	h.next = make(chan struct{})
}

// pda derives (and caches) a program address: kind names the derivation,
// parts its inputs.
func (l *Ledger) pda(kind string, derive func() sol.PublicKey, parts ...[]byte) sol.PublicKey {
	k := kind
	for _, p := range parts {
		k += "/" + string(p)
	}
	if v, ok := l.pdas.Load(k); ok {
		return v.(sol.PublicKey)
	}
	a := derive()
	l.pdas.Store(k, a)
	return a
}

func (l *Ledger) providerPDA(owner sol.PublicKey) sol.PublicKey {
	return l.pda("provider", func() sol.PublicKey { a, _ := l.prog.Provider(owner); return a }, owner[:])
}

func (l *Ledger) escrowPDA(user, provider sol.PublicKey) sol.PublicKey {
	return l.pda("escrow", func() sol.PublicKey { a, _ := l.prog.Escrow(user, provider); return a }, user[:], provider[:])
}

func (l *Ledger) signerPDA(region sol.PublicKey) sol.PublicKey {
	return l.pda("signer", func() sol.PublicKey { a, _ := l.prog.AuthorizedSigner(region); return a }, region[:])
}

func (l *Ledger) authorizerPDA(authorizer sol.PublicKey) sol.PublicKey {
	return l.pda("authorizer", func() sol.PublicKey { a, _ := l.prog.Authorizer(authorizer); return a }, authorizer[:])
}

// ata is owner's associated token account for mint (its wallet).
func (l *Ledger) ata(owner, mint sol.PublicKey) sol.PublicKey {
	return l.pda("ata", func() sol.PublicKey {
		a, _, err := sol.FindAssociatedTokenAddress(owner, mint)
		if err != nil {
			panic(fmt.Sprintf("ledger/solana: no associated token address for %s: %v", owner, err)) // probability 2^-255
		}
		return a
	}, owner[:], mint[:])
}
