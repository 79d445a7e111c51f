package cmd

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/libs/ledger/ledgerpb"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

func newListCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List the marketplace's providers and regions, with prices side by side",
	}
	var pf *regionFlags
	var all bool
	providers := &cobra.Command{
		Use:   "providers",
		Short: "List providers (authorized ones; --all for every one) with their regions' count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, pf, false)
			if err != nil {
				return err
			}
			defer s.Close()
			ps, err := s.providers(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.regions(cmd.Context(), nil)
			if err != nil {
				return err
			}
			count := map[string]int{}
			for _, r := range rs {
				count[string(r.GetProviderId())]++
			}
			var views []providerJSON
			for _, p := range ps {
				if all || p.GetAuthorized() {
					v := providerView(p)
					v.Regions = count[string(p.GetId())]
					views = append(views, v)
				}
			}
			if s.t.output == "json" {
				if views == nil {
					views = []providerJSON{}
				}
				return printJSON(cmd.OutOrStdout(), views)
			}
			if len(views) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no providers (mu list providers --all shows unauthorized ones too)")
				return nil
			}
			rows := [][]string{{"PROVIDER", "NAME", "AUTHORIZED", "REGIONS", "OWNER"}}
			for _, v := range views {
				rows = append(rows, []string{v.ID, v.Name, fmt.Sprint(v.Authorized), fmt.Sprint(v.Regions), v.Owner})
			}
			printTable(cmd.OutOrStdout(), rows)
			return nil
		},
	}
	providers.Flags().BoolVar(&all, "all", false, "also list providers not authorized yet")
	pf = addRegionFlags(providers, true)

	var rf *regionFlags
	var provider, only string
	regions := &cobra.Command{
		Use:   "regions",
		Short: "List regions with every price in the ledger's units and a sample cost",
		Long: `Regions lists every region (or one provider's, or one region) with its prices
in token base units per the same quantities for all (per 10^12
MB-instructions, per million reads, writes and requests, per GiB of traffic,
per GiB-month stored), its minimum escrow, and what ` + sampleWorkload.name + ` cost
there: one examples/hello GET is 1 gateway request, 194 bytes of traffic
and 49,886 instructions at 64 MiB.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd, rf, false)
			if err != nil {
				return err
			}
			defer s.Close()
			byID, err := s.providersByID(cmd.Context())
			if err != nil {
				return err
			}
			var pid []byte
			if provider != "" {
				p, err := s.findProvider(cmd.Context(), provider)
				if err != nil {
					return err
				}
				pid = p.GetId()
			}
			var rs []*chainindexerv1.Region
			if only != "" {
				r, err := s.findRegion(cmd.Context(), pid, only)
				if err != nil {
					return err
				}
				rs = []*chainindexerv1.Region{r}
			} else if rs, err = s.regions(cmd.Context(), pid); err != nil {
				return err
			}
			if s.t.output == "json" {
				return printJSON(cmd.OutOrStdout(), regionViews(rs, byID))
			}
			if len(rs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no regions")
				return nil
			}
			printRegionTable(cmd.OutOrStdout(), rs, byID)
			return nil
		},
	}
	regions.Flags().StringVar(&provider, "provider", "", "only this provider's regions (id or name)")
	regions.Flags().StringVar(&only, "region", "", "only this region (id, name or number)")
	rf = addRegionFlags(regions, true)
	c.AddCommand(providers, regions)
	return c
}

// providerJSON is a provider in listings.
type providerJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Owner      string `json:"owner"`
	Deposit    uint64 `json:"deposit"`
	Authorized bool   `json:"authorized"`
	Regions    int    `json:"regions"`
}

func providerView(p *chainindexerv1.Provider) providerJSON {
	return providerJSON{ID: ledger.Pubkey(p.GetId()).String(), Name: p.GetName(), Owner: ledger.Pubkey(p.GetOwner()).String(), Deposit: p.GetDeposit(), Authorized: p.GetAuthorized()}
}

// regionJSON is a region in listings: prices in base units per the
// ledger's quantity, keyed as in a rates file.
type regionJSON struct {
	ID           string            `json:"id"`
	Provider     string            `json:"provider"`
	ProviderName string            `json:"provider_name,omitempty"`
	Number       uint32            `json:"number"`
	Name         string            `json:"name"`
	BaseURL      string            `json:"base_url"`
	MinEscrow    uint64            `json:"min_escrow"`
	UsageSigner  string            `json:"usage_signer,omitempty"`
	Rates        map[string]uint64 `json:"rates"`
	RateUnits    map[string]string `json:"rate_units"`
	Sample       string            `json:"sample"`
	SampleCost   string            `json:"sample_cost"` // base units, to two decimals
}

func regionViews(rs []*chainindexerv1.Region, providers map[string]*chainindexerv1.Provider) []regionJSON {
	out := []regionJSON{}
	for _, r := range rs {
		rates := ledgerpb.ParseRates(r.GetRates())
		v := regionJSON{
			ID: ledger.Pubkey(r.GetId()).String(), Provider: ledger.Pubkey(r.GetProviderId()).String(), Number: r.GetRegionNum(),
			Name: r.GetName(), BaseURL: r.GetBaseUrl(), MinEscrow: r.GetMinEscrowBalance(),
			Rates: map[string]uint64{}, RateUnits: map[string]string{},
			Sample: sampleWorkload.name, SampleCost: sampleCost(rates).FloatString(2),
		}
		if p := providers[string(r.GetProviderId())]; p != nil {
			v.ProviderName = p.GetName()
		}
		if len(r.GetUsageSigner()) == 32 && !ledger.Pubkey(r.GetUsageSigner()).IsZero() {
			v.UsageSigner = ledger.Pubkey(r.GetUsageSigner()).String()
		}
		for _, k := range rateKeys {
			v.Rates[k.key] = rates.Rate(k.unit)
			v.RateUnits[k.key] = k.label
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].ProviderName != out[j].ProviderName {
			return out[i].ProviderName < out[j].ProviderName
		}
		return out[i].Number < out[j].Number
	})
	return out
}

// printRegionTable prints regions side by side: one column per region,
// one row per price, so providers compare at a glance.
func printRegionTable(w io.Writer, rs []*chainindexerv1.Region, providers map[string]*chainindexerv1.Provider) {
	views := regionViews(rs, providers)
	head := []string{""}
	for _, v := range views {
		name := v.Name
		if v.ProviderName != "" {
			name = v.ProviderName + "/" + v.Name
		}
		head = append(head, name)
	}
	rows := [][]string{head}
	add := func(label string, cell func(v regionJSON) string) {
		row := []string{label}
		for _, v := range views {
			row = append(row, cell(v))
		}
		rows = append(rows, row)
	}
	add("region", func(v regionJSON) string { return v.ID })
	add("number", func(v regionJSON) string { return fmt.Sprint(v.Number) })
	add("url", func(v regionJSON) string { return v.BaseURL })
	add("usage signer", func(v regionJSON) string {
		if v.UsageSigner == "" {
			return "none (cannot bill: no deploys)"
		}
		return v.UsageSigner
	})
	add("min escrow", func(v regionJSON) string { return groupDigits(fmt.Sprint(v.MinEscrow)) })
	for _, k := range rateKeys {
		add(k.key+" /"+k.label, func(v regionJSON) string { return groupDigits(fmt.Sprint(v.Rates[k.key])) })
	}
	add(sampleWorkload.name+" ≈", func(v regionJSON) string { return v.SampleCost })
	printTable(w, rows)
	fmt.Fprintln(w, "prices in token base units")
}
