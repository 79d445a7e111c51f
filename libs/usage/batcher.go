package usage

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/muprotocol/mu/libs/config"
)

// BatchConfig tunes a Batcher. A service embeds it in its Config as a field
// named Usage, so its settings read usage_batch_size, usage_queue_size, …
type BatchConfig struct {
	// BatchSize is the most usage records sent in one Sink.Report.
	BatchSize int
	// QueueSize is how many usage records may wait for the sink before
	// callers of Add block until it catches up (records are never dropped).
	QueueSize int
	// FlushInterval is the longest a usage record waits before it is sent.
	FlushInterval time.Duration
	// ReportTimeout is the deadline of one Sink.Report call.
	ReportTimeout time.Duration
	// RetryMin is the wait after a failed report, doubled per failure up to
	// RetryMax.
	RetryMin time.Duration
	// RetryMax is the longest wait between report retries.
	RetryMax time.Duration
	// CloseTimeout is how long closing the service keeps retrying to hand
	// the last usage records to the sink; records still unsent then are
	// logged as lost.
	CloseTimeout time.Duration
}

// DefaultBatchConfig returns the batching every service starts from.
func DefaultBatchConfig() BatchConfig {
	return BatchConfig{
		BatchSize:     1000,                   // records per report
		QueueSize:     100000,                 // ~10 MB of queued records at most
		FlushInterval: time.Second,            // a record waits at most 1s
		ReportTimeout: 10 * time.Second,       // one report call
		RetryMin:      100 * time.Millisecond, // first retry
		RetryMax:      10 * time.Second,       // retry ceiling
		CloseTimeout:  30 * time.Second,       // final flush on close
	}
}

// Validate reports every invalid field, named as the service's settings
// name them (usage_batch_size, …).
func (c BatchConfig) Validate() error {
	var errs []error
	positive := func(field string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("usage_%s: must be positive, got %d", field, v))
		}
	}
	positive("batch_size", int64(c.BatchSize))
	positive("queue_size", int64(c.QueueSize))
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"flush_interval", c.FlushInterval},
		{"report_timeout", c.ReportTimeout},
		{"retry_min", c.RetryMin},
		{"retry_max", c.RetryMax},
		{"close_timeout", c.CloseTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("usage_%s: must be positive, got %v", d.field, d.v))
		}
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("usage_retry_max: %v is below usage_retry_min %v", c.RetryMax, c.RetryMin))
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("usage: batcher closed")

// Batcher moves usage records off the request path: Add queues them, a
// background goroutine hands them to a Sink in batches and retries a failed
// batch (same records, same idempotency keys) until the sink accepts it, so
// a record is neither lost nor counted twice. Its methods are safe for
// concurrent use.
type Batcher struct {
	sink Sink
	cfg  BatchConfig
	log  *slog.Logger

	mu       sync.Mutex
	queue    []Record
	added    uint64        // records ever queued
	acked    uint64        // records the sink accepted (a prefix of added: FIFO)
	progress chan struct{} // closed and replaced whenever acked moves or the worker stops
	closed   bool
	failures uint64

	wake   chan struct{} // cap 1: a reason to send now
	ctx    context.Context
	cancel context.CancelFunc // aborts the worker's retries
	done   chan struct{}
}

// NewBatcher starts a Batcher reporting to sink; cfg must be valid (see
// BatchConfig.Validate) and log may be nil. Call Close to stop it.
func NewBatcher(sink Sink, cfg BatchConfig, log *slog.Logger) *Batcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{
		sink:     sink,
		cfg:      cfg,
		log:      log,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go b.run()
	return b
}

// Add queues records. It does not wait for the sink; it blocks only while
// the queue holds QueueSize records or more (the sink is slow or down), so
// that memory stays bounded and no record is dropped. After Close, Add
// reports synchronously (one attempt) and logs what the sink refused.
func (b *Batcher) Add(recs ...Record) {
	if len(recs) == 0 {
		return
	}
	b.mu.Lock()
	for len(b.queue) >= b.cfg.QueueSize && !b.closed {
		ch := b.progress
		b.mu.Unlock()
		b.signal()
		<-ch
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ReportTimeout)
		defer cancel()
		if err := b.sink.Report(ctx, recs...); err != nil {
			b.log.Error("usage records lost: reported after close and the sink refused them",
				"records", len(recs), "err", err)
		}
		return
	}
	b.queue = append(b.queue, recs...)
	b.added += uint64(len(recs))
	full := len(b.queue) >= b.cfg.BatchSize
	b.mu.Unlock()
	if full {
		b.signal()
	}
}

// Pending returns the number of queued records not yet accepted by the sink.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Failures returns the number of failed Sink.Report calls so far.
func (b *Batcher) Failures() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

// Flush blocks until every record queued before the call has been accepted
// by the sink, or ctx ends.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	target := b.added
	b.mu.Unlock()
	b.signal()
	return b.waitAcked(ctx, target)
}

func (b *Batcher) waitAcked(ctx context.Context, target uint64) error {
	for {
		b.mu.Lock()
		acked, ch, stopped := b.acked, b.progress, b.isDone()
		b.mu.Unlock()
		if acked >= target {
			return nil
		}
		if stopped {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("usage: flush: %d records not yet accepted: %w", target-acked, ctx.Err())
		}
	}
}

func (b *Batcher) isDone() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Close sends every queued record and stops the worker. It keeps retrying
// until ctx ends or the config's CloseTimeout has passed, whichever comes
// first; records still unsent then are lost, logged and counted in the
// returned error. Later calls return nil at once.
func (b *Batcher) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CloseTimeout)
	defer cancel()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	target := b.added
	b.broadcastLocked() // wake Adds blocked on a full queue: they now report directly
	b.mu.Unlock()
	b.signal()

	select {
	case <-b.done:
	case <-ctx.Done():
		b.cancel()
		<-b.done
	}
	b.cancel()
	b.mu.Lock()
	lost := target - b.acked
	b.mu.Unlock()
	if lost > 0 {
		b.log.Error("usage records lost: the sink did not accept them before the close deadline", "records", lost)
		return fmt.Errorf("usage: %d usage records not accepted by the sink before close", lost)
	}
	return nil
}

func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Batcher) broadcastLocked() {
	close(b.progress)
	b.progress = make(chan struct{})
}

func (b *Batcher) run() {
	defer func() {
		b.mu.Lock()
		close(b.done)
		b.broadcastLocked()
		b.mu.Unlock()
	}()
	tick := time.NewTicker(b.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.wake:
		case <-tick.C:
		case <-b.ctx.Done():
			return
		}
		if !b.sendAll() {
			return // aborted by Close's deadline
		}
		b.mu.Lock()
		stop := b.closed && len(b.queue) == 0
		b.mu.Unlock()
		if stop {
			return
		}
	}
}

// sendAll reports the queue in batches until it is empty. It returns false
// if it was aborted.
func (b *Batcher) sendAll() bool {
	backoff := b.cfg.RetryMin
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.cfg.BatchSize)
		batch := b.queue[:n:n]
		b.mu.Unlock()
		if n == 0 {
			return true
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.ReportTimeout)
		err := b.sink.Report(ctx, batch...)
		cancel()
		if err == nil {
			backoff = b.cfg.RetryMin
			b.mu.Lock()
			b.queue = b.queue[n:]
			if len(b.queue) == 0 {
				b.queue = nil // let the backing array go
			}
			b.acked += uint64(n)
			b.broadcastLocked()
			b.mu.Unlock()
			continue
		}
		b.mu.Lock()
		b.failures++
		b.mu.Unlock()
		b.log.Warn("usage report failed; retrying", "records", n, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-b.ctx.Done():
			return false
		}
		backoff = min(2*backoff, b.cfg.RetryMax)
	}
}

//go:embed batcher.go
var batcherSource []byte

// ConfigDocs returns the doc comments of BatchConfig's fields, for a
// service's --help.
func ConfigDocs() config.Docs {
	return config.MustParseDocs(batcherSource)
}
