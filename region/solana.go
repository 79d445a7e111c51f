package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	sol "github.com/gagliardetto/solana-go"
	"github.com/gagliardetto/solana-go/rpc"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/backend"
)

// Lamports of the airdrop that funds a fee payer or a market key without
// any (1 SOL pays 200,000 signatures at 5,000 lamports, or the rent of
// thousands of small accounts).
const feePayerAirdrop = 10 * sol.LAMPORTS_PER_SOL

// feePayerPoll is how often a pending airdrop's balance is looked at.
const feePayerPoll = 50 * time.Millisecond

// openSolana opens the Solana backend of s for the region. With no
// fee_payer_keypair it uses (making it once) dir/fee-payer.json, or a
// key file in a temporary directory without dir. A fee payer without
// lamports is funded by an airdrop, as a test validator (and solanatest)
// grant; on a cluster that refuses airdrops the error says to fund it.
// It returns the settings as resolved (the fee payer's file filled in).
func (r *Region) openSolana(ctx context.Context, s backend.Solana, dir string) (ledger.Ledger, backend.Solana, error) {
	if s.FeePayerKeypair == "" {
		if dir == "" {
			d, err := os.MkdirTemp("", "mu-region-solana-")
			if err != nil {
				return nil, s, err
			}
			r.closers = append(r.closers, func() error { return os.RemoveAll(d) })
			dir = d
		}
		path := filepath.Join(dir, "fee-payer.json")
		if err := ensureKeypairFile(path); err != nil {
			return nil, s, fmt.Errorf("region: ledger: fee payer: %w", err)
		}
		s.FeePayerKeypair = path
	}
	payer, err := ledger.LoadKeypair(s.FeePayerKeypair)
	if err != nil {
		return nil, s, fmt.Errorf("region: ledger: fee payer keypair %s: %w", s.FeePayerKeypair, err)
	}
	if err := fund(ctx, rpc.New(s.RPCURL), sol.PublicKey(payer.Pubkey()), s); err != nil {
		return nil, s, fmt.Errorf("region: ledger: fee payer %s at %s: %w", payer.Pubkey(), s.RPCURL, err)
	}
	l, err := backend.OpenSolana(ctx, s)
	if err != nil {
		return nil, s, fmt.Errorf("region: %w", err)
	}
	return l, s, nil
}

// ensureKeypairFile writes a fresh Solana JSON keypair to path unless a
// file is there.
func ensureKeypairFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	k, err := ledger.GenerateKeypair()
	if err != nil {
		return err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// fund makes sure payer holds lamports, asking for an airdrop when it has
// none and waiting until it lands, for up to the settings'
// confirm_timeout.
func fund(ctx context.Context, c *rpc.Client, payer sol.PublicKey, s backend.Solana) error {
	ctx, cancel := context.WithTimeout(ctx, s.ConfirmTimeout)
	defer cancel()
	ct := rpc.CommitmentType(s.Commitment)
	bal, err := c.GetBalance(ctx, payer, ct)
	if err != nil {
		return fmt.Errorf("balance: %w", err)
	}
	if bal.Value > 0 {
		return nil
	}
	if _, err := c.RequestAirdrop(ctx, payer, feePayerAirdrop, ct); err != nil {
		return fmt.Errorf("it holds no lamports and the node refused an airdrop (fund it to pay the transactions' fees): %w", err)
	}
	t := time.NewTicker(feePayerPoll)
	defer t.Stop()
	for {
		bal, err := c.GetBalance(ctx, payer, ct)
		if err != nil {
			return fmt.Errorf("balance: %w", err)
		}
		if bal.Value > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the airdrop: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// fundKeys makes sure the market's keys hold lamports (an airdrop each
// when they have none): they pay the rent of the accounts the program
// creates for them.
func (r *Region) fundKeys(ctx context.Context, keys MarketKeys) error {
	c := rpc.New(r.solana.RPCURL)
	for name, k := range map[string]*ledger.Keypair{"authority": keys.Authority, "provider": keys.Provider, "developer": keys.Developer} {
		if err := fund(ctx, c, sol.PublicKey(k.Pubkey()), *r.solana); err != nil {
			return fmt.Errorf("region: ledger: the %s key %s at %s: %w", name, k.Pubkey(), r.solana.RPCURL, err)
		}
	}
	return nil
}
