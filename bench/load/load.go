// Package load is a closed-loop HTTP load generator for loopback benchmarks.
//
// Run starts Concurrency workers; each sends one request, waits for the whole
// response, and sends the next, over a keep-alive connection of its own (the
// transport keeps at least Concurrency idle connections per host). A run is
// bounded both in requests and in time: it ends when Requests have been sent
// or Duration has passed, whichever comes first, and never later than
// MaxDuration. Latencies are kept in memory (at most MaxSamples of them, a
// uniform reservoir beyond that) and sorted once at the end, so percentiles
// are exact up to the reservoir.
//
// Only loopback targets are accepted: this is a tool for measuring servers
// in the same machine, never for loading someone else's.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Limits that no Options may exceed.
const (
	// MaxConcurrency is the most workers one run may start.
	MaxConcurrency = 4096
	// MaxDuration is the longest one run may last, warm-up included.
	MaxDuration = 10 * time.Minute
	// MaxRequests is the most requests one run may send.
	MaxRequests = 100_000_000
	// DefaultMaxSamples is the default bound on kept latencies (8 bytes each).
	DefaultMaxSamples = 4_000_000
)

// Options describe one run. Set Duration, Requests or both.
type Options struct {
	// URL is the target; its host must be a loopback address (or "localhost").
	URL string
	// Method is the HTTP method; empty means GET.
	Method string
	// Concurrency is the number of workers (and connections); at least 1.
	Concurrency int
	// Duration ends the measured phase after this long (0: no time limit
	// but MaxDuration).
	Duration time.Duration
	// Requests ends the measured phase after exactly this many requests
	// (0: no count limit).
	Requests int64
	// Warmup runs the same load, unrecorded, before the measured phase.
	Warmup time.Duration
	// MaxSamples bounds the latencies kept (default DefaultMaxSamples).
	MaxSamples int
	// Client overrides the HTTP client; nil builds one suited to Concurrency.
	Client *http.Client
	// OnMeasure, if set, is called just before the measured phase starts
	// (after the warm-up), for example to snapshot counters.
	OnMeasure func()
	// OnMeasureEnd, if set, is called as soon as the measured phase's
	// workers have all returned, before the samples are sorted: the
	// counterpart of OnMeasure.
	OnMeasureEnd func()
}

// Result is what a run measured. Latencies of failed requests are not
// recorded; their count is in Errors.
type Result struct {
	// Requests is the number of successful (2xx) requests.
	Requests int64
	// Errors counts transport errors and non-2xx answers.
	Errors int64
	// FirstError describes the first error, if any.
	FirstError string
	// Elapsed is the wall-clock length of the measured phase.
	Elapsed time.Duration
	// Concurrency is the number of workers.
	Concurrency int
	// Samples are the recorded latencies, sorted ascending.
	Samples []time.Duration
}

// RPS is successful requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the recorded latencies
// by the nearest-rank method, or 0 if none were recorded.
func (r *Result) Percentile(q float64) time.Duration {
	n := len(r.Samples)
	if n == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(n))) - 1
	return r.Samples[min(max(k, 0), n-1)]
}

// Mean is the mean recorded latency.
func (r *Result) Mean() time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.Samples {
		sum += d
	}
	return sum / time.Duration(len(r.Samples))
}

// Merge combines runs of the same target (for example rounds interleaved
// with another target's): requests, errors and elapsed times add up, the
// samples are merged and sorted.
func Merge(rs ...*Result) *Result {
	out := &Result{}
	for _, r := range rs {
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Elapsed += r.Elapsed
		out.Concurrency = max(out.Concurrency, r.Concurrency)
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
		out.Samples = append(out.Samples, r.Samples...)
	}
	slices.Sort(out.Samples)
	return out
}

func (o *Options) validate() error {
	u, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("load: url: %w", err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("load: url %q: only http is supported", o.URL)
	}
	if !isLoopback(u.Hostname()) {
		return fmt.Errorf("load: url %q: the host must be a loopback address", o.URL)
	}
	switch {
	case o.Concurrency < 1 || o.Concurrency > MaxConcurrency:
		return fmt.Errorf("load: concurrency must be in [1, %d], got %d", MaxConcurrency, o.Concurrency)
	case o.Duration < 0 || o.Warmup < 0:
		return errors.New("load: durations must not be negative")
	case o.Duration+o.Warmup > MaxDuration:
		return fmt.Errorf("load: warm-up plus duration must be at most %s", MaxDuration)
	case o.Requests < 0 || o.Requests > MaxRequests:
		return fmt.Errorf("load: requests must be in [0, %d], got %d", MaxRequests, o.Requests)
	case o.Duration == 0 && o.Requests == 0:
		return errors.New("load: set a duration, a request count, or both")
	case o.MaxSamples < 0:
		return errors.New("load: max samples must not be negative")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewClient returns a keep-alive client for c concurrent workers on
// loopback: no proxy, no compression, c idle connections per host.
func NewClient(c int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * c,
			MaxIdleConnsPerHost: 2 * c,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Run drives the target as described by opts and returns what it measured.
// It returns early, with what was measured so far, when ctx ends.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Method == "" {
		opts.Method = http.MethodGet
	}
	client := opts.Client
	if client == nil {
		client = NewClient(opts.Concurrency)
		defer client.CloseIdleConnections()
	}
	return run(ctx, loop{
		concurrency: opts.Concurrency, duration: opts.Duration, requests: opts.Requests,
		warmup: opts.Warmup, maxSamples: opts.MaxSamples, onMeasure: opts.OnMeasure, onMeasureEnd: opts.OnMeasureEnd,
		newOp: func(ctx context.Context, _ int) (func() error, error) {
			req, err := http.NewRequestWithContext(ctx, opts.Method, opts.URL, nil)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			buf := make([]byte, 32<<10)
			return func() error { return do(client, req, buf) }, nil
		},
	})
}

// FuncOptions describe a closed-loop run of any operation, for targets that
// are not an HTTP GET (a POST with a body, a gRPC call, a library call).
// The bounds and their meaning are those of Options.
type FuncOptions struct {
	// Concurrency is the number of workers; at least 1.
	Concurrency int
	// Duration, Requests, Warmup, MaxSamples, OnMeasure and OnMeasureEnd
	// are as in Options.
	Duration     time.Duration
	Requests     int64
	Warmup       time.Duration
	MaxSamples   int
	OnMeasure    func()
	OnMeasureEnd func()
	// New returns worker w's operation for one phase (warm-up or
	// measured); ctx ends with the phase. An operation returning an error
	// counts as a failed request. Each worker calls its own operation
	// sequentially, never concurrently with itself.
	New func(ctx context.Context, w int) (func() error, error)
}

// RunFunc drives opts.New's operations like Run drives an HTTP target.
func RunFunc(ctx context.Context, opts FuncOptions) (*Result, error) {
	switch {
	case opts.New == nil:
		return nil, errors.New("load: FuncOptions.New is nil")
	case opts.Concurrency < 1 || opts.Concurrency > MaxConcurrency:
		return nil, fmt.Errorf("load: concurrency must be in [1, %d], got %d", MaxConcurrency, opts.Concurrency)
	case opts.Duration < 0 || opts.Warmup < 0:
		return nil, errors.New("load: durations must not be negative")
	case opts.Duration+opts.Warmup > MaxDuration:
		return nil, fmt.Errorf("load: warm-up plus duration must be at most %s", MaxDuration)
	case opts.Requests < 0 || opts.Requests > MaxRequests:
		return nil, fmt.Errorf("load: requests must be in [0, %d], got %d", MaxRequests, opts.Requests)
	case opts.Duration == 0 && opts.Requests == 0:
		return nil, errors.New("load: set a duration, a request count, or both")
	case opts.MaxSamples < 0:
		return nil, errors.New("load: max samples must not be negative")
	}
	return run(ctx, loop{
		concurrency: opts.Concurrency, duration: opts.Duration, requests: opts.Requests,
		warmup: opts.Warmup, maxSamples: opts.MaxSamples, onMeasure: opts.OnMeasure, onMeasureEnd: opts.OnMeasureEnd,
		newOp: opts.New,
	})
}

// loop is a validated closed-loop run.
type loop struct {
	concurrency      int
	duration, warmup time.Duration
	requests         int64
	maxSamples       int
	onMeasure        func()
	onMeasureEnd     func()
	newOp            func(ctx context.Context, w int) (func() error, error)
}

func run(ctx context.Context, l loop) (*Result, error) {
	if l.maxSamples == 0 {
		l.maxSamples = DefaultMaxSamples
	}
	if l.warmup > 0 {
		if _, err := phase(ctx, l, l.warmup, 0, false); err != nil {
			return nil, err
		}
	}
	d := l.duration
	if d == 0 {
		d = MaxDuration - l.warmup
	}
	if l.onMeasure != nil {
		l.onMeasure()
	}
	return phase(ctx, l, d, l.requests, true)
}

// phase runs the workers for at most d and, when n > 0, for exactly n requests.
func phase(ctx context.Context, l loop, d time.Duration, n int64, record bool) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		tickets  atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
		wg       sync.WaitGroup
	)
	perWorker := max(l.maxSamples/l.concurrency, 1)
	workers := make([]worker, l.concurrency)
	ops := make([]func() error, l.concurrency)
	for w := range ops {
		op, err := l.newOp(ctx, w)
		if err != nil {
			return nil, err
		}
		ops[w] = op
	}
	start := time.Now()
	for w := range workers {
		wk, op := &workers[w], ops[w]
		wk.rng = rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
		wk.cap = perWorker
		if n > 0 {
			wk.samples = make([]time.Duration, 0, min(int64(perWorker), n/int64(l.concurrency)+1))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if n > 0 && tickets.Add(1) > n {
					return
				}
				t0 := time.Now()
				err := op()
				lat := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						// The phase ended mid-request: neither a success nor
						// the target's fault. Give the ticket back.
						if n > 0 {
							tickets.Add(-1)
						}
						return
					}
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				wk.ok++
				if record {
					wk.record(lat)
				}
			}
		}()
	}
	wg.Wait()
	if record && l.onMeasureEnd != nil {
		l.onMeasureEnd()
	}
	res := &Result{Elapsed: time.Since(start), Errors: errs.Load(), Concurrency: l.concurrency}
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	total := 0
	for i := range workers {
		res.Requests += workers[i].ok
		total += len(workers[i].samples)
	}
	if record {
		res.Samples = make([]time.Duration, 0, total)
		for i := range workers {
			res.Samples = append(res.Samples, workers[i].samples...)
		}
		slices.Sort(res.Samples)
	}
	return res, nil
}

type worker struct {
	ok      int64
	seen    int64
	cap     int
	samples []time.Duration
	rng     *rand.Rand
}

// record keeps lat, or replaces a random kept sample with it once the
// worker's share of MaxSamples is full (reservoir sampling, algorithm R).
func (w *worker) record(lat time.Duration) {
	w.seen++
	if len(w.samples) < w.cap {
		w.samples = append(w.samples, lat)
		return
	}
	if j := w.rng.Int64N(w.seen); j < int64(w.cap) {
		w.samples[j] = lat
	}
}

func do(client *http.Client, req *http.Request, buf []byte) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(writerOnly{io.Discard}, resp.Body, buf)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// writerOnly hides io.Discard's ReaderFrom so CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }
