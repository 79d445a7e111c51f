package bench

import (
	"testing"
	"time"
)

const wrkOutput = `Running 5s test @ http://127.0.0.1:40825/x/greeting/greet/world
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.93ms    5.01ms  52.18ms   72.41%
    Req/Sec     2.65k   312.11     3.29k    69.00%
  Latency Distribution
     50%   11.22ms
     75%   14.01ms
     90%   18.30ms
     99%   33.22ms
  26385 requests in 5.00s, 3.27MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   5277.12
Transfer/sec:    669.92KB
`

func TestParseWrk_ReadsRateLatenciesAndErrors(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 5277.12 || r.Requests != 26385 {
		t.Fatalf("rps %v requests %d", r.RPS, r.Requests)
	}
	if r.P50 != 11220*time.Microsecond || r.P90 != 18300*time.Microsecond || r.P99 != 33220*time.Microsecond {
		t.Fatalf("p50 %v p90 %v p99 %v", r.P50, r.P90, r.P99)
	}
	if r.Errors != 7 {
		t.Fatalf("errors %d, want 3 socket errors + 4 non-2xx", r.Errors)
	}
	if _, err := parseWrk("wrk: connection refused\n"); err == nil {
		t.Fatal("parsed output without figures")
	}
}

func TestParseWrkDuration_Units(t *testing.T) {
	for in, want := range map[string]time.Duration{"96us": 96 * time.Microsecond, "1.58ms": 1580 * time.Microsecond, "2.00s": 2 * time.Second, "1.50m": 90 * time.Second} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("%s: got %v %v, want %v", in, got, err, want)
		}
	}
}

const pprofTop = `File: mubench
Type: cpu
Duration: 5.02s, Total samples = 6.22s (124.00%)
Showing nodes accounting for 6.22s, 100% of 6.22s total
      flat  flat%   sum%        cum   cum%
     1.07s 17.20% 17.20%      1.28s 20.58%  runtime.cgocall
     0.76s 12.22% 29.42%      0.76s 12.22%  runtime.futex
         0     0% 29.42%      0.42s  6.75%  runtime.stoplockedm
     0.07s  1.13% 30.55%      0.41s  6.59%  runtime.newobject (inline)
`

func TestParsePprofTop_RowsAndTotal(t *testing.T) {
	rows, total, err := parsePprofTop(pprofTop)
	if err != nil {
		t.Fatal(err)
	}
	if total != 6220*time.Millisecond || len(rows) != 4 {
		t.Fatalf("total %v, %d rows", total, len(rows))
	}
	if r := rows[3]; r.Name != "runtime.newobject" || r.Flat != 70*time.Millisecond || r.CumPct != 6.59 {
		t.Fatalf("row %+v", r)
	}
	p := &profileSummary{rows: rows}
	if top := p.topFlat(1); top[0].Name != "runtime.cgocall" {
		t.Fatalf("top %+v", top)
	}
}

func TestMetricTarget_ComparesAndFormats(t *testing.T) {
	m := (&Metric{Value: 0.118}).target("≥", 0.25, "ratio")
	if *m.Met || m.Target != "≥ 0.25" {
		t.Fatalf("%+v", m)
	}
	m = (&Metric{Value: 726}).target("≤", 2048, "MiB")
	if !*m.Met || m.Target != "≤ 2048 MiB" {
		t.Fatalf("%+v", m)
	}
}
