package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func counting(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if delay > 0 {
			time.Sleep(delay)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello, world!"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRun_SendsExactlyTheRequestCount(t *testing.T) {
	for _, c := range []int{1, 3, 16} {
		srv, hits := counting(t, 0)
		res, err := Run(context.Background(), Options{URL: srv.URL + "/x", Concurrency: c, Requests: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 1000 || hits.Load() != 1000 || res.Errors != 0 {
			t.Fatalf("c=%d: result %d requests, %d errors; server saw %d; want 1000, 0, 1000", c, res.Requests, res.Errors, hits.Load())
		}
		if len(res.Samples) != 1000 {
			t.Fatalf("c=%d: %d samples, want 1000", c, len(res.Samples))
		}
	}
}

func TestRun_PercentilesAreOrdered(t *testing.T) {
	srv, _ := counting(t, 200*time.Microsecond)
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Requests: 400})
	if err != nil {
		t.Fatal(err)
	}
	p50, p90, p99 := res.Percentile(0.50), res.Percentile(0.90), res.Percentile(0.99)
	if !(res.Samples[0] <= p50 && p50 <= p90 && p90 <= p99 && p99 <= res.Samples[len(res.Samples)-1]) {
		t.Fatalf("percentiles out of order: min %v p50 %v p90 %v p99 %v max %v", res.Samples[0], p50, p90, p99, res.Samples[len(res.Samples)-1])
	}
	if p50 < 200*time.Microsecond {
		t.Fatalf("p50 %v is below the handler's own 200µs", p50)
	}
	if res.RPS() <= 0 {
		t.Fatalf("rps %v", res.RPS())
	}
}

func TestRun_StopsByItselfAfterDuration(t *testing.T) {
	srv, hits := counting(t, 0)
	start := time.Now()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 8, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second { // a liveness bound, not a timing target
		t.Fatalf("run took %v for 400ms of load", took)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("%d requests, %d errors (%s)", res.Requests, res.Errors, res.FirstError)
	}
	if hits.Load() < res.Requests {
		t.Fatalf("server saw %d, result claims %d", hits.Load(), res.Requests)
	}
	// Nothing is sent once Run has returned. A request a worker cancelled at
	// the deadline may still reach the handler just after (it was already on
	// the wire), so at most one per worker may land late, and then no more.
	seen := hits.Load()
	time.Sleep(100 * time.Millisecond)
	settled := hits.Load()
	if late := settled - seen; late > 8 {
		t.Fatalf("%d requests reached the server after Run returned, more than one per worker (8)", late)
	}
	time.Sleep(100 * time.Millisecond)
	if hits.Load() != settled {
		t.Fatalf("requests kept coming after Run returned: %d then %d", settled, hits.Load())
	}
}

func TestRun_CountsErrorsWithoutLatencies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 2, Requests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 50 || res.Requests != 0 || len(res.Samples) != 0 || !strings.Contains(res.FirstError, "503") {
		t.Fatalf("got %+v", res)
	}
}

func TestRun_ReservoirBoundsSamples(t *testing.T) {
	srv, _ := counting(t, 0)
	res, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 2, Requests: 500, MaxSamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 || len(res.Samples) != 100 {
		t.Fatalf("%d requests, %d samples; want 500, 100", res.Requests, len(res.Samples))
	}
}

func TestRun_RefusesBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"remote host":    {URL: "http://example.com/", Concurrency: 1, Requests: 1},
		"no bound":       {URL: "http://127.0.0.1:1/", Concurrency: 1},
		"no workers":     {URL: "http://127.0.0.1:1/", Requests: 1},
		"too long":       {URL: "http://127.0.0.1:1/", Concurrency: 1, Duration: MaxDuration + time.Second},
		"https":          {URL: "https://127.0.0.1:1/", Concurrency: 1, Requests: 1},
		"too many":       {URL: "http://127.0.0.1:1/", Concurrency: 1, Requests: MaxRequests + 1},
		"negative bound": {URL: "http://[::1]:1/", Concurrency: 1, Duration: -time.Second},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%s: Run accepted %+v", name, o)
		}
	}
}

func TestMerge_AddsUpAndSorts(t *testing.T) {
	a := &Result{Requests: 2, Elapsed: time.Second, Samples: []time.Duration{1, 5}}
	b := &Result{Requests: 2, Errors: 1, Elapsed: time.Second, Samples: []time.Duration{2, 9}}
	m := Merge(a, b)
	if m.Requests != 4 || m.Errors != 1 || m.Elapsed != 2*time.Second || m.RPS() != 2 {
		t.Fatalf("got %+v", m)
	}
	if m.Percentile(0.5) != 2 || m.Percentile(1) != 9 || m.Percentile(0.01) != 1 {
		t.Fatalf("percentiles of %v: %v %v", m.Samples, m.Percentile(0.5), m.Percentile(1))
	}
}
