package load

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// counting is a real loopback server that counts the requests it gets.
func counting(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello, world!"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// pipeNet connects an http.Server and the load generator's client through
// net.Pipe instead of sockets. Inside a synctest bubble a goroutine blocked
// on a pipe is durably blocked (on a socket it is not), so the bubble's fake
// clock runs: handlers sleep exactly as long as they ask, a run lasts
// exactly its Duration, and synctest.Wait says when everything in flight
// has settled, where a test would otherwise sleep for a while and hope.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error   { p.once.Do(func() { close(p.done) }); return nil }
func (p *pipeNet) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-p.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// servePipe serves h over a pipeNet and returns NewClient(c) dialling the
// pipes. Call it inside a synctest bubble; its cleanup closes the client's
// connections and the server, so the bubble ends with no goroutine left.
func servePipe(t *testing.T, c int, h http.HandlerFunc) *http.Client {
	t.Helper()
	pn := &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	go srv.Serve(pn)
	client := NewClient(c)
	client.Transport.(*http.Transport).DialContext = pn.dial
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	return client
}

func TestRun_SendsExactlyTheRequestCount(t *testing.T) {
	for _, c := range []int{1, 3, 16} {
		srv, hits := counting(t)
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

func TestRun_PercentilesAreExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The n-th request takes ((n-1) mod 100 + 1) × 10µs of fake time, so
		// 400 requests take each of 10µs, 20µs, …, 1ms exactly four times.
		var hits atomic.Int64
		client := servePipe(t, 4, func(w http.ResponseWriter, r *http.Request) {
			n := hits.Add(1)
			time.Sleep(time.Duration((n-1)%100+1) * 10 * time.Microsecond)
			w.Write([]byte("Hello, world!"))
		})
		res, err := Run(context.Background(), Options{URL: "http://127.0.0.1/", Concurrency: 4, Requests: 400, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 400 || res.Errors != 0 || len(res.Samples) != 400 {
			t.Fatalf("%d requests, %d errors (%s), %d samples; want 400, 0, 400", res.Requests, res.Errors, res.FirstError, len(res.Samples))
		}
		us := time.Microsecond
		for _, c := range []struct {
			name      string
			got, want time.Duration
		}{
			{"min", res.Samples[0], 10 * us},
			{"p50", res.Percentile(0.50), 500 * us},
			{"p90", res.Percentile(0.90), 900 * us},
			{"p99", res.Percentile(0.99), 990 * us},
			{"max", res.Percentile(1), 1000 * us},
			{"mean", res.Mean(), 505 * us},
		} {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		// The four workers were busy for 400 × 505µs between them.
		if least := 400 * 505 * us / 4; res.Elapsed < least || res.RPS() <= 0 {
			t.Errorf("elapsed %v, want at least %v; rps %v", res.Elapsed, least, res.RPS())
		}
	})
}

func TestRun_StopsByItselfAfterDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const workers = 8
		var hits atomic.Int64
		client := servePipe(t, workers, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			time.Sleep(time.Millisecond)
			w.Write([]byte("Hello, world!"))
		})
		start := time.Now()
		res, err := Run(context.Background(), Options{URL: "http://127.0.0.1/", Concurrency: workers,
			Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		// Fake time: the run ends exactly when warm-up plus duration are over.
		if took := time.Since(start); took != 400*time.Millisecond || res.Elapsed != 300*time.Millisecond {
			t.Fatalf("run took %v, measured %v; want 400ms and 300ms", took, res.Elapsed)
		}
		// Each worker finishes a 1ms request every 1ms for 300ms; the last
		// one ends just as the deadline passes and may be cut off.
		if res.Requests < workers*299 || res.Requests > workers*300 || res.Errors != 0 {
			t.Fatalf("%d requests, %d errors (%s); want %d to %d and none", res.Requests, res.Errors, res.FirstError, workers*299, workers*300)
		}
		seen := hits.Load()
		if seen < res.Requests {
			t.Fatalf("server saw %d, result claims %d", seen, res.Requests)
		}
		// Nothing is sent once Run has returned. A request a worker cancelled
		// at the deadline may still reach the handler just after (it was
		// already on its way), so at most one per worker may land late, once
		// everything in flight has settled, and then no more.
		synctest.Wait()
		settled := hits.Load()
		if late := settled - seen; late > workers {
			t.Fatalf("%d requests reached the server after Run returned, more than one per worker (%d)", late, workers)
		}
		time.Sleep(time.Second) // a leftover worker would send a thousand more
		synctest.Wait()
		if hits.Load() != settled {
			t.Fatalf("requests kept coming after Run returned: %d then %d", settled, hits.Load())
		}
	})
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
	srv, _ := counting(t)
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

func TestRunFunc_CountBoundAndErrors(t *testing.T) {
	var calls atomic.Int64
	r, err := RunFunc(context.Background(), FuncOptions{
		Concurrency: 3, Requests: 30,
		New: func(_ context.Context, w int) (func() error, error) {
			return func() error {
				if calls.Add(1)%10 == 0 {
					return errors.New("every tenth fails")
				}
				return nil
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests+r.Errors != 30 || r.Errors != 3 || len(r.Samples) != int(r.Requests) || r.FirstError != "every tenth fails" {
		t.Fatalf("%d requests, %d errors (%q), %d samples", r.Requests, r.Errors, r.FirstError, len(r.Samples))
	}
	if _, err := RunFunc(context.Background(), FuncOptions{Concurrency: 1, Requests: 1}); err == nil {
		t.Fatal("ran without New")
	}
}

// TestRun_MeasureHooksBracketExactlyTheMeasuredRequests checks that
// OnMeasure runs after the warm-up's requests and OnMeasureEnd once every
// measured request is answered, so counters snapshot in the hooks see the
// measured phase and nothing else.
func TestRun_MeasureHooksBracketExactlyTheMeasuredRequests(t *testing.T) {
	srv, hits := counting(t)
	var atStart, atEnd int64
	starts, ends := 0, 0
	r, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Requests: 200, Warmup: 50 * time.Millisecond,
		OnMeasure:    func() { starts++; atStart = hits.Load() },
		OnMeasureEnd: func() { ends++; atEnd = hits.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	if starts != 1 || ends != 1 {
		t.Fatalf("OnMeasure ran %d times and OnMeasureEnd %d times, want once each", starts, ends)
	}
	if atStart == 0 {
		t.Errorf("OnMeasure saw no warm-up request answered")
	}
	// A warm-up request cut short in flight may still reach the handler
	// after OnMeasure: at most one per worker.
	if got := atEnd - atStart; r.Requests != 200 || got < 200 || got > 200+4 {
		t.Errorf("between the hooks the server answered %d requests; the run counted %d, want 200 (and at most 4 late warm-up requests)", got, r.Requests)
	}
}
