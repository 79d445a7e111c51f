package cmd

import (
	"strings"
	"testing"
	"time"

	"github.com/muprotocol/mu/libs/ledger"
	"github.com/muprotocol/mu/region"
)

func TestParseRates_TheHelpExampleIsTheDevMarketsRates(t *testing.T) {
	rates, shown, err := parseRates("example", strings.NewReader(rateExample))
	if err != nil {
		t.Fatal(err)
	}
	if want := region.DevMarketSettings().Region.Rates; rates != want {
		t.Fatalf("the example converts to %+v, want the dev market's %+v", rates, want)
	}
	if len(shown) != len(rateKeys) || shown[4].key != "gateway_requests" || shown[4].written != "0.0002 per request" || shown[4].rate != 200 {
		t.Fatalf("shown back: %+v", shown)
	}
}

func TestRateKey_Convert(t *testing.T) {
	byKey := map[string]rateKey{}
	for _, k := range rateKeys {
		byKey[k.key] = k
	}
	for _, c := range []struct {
		key, in string
		want    uint64
		err     string
	}{
		{"gateway_requests", "200 per 1M requests", 200, ""},
		{"gateway_requests", "0.0002 per request", 200, ""},
		{"gateway_requests", "2 per 10k requests", 200, ""},
		{"gateway_requests", "1,000 per 1,000,000 requests", 1000, ""},
		{"function", "1000 per 1T MB-instructions", 1000, ""},
		{"function", "1 per 1G MB-instructions", 1000, ""},
		{"db_reads", "1 per 10k reads", 100, ""},
		{"db_writes", "0.5 per 1k writes", 500, ""},
		{"gateway_traffic", "100 per GiB", 100, ""},
		{"gateway_traffic", "1 per MiB", 1024, ""},
		{"gateway_traffic", "0.25 per 256 MiB", 1, ""},
		{"storage_traffic", "1 per 3 KiB", 0, "not a whole number"},
		{"db_stored", "1000 per GiB-month", 1000, ""},
		{"db_stored", "1 per GiB-day", 30, ""},
		{"storage_stored", "1 per MiB-month", 1024, ""},
		{"storage_stored", "1 per GiB-hour", 720, ""},
		{"gateway_requests", "0 per 1M requests", 0, ""},
		{"gateway_requests", "200 per 1M reads", 0, `unit "reads", want requests`},
		{"gateway_traffic", "1 per GB", 0, "want B, KiB, MiB, GiB or TiB"},
		{"db_stored", "1 per GiB", 0, "want SIZE-TIME"},
		{"gateway_requests", "two per request", 0, "want \"AMOUNT per QUANTITY\""},
		{"gateway_requests", "200", 0, "want \"AMOUNT per QUANTITY\""},
		{"gateway_requests", "1 per 0 requests", 0, "not a positive whole number"},
		{"gateway_traffic", "99999999999999999999 per GiB", 0, "64-bit"},
	} {
		got, err := byKey[c.key].convert(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %q: error %v, want one saying %q", c.key, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q = %d, %v; want %d", c.key, c.in, got, err, c.want)
		}
	}
}

func TestParseRates_FileErrorsNameTheKey(t *testing.T) {
	whole := rateExample
	rates, shown, err := parseRates("r.yaml", strings.NewReader(whole))
	if err != nil {
		t.Fatal(err)
	}
	if rates.StoragePerGiBTraffic != 100 || rates.GatewayPerMillionRequests != 200 || rates.DBPerGiBMonthStored != 1000 || len(shown) != 8 {
		t.Fatalf("rates %+v, %d shown", rates, len(shown))
	}
	for _, c := range []struct{ file, want string }{
		{strings.Replace(whole, "25 per 256 MiB", "0.1 per MiB", 1), "storage_traffic: \"0.1 per MiB\" is 102.4000 base units per GiB, not a whole number"},
		{strings.Replace(whole, "db_reads: 1 per 10k reads\n", "", 1), "db_reads is missing"},
		{whole + "\nfunctions: 1 per 1T MB-instructions", "unknown key functions"},
		{"", "empty"},
		{"[1, 2]", "rates file r.yaml"},
	} {
		_, _, err := parseRates("r.yaml", strings.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one saying %q", err, c.want)
		}
	}
}

func TestSampleCost_HelloAtTheDevRates(t *testing.T) {
	r := ledger.Rates{GatewayPerMillionRequests: 200, GatewayPerGiBTraffic: 100, FunctionPerTeraMBInstructions: 1000}
	// 1M requests: 200; 194e6 bytes at 100/GiB: 18.07; 1e6 × 49,886 × 64
	// MB-instructions at 1000 per 1e12: 3192.70.
	if got := sampleCost(r).FloatString(2); got != "3410.77" {
		t.Fatalf("sample cost %s, want 3410.77", got)
	}
}

func TestEtaOf_SecondsLeftAtTheRate(t *testing.T) {
	for _, c := range []struct {
		left int64
		rate float64
		want time.Duration
	}{{90 << 20, 1 << 20, 90 * time.Second}, {1 << 20, 2 << 20, time.Second}, {3 << 20, 1 << 21, 2 * time.Second}} {
		if got := etaOf(c.left, c.rate); got != c.want {
			t.Errorf("etaOf(%d, %g) = %s, want %s", c.left, c.rate, got, c.want)
		}
	}
}

func TestParseSizeFlag_TakesTheManifestsSizes(t *testing.T) {
	for in, want := range map[string]uint64{"": 0, "64MiB": 64 << 20, "1.5GiB": 3 << 29, "1GB": 1e9} {
		if got, err := parseSizeFlag("max-memory", in); err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSizeFlag("max-memory", "12 parsecs"); err == nil || !strings.Contains(err.Error(), "--max-memory") {
		t.Errorf("a bad size: %v", err)
	}
}
