package ledgerrpc

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	"github.com/muprotocol/mu/libs/ledger/local"
	"github.com/muprotocol/mu/libs/rpcerr"
	ledgerv1 "github.com/muprotocol/mu/proto/mu/ledger/v1"
)

// The writes, each as its Client method and its server handler; see
// ledger.Writer for what each does.

// Initialize sends a signed initialize.
func (c *Client) Initialize(ctx context.Context, authority ledger.Signer, p ledger.InitParams) error {
	_, err := call(ctx, "ledgerrpc: initialize", authority,
		func(pk ledger.Pubkey) ([]byte, error) { return local.InitializeMessage(p, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.InitializeRequest {
			return &ledgerv1.InitializeRequest{ProviderDeposit: p.ProviderDeposit, CommissionMicros: p.CommissionMicros, Authority: s}
		}, c.c.Initialize)
	return err
}

func (s *server) Initialize(ctx context.Context, req *ledgerv1.InitializeRequest) (*ledgerv1.InitializeResponse, error) {
	var f fields
	auth := f.signer("authority", req.GetAuthority())
	return apply(ctx, &f, func() (*ledgerv1.InitializeResponse, error) {
		p := ledger.InitParams{ProviderDeposit: req.GetProviderDeposit(), CommissionMicros: req.GetCommissionMicros()}
		return &ledgerv1.InitializeResponse{}, s.l.Initialize(ctx, auth, p)
	})
}

// Mint sends a signed mint.
func (c *Client) Mint(ctx context.Context, authority ledger.Signer, to ledger.Pubkey, amount uint64) error {
	_, err := call(ctx, "ledgerrpc: mint", authority,
		func(pk ledger.Pubkey) ([]byte, error) { return local.MintMessage(to, amount, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.MintRequest {
			return &ledgerv1.MintRequest{To: to.Bytes(), Amount: amount, Authority: s}
		}, c.c.Mint)
	return err
}

func (s *server) Mint(ctx context.Context, req *ledgerv1.MintRequest) (*ledgerv1.MintResponse, error) {
	var f fields
	to, auth := f.key("to", req.GetTo()), f.signer("authority", req.GetAuthority())
	return apply(ctx, &f, func() (*ledgerv1.MintResponse, error) {
		return &ledgerv1.MintResponse{}, s.l.Mint(ctx, auth, to, req.GetAmount())
	})
}

// Transfer sends a signed transfer.
func (c *Client) Transfer(ctx context.Context, from ledger.Signer, to ledger.Pubkey, amount uint64) error {
	_, err := call(ctx, "ledgerrpc: transfer", from,
		func(pk ledger.Pubkey) ([]byte, error) { return local.TransferMessage(to, amount, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.TransferRequest {
			return &ledgerv1.TransferRequest{To: to.Bytes(), Amount: amount, From: s}
		}, c.c.Transfer)
	return err
}

func (s *server) Transfer(ctx context.Context, req *ledgerv1.TransferRequest) (*ledgerv1.TransferResponse, error) {
	var f fields
	to, from := f.key("to", req.GetTo()), f.signer("from", req.GetFrom())
	return apply(ctx, &f, func() (*ledgerv1.TransferResponse, error) {
		return &ledgerv1.TransferResponse{}, s.l.Transfer(ctx, from, to, req.GetAmount())
	})
}

// CreateProvider sends a signed create_provider.
func (c *Client) CreateProvider(ctx context.Context, owner ledger.Signer, name string) (ledger.Provider, error) {
	const op = "ledgerrpc: create provider"
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.CreateProviderMessage(name, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.CreateProviderRequest {
			return &ledgerv1.CreateProviderRequest{Name: name, Owner: s}
		}, c.c.CreateProvider)
	return answer(op, resp.GetProvider(), err, ledgerpb.ParseProvider)
}

func (s *server) CreateProvider(ctx context.Context, req *ledgerv1.CreateProviderRequest) (*ledgerv1.CreateProviderResponse, error) {
	var f fields
	owner := f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.CreateProviderResponse, error) {
		p, err := s.l.CreateProvider(ctx, owner, req.GetName())
		return &ledgerv1.CreateProviderResponse{Provider: ledgerpb.ProviderProto(p)}, err
	})
}

// AuthorizeProvider sends a signed authorize_provider.
func (c *Client) AuthorizeProvider(ctx context.Context, authority ledger.Signer, provider ledger.Pubkey) error {
	_, err := call(ctx, "ledgerrpc: authorize provider", authority,
		func(pk ledger.Pubkey) ([]byte, error) { return local.AuthorizeProviderMessage(provider, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.AuthorizeProviderRequest {
			return &ledgerv1.AuthorizeProviderRequest{ProviderId: provider.Bytes(), Authority: s}
		}, c.c.AuthorizeProvider)
	return err
}

func (s *server) AuthorizeProvider(ctx context.Context, req *ledgerv1.AuthorizeProviderRequest) (*ledgerv1.AuthorizeProviderResponse, error) {
	var f fields
	provider, auth := f.key("provider_id", req.GetProviderId()), f.signer("authority", req.GetAuthority())
	return apply(ctx, &f, func() (*ledgerv1.AuthorizeProviderResponse, error) {
		return &ledgerv1.AuthorizeProviderResponse{}, s.l.AuthorizeProvider(ctx, auth, provider)
	})
}

// UpdateProviderDeposit sends a signed update_provider_deposit.
func (c *Client) UpdateProviderDeposit(ctx context.Context, authority ledger.Signer, amount uint64) error {
	_, err := call(ctx, "ledgerrpc: update provider deposit", authority,
		func(pk ledger.Pubkey) ([]byte, error) { return local.UpdateProviderDepositMessage(amount, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.UpdateProviderDepositRequest {
			return &ledgerv1.UpdateProviderDepositRequest{Amount: amount, Authority: s}
		}, c.c.UpdateProviderDeposit)
	return err
}

func (s *server) UpdateProviderDeposit(ctx context.Context, req *ledgerv1.UpdateProviderDepositRequest) (*ledgerv1.UpdateProviderDepositResponse, error) {
	var f fields
	auth := f.signer("authority", req.GetAuthority())
	return apply(ctx, &f, func() (*ledgerv1.UpdateProviderDepositResponse, error) {
		return &ledgerv1.UpdateProviderDepositResponse{}, s.l.UpdateProviderDeposit(ctx, auth, req.GetAmount())
	})
}

func regionConfigProto(c ledger.RegionConfig) *ledgerv1.RegionConfig {
	return &ledgerv1.RegionConfig{
		Name:                       c.Name,
		BaseUrl:                    c.BaseURL,
		Rates:                      ledgerpb.RatesProto(c.Rates),
		MinEscrowBalance:           c.MinEscrowBalance,
		MaxGigaInstructionsPerCall: c.MaxGigaInstructionsPerCall,
		MinMemoryLimitBytes:        c.MinMemoryLimitBytes,
		MaxMemoryLimitBytes:        c.MaxMemoryLimitBytes,
	}
}

// regionConfig reads a required RegionConfig and its required rates.
func (f *fields) regionConfig(field string, m *ledgerv1.RegionConfig) ledger.RegionConfig {
	if !f.present(field, m != nil) || !f.present(field+".rates", m.GetRates() != nil) {
		return ledger.RegionConfig{}
	}
	return ledger.RegionConfig{
		Name:                       m.GetName(),
		BaseURL:                    m.GetBaseUrl(),
		Rates:                      ledgerpb.ParseRates(m.GetRates()),
		MinEscrowBalance:           m.GetMinEscrowBalance(),
		MaxGigaInstructionsPerCall: m.GetMaxGigaInstructionsPerCall(),
		MinMemoryLimitBytes:        m.GetMinMemoryLimitBytes(),
		MaxMemoryLimitBytes:        m.GetMaxMemoryLimitBytes(),
	}
}

// CreateRegion sends a signed create_region.
func (c *Client) CreateRegion(ctx context.Context, owner ledger.Signer, number uint32, cfg ledger.RegionConfig) (ledger.Region, error) {
	op := fmt.Sprintf("ledgerrpc: create region %d", number)
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.CreateRegionMessage(number, cfg, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.CreateRegionRequest {
			return &ledgerv1.CreateRegionRequest{Number: number, Config: regionConfigProto(cfg), Owner: s}
		}, c.c.CreateRegion)
	return answer(op, resp.GetRegion(), err, ledgerpb.ParseRegion)
}

func (s *server) CreateRegion(ctx context.Context, req *ledgerv1.CreateRegionRequest) (*ledgerv1.CreateRegionResponse, error) {
	var f fields
	cfg, owner := f.regionConfig("config", req.GetConfig()), f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.CreateRegionResponse, error) {
		r, err := s.l.CreateRegion(ctx, owner, req.GetNumber(), cfg)
		return &ledgerv1.CreateRegionResponse{Region: ledgerpb.RegionProto(r)}, err
	})
}

// UpdateRegion sends a signed update_region.
func (c *Client) UpdateRegion(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, cfg ledger.RegionConfig) (ledger.Region, error) {
	op := fmt.Sprintf("ledgerrpc: update region %s", region)
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.UpdateRegionMessage(region, cfg, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.UpdateRegionRequest {
			return &ledgerv1.UpdateRegionRequest{RegionId: region.Bytes(), Config: regionConfigProto(cfg), Owner: s}
		}, c.c.UpdateRegion)
	return answer(op, resp.GetRegion(), err, ledgerpb.ParseRegion)
}

func (s *server) UpdateRegion(ctx context.Context, req *ledgerv1.UpdateRegionRequest) (*ledgerv1.UpdateRegionResponse, error) {
	var f fields
	region := f.key("region_id", req.GetRegionId())
	cfg, owner := f.regionConfig("config", req.GetConfig()), f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.UpdateRegionResponse, error) {
		r, err := s.l.UpdateRegion(ctx, owner, region, cfg)
		return &ledgerv1.UpdateRegionResponse{Region: ledgerpb.RegionProto(r)}, err
	})
}

// CreateUsageSigner sends a signed create_usage_signer.
func (c *Client) CreateUsageSigner(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, signer ledger.Pubkey) error {
	_, err := call(ctx, fmt.Sprintf("ledgerrpc: create usage signer of region %s", region), owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.CreateUsageSignerMessage(region, signer, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.CreateUsageSignerRequest {
			return &ledgerv1.CreateUsageSignerRequest{RegionId: region.Bytes(), UsageSigner: signer.Bytes(), Owner: s}
		}, c.c.CreateUsageSigner)
	return err
}

func (s *server) CreateUsageSigner(ctx context.Context, req *ledgerv1.CreateUsageSignerRequest) (*ledgerv1.CreateUsageSignerResponse, error) {
	var f fields
	region, signer := f.key("region_id", req.GetRegionId()), f.key("usage_signer", req.GetUsageSigner())
	owner := f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.CreateUsageSignerResponse, error) {
		return &ledgerv1.CreateUsageSignerResponse{}, s.l.CreateUsageSigner(ctx, owner, region, signer)
	})
}

func escrowProto(e ledger.Escrow) *ledgerv1.Escrow {
	return &ledgerv1.Escrow{Developer: e.Developer.Bytes(), ProviderId: e.Provider.Bytes(), Balance: e.Balance, Overdrawn: e.Overdrawn}
}

func parseEscrow(m *ledgerv1.Escrow) (ledger.Escrow, error) {
	var f fields
	if !f.present("escrow", m != nil) {
		return ledger.Escrow{}, f.err
	}
	e := ledger.Escrow{
		Developer: f.key("escrow.developer", m.GetDeveloper()),
		Provider:  f.key("escrow.provider_id", m.GetProviderId()),
		Balance:   m.GetBalance(),
		Overdrawn: m.GetOverdrawn(),
	}
	return e, f.err
}

// CreateEscrow sends a signed create_escrow.
func (c *Client) CreateEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey) (ledger.Escrow, error) {
	op := fmt.Sprintf("ledgerrpc: create escrow with provider %s", provider)
	resp, err := call(ctx, op, developer,
		func(pk ledger.Pubkey) ([]byte, error) { return local.CreateEscrowMessage(provider, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.CreateEscrowRequest {
			return &ledgerv1.CreateEscrowRequest{ProviderId: provider.Bytes(), Developer: s}
		}, c.c.CreateEscrow)
	return answer(op, resp.GetEscrow(), err, parseEscrow)
}

func (s *server) CreateEscrow(ctx context.Context, req *ledgerv1.CreateEscrowRequest) (*ledgerv1.CreateEscrowResponse, error) {
	var f fields
	provider, dev := f.key("provider_id", req.GetProviderId()), f.signer("developer", req.GetDeveloper())
	return apply(ctx, &f, func() (*ledgerv1.CreateEscrowResponse, error) {
		e, err := s.l.CreateEscrow(ctx, dev, provider)
		return &ledgerv1.CreateEscrowResponse{Escrow: escrowProto(e)}, err
	})
}

// RechargeEscrow sends a signed recharge_escrow.
func (c *Client) RechargeEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	op := fmt.Sprintf("ledgerrpc: recharge escrow with provider %s", provider)
	resp, err := call(ctx, op, developer,
		func(pk ledger.Pubkey) ([]byte, error) { return local.RechargeEscrowMessage(provider, amount, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.RechargeEscrowRequest {
			return &ledgerv1.RechargeEscrowRequest{ProviderId: provider.Bytes(), Amount: amount, Developer: s}
		}, c.c.RechargeEscrow)
	return answer(op, resp.GetEscrow(), err, parseEscrow)
}

func (s *server) RechargeEscrow(ctx context.Context, req *ledgerv1.RechargeEscrowRequest) (*ledgerv1.RechargeEscrowResponse, error) {
	var f fields
	provider, dev := f.key("provider_id", req.GetProviderId()), f.signer("developer", req.GetDeveloper())
	return apply(ctx, &f, func() (*ledgerv1.RechargeEscrowResponse, error) {
		e, err := s.l.RechargeEscrow(ctx, dev, provider, req.GetAmount())
		return &ledgerv1.RechargeEscrowResponse{Escrow: escrowProto(e)}, err
	})
}

// WithdrawEscrow sends a signed withdraw_escrow.
func (c *Client) WithdrawEscrow(ctx context.Context, developer ledger.Signer, provider ledger.Pubkey, amount uint64) (ledger.Escrow, error) {
	op := fmt.Sprintf("ledgerrpc: withdraw from escrow with provider %s", provider)
	resp, err := call(ctx, op, developer,
		func(pk ledger.Pubkey) ([]byte, error) { return local.WithdrawEscrowMessage(provider, amount, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.WithdrawEscrowRequest {
			return &ledgerv1.WithdrawEscrowRequest{ProviderId: provider.Bytes(), Amount: amount, Developer: s}
		}, c.c.WithdrawEscrow)
	return answer(op, resp.GetEscrow(), err, parseEscrow)
}

func (s *server) WithdrawEscrow(ctx context.Context, req *ledgerv1.WithdrawEscrowRequest) (*ledgerv1.WithdrawEscrowResponse, error) {
	var f fields
	provider, dev := f.key("provider_id", req.GetProviderId()), f.signer("developer", req.GetDeveloper())
	return apply(ctx, &f, func() (*ledgerv1.WithdrawEscrowResponse, error) {
		e, err := s.l.WithdrawEscrow(ctx, dev, provider, req.GetAmount())
		return &ledgerv1.WithdrawEscrowResponse{Escrow: escrowProto(e)}, err
	})
}

// CreateStack sends a signed create_stack.
func (c *Client) CreateStack(ctx context.Context, owner ledger.Signer, region ledger.Pubkey, seed uint64, manifest []byte) (ledger.Stack, error) {
	op := fmt.Sprintf("ledgerrpc: create stack %d in region %s", seed, region)
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.CreateStackMessage(region, seed, manifest, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.CreateStackRequest {
			return &ledgerv1.CreateStackRequest{RegionId: region.Bytes(), Seed: seed, Manifest: manifest, Owner: s}
		}, c.c.CreateStack)
	return answer(op, resp.GetStack(), err, ledgerpb.ParseStack)
}

func (s *server) CreateStack(ctx context.Context, req *ledgerv1.CreateStackRequest) (*ledgerv1.CreateStackResponse, error) {
	var f fields
	region, owner := f.key("region_id", req.GetRegionId()), f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.CreateStackResponse, error) {
		st, err := s.l.CreateStack(ctx, owner, region, req.GetSeed(), req.GetManifest())
		return &ledgerv1.CreateStackResponse{Stack: ledgerpb.StackProto(st)}, err
	})
}

// UpdateStack sends a signed update_stack.
func (c *Client) UpdateStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey, manifest []byte) (ledger.Stack, error) {
	op := fmt.Sprintf("ledgerrpc: update stack %s", stack)
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.UpdateStackMessage(stack, manifest, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.UpdateStackRequest {
			return &ledgerv1.UpdateStackRequest{StackId: stack.Bytes(), Manifest: manifest, Owner: s}
		}, c.c.UpdateStack)
	return answer(op, resp.GetStack(), err, ledgerpb.ParseStack)
}

func (s *server) UpdateStack(ctx context.Context, req *ledgerv1.UpdateStackRequest) (*ledgerv1.UpdateStackResponse, error) {
	var f fields
	stack, owner := f.key("stack_id", req.GetStackId()), f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.UpdateStackResponse, error) {
		st, err := s.l.UpdateStack(ctx, owner, stack, req.GetManifest())
		return &ledgerv1.UpdateStackResponse{Stack: ledgerpb.StackProto(st)}, err
	})
}

// DeleteStack sends a signed delete_stack.
func (c *Client) DeleteStack(ctx context.Context, owner ledger.Signer, stack ledger.Pubkey) (ledger.Stack, error) {
	op := fmt.Sprintf("ledgerrpc: delete stack %s", stack)
	resp, err := call(ctx, op, owner,
		func(pk ledger.Pubkey) ([]byte, error) { return local.DeleteStackMessage(stack, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.DeleteStackRequest {
			return &ledgerv1.DeleteStackRequest{StackId: stack.Bytes(), Owner: s}
		}, c.c.DeleteStack)
	return answer(op, resp.GetStack(), err, ledgerpb.ParseStack)
}

func (s *server) DeleteStack(ctx context.Context, req *ledgerv1.DeleteStackRequest) (*ledgerv1.DeleteStackResponse, error) {
	var f fields
	stack, owner := f.key("stack_id", req.GetStackId()), f.signer("owner", req.GetOwner())
	return apply(ctx, &f, func() (*ledgerv1.DeleteStackResponse, error) {
		st, err := s.l.DeleteStack(ctx, owner, stack)
		return &ledgerv1.DeleteStackResponse{Stack: ledgerpb.StackProto(st)}, err
	})
}

// UpdateUsage has signer sign the local ledger's update_usage message for
// (stack, seed, u) and sends it; see ledger.Writer.UpdateUsage. Besides
// the errors every write has: ErrReplayedSeed, ErrNotFound, ErrOverflow,
// ErrInvalidArgument. On ErrUnavailable retry with the same seed.
func (c *Client) UpdateUsage(ctx context.Context, signer ledger.Signer, stack ledger.Pubkey, seed ledger.Uint128, u ledger.Usage) (ledger.UsageResult, error) {
	op := fmt.Sprintf("ledgerrpc: update usage of stack %s seed %s", stack, seed)
	resp, err := call(ctx, op, signer,
		func(pk ledger.Pubkey) ([]byte, error) { return local.UpdateUsageMessage(stack, seed, u, pk) },
		func(s *ledgerv1.Signature) *ledgerv1.UpdateUsageRequest {
			req := &ledgerv1.UpdateUsageRequest{StackId: stack.Bytes(), Seed: toU128(seed), Signer: s}
			for unit := ledger.Unit(0); unit < ledger.NumUnits; unit++ {
				if a := u.Amount(unit); !a.IsZero() {
					req.Usage = append(req.Usage, &ledgerv1.UsageAmount{Kind: unit.Kind(), Amount: toU128(a)})
				}
			}
			return req
		}, c.c.UpdateUsage)
	if err != nil {
		return ledger.UsageResult{}, err
	}
	return ledger.UsageResult{
		Due:        fromU128(resp.GetDue()),
		Charged:    resp.GetCharged(),
		Commission: resp.GetCommission(),
		Shortfall:  fromU128(resp.GetShortfall()),
		Slot:       resp.GetSlot(),
	}, nil
}

// UpdateUsage validates the request and applies it to the hosted ledger.
// A missing stack keeps its STACK_NOT_FOUND reason.
func (s *server) UpdateUsage(ctx context.Context, req *ledgerv1.UpdateUsageRequest) (*ledgerv1.UpdateUsageResponse, error) {
	var f fields
	stack := f.key("stack_id", req.GetStackId())
	f.present("seed", req.GetSeed() != nil)
	u := f.usage("usage", req.GetUsage())
	signer := f.signer("signer", req.GetSigner())
	if f.err != nil {
		return nil, f.invalid()
	}
	res, err := s.l.UpdateUsage(ctx, signer, stack, fromU128(req.GetSeed()), u)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil, rpcerr.Errorf(codes.NotFound, rpcerr.StackNotFound, "%v", err)
	case err != nil:
		return nil, toStatus(ctx, err)
	}
	return &ledgerv1.UpdateUsageResponse{
		Due:        toU128(res.Due),
		Charged:    res.Charged,
		Commission: res.Commission,
		Shortfall:  toU128(res.Shortfall),
		Slot:       res.Slot,
	}, nil
}

// usage reads the usage amounts: every kind known, none listed twice.
func (f *fields) usage(field string, amounts []*ledgerv1.UsageAmount) ledger.Usage {
	var u ledger.Usage
	var first [ledger.NumUnits]int
	for i, a := range amounts {
		unit, ok := ledger.UnitOf(a.GetKind())
		if !ok {
			f.fail("%s[%d].kind: unknown usage kind %v", field, i, a.GetKind())
			return u
		}
		if first[unit] != 0 {
			f.fail("%s[%d].kind: %v listed twice (first at %s[%d])", field, i, a.GetKind(), field, first[unit]-1)
			return u
		}
		first[unit] = i + 1
		u.Set(unit, fromU128(a.GetAmount()))
	}
	return u
}
