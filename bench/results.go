package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Metric is one measured figure.
type Metric struct {
	// Name is the metric's key in results.json (and in bench-quick output).
	Name string `json:"-"`
	// Value is the figure in Unit.
	Value float64 `json:"value"`
	// Unit is what Value counts: "ratio", "req/s", "µs", "ms", "MiB", …
	Unit string `json:"unit"`
	// Target is the target for this figure, if it has one ("≥ 0.25").
	Target string `json:"target,omitempty"`
	// Met tells whether Value meets Target (absent without a target).
	Met *bool `json:"met,omitempty"`
	// BoundBy says what limits the figure, for targeted figures.
	BoundBy string `json:"bound_by,omitempty"`
	// Note qualifies how the figure was measured.
	Note string `json:"note,omitempty"`
	// Step is the suite's step that measured it (throughput, fuel, …) and
	// Measured when that run started: after a merge (-only) figures of one
	// file can come from different runs.
	Step     string    `json:"step,omitempty"`
	Measured time.Time `json:"measured,omitzero"`
}

// Results is everything a run measured.
type Results struct {
	Machine  Machine       `json:"machine"`
	Quick    bool          `json:"quick"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	// Metrics in the order they were measured.
	Metrics []*Metric `json:"-"`
	// NotYet lists targets that cannot be measured yet, with the reason.
	NotYet []NotYet `json:"-"`

	// step is the step being run, stamped on the metrics it adds; ran
	// names the steps this run ran.
	step string
	ran  map[string]bool
	// only is Options.Only.
	only map[string]bool
	// kept are the sections of an earlier results.md, by step, for the
	// steps this run did not run (see merge.go).
	kept map[string]string
	// runs are the earlier runs whose figures this file keeps: step → start.
	runs map[string]time.Time

	throughput []*throughputRow
	wrk        []*throughputRow
	coldStart  *coldStartResult
	fuel       []*fuelResult
	// reactorFuel is fuel on and off for SDK functions served through mu_serve.
	reactorFuel []*reactorFuelResult
	density     []*densityResult
	idleStacks  []*idleStacksResult
	profile     *profileSummary // mu in process at c=64
	// profileRemote is mu remote (gateway → gRPC → runtime) at c=64.
	profileRemote *profileSummary
	handoff       *handoffResult
	breakdown     *breakdown
	gomaxprocs    *gomaxprocsResult
	deadline      *deadlineResult
	mudb          *mudbResult
	ledger        *ledgerResult
}

// NotYet is a target whose subject does not exist yet.
type NotYet struct {
	Name, Target, Reason string
}

// add records a metric and returns it so a target can be attached.
func (r *Results) add(name string, value float64, unit, note string) *Metric {
	m := &Metric{Name: name, Value: value, Unit: unit, Note: note, Step: r.step, Measured: r.Started}
	r.Metrics = append(r.Metrics, m)
	return m
}

// Get returns the metric called name, or nil.
func (r *Results) Get(name string) *Metric {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// target attaches a target to m: met when m.Value cmp limit holds.
func (m *Metric) target(cmp string, limit float64, unit string) *Metric {
	var ok bool
	switch cmp {
	case "≥":
		ok = m.Value >= limit
	case "≤":
		ok = m.Value <= limit
	case "=":
		ok = m.Value == limit
	default:
		panic("bench: unknown comparison " + cmp)
	}
	m.Target = cmp + " " + strconv.FormatFloat(limit, 'f', -1, 64) + unitSuffix(unit)
	m.Met = &ok
	return m
}

func unitSuffix(unit string) string {
	switch unit {
	case "", "ratio":
		return ""
	case "×":
		return "×"
	}
	return " " + unit
}

// formatValue prints v with about three significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// WriteJSON writes results.json: the machine and metric → {value, unit, …}.
func (r *Results) WriteJSON(path string) error {
	metrics := make(map[string]*Metric, len(r.Metrics))
	for _, m := range r.Metrics {
		c := *m
		c.Value = roundSignificant(m.Value, 5)
		metrics[m.Name] = &c
	}
	order := make([]string, 0, len(r.Metrics))
	for _, m := range r.Metrics {
		order = append(order, m.Name)
	}
	notYet := make(map[string]string, len(r.NotYet))
	for _, n := range r.NotYet {
		notYet[n.Name] = n.Reason
	}
	doc := struct {
		Machine         Machine            `json:"machine"`
		Quick           bool               `json:"quick"`
		Started         time.Time          `json:"started"`
		DurationSeconds float64            `json:"duration_seconds"`
		Metrics         map[string]*Metric `json:"metrics"`
		MetricOrder     []string           `json:"metric_order"`
		NotYet          map[string]string  `json:"not_yet,omitempty"`
	}{r.Machine, r.Quick, r.Started, math.Round(r.Duration.Seconds()*10) / 10, metrics, order, notYet}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// QuickLines are the key figures, one "name: value" per line, in the order
// the issue lists them; figures not measured are left out.
func (r *Results) QuickLines() []string {
	var out []string
	for _, name := range []string{"throughput_ratio_c64", "p50_us_c1", "throughput_ratio_c64_remote", "fuel_overhead_hello", "instance_starts_c64_steady",
		"first_request_warm_cache_ms", "instance_start_us", "instance_start_us_no_snapshot", "fuel_overhead_fib", "mudb_get_ratio", "deadline_overrun_8_pct"} {
		if m := r.Get(name); m != nil {
			out = append(out, fmt.Sprintf("%s: %s", name, formatValue(m.Value)))
		}
	}
	return out
}

// roundSignificant rounds v to n significant digits.
func roundSignificant(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	scale := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}
