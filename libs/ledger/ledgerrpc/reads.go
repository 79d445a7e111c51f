package ledgerrpc

import (
	"context"

	"github.com/muprotocol/mu/libs/ledger"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// The reads a writer needs that the chain indexer does not serve.

// State returns the hosted ledger's state account (ErrNotInitialized
// before Initialize).
func (c *Client) State(ctx context.Context) (ledger.State, error) {
	const op = "ledgerrpc: state"
	resp, err := c.c.GetState(ctx, &ledgerv1.GetStateRequest{})
	if err != nil {
		return ledger.State{}, fromStatus(ctx, op, err)
	}
	return answer(op, resp.GetState(), nil, parseState)
}

func (s *server) GetState(ctx context.Context, _ *ledgerv1.GetStateRequest) (*ledgerv1.GetStateResponse, error) {
	var f fields
	return apply(ctx, &f, func() (*ledgerv1.GetStateResponse, error) {
		st, err := s.l.State(ctx)
		return &ledgerv1.GetStateResponse{State: &ledgerv1.State{
			Authority:         st.Authority.Bytes(),
			ProviderDeposit:   st.ProviderDeposit,
			CommissionMicros:  st.CommissionMicros,
			DepositVault:      st.DepositVault.Bytes(),
			CommissionAccount: st.CommissionAccount.Bytes(),
		}}, err
	})
}

func parseState(m *ledgerv1.State) (ledger.State, error) {
	var f fields
	if !f.present("state", m != nil) {
		return ledger.State{}, f.err
	}
	st := ledger.State{
		Authority:         f.key("state.authority", m.GetAuthority()),
		ProviderDeposit:   m.GetProviderDeposit(),
		CommissionMicros:  m.GetCommissionMicros(),
		DepositVault:      f.key("state.deposit_vault", m.GetDepositVault()),
		CommissionAccount: f.key("state.commission_account", m.GetCommissionAccount()),
	}
	return st, f.err
}

// Balance returns the tokens in account's wallet on the hosted ledger.
func (c *Client) Balance(ctx context.Context, account ledger.Pubkey) (uint64, error) {
	resp, err := c.c.GetBalance(ctx, &ledgerv1.GetBalanceRequest{Account: account.Bytes()})
	if err != nil {
		return 0, fromStatus(ctx, "ledgerrpc: balance of "+account.String(), err)
	}
	return resp.GetBalance(), nil
}

func (s *server) GetBalance(ctx context.Context, req *ledgerv1.GetBalanceRequest) (*ledgerv1.GetBalanceResponse, error) {
	var f fields
	account := f.key("account", req.GetAccount())
	return apply(ctx, &f, func() (*ledgerv1.GetBalanceResponse, error) {
		b, err := s.l.Balance(ctx, account)
		return &ledgerv1.GetBalanceResponse{Balance: b}, err
	})
}

// Slot returns the hosted ledger's slot.
func (c *Client) Slot(ctx context.Context) (uint64, error) {
	resp, err := c.c.GetSlot(ctx, &ledgerv1.GetSlotRequest{})
	if err != nil {
		return 0, fromStatus(ctx, "ledgerrpc: slot", err)
	}
	return resp.GetSlot(), nil
}

func (s *server) GetSlot(ctx context.Context, _ *ledgerv1.GetSlotRequest) (*ledgerv1.GetSlotResponse, error) {
	var f fields
	return apply(ctx, &f, func() (*ledgerv1.GetSlotResponse, error) {
		n, err := s.l.Slot(ctx)
		return &ledgerv1.GetSlotResponse{Slot: n}, err
	})
}
