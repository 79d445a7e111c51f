package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tikv/client-go/v2/txnkv/transaction"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
)

// outcome is how billing takes a ledger's answer to update_usage.
type outcome int

const (
	// outcomeApplied: the ledger applied the update now.
	outcomeApplied outcome = iota
	// outcomeReplayed: the ledger refused the seed as used: an earlier
	// attempt with this pending seed was applied (billing lost the
	// answer), so the usage is settled.
	outcomeReplayed
	// outcomeRetry: no answer for good (unavailable, transport error,
	// deadline); the settlement stays pending and is retried with the
	// same seed, since the ledger may have applied it.
	outcomeRetry
	// outcomeFailed: the ledger refused the update for good (bad signer,
	// unknown stack, overflow, invalid); the usage returns to unsettled and
	// is retried with a new seed at the next interval.
	outcomeFailed
	// outcomeShort: the escrow cannot pay the update and the ledger
	// (lacking ledger.CapPartialCharge) charged nothing: the usage returns
	// to unsettled, the stack is flagged under the minimum, and the next
	// interval tries again with a new seed (a recharge lets it through).
	outcomeShort
)

// classify sorts a ledger error. Only errors that prove the update was not
// applied fail a settlement; anything else keeps it pending, so usage is
// never charged twice.
func classify(err error) outcome {
	switch {
	case err == nil:
		return outcomeApplied
	case errors.Is(err, ledger.ErrReplayedSeed):
		return outcomeReplayed
	case errors.Is(err, ledger.ErrInsufficientEscrow):
		return outcomeShort
	case errors.Is(err, ledger.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return outcomeRetry
	case errors.Is(err, ledger.ErrBadSigner), errors.Is(err, ledger.ErrNotFound), errors.Is(err, ledger.ErrOverflow),
		errors.Is(err, ledger.ErrInvalidArgument), errors.Is(err, ledger.ErrStackDeleted), errors.Is(err, ledger.ErrUnknownRegion),
		errors.Is(err, ledger.ErrNotInitialized), errors.Is(err, ledger.ErrUnsupported):
		return outcomeFailed
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.AlreadyExists:
			return outcomeReplayed
		case codes.NotFound, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition:
			return outcomeFailed
		}
	}
	return outcomeRetry
}

// canSettle says what is missing to settle, naming the settings.
func (s *Server) canSettle() error {
	var missing []string
	if !s.hasRegion {
		missing = append(missing, "region_id is not set")
	}
	if s.signer == nil {
		missing = append(missing, "no usage signer (signer_key_file is empty)")
	}
	if s.ledger == nil {
		missing = append(missing, "no ledger (ledger_addr is empty)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("billing cannot settle: %v", missing)
	}
	return nil
}

// Settle settles the stacks asked for (every stack with unsettled usage
// when none is named) and returns the settlements attempted.
func (s *Server) Settle(ctx context.Context, req *billingv1.SettleRequest) (*billingv1.SettleResponse, error) {
	var only []ledger.Pubkey
	for i, b := range req.GetStackIds() {
		p, err := ledger.PubkeyFromBytes(fmt.Sprintf("stack_ids[%d]", i), b)
		if err != nil {
			return nil, invalid("%v", err)
		}
		only = append(only, p)
	}
	if err := s.canSettle(); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	out, err := s.settleRound(ctx, only, false)
	if err != nil {
		return nil, toStatus(ctx, "settle", err)
	}
	return &billingv1.SettleResponse{Settlements: out}, nil
}

// settleLoop resumes the pending settlements found at Start, then settles
// every SettleInterval until Close.
func (s *Server) settleLoop() {
	defer close(s.settleDone)
	ctx := s.loopCtx
	if err := s.canSettle(); err != nil {
		s.log.Warn("usage will be persisted but not settled", "err", err)
		return
	}
	if _, err := s.settleRound(ctx, nil, true); err != nil && ctx.Err() == nil {
		s.log.Warn("resuming pending settlements failed", "err", err)
	}
	t := time.NewTicker(s.cfg.SettleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.settleRound(ctx, nil, false); err != nil && ctx.Err() == nil {
				s.log.Warn("settlement round failed", "err", err)
			}
		}
	}
}

// settleRound settles the stacks of only (all with usage when empty), the
// pending settlements first; pendingOnly settles only those. One round
// runs at a time.
func (s *Server) settleRound(ctx context.Context, only []ledger.Pubkey, pendingOnly bool) ([]*billingv1.Settlement, error) {
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	stacks := only
	if len(stacks) == 0 {
		var pending, unsettled []ledger.Pubkey
		err := s.view(func(txn *transaction.KVTxn) error {
			return scan(txn, prefixStack, prefixEnd(prefixStack), false, func(k, v []byte) (bool, error) {
				rec, err := decodeStack(v)
				if err != nil {
					return false, err
				}
				var st ledger.Pubkey
				copy(st[:], k[len(prefixStack):])
				switch {
				case rec.Pending != nil:
					pending = append(pending, st)
				case !rec.Unsettled.isZero():
					unsettled = append(unsettled, st)
				}
				return true, nil
			})
		})
		if err != nil {
			return nil, err
		}
		stacks = pending
		if !pendingOnly {
			stacks = append(stacks, unsettled...)
		}
	}
	var out []*billingv1.Settlement
	for _, st := range stacks {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		set, err := s.settleStack(ctx, st)
		if err != nil {
			return out, err
		}
		if set != nil {
			out = append(out, set)
		}
	}
	s.countUnsettled()
	return out, nil
}

// countUnsettled refreshes the unsettled-stacks gauge.
func (s *Server) countUnsettled() {
	n := 0
	err := s.view(func(txn *transaction.KVTxn) error {
		return scan(txn, prefixStack, prefixEnd(prefixStack), false, func(_, v []byte) (bool, error) {
			rec, err := decodeStack(v)
			if err == nil && rec.hasUsage() {
				n++
			}
			return true, err
		})
	})
	if err == nil {
		s.metrics.unsettledStacks.Set(float64(n))
	}
}

// storeCtx bounds the store transactions of a settlement: they run to the
// end even when the caller gives up, so the ledger's answer is recorded.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.CommitTimeout)
}

// settleStack settles one stack: it moves the unsettled usage into a
// pending settlement with a fresh seed (unless one is pending already,
// which is retried with its own seed), sends it to the ledger and records
// the answer. It returns nil when the stack has nothing to settle.
//
// A ledger that lacks ledger.CapCarries is sent only the whole-token part
// of the unsettled usage (splitWhole at the region's rates); the rest stays
// unsettled, recorded in the same transaction as the pending settlement.
// When no part is whole yet, nothing is sent and nil is returned.
func (s *Server) settleStack(ctx context.Context, stack ledger.Pubkey) (*billingv1.Settlement, error) {
	lacking, err := s.ledgerLacks(ctx)
	if err != nil {
		return nil, err
	}
	lacks := slices.Contains(lacking, ledger.CapCarries)
	var rates *ledger.Rates
	var budget *uint64 // what the escrow holds, for a ledger without partial charges
	if lacks && s.hasUnsettled(stack) {
		r, balance, err := s.stackRates(ctx, stack)
		if err != nil {
			return nil, err
		}
		if slices.Contains(lacking, ledger.CapPartialCharge) {
			budget = &balance
		}
		if slices.Contains(lacking, ledger.CapStorage) {
			for _, u := range storageUnits {
				r.Set(u, 0) // not charged there: sent as nothing, never carried
			}
		}
		rates = &r
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	var p pendingRec
	var region ledger.Pubkey
	found, starved := false, false
	err = s.update(sctx, func(txn *transaction.KVTxn) error {
		found, starved = false, false
		b, err := get(sctx, txn, stackKey(stack))
		if err != nil || b == nil {
			return err
		}
		rec, err := decodeStack(b)
		if err != nil || !rec.hasUsage() {
			return err
		}
		if rec.Pending == nil {
			send, carry := rec.Unsettled, amounts{}
			switch {
			case rates != nil:
				send, carry = splitWhole(*rates, rec.Unsettled)
			case lacks:
				return nil // its pending settlement was answered meanwhile: the next round splits
			}
			short := false
			if budget != nil && !send.isZero() {
				fit, over := fitProgram(*rates, send)
				fit, rest := fitBudget(*rates, fit, min(*budget, maxProgramPrice))
				// Short when the escrow, not the program's arithmetic, cut it.
				short = !rest.isZero() && *budget < maxProgramPrice
				if err := errors.Join(carry.add(over), carry.add(rest)); err != nil {
					return err
				}
				send = fit
				starved = short && send.isZero()
			}
			if send.isZero() {
				return nil // all below one whole token of its unit, or the escrow is empty: wait
			}
			seed := max(rec.LastSeed+1, uint64(s.now().UnixNano()))
			rec.Pending = &pendingRec{Seed: seed, Usage: send, Oldest: rec.Oldest, Created: s.now().UnixNano(), Short: short}
			rec.Unsettled, rec.LastSeed = carry, seed
			if carry.isZero() {
				rec.Oldest = 0 // the carry keeps the oldest record's time
			}
			if err := txn.Set(stackKey(stack), rec.encode()); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
		}
		found, region = true, rec.Region
		p = *rec.Pending
		return nil
	})
	if starved {
		s.setUnder(stack, true, 0, 0)
	}
	if err != nil || !found {
		return nil, err
	}

	lctx, lcancel := context.WithTimeout(ctx, s.cfg.SettleTimeout)
	res, lerr := s.ledger.UpdateUsage(lctx, s.signer, stack, ledger.U128(p.Seed), sendable(p.Usage, lacking))
	lcancel()
	out := classify(lerr)

	set := &billingv1.Settlement{
		StackId: stack.Bytes(), RegionId: region.Bytes(), Seed: p.Seed,
		Usage: totals(p.Usage, nil), Time: timestamppb.New(s.now()),
	}
	var m *market
	switch out {
	case outcomeApplied:
		set.Charged = res.Charged
		set.LedgerReference = strconv.FormatUint(res.Slot, 10)
		set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED
		if !res.Shortfall.IsZero() || p.Short {
			set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW
		}
	case outcomeReplayed:
		// The ledger holds this seed's update from an earlier attempt whose
		// answer was lost; what it charged then is the ledger's record.
		set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED
		set.LedgerReference = "replayed seed: applied by an earlier attempt"
		s.log.Info("pending settlement was already applied", "stack", stack, "seed", p.Seed, "attempts", p.Attempts+1)
	case outcomeFailed:
		set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_FAILED
		set.Error = lerr.Error()
		s.log.Warn("settlement refused by the ledger; usage returns to unsettled", "stack", stack, "seed", p.Seed, "err", lerr)
	case outcomeShort:
		set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW
		set.Error = "the escrow cannot pay this update and the ledger charges nothing then; the usage returns to unsettled: " + lerr.Error()
		s.log.Warn("escrow cannot pay the settlement; usage returns to unsettled", "stack", stack, "seed", p.Seed, "err", lerr)
	case outcomeRetry:
		set.Status = billingv1.SettlementStatus_SETTLEMENT_STATUS_UNSPECIFIED
		set.Error = "pending, retried with the same seed: " + lerr.Error()
		s.log.Warn("settlement unanswered; stays pending", "stack", stack, "seed", p.Seed, "err", lerr)
	}
	if out == outcomeApplied || out == outcomeReplayed || out == outcomeShort {
		var ierr error
		if m, ierr = s.lookup(ctx, stack); ierr != nil && !errors.Is(ierr, errNoIndexer) {
			s.log.Warn("escrow check after settlement failed", "stack", stack, "err", ierr)
		}
	}

	sctx2, cancel2 := s.storeCtx()
	defer cancel2()
	gone := false // another node (same cluster) recorded this seed's answer first
	err = s.update(sctx2, func(txn *transaction.KVTxn) error {
		gone = false
		b, err := get(sctx2, txn, stackKey(stack))
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("billing: stack record of %s vanished during its settlement", stack)
		}
		rec, err := decodeStack(b)
		if err != nil {
			return err
		}
		if rec.Pending == nil || rec.Pending.Seed != p.Seed {
			gone = true
			return nil
		}
		switch out {
		case outcomeRetry:
			rec.Pending.Attempts++
			rec.Pending.LastErr = lerr.Error()
		case outcomeFailed, outcomeShort:
			if err := rec.Unsettled.add(p.Usage); err != nil {
				return err
			}
			if rec.Oldest == 0 || (p.Oldest != 0 && p.Oldest < rec.Oldest) {
				rec.Oldest = p.Oldest
			}
			rec.Pending = nil
		default:
			rec.Pending = nil
		}
		if err := txn.Set(stackKey(stack), rec.encode()); err != nil {
			return fmt.Errorf("%w: %w", errStore, err)
		}
		if out == outcomeRetry {
			return nil
		}
		b, err = proto.Marshal(set)
		if err != nil {
			return err
		}
		if err := txn.Set(settlementKey(stack, p.Seed), b); err != nil {
			return fmt.Errorf("%w: %w", errStore, err)
		}
		if m != nil && set.Charged > 0 {
			k := burnKey(m.owner(), m.provider(), uint64(set.Time.AsTime().UnixNano()), stack, p.Seed)
			if err := txn.Set(k, be64(set.Charged)); err != nil {
				return fmt.Errorf("%w: %w", errStore, err)
			}
		}
		return nil
	})
	if err != nil {
		// The ledger answered but billing could not record it: the
		// settlement stays pending and its retry is recognised by the seed.
		return nil, err
	}
	if gone {
		return nil, nil
	}
	s.metrics.settlements.WithLabelValues(statusLabel(set.Status)).Inc()
	switch {
	case m != nil:
		s.checkMinimum(stack, m, set)
	case out == outcomeShort:
		s.setUnder(stack, true, 0, 0)
	}
	return set, nil
}

// hasUnsettled reports whether stack's record holds unsettled usage and
// no pending settlement (a settlement would split it); a read error says
// yes, and the settlement's own transaction reports it.
func (s *Server) hasUnsettled(stack ledger.Pubkey) bool {
	yes := true
	s.view(func(txn *transaction.KVTxn) error {
		b, err := get(context.Background(), txn, stackKey(stack))
		if err != nil || b == nil {
			yes = err != nil
			return err
		}
		rec, err := decodeStack(b)
		if err == nil {
			yes = rec.Pending == nil && !rec.Unsettled.isZero()
		}
		return err
	})
	return yes
}

func statusLabel(st billingv1.SettlementStatus) string {
	switch st {
	case billingv1.SettlementStatus_SETTLEMENT_STATUS_SETTLED:
		return "settled"
	case billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW:
		return "insufficient_escrow"
	case billingv1.SettlementStatus_SETTLEMENT_STATUS_FAILED:
		return "failed"
	}
	return "pending"
}

// checkMinimum records whether the stack's owner's escrow (as the indexer
// reported it after the settlement) is under the region's minimum.
func (s *Server) checkMinimum(stack ledger.Pubkey, m *market, set *billingv1.Settlement) {
	under := m.escrow == nil || m.escrow.GetBalance() < m.region.GetMinEscrowBalance() ||
		set.Status == billingv1.SettlementStatus_SETTLEMENT_STATUS_INSUFFICIENT_ESCROW
	s.setUnder(stack, under, m.escrow.GetBalance(), m.region.GetMinEscrowBalance())
}

// setUnder records whether stack is under its region's minimum (balance
// and min for the log line).
func (s *Server) setUnder(stack ledger.Pubkey, under bool, balance, min uint64) {
	s.underMu.Lock()
	defer s.underMu.Unlock()
	if under {
		if !s.under[stack] {
			s.log.Warn("escrow under the region minimum", "stack", stack, "balance", balance, "min_escrow_balance", min)
		}
		s.under[stack] = true
	} else {
		delete(s.under, stack)
	}
	s.metrics.underMinimum.Set(float64(len(s.under)))
}

// StacksUnderMinimum reports the stacks whose owner's escrow was under the
// region minimum at their latest settlement.
func (s *Server) StacksUnderMinimum() []ledger.Pubkey {
	s.underMu.Lock()
	defer s.underMu.Unlock()
	out := make([]ledger.Pubkey, 0, len(s.under))
	for st := range s.under {
		out = append(out, st)
	}
	return out
}
