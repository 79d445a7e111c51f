package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
)

// What billing keeps itself when its ledger lacks a rule (see
// ledger.Capability and RATIONALE.md, "The Solana backend"):
//   - without ledger.CapCarries the ledger truncates each unit's price in
//     every update, so a settlement sends only the whole-token part of the
//     stack's unsettled usage (ledger.WholeTokenUsage at the region's
//     rates) and keeps the rest unsettled, in the same transaction that
//     records the pending settlement;
//   - without ledger.CapStorage the ledger has no storage rates or usage:
//     storage usage is listed in the settlement but not sent (it costs
//     nothing there);
//   - without both (the Solana program) the send is cut to what the
//     escrow holds (fitBudget), the rest kept unsettled, so the escrow
//     pays what it has and falls under the minimum, as a partial charge
//     would leave it; the settlement is INSUFFICIENT_ESCROW;
//   - without ledger.CapPartialCharge an update the escrow cannot pay
//     fails with ledger.ErrInsufficientEscrow and charges nothing: its
//     usage returns to unsettled and the stack is flagged under the
//     minimum until a settlement goes through.

// lacksFetcher is a ledger client that learns from its host what the
// backend lacks (ledgerrpc.Client).
type lacksFetcher interface {
	FetchLacks(ctx context.Context) ([]ledger.Capability, error)
}

// regionReader is a ledger billing can read stacks, regions and escrows
// from (a ledger.Ledger in the same process, or the Solana backend).
type regionReader interface {
	Stack(ctx context.Context, id ledger.Pubkey) (ledger.Stack, error)
	Region(ctx context.Context, id ledger.Pubkey) (ledger.Region, error)
	Escrow(ctx context.Context, developer, provider ledger.Pubkey) (ledger.Escrow, error)
}

// ledgerLacks returns what the ledger lacks, asking its host first when
// it is a remote client (once: the client caches the answer).
func (s *Server) ledgerLacks(ctx context.Context) ([]ledger.Capability, error) {
	if f, ok := s.ledger.(lacksFetcher); ok {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.SettleTimeout)
		defer cancel()
		lacks, err := f.FetchLacks(lctx)
		if err != nil {
			return nil, fmt.Errorf("billing: asking the ledger (ledger_addr) what it lacks: %w", err)
		}
		return lacks, nil
	}
	if l, ok := s.ledger.(ledger.Lacking); ok {
		return l.Lacks(), nil
	}
	return nil, nil
}

// storageUnits are the units of storage boxes, which a ledger lacking
// ledger.CapStorage has no rates or usage fields for.
var storageUnits = []ledger.Unit{ledger.UnitStorageStoredByteSeconds, ledger.UnitStorageTrafficBytes}

// sendable is the usage of a settlement as the ledger is sent it: without
// the storage units when it lacks ledger.CapStorage (its regions price
// them at nothing, so nothing is lost; the settlement still lists them).
func sendable(a amounts, lacks []ledger.Capability) ledger.Usage {
	u := a.usage()
	if slices.Contains(lacks, ledger.CapStorage) {
		for _, unit := range storageUnits {
			u.Set(unit, ledger.Uint128{})
		}
	}
	return u
}

// stackRates returns the rates of stack's region and the balance of its
// owner's escrow with the region's provider (0 without one), the budget
// of a settlement on a ledger without partial charges. A ledger billing
// can read (one in this process, or the Solana backend billing opened)
// answers itself: its escrow balance is the one the update will meet,
// where the chain indexer's may lag. Otherwise the chain indexer answers.
func (s *Server) stackRates(ctx context.Context, stack ledger.Pubkey) (ledger.Rates, uint64, error) {
	r, ok := s.ledger.(regionReader)
	if !ok {
		m, err := s.lookup(ctx, stack)
		if err != nil {
			return ledger.Rates{}, 0, fmt.Errorf("billing: the ledger lacks %s, so a settlement needs the region's rates: %w", ledger.CapCarries, err)
		}
		return ledgerpb.ParseRates(m.region.GetRates()), m.escrow.GetBalance(), nil
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.IndexerTimeout)
	defer cancel()
	st, err := r.Stack(lctx, stack)
	if err != nil {
		return ledger.Rates{}, 0, fmt.Errorf("billing: the ledger lacks %s: reading stack %s for its region's rates: %w", ledger.CapCarries, stack, err)
	}
	reg, err := r.Region(lctx, st.Region)
	if err != nil {
		return ledger.Rates{}, 0, fmt.Errorf("billing: the ledger lacks %s: reading region %s for its rates: %w", ledger.CapCarries, st.Region, err)
	}
	es, err := r.Escrow(lctx, st.Owner, reg.Provider)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return ledger.Rates{}, 0, fmt.Errorf("billing: reading the escrow of stack %s: %w", stack, err)
	}
	return reg.Rates, es.Balance, nil
}

// splitWhole splits a stack's unsettled usage into what a ledger without
// carries can be sent and what stays unsettled.
func splitWhole(r ledger.Rates, a amounts) (send, carry amounts) {
	s, c := ledger.WholeTokenUsage(r, a.usage())
	return amountsOf(s), amountsOf(c)
}

func amountsOf(u ledger.Usage) amounts {
	var a amounts
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		a[unit] = u.Amount(unit)
	}
	return a
}

// fitBudget splits whole-token usage (send of splitWhole) into the most
// that costs at most budget tokens at r, unit by unit in unit order, and
// the rest: what a ledger without partial charges is sent when the escrow
// cannot pay for all of it, so the escrow pays what it holds (and falls
// under the minimum, which disables the stacks) instead of the update
// failing whole.
func fitBudget(r ledger.Rates, send amounts, budget uint64) (fit, rest amounts) {
	for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
		rate, q := r.Rate(unit), ledger.Quantity(unit)
		if rate == 0 {
			fit[unit] = send[unit]
			continue
		}
		step := ledger.WholeTokenStep(rate, q)
		per, over := ledger.U128(step).Mul64(rate) // a step's price × q
		perTokens, _ := per.DivMod64(q)            // exact: a step is whole tokens
		steps, _ := send[unit].DivMod64(step)
		k := ledger.U128(0)
		if t, ok := perTokens.Uint64(); !over && ok && t > 0 {
			k = ledger.U128(budget / t)
		}
		if steps.Cmp(k) < 0 {
			k = steps
		}
		f, _ := k.Mul64(step)
		fit[unit] = f
		rest[unit], _ = send[unit].Sub(f)
		if t, ok := perTokens.Uint64(); ok && k.Hi == 0 {
			budget -= k.Lo * t
		}
	}
	return fit, rest
}

// narrowUnits are the units the program keeps in 64-bit fields and prices
// in 64-bit arithmetic (rate × amount must fit 64 bits).
var narrowUnits = []ledger.Unit{ledger.UnitDBReads, ledger.UnitDBWrites, ledger.UnitGatewayRequests, ledger.UnitGatewayTrafficBytes}

// maxProgramPrice bounds one update's price on the program: price ×
// commission micros (up to 10^6) must fit its 64-bit arithmetic.
const maxProgramPrice = ^uint64(0) / 1_000_000

// fitProgram splits whole-token usage into what the program's wrapping
// 64-bit arithmetic prices exactly (each narrow unit's rate × amount
// within 64 bits, in whole steps) and the rest, which waits for the next
// update; the update's total is bounded by fitBudget with
// maxProgramPrice. Only usage far beyond any interval's reaches it.
func fitProgram(r ledger.Rates, send amounts) (fit, rest amounts) {
	fit = send
	for _, unit := range narrowUnits {
		limit := ^uint64(0)
		if rate := r.Rate(unit); rate > 0 {
			limit /= rate
		}
		step := ledger.WholeTokenStep(r.Rate(unit), ledger.Quantity(unit))
		limit -= limit % step
		if fit[unit].Cmp(ledger.U128(limit)) > 0 {
			rest[unit], _ = fit[unit].Sub(ledger.U128(limit))
			fit[unit] = ledger.U128(limit)
		}
	}
	return fit, rest
}
