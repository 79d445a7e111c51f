package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMerge_OnlyRunKeepsOtherStepsFiguresAndSections writes a full run's
// results, then an -only fuel run into the same directory, and checks that
// the fuel figures are the new ones, the throughput figures and section
// are the earlier run's (with its step and time), and a fuel figure the
// new run no longer measures is gone.
func TestMerge_OnlyRunKeepsOtherStepsFiguresAndSections(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	first := &Results{Started: t0, ran: map[string]bool{"throughput": true, "fuel": true}}
	first.step = "throughput"
	first.add("throughput_ratio_c64", 0.41, "ratio", "first run")
	first.throughput = []*throughputRow{{Concurrency: 64, Gen: "mubench", Mu: &genResult{RPS: 4100}, Remote: &genResult{RPS: 3000}, Native: &genResult{RPS: 10000}}}
	first.step = "fuel"
	first.add("fuel_overhead_fib", 1.3, "×", "first run")
	first.add("fuel_overhead_gone", 9, "×", "a figure the fuel step no longer measures")
	if err := first.WriteJSON(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	if err := first.WriteMarkdown(filepath.Join(dir, "results.md")); err != nil {
		t.Fatal(err)
	}

	t1 := t0.Add(time.Hour)
	second := &Results{Started: t1, ran: map[string]bool{"fuel": true}, only: map[string]bool{"fuel": true}}
	second.step = "fuel"
	second.add("fuel_overhead_fib", 1.2, "×", "second run")
	if err := second.mergeEarlier(dir, []string{"fuel", "throughput"}); err != nil {
		t.Fatal(err)
	}
	if m := second.Get("fuel_overhead_fib"); m == nil || m.Value != 1.2 || !m.Measured.Equal(t1) {
		t.Errorf("fuel_overhead_fib = %+v, want this run's 1.2", m)
	}
	if m := second.Get("throughput_ratio_c64"); m == nil || m.Value != 0.41 || m.Step != "throughput" || !m.Measured.Equal(t0) {
		t.Errorf("throughput_ratio_c64 = %+v, want the earlier run's 0.41 from step throughput at %s", m, t0)
	}
	if m := second.Get("fuel_overhead_gone"); m != nil {
		t.Errorf("fuel_overhead_gone kept (%+v), want it dropped: its step ran in full", m)
	}
	if err := second.WriteMarkdown(filepath.Join(dir, "results.md")); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec, ok := mdSectionOf(string(md), "throughput")
	if !ok || !strings.Contains(sec, "## 1. Throughput and latency") || !strings.Contains(sec, "| 64 | mubench | mu in process | 4100 |") {
		t.Errorf("results.md's throughput section after the merge = %q, want the earlier run's table", sec)
	}
	if !strings.Contains(string(md), "throughput (2026-01-02 03:04 UTC)") {
		t.Errorf("results.md does not say the throughput figures come from the earlier run")
	}
}
