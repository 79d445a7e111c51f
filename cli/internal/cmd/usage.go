package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/ledger"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

func newUsageCommand() *cobra.Command {
	var billing, from, to, output string
	var asJSON bool
	var timeout time.Duration
	var tf *tlsFlags // set below, with the other flags
	cmd := &cobra.Command{
		Use:   "usage STACK",
		Short: "Show a stack's usage, its cost and its escrow",
		Long: `Usage asks the billing service for the usage of STACK (a base58 stack id)
over a period and prints it per kind in readable units — requests, bytes
(KiB, MiB, GiB: powers of 1024), megabyte-instructions (k, M, G: powers of
1000), muDB reads and writes, stored bytes over time (byte-hours) — with
the part not yet settled on the ledger and the cost in token base units
at the region's rates, then the escrow: balance, the region's minimum,
the recent burn per hour and the time left at that rate.

--from and --to take an RFC 3339 time (2026-01-02T15:04:05Z) or a duration
meaning that long ago (24h, 90m); the period is [from, to). Without
--billing, mu usage asks the profile's billing (--profile, else the current
profile; see mu config), else the local region that 'mu run' or 'mu cluster
up' started (its addresses are recorded in region.json under the user's
state directory). --json prints billing's answer as protojson, with exact
amounts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := selectProfile(cmd)
			if err != nil {
				return err
			}
			if billing == "" {
				billing = sel.profile.Billing
			}
			ctls, err := resolveTLS(tf, sel.profile, sel.name)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				asJSON = true
			case "text":
			default:
				return &exitError{code: ExitUsage, err: fmt.Errorf("--output %q: want text or json", output)}
			}
			return showUsage(cmd.Context(), cmd.OutOrStdout(), args[0], billing, ctls, from, to, asJSON, timeout, time.Now())
		},
	}
	cmd.Flags().StringVar(&billing, "billing", "", "gRPC address of the billing service (default: the local region's, from region.json)")
	cmd.Flags().StringVar(&from, "from", "", "start of the period, inclusive: RFC 3339 or a duration ago such as 24h (default: no lower bound)")
	cmd.Flags().StringVar(&to, "to", "", "end of the period, exclusive: RFC 3339 or a duration ago (default: now, no upper bound)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print billing's GetUsage response as protojson (the same as --output json)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (billing's GetUsage response as protojson)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for billing's answer")
	tf = addTLSFlags(cmd.Flags())
	return cmd
}

// parseWhen reads a --from/--to value: RFC 3339, or a non-negative
// duration meaning that long before now. Empty is no bound (nil).
func parseWhen(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)", flag, v)
	}
	if d < 0 {
		return nil, fmt.Errorf("--%s %q: a duration means that long ago and must not be negative", flag, v)
	}
	return timestamppb.New(now.Add(-d)), nil
}

func showUsage(ctx context.Context, stdout io.Writer, stack, billing string, ctls *clientTLS, from, to string, asJSON bool, timeout time.Duration, now time.Time) error {
	id, err := ids.ParseStackID(stack)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("STACK %q is not a stack id (32 bytes in base58, as mu run prints): %v", stack, err)}
	}
	req := &billingv1.GetUsageRequest{StackId: id.Bytes()}
	if req.StartTime, err = parseWhen("from", from, now); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if req.EndTime, err = parseWhen("to", to, now); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if req.StartTime != nil && req.EndTime != nil && !req.StartTime.AsTime().Before(req.EndTime.AsTime()) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--from %s is not before --to %s", fmtTime(req.StartTime), fmtTime(req.EndTime))}
	}
	if timeout <= 0 {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--timeout must be positive, got %s", timeout)}
	}
	if billing == "" {
		rec, path, err := readRegionFile()
		switch {
		case errors.Is(err, errNoRegionFile):
			return &exitError{code: ExitUsage, err: fmt.Errorf("%v: start a local region with 'mu run' (or 'mu cluster up'), or pass --billing ADDR", err)}
		case err != nil:
			return &exitError{code: ExitUsage, err: fmt.Errorf("read the local region's addresses: %w; pass --billing ADDR", err)}
		case rec.Billing == "":
			return &exitError{code: ExitUsage, err: fmt.Errorf("the local region recorded in %s (started by %s) has no billing service address; pass --billing ADDR", path, rec.StartedBy)}
		}
		billing = rec.Billing
	}
	cc, err := grpc.NewClient(billing, ctls.dialOption(certs.RoleBilling))
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("--billing %q: %w", billing, err)}
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := billingv1.NewBillingServiceClient(cc).GetUsage(cctx, req)
	if err != nil {
		if terr := transportErr("billing at "+billing, err); terr != nil {
			return terr
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
			return &exitError{code: ExitUsage, err: fmt.Errorf("billing at %s did not answer (is the region running?): %v", billing, status.Convert(err).Message())}
		}
		return &exitError{code: ExitUsage, err: fmt.Errorf("billing at %s: %s: %s", billing, status.Code(err), status.Convert(err).Message())}
	}
	if asJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(resp)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	printUsageTable(stdout, id, req, resp)
	return nil
}

func fmtTime(t *timestamppb.Timestamp) string { return t.AsTime().UTC().Format(time.RFC3339) }

// printUsageTable prints resp for people.
func printUsageTable(w io.Writer, id ids.StackID, req *billingv1.GetUsageRequest, resp *billingv1.GetUsageResponse) {
	period := "all time"
	switch {
	case req.StartTime != nil && req.EndTime != nil:
		period = "from " + fmtTime(req.StartTime) + " to " + fmtTime(req.EndTime)
	case req.StartTime != nil:
		period = "since " + fmtTime(req.StartTime)
	case req.EndTime != nil:
		period = "until " + fmtTime(req.EndTime)
	}
	fmt.Fprintf(w, "stack %s, %s\n", id, period)
	if len(resp.GetRegionId()) == 32 {
		fmt.Fprintf(w, "region %s\n", ledger.Pubkey(resp.GetRegionId()))
	}
	if len(resp.GetTotals()) == 0 {
		fmt.Fprintln(w, "no usage in the period")
	} else {
		unsettled := map[typesv1.UsageKind]*billingv1.UsageTotal{}
		for _, u := range resp.GetUnsettled() {
			unsettled[u.GetKind()] = u
		}
		rows := [][]string{{"KIND", "AMOUNT", "UNSETTLED", "COST"}}
		sum, known := new(big.Int), true
		for _, t := range resp.GetTotals() {
			name, _ := kindLabel(t.GetKind())
			un := "0"
			if u, ok := unsettled[t.GetKind()]; ok {
				un = formatAmount(t.GetKind(), u128(u.GetAmount()))
			}
			cost := "-"
			if t.GetCost() != nil {
				c := u128(t.GetCost())
				cost = groupDigits(c.String())
				sum.Add(sum, c)
			} else {
				known = false
			}
			rows = append(rows, []string{name, formatAmount(t.GetKind(), u128(t.GetAmount())), un, cost})
		}
		total := "-"
		if known {
			total = groupDigits(sum.String())
		}
		rows = append(rows, []string{"total", "", "", total})
		printTable(w, rows)
		if known {
			fmt.Fprintln(w, "costs in token base units at the region's current rates")
		} else {
			fmt.Fprintln(w, "costs: billing does not know the region's rates")
		}
	}
	e := resp.GetEscrow()
	if e == nil {
		return
	}
	state := "enabled"
	if !e.GetEnabled() {
		state = "DISABLED (the gateway answers 402 until a recharge)"
	}
	left := "no burn"
	switch {
	case e.GetTimeLeft() == nil:
	case e.GetTimeLeft().AsDuration() <= 0:
		left = "none: under the minimum"
	default:
		left = e.GetTimeLeft().AsDuration().Round(time.Minute).String()
	}
	fmt.Fprintf(w, "escrow: balance %s, minimum %s, burn %s/hour over the last %s, time left %s, stack %s\n",
		groupDigits(fmt.Sprint(e.GetBalance())), groupDigits(fmt.Sprint(e.GetMinEscrowBalance())),
		groupDigits(fmt.Sprint(e.GetBurnPerHour())), e.GetBurnWindow().AsDuration(), left, state)
}

// printTable prints rows in columns two spaces apart, the first column
// aligned left and the others (numbers) right.
func printTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
				continue
			}
			b.WriteString("  " + pad + c)
		}
		fmt.Fprintln(w, b.String())
	}
}

func u128(x *typesv1.Uint128) *big.Int {
	v := new(big.Int).SetUint64(x.GetHi())
	v.Lsh(v, 64)
	return v.Or(v, new(big.Int).SetUint64(x.GetLo()))
}

// kindLabel names a usage kind for people, and its unit family.
func kindLabel(k typesv1.UsageKind) (name, family string) {
	switch k {
	case typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS:
		return "function work", "mbi"
	case typesv1.UsageKind_USAGE_KIND_DB_READS:
		return "db reads", "reads"
	case typesv1.UsageKind_USAGE_KIND_DB_WRITES:
		return "db writes", "writes"
	case typesv1.UsageKind_USAGE_KIND_DB_STORED_BYTE_SECONDS:
		return "db stored", "byte-seconds"
	case typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS:
		return "gateway requests", "requests"
	case typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES:
		return "gateway traffic", "bytes"
	case typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS:
		return "storage stored", "byte-seconds"
	case typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES:
		return "storage traffic", "bytes"
	}
	return k.String(), ""
}

// formatAmount writes an amount of kind k in readable units: counts in
// full with digit groups, bytes in powers of 1024, MB-instructions with
// SI prefixes, byte-seconds as byte-hours in powers of 1024.
func formatAmount(k typesv1.UsageKind, x *big.Int) string {
	_, family := kindLabel(k)
	switch family {
	case "requests", "reads", "writes":
		return groupDigits(x.String()) + " " + family
	case "bytes":
		return binaryUnits(x, "B")
	case "byte-seconds":
		if x.Cmp(big.NewInt(3600)) < 0 {
			return x.String() + " byte-seconds"
		}
		return binaryUnits(new(big.Int).Quo(x, big.NewInt(3600)), "B") + "-hours"
	case "mbi":
		return siUnits(x, "MB-instructions")
	}
	return x.String()
}

// binaryUnits writes x bytes as B, KiB, MiB, … with three significant
// digits (whole bytes under 1 KiB).
func binaryUnits(x *big.Int, unit string) string {
	return scaled(x, 1024, []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"}, unit, "")
}

// siUnits writes x with k, M, G, … (powers of 1000).
func siUnits(x *big.Int, unit string) string {
	return scaled(x, 1000, []string{"", "k", "M", "G", "T", "P", "E", "Z", "Y"}, unit, " ")
}

func scaled(x *big.Int, base int64, prefixes []string, unit, sep string) string {
	if x.Cmp(big.NewInt(base)) < 0 {
		return x.String() + " " + unit
	}
	f := new(big.Float).SetInt(x)
	b := new(big.Float).SetInt64(base)
	i := 0
	for i < len(prefixes)-1 && f.Cmp(b) >= 0 {
		f.Quo(f, b)
		i++
	}
	v, _ := f.Float64()
	digits := 2
	switch {
	case v >= 100:
		digits = 0
	case v >= 10:
		digits = 1
	}
	return fmt.Sprintf("%.*f %s%s%s", digits, v, prefixes[i], sep, unit)
}

// groupDigits puts a comma between groups of three digits.
func groupDigits(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
