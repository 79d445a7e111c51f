package cmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// parseAmount reads a token amount argument.
func parseAmount(arg, v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, &exitError{code: ExitUsage, err: fmt.Errorf("%s %q: want a positive whole number of token base units", arg, v)}
	}
	return n, nil
}

func newWalletCommand() *cobra.Command {
	c := &cobra.Command{Use: "wallet", Short: "Token balances and transfers on the ledger"}
	var bf *regionFlags
	balance := &cobra.Command{
		Use:   "balance [ADDRESS]",
		Short: "Show the tokens in a wallet (default: your key's)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, bf, true)
			if err != nil {
				return err
			}
			defer s.Close()
			var who ledger.Pubkey
			if len(args) == 1 {
				if who, err = ledger.ParsePubkey(args[0]); err != nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("ADDRESS: %v", err)}
				}
			} else {
				key, err := s.t.keypair()
				if err != nil {
					return err
				}
				who = key.Pubkey()
			}
			ctx, cancel := s.c.ctx(cmd.Context())
			defer cancel()
			n, err := s.l.Balance(ctx, who)
			if err != nil {
				return s.ledErr(err)
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"address": who.String(), "balance": n})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s holds %s\n", who, groupDigits(fmt.Sprint(n)))
			return nil
		},
	}
	bf = addRegionFlags(balance, true)
	move := func(use, short string, mint bool) *cobra.Command {
		var f *regionFlags
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				to, err := ledger.ParsePubkey(args[0])
				if err != nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("TO: %v", err)}
				}
				amount, err := parseAmount("AMOUNT", args[1])
				if err != nil {
					return err
				}
				s, key, err := openKeyed(cmd, f, true)
				if err != nil {
					return err
				}
				defer s.Close()
				ctx, cancel := s.c.ctx(cmd.Context())
				defer cancel()
				if mint {
					if err := s.requireAuthority(ctx, key, "mints"); err != nil {
						return err
					}
					err = s.l.Mint(ctx, key, to, amount)
				} else {
					err = s.l.Transfer(ctx, key, to, amount)
				}
				if errors.Is(err, ledger.ErrInsufficientFunds) {
					bal, _ := s.l.Balance(ctx, key.Pubkey())
					return &exitError{code: ExitUsage, err: fmt.Errorf("wallet %s holds %d, less than %d: %s", key.Pubkey(), bal, amount, fundsHint(key.Pubkey()))}
				}
				if err != nil {
					return s.ledErr(err)
				}
				bal, err := s.l.Balance(ctx, to)
				if err != nil {
					return s.ledErr(err)
				}
				verb := "sent"
				if mint {
					verb = "minted"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s to %s; it now holds %s\n", verb, groupDigits(fmt.Sprint(amount)), to, groupDigits(fmt.Sprint(bal)))
				return nil
			},
		}
		f = addRegionFlags(cmd, false)
		return cmd
	}
	c.AddCommand(balance,
		move("transfer TO AMOUNT", "Send tokens from your wallet", false),
		move("mint TO AMOUNT", "Create tokens in a wallet (the marketplace authority's key; local ledgers)", true))
	return c
}

func newEscrowCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "escrow",
		Short: "Your prepaid escrow with a provider: create, recharge, withdraw, view",
		Long: `A developer prepays each provider into an escrow; the provider's regions charge
usage from it. Under a region's minimum balance your stacks there are
disabled (their URLs answer 402) until a recharge. PROVIDER is a provider's
id or name (mu list providers).`,
	}
	// act runs one signed escrow write.
	act := func(use, short string, run func(cmd *cobra.Command, s *session, key *ledger.Keypair, p *chainindexerv1.Provider, args []string) error, nargs int) *cobra.Command {
		var f *regionFlags
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(nargs),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, key, err := openKeyed(cmd, f, true)
				if err != nil {
					return err
				}
				defer s.Close()
				p, err := s.findProvider(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return run(cmd, s, key, p, args[1:])
			},
		}
		f = addRegionFlags(cmd, true)
		return cmd
	}
	create := act("create PROVIDER", "Open your escrow with a provider (balance 0)", func(cmd *cobra.Command, s *session, key *ledger.Keypair, p *chainindexerv1.Provider, _ []string) error {
		if err := s.createEscrow(cmd.Context(), key, p); err != nil {
			return err
		}
		pid := ledger.Pubkey(p.GetId())
		min := s.maxMinimum(cmd, p)
		fmt.Fprintf(cmd.OutOrStdout(), "escrow with %s (%s) created, balance 0; fund it with: mu escrow recharge %s AMOUNT (its regions need at least %s)\n", p.GetName(), pid, p.GetName(), groupDigits(fmt.Sprint(min)))
		return nil
	}, 1)
	recharge := act("recharge PROVIDER AMOUNT", "Move tokens from your wallet into the escrow", func(cmd *cobra.Command, s *session, key *ledger.Keypair, p *chainindexerv1.Provider, args []string) error {
		amount, err := parseAmount("AMOUNT", args[0])
		if err != nil {
			return err
		}
		e, err := s.moveEscrow(cmd.Context(), key, p, amount, false)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "escrow with %s: balance %s\n", p.GetName(), groupDigits(fmt.Sprint(e.Balance)))
		return nil
	}, 2)
	withdraw := act("withdraw PROVIDER AMOUNT", "Move tokens from the escrow back to your wallet", func(cmd *cobra.Command, s *session, key *ledger.Keypair, p *chainindexerv1.Provider, args []string) error {
		amount, err := parseAmount("AMOUNT", args[0])
		if err != nil {
			return err
		}
		e, err := s.moveEscrow(cmd.Context(), key, p, amount, true)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "escrow with %s: balance %s\n", p.GetName(), groupDigits(fmt.Sprint(e.Balance)))
		return nil
	}, 2)
	view := act("view PROVIDER", "Show the balance, the minimum, the recent burn rate and the time left", func(cmd *cobra.Command, s *session, key *ledger.Keypair, p *chainindexerv1.Provider, _ []string) error {
		return viewEscrow(cmd, s, key.Pubkey(), p)
	}, 1)
	c.AddCommand(create, recharge, withdraw, view)
	return c
}

// createEscrow opens key's escrow with p, explaining what the ledger
// refuses (the commands and the console share it).
func (s *session) createEscrow(ctx context.Context, key *ledger.Keypair, p *chainindexerv1.Provider) error {
	ctx, cancel := s.c.ctx(ctx)
	defer cancel()
	pid := ledger.Pubkey(p.GetId())
	_, err := s.l.CreateEscrow(ctx, key, pid)
	switch {
	case errors.Is(err, ledger.ErrAlreadyExists):
		return &exitError{code: ExitUsage, err: fmt.Errorf("you already have an escrow with %s: see mu escrow view %s", p.GetName(), p.GetName())}
	case errors.Is(err, ledger.ErrUnauthorizedProvider):
		return &exitError{code: ExitUsage, err: fmt.Errorf("provider %s is not authorized yet: the marketplace authority authorizes it with mu provider authorize %s", p.GetName(), pid)}
	case err != nil:
		return s.ledErr(err)
	}
	return nil
}

// moveEscrow recharges key's escrow with p by amount, or withdraws it,
// explaining what the ledger refuses.
func (s *session) moveEscrow(ctx context.Context, key *ledger.Keypair, p *chainindexerv1.Provider, amount uint64, withdraw bool) (ledger.Escrow, error) {
	ctx, cancel := s.c.ctx(ctx)
	defer cancel()
	pid := ledger.Pubkey(p.GetId())
	var e ledger.Escrow
	var err error
	if withdraw {
		e, err = s.l.WithdrawEscrow(ctx, key, pid, amount)
	} else {
		e, err = s.l.RechargeEscrow(ctx, key, pid, amount)
	}
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return e, noEscrow(p)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		bal, _ := s.l.Balance(ctx, key.Pubkey())
		return e, &exitError{code: ExitUsage, err: fmt.Errorf("wallet %s holds %d, less than %d: %s", key.Pubkey(), bal, amount, fundsHint(key.Pubkey()))}
	case errors.Is(err, ledger.ErrBelowMinimum), errors.Is(err, ledger.ErrInsufficientEscrow):
		return e, &exitError{code: ExitUsage, err: fmt.Errorf("cannot withdraw %d: %v; mu escrow view %s shows the balance and the minimum your active stacks need", amount, err, p.GetName())}
	case err != nil:
		return e, s.ledErr(err)
	}
	return e, nil
}

func noEscrow(p *chainindexerv1.Provider) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf("you have no escrow with %s: create it with mu escrow create %s, then mu escrow recharge %s AMOUNT", p.GetName(), p.GetName(), p.GetName())}
}

// maxMinimum is the highest minimum escrow of p's regions (0 if unknown).
func (s *session) maxMinimum(cmd *cobra.Command, p *chainindexerv1.Provider) uint64 {
	rs, err := s.regions(cmd.Context(), p.GetId())
	if err != nil {
		return 0
	}
	var m uint64
	for _, r := range rs {
		m = max(m, r.GetMinEscrowBalance())
	}
	return m
}

// escrowJSON is an escrow as mu escrow view --output json and the
// console show it.
type escrowJSON struct {
	Developer     string         `json:"developer"`
	Provider      string         `json:"provider"`
	ProviderName  string         `json:"provider_name"`
	Balance       uint64         `json:"balance"`
	Minimum       uint64         `json:"minimum"` // the highest minimum of the regions with your active stacks (else of all the provider's regions)
	Regions       map[string]any `json:"regions"`
	Stacks        int            `json:"active_stacks"`
	BurnPerHour   *uint64        `json:"burn_per_hour"`
	TimeLeft      string         `json:"time_left"`
	Billing       string         `json:"billing_error,omitempty"`
	Warning       bool           `json:"warning"`
	WarningReason string         `json:"warning_reason,omitempty"`
	timeLeft      *time.Duration
}

// warn sets Warning when the balance is under the minimum or lasts less
// than within at the recent burn rate.
func (v *escrowJSON) warn(within time.Duration) {
	switch {
	case v.Balance < v.Minimum && v.Stacks > 0:
		v.Warning, v.WarningReason = true, fmt.Sprintf("the balance is %d under the minimum: your stacks are paused until a top-up of at least %d", v.Minimum-v.Balance, v.Minimum-v.Balance)
	case v.Balance < v.Minimum:
		v.Warning, v.WarningReason = true, fmt.Sprintf("the balance is %d under the minimum: a stack cannot be deployed here until a top-up of at least %d", v.Minimum-v.Balance, v.Minimum-v.Balance)
	case v.timeLeft != nil && *v.timeLeft < within:
		v.Warning, v.WarningReason = true, fmt.Sprintf("at the recent burn rate the balance falls under the minimum in %s", v.TimeLeft)
	}
}

func viewEscrow(cmd *cobra.Command, s *session, dev ledger.Pubkey, p *chainindexerv1.Provider) error {
	v, err := s.escrowStatus(cmd.Context(), dev, p)
	if err != nil {
		return err
	}
	if s.t.output == "json" {
		return printJSON(cmd.OutOrStdout(), v)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "escrow of %s with %s (%s)\n", dev, p.GetName(), v.Provider)
	fmt.Fprintf(out, "  balance      %s\n", groupDigits(fmt.Sprint(v.Balance)))
	fmt.Fprintf(out, "  minimum      %s", groupDigits(fmt.Sprint(v.Minimum)))
	if v.Stacks > 0 {
		fmt.Fprintf(out, " (the highest of the regions of your %d active stacks)\n", v.Stacks)
	} else {
		fmt.Fprintln(out, " (the highest of the provider's regions; you have no stacks there)")
	}
	if v.Balance < v.Minimum {
		fmt.Fprintf(out, "  UNDER THE MINIMUM: add at least %s with mu escrow recharge %s %d\n", groupDigits(fmt.Sprint(v.Minimum-v.Balance)), p.GetName(), v.Minimum-v.Balance)
	}
	switch {
	case v.BurnPerHour != nil:
		fmt.Fprintf(out, "  burn         %s per hour (recent)\n", groupDigits(fmt.Sprint(*v.BurnPerHour)))
		if v.TimeLeft != "" {
			fmt.Fprintf(out, "  time left    %s at that rate\n", v.TimeLeft)
		} else {
			fmt.Fprintln(out, "  time left    unbounded: nothing burns")
		}
	case v.Billing != "":
		fmt.Fprintf(out, "  burn         unknown: %s\n", v.Billing)
	case v.Stacks == 0:
		fmt.Fprintln(out, "  burn         0: no stacks")
	default:
		fmt.Fprintln(out, "  burn         unknown: no billing address (pass --billing)")
	}
	return nil
}

// escrowStatus is dev's escrow with p: the balance from the indexer, the
// minimum of the regions dev has stacks in, and billing's burn rate and
// time left when billing is known.
func (s *session) escrowStatus(ctx context.Context, dev ledger.Pubkey, p *chainindexerv1.Provider) (escrowJSON, error) {
	cctx, cancel := s.c.ctx(ctx)
	defer cancel()
	er, err := s.ix.ListEscrows(cctx, &chainindexerv1.ListEscrowsRequest{Developer: dev.Bytes(), ProviderId: p.GetId()})
	if err != nil {
		return escrowJSON{}, s.ixErr(err)
	}
	if len(er.GetEscrows()) == 0 {
		return escrowJSON{}, noEscrow(p)
	}
	v := escrowJSON{Developer: dev.String(), Provider: ledger.Pubkey(p.GetId()).String(), ProviderName: p.GetName(), Balance: er.GetEscrows()[0].GetBalance(), Regions: map[string]any{}}
	rs, err := s.regions(ctx, p.GetId())
	if err != nil {
		return escrowJSON{}, err
	}
	st, err := s.ix.ListStacks(cctx, &chainindexerv1.ListStacksRequest{Owner: dev.Bytes()})
	if err != nil {
		return escrowJSON{}, s.ixErr(err)
	}
	inRegion := map[string]int{}
	for _, x := range st.GetStacks() {
		inRegion[string(x.GetRegionId())]++
	}
	var sample []byte // a stack of dev at p, for billing's projection
	var anyMin, usedMin uint64
	for _, r := range rs {
		anyMin = max(anyMin, r.GetMinEscrowBalance())
		if n := inRegion[string(r.GetId())]; n > 0 {
			usedMin = max(usedMin, r.GetMinEscrowBalance())
			v.Stacks += n
			v.Regions[r.GetName()] = map[string]any{"id": ledger.Pubkey(r.GetId()).String(), "minimum": r.GetMinEscrowBalance(), "stacks": n}
		}
		for _, x := range st.GetStacks() {
			if sample == nil && string(x.GetRegionId()) == string(r.GetId()) {
				sample = x.GetId()
			}
		}
	}
	v.Minimum = usedMin
	if v.Stacks == 0 {
		v.Minimum = anyMin
	}
	if sample != nil && s.t.billing.v != "" {
		cc, err := s.c.dial(s.t.billing, "billing", certs.RoleBilling)
		if err == nil {
			resp, err := billingv1.NewBillingServiceClient(cc).GetUsage(cctx, &billingv1.GetUsageRequest{StackId: sample})
			if err != nil {
				v.Billing = remoteErr(s.t.billing, "billing", err).Error()
			} else if es := resp.GetEscrow(); es != nil {
				b := es.GetBurnPerHour()
				v.BurnPerHour = &b
				if es.TimeLeft != nil {
					d := es.GetTimeLeft().AsDuration()
					v.timeLeft, v.TimeLeft = &d, d.Round(time.Minute).String()
				}
			}
		}
	}
	return v, nil
}
