package solana

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"
	"github.com/gagliardetto/solana-go/rpc/jsonrpc"

	"github.com/muprotocol/mu/libs/ledger"
)

// maxTransactionBytes is the most a serialized transaction may be: a
// validator's PACKET_DATA_SIZE (1280 - 40 - 8).
const maxTransactionBytes = 1232

// sender builds, signs, sends and confirms transactions. It is safe for
// concurrent use.
type sender struct {
	rpc        *rpc.Client
	payer      ledger.Signer
	cfg        Config
	commitment rpc.CommitmentType

	mu      sync.Mutex
	claimed map[sol.Signature]time.Time // signatures sent by a send of this sender
}

// claim records that a send owns sig; false if another send already
// sent the same bytes (the same instructions and signers within one
// blockhash), which the chain would take for one transaction.
func (s *sender) claim(sig sol.Signature) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.claimed == nil {
		s.claimed = map[sol.Signature]time.Time{}
	}
	if _, ok := s.claimed[sig]; ok {
		return false
	}
	for k, at := range s.claimed { // a signature outlives its blockhash by far less
		if now.Sub(at) > 2*s.cfg.ConfirmTimeout {
			delete(s.claimed, k)
		}
	}
	s.claimed[sig] = now
	return true
}

// txn is one write's transaction before it is signed.
type txn struct {
	op     string
	instrs []sol.Instruction
	// signers sign besides the fee payer: the ledger.Signer of the call,
	// and keys the instructions need (the new mint).
	signers []ledger.Signer
	errs    errMap
	// check, when set, runs after the transaction is signed and its
	// signatures verified, before it is first sent: the rules the program
	// lacks, kept off chain, in the order a chain keeps its own (signatures
	// first).
	check func(ctx context.Context) error
}

// add appends an instruction calling kind's program.
func (t *txn) add(kind instrKind, in sol.Instruction) {
	t.instrs = append(t.instrs, in)
	t.errs.kinds = append(t.errs.kinds, kind)
}

// landed is a confirmed transaction.
type landed struct {
	sig  sol.Signature
	slot uint64
}

// send signs t with a recent blockhash, sends it (preflight on, so a
// failing transaction is refused and costs nothing) and waits until it is
// confirmed at the configured commitment, within confirm_timeout.
//
// It never applies a write twice: a transport error resends the same
// signed transaction, which the chain processes at most once (its
// signature is its identity); a transaction whose blockhash expired is
// signed again with a fresh one only after its old signature is seen
// neither processed nor processable. Errors: the ledger sentinel a
// refusal means (errMap), ErrBadSigner when a signer cannot sign or its
// signature does not verify, ErrInvalidArgument for a transaction above
// 1232 bytes, ErrUnavailable when the node cannot be reached or the write
// is not confirmed in time, ctx's error when it ends.
func (s *sender) send(ctx context.Context, t txn) (landed, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConfirmTimeout)
	defer cancel()
	var last sol.Signature
	for {
		var bh *rpc.GetLatestBlockhashResult
		err := s.call(ctx, t.op+": get latest blockhash", func(ctx context.Context) (err error) {
			bh, err = s.rpc.GetLatestBlockhash(ctx, s.commitment)
			return err
		})
		if err != nil {
			return landed{}, s.ended(ctx, t.op, last, err)
		}
		tx, err := s.sign(t, bh.Value.Blockhash)
		if err != nil {
			return landed{}, err
		}
		if t.check != nil {
			if err := t.check(ctx); err != nil {
				return landed{}, err
			}
			t.check = nil
		}
		sig := tx.Signatures[0]
		if !s.claim(sig) {
			// An identical write of this process is under way with this
			// blockhash: wait for the next one, so each is its own
			// transaction.
			if err := s.nextBlockhash(ctx, t.op, bh.Value.Blockhash); err != nil {
				return landed{}, s.ended(ctx, t.op, last, err)
			}
			continue
		}
		last = sig
		err = s.call(ctx, t.op+": send transaction", func(ctx context.Context) error {
			_, err := s.rpc.SendTransactionWithOpts(ctx, tx, rpc.TransactionOpts{PreflightCommitment: s.commitment})
			return err
		})
		if err != nil {
			f, ok := rpcFailure(err)
			switch {
			case !ok:
				return landed{}, s.ended(ctx, t.op, sig, err)
			case f.Kind == "BlockhashNotFound":
				continue // the node has not seen our blockhash yet, or it expired: sign again
			case f.Kind == "AlreadyProcessed":
				// an earlier send of these bytes got through: confirm it
			default:
				return landed{}, refusal(t.op, t.errs, f)
			}
		}
		l, ok, err := s.confirm(ctx, t, sig, bh.Value.Blockhash)
		if err != nil {
			return landed{}, s.ended(ctx, t.op, sig, err)
		}
		if ok {
			return l, nil
		}
		// The blockhash expired and the signature never landed: it cannot
		// land any more, so a new signature cannot double the write.
	}
}

// nextBlockhash waits until the node's latest blockhash is not bh.
func (s *sender) nextBlockhash(ctx context.Context, op string, bh sol.Hash) error {
	poll := s.cfg.ConfirmPoll
	for {
		var cur *rpc.GetLatestBlockhashResult
		if err := s.call(ctx, op+": get latest blockhash", func(ctx context.Context) (err error) {
			cur, err = s.rpc.GetLatestBlockhash(ctx, s.commitment)
			return err
		}); err != nil {
			return err
		}
		if cur.Value.Blockhash != bh {
			return nil
		}
		if err := sleep(ctx, poll); err != nil {
			return err
		}
		poll = min(2*poll, s.cfg.RetryMax)
	}
}

// ended words an error that ended a send: past the deadline it is
// ErrUnavailable naming the signature that may still land.
func (s *sender) ended(ctx context.Context, op string, sig sol.Signature, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if sig.IsZero() {
			return fail(op, ledger.ErrUnavailable, "no transaction sent within confirm_timeout %v: %v", s.cfg.ConfirmTimeout, err)
		}
		return fail(op, ledger.ErrUnavailable, "transaction %s not confirmed within confirm_timeout %v (it may still land): %v",
			sig, s.cfg.ConfirmTimeout, err)
	}
	return err
}

// sign builds t's transaction with blockhash bh and the fee payer, and
// signs it by every key it needs; each signature is verified, as the chain
// will, so a signer that lies about its key or garbles fails here with
// ErrBadSigner.
func (s *sender) sign(t txn, bh sol.Hash) (*sol.Transaction, error) {
	tx, err := sol.NewTransaction(t.instrs, bh, sol.TransactionPayer(solKey(s.payer.Pubkey())))
	if err != nil {
		return nil, fail(t.op, ledger.ErrInvalidArgument, "build transaction: %v", err)
	}
	msg, err := tx.Message.MarshalBinary()
	if err != nil {
		return nil, fail(t.op, ledger.ErrInvalidArgument, "encode transaction message: %v", err)
	}
	n := int(tx.Message.Header.NumRequiredSignatures)
	tx.Signatures = make([]sol.Signature, n)
	for i, key := range tx.Message.AccountKeys[:n] {
		sg := s.signerOf(t, key)
		if sg == nil {
			return nil, fail(t.op, ledger.ErrBadSigner, "no signer for %s, which the transaction needs", key)
		}
		sig, err := sg.Sign(msg)
		if err != nil {
			return nil, fail(t.op, ledger.ErrBadSigner, "signer %s failed to sign: %v", key, err)
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fail(t.op, ledger.ErrBadSigner, "signature of %s is %d bytes, want %d", key, len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(ed25519.PublicKey(key[:]), msg, sig) {
			return nil, fail(t.op, ledger.ErrBadSigner, "the signature of %s does not verify (signed by another key, or altered)", key)
		}
		copy(tx.Signatures[i][:], sig)
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return nil, fail(t.op, ledger.ErrInvalidArgument, "encode transaction: %v", err)
	}
	if len(raw) > maxTransactionBytes {
		return nil, fail(t.op, ledger.ErrInvalidArgument, "the transaction is %d bytes, above Solana's %d (shorten the name, URL or manifest)",
			len(raw), maxTransactionBytes)
	}
	return tx, nil
}

func (s *sender) signerOf(t txn, key sol.PublicKey) ledger.Signer {
	if solKey(s.payer.Pubkey()) == key {
		return s.payer
	}
	for _, sg := range t.signers {
		if sg != nil && solKey(sg.Pubkey()) == key {
			return sg
		}
	}
	return nil
}

// confirm polls sig's status until it is confirmed at the commitment
// (ok), it landed with an error (the refusal), or bh expired without it
// landing (not ok, nil error: sign again).
func (s *sender) confirm(ctx context.Context, t txn, sig sol.Signature, bh sol.Hash) (landed, bool, error) {
	poll := s.cfg.ConfirmPoll
	for {
		st, err := s.status(ctx, t.op, sig)
		if err != nil {
			return landed{}, false, err
		}
		if st != nil {
			if st.Err != nil {
				// It landed and failed (only without preflight, or when
				// the state changed between preflight and execution): the
				// fee is paid, nothing else changed.
				return landed{}, false, refusal(t.op, t.errs, parseFailure(st.Err, nil))
			}
			if reached(st.ConfirmationStatus, s.commitment) {
				return landed{sig: sig, slot: st.Slot}, true, nil
			}
		} else {
			var valid bool
			err := s.call(ctx, t.op+": is blockhash valid", func(ctx context.Context) error {
				r, err := s.rpc.IsBlockhashValid(ctx, bh, s.commitment)
				if err == nil {
					valid = r.Value
				}
				return err
			})
			if err != nil {
				return landed{}, false, err
			}
			if !valid {
				// Look once more: it may have landed just before expiring.
				if st, err = s.status(ctx, t.op, sig); err != nil || st != nil {
					if err != nil {
						return landed{}, false, err
					}
					continue
				}
				return landed{}, false, nil
			}
		}
		if err := sleep(ctx, poll); err != nil {
			return landed{}, false, err
		}
		poll = min(2*poll, s.cfg.RetryMax)
	}
}

// status is sig's status, nil while the node knows nothing of it.
func (s *sender) status(ctx context.Context, op string, sig sol.Signature) (*rpc.SignatureStatusesResult, error) {
	var st *rpc.SignatureStatusesResult
	err := s.call(ctx, op+": get signature statuses", func(ctx context.Context) error {
		r, err := s.rpc.GetSignatureStatuses(ctx, false, sig)
		if errors.Is(err, rpc.ErrNotFound) {
			return nil
		}
		if err == nil && len(r.Value) > 0 {
			st = r.Value[0]
		}
		return err
	})
	return st, err
}

var commitmentRank = map[rpc.ConfirmationStatusType]int{
	rpc.ConfirmationStatusProcessed: 1,
	rpc.ConfirmationStatusConfirmed: 2,
	rpc.ConfirmationStatusFinalized: 3,
}

// reached says a status at got satisfies commitment want.
func reached(got rpc.ConfirmationStatusType, want rpc.CommitmentType) bool {
	return commitmentRank[got] >= commitmentRank[rpc.ConfirmationStatusType(want)]
}

// call runs one RPC, each attempt bounded by request_timeout, retrying
// transport errors (and a node's "unhealthy") with backoff up to
// max_retries times; then it fails with ErrUnavailable. The caller's ctx
// ending returns its error at once.
func (s *sender) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return retry(ctx, s.cfg, op, f)
}

func retry(ctx context.Context, cfg Config, op string, f func(ctx context.Context) error) error {
	wait := cfg.RetryInitial
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ledger/solana: %s: %w", op, ctx.Err())
		}
		if !transient(err) {
			return err
		}
		if attempt >= cfg.MaxRetries {
			return unavailable(op, fmt.Errorf("%d attempts: %w", attempt+1, err))
		}
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("ledger/solana: %s: %w", op, err)
		}
		wait = min(2*wait, cfg.RetryMax)
	}
}

// transient says err is worth retrying: anything but a node's answer,
// except the answers that say the node is not ready.
func transient(err error) bool {
	var re *jsonrpc.RPCError
	if errors.As(err, &re) {
		switch re.Code {
		case -32005, -32004, -32014: // node unhealthy, block not available, status not available yet
			return true
		}
		return false
	}
	return !errors.Is(err, rpc.ErrNotFound)
}

// sleep waits d or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// solKey converts a ledger key to solana-go's.
func solKey(p ledger.Pubkey) sol.PublicKey { return sol.PublicKey(p) }

// ledgerKey converts a solana-go key to the ledger's.
func ledgerKey(p sol.PublicKey) ledger.Pubkey { return ledger.Pubkey(p) }
