package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muprotocol/mu/libs/ledger"
)

// rateKey is one line of a rates file: the unit it prices, the key people
// write, the family of quantities it takes and the ledger's quantity.
type rateKey struct {
	key    string
	unit   ledger.Unit
	family string // "count", "bytes" or "stored"
	words  []string
	label  string // the ledger's quantity, for people
}

// rateKeys are the rates file's keys, in the ledger's unit order.
var rateKeys = []rateKey{
	{"function", ledger.UnitFunctionMBInstructions, "count", []string{"mb-instructions", "mb-instruction"}, "1T MB-instructions"},
	{"db_reads", ledger.UnitDBReads, "count", []string{"reads", "read"}, "1M reads"},
	{"db_writes", ledger.UnitDBWrites, "count", []string{"writes", "write"}, "1M writes"},
	{"db_stored", ledger.UnitDBStoredByteSeconds, "stored", nil, "GiB-month"},
	{"gateway_requests", ledger.UnitGatewayRequests, "count", []string{"requests", "request"}, "1M requests"},
	{"gateway_traffic", ledger.UnitGatewayTrafficBytes, "bytes", nil, "GiB"},
	{"storage_stored", ledger.UnitStorageStoredByteSeconds, "stored", nil, "GiB-month"},
	{"storage_traffic", ledger.UnitStorageTrafficBytes, "bytes", nil, "GiB"},
}

var (
	sizeUnits = map[string]int64{"b": 1, "byte": 1, "bytes": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
	timeUnits = map[string]int64{"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": ledger.MonthSeconds}
	siSuffix  = map[string]int64{"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
	rateRe    = regexp.MustCompile(`^([0-9][0-9_,]*(?:\.[0-9]+)?)\s+per\s+(?:([0-9][0-9_,]*)([kKmMgGtT]?)\s*)?(\S+)$`)
)

// rateExample is a whole rates file, for error messages and help.
const rateExample = `function: 1000 per 1T MB-instructions
db_reads: 1 per 10k reads
db_writes: 500 per 1M writes
db_stored: 1000 per GiB-month
gateway_requests: 0.0002 per request
gateway_traffic: 100 per GiB
storage_stored: 500 per GiB-month
storage_traffic: 25 per 256 MiB`

// parsedRate is one rate as written and as the ledger keeps it.
type parsedRate struct {
	key, written string
	rate         uint64
	label        string
}

// parseRates reads a rates file: YAML, one "AMOUNT per QUANTITY" line per
// key of rateKeys, amounts in token base units (decimals allowed). Each
// is converted exactly to base units per the ledger's quantity; a rate
// that is not a whole number there, or too large, is an error naming the
// key. Every key is required and unknown keys are errors.
func parseRates(name string, r io.Reader) (ledger.Rates, []parsedRate, error) {
	var raw map[string]string
	b, err := io.ReadAll(r)
	if err != nil {
		return ledger.Rates{}, nil, fmt.Errorf("rates file %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty")
		}
		return ledger.Rates{}, nil, fmt.Errorf("rates file %s: %v; want one line per key, such as:\n%s", name, err, rateExample)
	}
	known := map[string]bool{}
	for _, k := range rateKeys {
		known[k.key] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return ledger.Rates{}, nil, fmt.Errorf("rates file %s: unknown key %s (keys: %s)", name, strings.Join(unknown, ", "), rateKeyNames())
	}
	var rates ledger.Rates
	var out []parsedRate
	for _, k := range rateKeys {
		v, ok := raw[k.key]
		if !ok {
			return ledger.Rates{}, nil, fmt.Errorf("rates file %s: %s is missing (every key is required; 0 prices a unit at nothing), such as %s", name, k.key, exampleLine(k.key))
		}
		rate, err := k.convert(v)
		if err != nil {
			return ledger.Rates{}, nil, fmt.Errorf("rates file %s: %s: %v", name, k.key, err)
		}
		rates.Set(k.unit, rate)
		out = append(out, parsedRate{k.key, v, rate, k.label})
	}
	return rates, out, nil
}

func rateKeyNames() string {
	names := make([]string, len(rateKeys))
	for i, k := range rateKeys {
		names[i] = k.key
	}
	return strings.Join(names, ", ")
}

func exampleLine(key string) string {
	for _, l := range strings.Split(rateExample, "\n") {
		if strings.HasPrefix(l, key+":") {
			return fmt.Sprintf("%q", l)
		}
	}
	return ""
}

// convert turns "AMOUNT per QUANTITY" into base units per the ledger's
// quantity of k, exactly.
func (k rateKey) convert(v string) (uint64, error) {
	m := rateRe.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, fmt.Errorf("%q: want \"AMOUNT per QUANTITY\", such as %s", v, exampleLine(k.key))
	}
	amount, ok := new(big.Rat).SetString(strings.NewReplacer("_", "", ",", "").Replace(m[1]))
	if !ok {
		return 0, fmt.Errorf("%q: amount %q is not a number", v, m[1])
	}
	count := big.NewInt(1)
	if m[2] != "" {
		n, ok := new(big.Int).SetString(strings.NewReplacer("_", "", ",", "").Replace(m[2]), 10)
		if !ok || n.Sign() == 0 {
			return 0, fmt.Errorf("%q: count %q is not a positive whole number", v, m[2])
		}
		count = n
	}
	count.Mul(count, big.NewInt(siSuffix[strings.ToLower(m[3])]))
	unit := strings.ToLower(m[4])
	per := new(big.Int) // how many of the ledger's base unit the quantity is
	switch k.family {
	case "count":
		if !contains(k.words, unit) {
			return 0, fmt.Errorf("%q: unit %q, want %s", v, m[4], k.words[0])
		}
		per.Set(count)
	case "bytes":
		s, ok := sizeUnits[unit]
		if !ok {
			return 0, fmt.Errorf("%q: unit %q, want B, KiB, MiB, GiB or TiB", v, m[4])
		}
		per.Mul(count, big.NewInt(s))
	case "stored":
		size, span, ok := strings.Cut(unit, "-")
		s, okS := sizeUnits[size]
		t, okT := timeUnits[span]
		if !ok || !okS || !okT {
			return 0, fmt.Errorf("%q: unit %q, want SIZE-TIME such as GiB-month (sizes B, KiB, MiB, GiB, TiB; times second, minute, hour, day, month of 30 days)", v, m[4])
		}
		per.Mul(count, big.NewInt(s*t))
	}
	q := new(big.Rat).SetFrac(new(big.Int).SetUint64(ledger.Quantity(k.unit)), per)
	r := new(big.Rat).Mul(amount, q)
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is %s base units per %s, not a whole number; the ledger keeps whole base units per %s", v, r.FloatString(4), k.label, k.label)
	}
	if !r.Num().IsUint64() {
		return 0, fmt.Errorf("%q is %s base units per %s, more than the ledger's 64-bit amounts hold", v, r.Num(), k.label)
	}
	return r.Num().Uint64(), nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// sampleWorkload is what "1M hello requests" costs at a region's rates:
// the measured cost of one examples/hello GET (design section 8 units).
// Fuel per warm call and the bytes are from bench/results.md and the
// billing test (a hello GET moves 194 bytes through the gateway), the
// memory limit from examples/hello/mu.yaml.
var sampleWorkload = struct {
	name         string
	requests     int64
	fuelPerCall  int64
	memoryMiB    int64
	bytesPerCall int64
}{"1M hello requests", 1_000_000, 49_886, 64, 194}

// sampleCost prices sampleWorkload at rates, in base units, exactly (the
// ledger carries sub-unit remainders, so a long run pays the fraction);
// listings show it to two decimals.
func sampleCost(r ledger.Rates) *big.Rat {
	w := sampleWorkload
	cost := new(big.Rat)
	add := func(u ledger.Unit, amount *big.Int) {
		x := new(big.Rat).SetFrac(new(big.Int).Mul(amount, new(big.Int).SetUint64(r.Rate(u))), new(big.Int).SetUint64(ledger.Quantity(u)))
		cost.Add(cost, x)
	}
	n := big.NewInt(w.requests)
	add(ledger.UnitGatewayRequests, n)
	add(ledger.UnitGatewayTrafficBytes, new(big.Int).Mul(n, big.NewInt(w.bytesPerCall)))
	add(ledger.UnitFunctionMBInstructions, new(big.Int).Mul(n, big.NewInt(w.fuelPerCall*w.memoryMiB)))
	return cost
}
