package cmd

import (
	"bytes"
	"context"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/muprotocol/mu/libs/ids"
	billingv1 "github.com/muprotocol/mu/proto/mu/billing/v1"
	typesv1 "github.com/muprotocol/mu/proto/mu/types/v1"
)

// TestMain keeps every test of the package (mu run, mu cluster up) from
// recording regions in the real user's state directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mu-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("MU_STATE_DIR", dir)
	// Nor read or write the user's profiles and keys.
	os.Setenv("MU_CONFIG_DIR", filepath.Join(dir, "config"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeBilling is a BillingService answering GetUsage with resp.
type fakeBilling struct {
	billingv1.UnimplementedBillingServiceServer
	resp *billingv1.GetUsageResponse
	mu   sync.Mutex
	got  []*billingv1.GetUsageRequest
}

func (f *fakeBilling) GetUsage(_ context.Context, req *billingv1.GetUsageRequest) (*billingv1.GetUsageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	return f.resp, nil
}

func (f *fakeBilling) requests() []*billingv1.GetUsageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*billingv1.GetUsageRequest(nil), f.got...)
}

// serveBilling serves f on 127.0.0.1:0 and returns its address.
func serveBilling(t *testing.T, f *fakeBilling) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	billingv1.RegisterBillingServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func u(x uint64) *typesv1.Uint128 { return &typesv1.Uint128{Lo: x} }

func total(k typesv1.UsageKind, amount, cost uint64) *billingv1.UsageTotal {
	return &billingv1.UsageTotal{Kind: k, Amount: u(amount), Cost: u(cost)}
}

var testStack = ids.StackID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func fullResponse() *billingv1.GetUsageResponse {
	region := bytes.Repeat([]byte{7}, 32)
	return &billingv1.GetUsageResponse{
		Totals: []*billingv1.UsageTotal{
			total(typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS, 1_234_567_890_123, 1234),
			total(typesv1.UsageKind_USAGE_KIND_DB_READS, 1_500_000, 10),
			total(typesv1.UsageKind_USAGE_KIND_DB_WRITES, 42, 0),
			total(typesv1.UsageKind_USAGE_KIND_DB_STORED_BYTE_SECONDS, 5*3600<<30, 0),
			total(typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, 12_345, 3),
			total(typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES, 3<<19, 0),
			total(typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS, 1800, 0),
			total(typesv1.UsageKind_USAGE_KIND_STORAGE_TRAFFIC_BYTES, 999, 0),
		},
		Unsettled: []*billingv1.UsageTotal{
			total(typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS, 950, 0),
			total(typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, 45, 0),
		},
		RegionId: region,
		Rates:    &typesv1.Rates{FunctionPerTeraMbInstructions: 1000},
		Escrow: &billingv1.EscrowStatus{
			Balance: 98_765, MinEscrowBalance: 1000, Enabled: true, BurnPerHour: 120,
			TimeLeft: durationpb.New(814*time.Hour + 42*time.Minute + 30*time.Second), BurnWindow: durationpb.New(time.Hour),
		},
	}
}

func TestUsage_PrintsReadableUnitsCostsAndEscrow(t *testing.T) {
	f := &fakeBilling{resp: fullResponse()}
	addr := serveBilling(t, f)
	var out, errb bytes.Buffer
	code := Run(t.Context(), []string{"usage", testStack.String(), "--billing", addr, "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-02T12:30:00Z"}, nil, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := `stack 4wBqpZM9xaSheZzJSMawUKKwhdpChKbZ5eu5ky4Vigw, from 2026-12-01T00:00:00Z to 2026-12-02T12:30:00Z
region US517G5965aydkZ46HS38QLi7UQiSojurfbQfKCELFx
KIND                              AMOUNT            UNSETTLED   COST
function work     1.23 T MB-instructions  950 MB-instructions  1,234
db reads                 1,500,000 reads                    0     10
db writes                      42 writes                    0      0
db stored                 5.00 GiB-hours                    0      0
gateway requests         12,345 requests          45 requests      3
gateway traffic                 1.50 MiB                    0      0
storage stored         1800 byte-seconds                    0      0
storage traffic                    999 B                    0      0
total                                                          1,247
costs in token base units at the region's current rates
escrow: balance 98,765, minimum 1,000, burn 120/hour over the last 1h0m0s, time left 814h43m0s, stack enabled
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d GetUsage calls, want 1", len(reqs))
	}
	want0 := &billingv1.GetUsageRequest{
		StackId:   testStack.Bytes(),
		StartTime: timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
		EndTime:   timestamppb.New(time.Date(2026, 12, 2, 12, 30, 0, 0, time.UTC)),
	}
	if !proto.Equal(reqs[0], want0) {
		t.Errorf("request %v, want %v", reqs[0], want0)
	}
}

func TestUsage_EmptyAndUnknownRatesAndDisabledEscrow(t *testing.T) {
	f := &fakeBilling{resp: &billingv1.GetUsageResponse{}}
	addr := serveBilling(t, f)
	var out, errb bytes.Buffer
	if code := Run(t.Context(), []string{"usage", testStack.String(), "--billing", addr}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := "stack " + testStack.String() + ", all time\nno usage in the period\n"; out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}

	f.resp = &billingv1.GetUsageResponse{
		Totals: []*billingv1.UsageTotal{{Kind: typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, Amount: u(1)}},
		Escrow: &billingv1.EscrowStatus{Balance: 5, MinEscrowBalance: 100, BurnPerHour: 1, TimeLeft: durationpb.New(0), BurnWindow: durationpb.New(time.Hour)},
	}
	out.Reset()
	if code := Run(t.Context(), []string{"usage", testStack.String(), "--billing", addr}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "stack " + testStack.String() + `, all time
KIND                  AMOUNT  UNSETTLED  COST
gateway requests  1 requests          0     -
total                                       -
costs: billing does not know the region's rates
escrow: balance 5, minimum 100, burn 1/hour over the last 1h0m0s, time left none: under the minimum, stack DISABLED (the gateway answers 402 until a recharge)
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestUsage_JSONIsTheResponse(t *testing.T) {
	f := &fakeBilling{resp: fullResponse()}
	addr := serveBilling(t, f)
	for _, flag := range [][]string{{"--json"}, {"-o", "json"}} {
		var out, errb bytes.Buffer
		if code := Run(t.Context(), append([]string{"usage", testStack.String(), "--billing", addr}, flag...), nil, &out, &errb); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", flag, code, errb.String())
		}
		var got billingv1.GetUsageResponse
		if err := protojson.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v: not protojson: %v\n%s", flag, err, out.String())
		}
		if !proto.Equal(&got, f.resp) {
			t.Fatalf("%v printed %v, billing answered %v", flag, &got, f.resp)
		}
	}
	var out, errb bytes.Buffer
	if code := Run(t.Context(), []string{"usage", testStack.String(), "--billing", addr, "-o", "yaml"}, nil, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "want text or json") {
		t.Fatalf("-o yaml: exit %d: %s", code, errb.String())
	}
}

func TestUsage_DefaultsToTheRecordedRegion(t *testing.T) {
	t.Setenv("MU_STATE_DIR", t.TempDir())
	f := &fakeBilling{resp: &billingv1.GetUsageResponse{}}
	addr := serveBilling(t, f)
	if _, err := writeRegionFile(regionFile{StartedBy: "mu run", PID: 1, Billing: addr}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Run(t.Context(), []string{"usage", testStack.String(), "--from", "24h"}, nil, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d calls to the recorded billing address, want 1", len(reqs))
	}
	if ago := time.Since(reqs[0].GetStartTime().AsTime()); ago < 24*time.Hour || ago > 24*time.Hour+time.Minute || reqs[0].GetEndTime() != nil {
		t.Errorf("--from 24h sent start %v (%s ago), end %v", reqs[0].GetStartTime().AsTime(), ago, reqs[0].GetEndTime())
	}
}

func TestUsage_ErrorsSayWhatToDo(t *testing.T) {
	state := t.TempDir()
	t.Setenv("MU_STATE_DIR", state)
	down := func() string { // an address nothing listens on
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		return lis.Addr().String()
	}()
	for _, tc := range []struct {
		name   string
		before func()
		args   []string
		want   string
	}{
		{"no region and no --billing", nil, []string{"usage", testStack.String()},
			"mu: no local region recorded (" + filepath.Join(state, "region.json") + " does not exist): start a local region with 'mu run' (or 'mu cluster up'), or pass --billing ADDR\n"},
		{"recorded region without billing", func() {
			if _, err := writeRegionFile(regionFile{StartedBy: "mu cluster up"}); err != nil {
				t.Fatal(err)
			}
		}, []string{"usage", testStack.String()},
			"mu: the local region recorded in " + filepath.Join(state, "region.json") + " (started by mu cluster up) has no billing service address; pass --billing ADDR\n"},
		{"bad stack id", nil, []string{"usage", "not-base58!", "--billing", "127.0.0.1:1"},
			"mu: STACK \"not-base58!\" is not a stack id (32 bytes in base58, as mu run prints): "},
		{"short stack id", nil, []string{"usage", "3mJr7AoUXx2Wqd", "--billing", "127.0.0.1:1"},
			"mu: STACK \"3mJr7AoUXx2Wqd\" is not a stack id (32 bytes in base58, as mu run prints): "},
		{"bad --from", nil, []string{"usage", testStack.String(), "--billing", "127.0.0.1:1", "--from", "yesterday"},
			"mu: --from \"yesterday\": want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)\n"},
		{"negative --to", nil, []string{"usage", testStack.String(), "--billing", "127.0.0.1:1", "--to", "-1h"},
			"mu: --to \"-1h\": a duration means that long ago and must not be negative\n"},
		{"empty period", nil, []string{"usage", testStack.String(), "--billing", "127.0.0.1:1", "--from", "1h", "--to", "2h"},
			"mu: --from "},
		{"billing down", nil, []string{"usage", testStack.String(), "--billing", down, "--timeout", "3s"},
			"mu: billing at " + down + " did not answer (is the region running?): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			var out, errb bytes.Buffer
			code := Run(t.Context(), tc.args, nil, &out, &errb)
			if code != ExitUsage || !strings.HasPrefix(errb.String(), tc.want) || out.Len() != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and stderr starting %q", code, out.String(), errb.String(), ExitUsage, tc.want)
			}
		})
	}
}

func TestFormatAmount_ReadableUnits(t *testing.T) {
	k := typesv1.UsageKind_USAGE_KIND_GATEWAY_TRAFFIC_BYTES
	mbi := typesv1.UsageKind_USAGE_KIND_FUNCTION_MB_INSTRUCTIONS
	bs := typesv1.UsageKind_USAGE_KIND_STORAGE_STORED_BYTE_SECONDS
	huge := new(big.Int).Lsh(big.NewInt(1), 127)
	for _, tc := range []struct {
		kind typesv1.UsageKind
		x    *big.Int
		want string
	}{
		{k, big.NewInt(0), "0 B"},
		{k, big.NewInt(1023), "1023 B"},
		{k, big.NewInt(1024), "1.00 KiB"},
		{k, big.NewInt(10 << 20), "10.0 MiB"},
		{k, big.NewInt(300 << 30), "300 GiB"},
		{mbi, big.NewInt(999), "999 MB-instructions"},
		{mbi, big.NewInt(1500), "1.50 k MB-instructions"},
		{mbi, big.NewInt(42_000_000_000), "42.0 G MB-instructions"},
		{mbi, huge, "170141183460469 Y MB-instructions"},
		{bs, big.NewInt(3599), "3599 byte-seconds"},
		{bs, big.NewInt(3600), "1 B-hours"},
		{bs, big.NewInt(2 * 3600 << 20), "2.00 MiB-hours"},
		{typesv1.UsageKind_USAGE_KIND_DB_WRITES, big.NewInt(1_000_000), "1,000,000 writes"},
		{typesv1.UsageKind_USAGE_KIND_GATEWAY_REQUESTS, huge, "170,141,183,460,469,231,731,687,303,715,884,105,728 requests"},
	} {
		if got := formatAmount(tc.kind, tc.x); got != tc.want {
			t.Errorf("%v %s: %q, want %q", tc.kind, tc.x, got, tc.want)
		}
	}
}

func TestStateDir_Precedence(t *testing.T) {
	t.Setenv("MU_STATE_DIR", "")
	t.Setenv("HOME", "/home/dev")
	t.Setenv("XDG_STATE_HOME", "")
	if d, _ := stateDir(); d != "/home/dev/.local/state/mu" {
		t.Errorf("without XDG_STATE_HOME: %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	if d, _ := stateDir(); d != "/home/dev/.local/state/mu" {
		t.Errorf("with a relative XDG_STATE_HOME (the spec says to ignore it): %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if d, _ := stateDir(); d != "/xdg/state/mu" {
		t.Errorf("with XDG_STATE_HOME: %s", d)
	}
	t.Setenv("MU_STATE_DIR", "/tmp/mu-test")
	if p, _ := regionFilePath(); p != "/tmp/mu-test/region.json" {
		t.Errorf("with MU_STATE_DIR: %s", p)
	}
}

func TestRegionFile_RemovedOnlyByItsOwner(t *testing.T) {
	t.Setenv("MU_STATE_DIR", filepath.Join(t.TempDir(), "nested", "state"))
	mine := regionFile{StartedBy: "mu run", PID: 10, Started: time.Now().UTC(), Billing: "127.0.0.1:1"}
	path, err := writeRegionFile(mine)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readRegionFile()
	if err != nil || got.Billing != mine.Billing || !got.Started.Equal(mine.Started) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	removeRegionFile(func(f regionFile) bool { return f.PID == 11 })
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("another process's exit removed the file: %v", err)
	}
	removeRegionFile(func(f regionFile) bool { return f.PID == 10 })
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the owner's exit left the file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
