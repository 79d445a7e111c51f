package local

import (
	"context"
	"math/bits"

	"github.com/muprotocol/mu/libs/ledger"
)

// Token moves. Every token account's balance is at most the supply, so
// only Mint can overflow; credit still checks, so no sum ever wraps.

func (r *rtx) wallet(p ledger.Pubkey) (uint64, error) {
	var w walletRec
	_, err := r.get(walletKey(p), kindWallet, &w)
	return w.Balance, err
}

// setWallet stores a wallet's balance; an empty wallet's key is deleted,
// so TokenAccounts lists only accounts with tokens.
func (w *wtx) setWallet(p ledger.Pubkey, balance uint64) error {
	if balance == 0 {
		return w.txn.Delete(walletKey(p))
	}
	return w.put(walletKey(p), kindWallet, &walletRec{Balance: balance})
}

// debit takes amount from p's wallet (ErrInsufficientFunds when short).
func (w *wtx) debit(p ledger.Pubkey, amount uint64, what string) error {
	b, err := w.wallet(p)
	if err != nil {
		return err
	}
	if b < amount {
		return w.fail(ledger.ErrInsufficientFunds, "%s needs %d, wallet %s holds %d", what, amount, p, b)
	}
	return w.setWallet(p, b-amount)
}

// credit adds amount to p's wallet (ErrOverflow past 2^64-1).
func (w *wtx) credit(p ledger.Pubkey, amount uint64) error {
	b, err := w.wallet(p)
	if err != nil {
		return err
	}
	sum, c := bits.Add64(b, amount, 0)
	if c != 0 {
		return w.fail(ledger.ErrOverflow, "wallet %s holds %d, adding %d passes 2^64-1", p, b, amount)
	}
	return w.setWallet(p, sum)
}

// add is a+b, or ErrOverflow naming what.
func (w *wtx) add(a, b uint64, what string) (uint64, error) {
	sum, c := bits.Add64(a, b, 0)
	if c != 0 {
		return 0, w.fail(ledger.ErrOverflow, "%s %d + %d passes 2^64-1", what, a, b)
	}
	return sum, nil
}

type mintArgs struct {
	To     ledger.Pubkey
	Amount uint64
}

// Mint creates amount tokens in to's wallet; see ledger.Ledger.
func (l *Ledger) Mint(ctx context.Context, authority ledger.Signer, to ledger.Pubkey, amount uint64) error {
	const op = "mint"
	if amount == 0 {
		return fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	signer, err := authorize(op, authority, mintInstr(to, amount))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		st, err := w.state()
		if err != nil {
			return err
		}
		if signer != st.Authority {
			return w.fail(ledger.ErrBadSigner, "signed by %s, the authority is %s", signer, st.Authority)
		}
		if w.head.Supply, err = w.add(w.head.Supply, amount, "supply"); err != nil {
			return err
		}
		return w.credit(to, amount)
	})
	return err
}

type transferArgs struct {
	To     ledger.Pubkey
	Amount uint64
}

// Transfer moves amount from the signer's wallet to to's; see
// ledger.Ledger.
func (l *Ledger) Transfer(ctx context.Context, from ledger.Signer, to ledger.Pubkey, amount uint64) error {
	const op = "transfer"
	if amount == 0 {
		return fail(op, ledger.ErrInvalidArgument, "amount is 0")
	}
	signer, err := authorize(op, from, transferInstr(to, amount))
	if err != nil {
		return err
	}
	_, err = l.write(ctx, op, func(w *wtx) error {
		if err := w.debit(signer, amount, "transfer"); err != nil {
			return err
		}
		return w.credit(to, amount)
	})
	return err
}

// Balance returns the tokens in account's wallet.
func (l *Ledger) Balance(ctx context.Context, account ledger.Pubkey) (uint64, error) {
	var b uint64
	err := l.view(ctx, "balance", func(r *rtx) (err error) {
		b, err = r.wallet(account)
		return err
	})
	return b, err
}

// TokenAccounts returns every token account holding tokens, in the order
// deposit vault, commission, wallets by key, escrows by (developer,
// provider), and the supply, all read from one snapshot.
func (l *Ledger) TokenAccounts(ctx context.Context) ([]ledger.TokenAccount, uint64, error) {
	var (
		out    []ledger.TokenAccount
		supply uint64
	)
	err := l.view(ctx, "token accounts", func(r *rtx) error {
		out = nil
		h, err := r.head()
		if err != nil {
			return err
		}
		supply = h.Supply
		if h.DepositVault > 0 {
			out = append(out, ledger.TokenAccount{Address: DepositVault(), Kind: "deposit_vault", Balance: h.DepositVault})
		}
		if h.Commission > 0 {
			out = append(out, ledger.TokenAccount{Address: CommissionAccount(), Kind: "commission", Balance: h.Commission})
		}
		err = r.scan(key("w"), func(k, v []byte) error {
			var w walletRec
			if err := decode(kindWallet, v, &w); err != nil {
				return err
			}
			var p ledger.Pubkey
			copy(p[:], k[len(key("w")):])
			if w.Balance > 0 {
				out = append(out, ledger.TokenAccount{Address: p, Kind: "wallet", Balance: w.Balance})
			}
			return nil
		})
		if err != nil {
			return err
		}
		return r.scan(key("e"), func(_, v []byte) error {
			var e escrowRec
			if err := decode(kindEscrow, v, &e); err != nil {
				return err
			}
			if e.Balance > 0 {
				out = append(out, ledger.TokenAccount{Address: EscrowAddress(e.Developer, e.Provider), Kind: "escrow", Balance: e.Balance})
			}
			return nil
		})
	})
	return out, supply, err
}
