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
	// logged as lost (with a spool dir they stay on disk and are sent
	// after the next start instead).
	CloseTimeout time.Duration
	// SpoolDir is the directory where usage records wait on disk until
	// billing has accepted them, so that a crash of the process loses none
	// and a restart resends them with their idempotency keys. Every
	// record is written there (one write(2) per batch of records) before
	// the call that metered it returns. Empty keeps records in memory
	// only: a crash loses the ones not yet sent. One directory per service
	// and node: a second process (or batcher) on the same directory fails
	// to start.
	SpoolDir string
	// SpoolSyncInterval is how often the spool is fsynced: a crash of the
	// process loses nothing, a crash of the machine at most the records
	// written in this interval.
	SpoolSyncInterval time.Duration
	// SpoolSegmentBytes is the size at which the spool starts a new
	// segment file; a segment is deleted once billing has accepted all its
	// records.
	SpoolSegmentBytes int64
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
		// SpoolDir empty: memory only unless the service sets it.
		SpoolSyncInterval: time.Second, // a machine crash loses at most 1s of records
		SpoolSegmentBytes: 64 << 20,    // 64 MiB segment files
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
	if c.SpoolDir != "" {
		if c.SpoolSyncInterval <= 0 {
			errs = append(errs, fmt.Errorf("usage_spool_sync_interval: must be positive with usage_spool_dir, got %v", c.SpoolSyncInterval))
		}
		if c.SpoolSegmentBytes < minSegmentBytes {
			errs = append(errs, fmt.Errorf("usage_spool_segment_bytes: must be at least %d with usage_spool_dir, got %d", minSegmentBytes, c.SpoolSegmentBytes))
		}
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("usage_retry_max: %v is below usage_retry_min %v", c.RetryMax, c.RetryMin))
	}
	return errors.Join(errs...)
}

// minSegmentBytes is the least usage_spool_segment_bytes.
const minSegmentBytes = 4 << 10

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("usage: batcher closed")

// Batcher moves usage records off the request path: Add queues them, a
// background goroutine hands them to a Sink in batches and retries a failed
// batch (same records, same idempotency keys) until the sink accepts it, so
// a record is neither lost nor counted twice. With a SpoolDir, Add also
// appends the records to a file there before it returns, and a new Batcher
// on that directory resends what the sink had not accepted, so a crash of
// the process loses nothing either. Its methods are safe for concurrent
// use.
type Batcher struct {
	sink Sink
	cfg  BatchConfig
	log  *slog.Logger

	// spool is nil without SpoolDir. Lock order: spool.mu, then mu.
	spool    *spool
	syncStop chan struct{}
	syncDone chan struct{}

	mu       sync.Mutex
	queue    []Record
	seqs     []uint64      // with a spool: the sequence number of each queued record
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

// NewBatcher starts a Batcher reporting to sink; log may be nil. With
// cfg.SpoolDir it locks the directory (failing with ErrSpoolLocked when
// another Batcher has it), recovers the records a previous Batcher there
// left unacknowledged and queues them first, with their keys (all of
// them, even beyond QueueSize; new Adds then wait until the queue is under
// it). A torn or damaged tail of a segment (a crash in mid-write) is cut
// off with a warning. Call Close to stop it.
func NewBatcher(sink Sink, cfg BatchConfig, log *slog.Logger) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	if cfg.SpoolDir != "" {
		sp, recs, seqs, err := openSpool(cfg.SpoolDir, cfg.SpoolSegmentBytes, log)
		if err != nil {
			cancel()
			return nil, err
		}
		b.spool, b.queue, b.seqs = sp, recs, seqs
		b.added = uint64(len(recs))
		if len(recs) > 0 {
			log.Info("usage spool: resending records not acknowledged before the last stop",
				"dir", cfg.SpoolDir, "records", len(recs))
			b.signal()
		}
		b.syncStop, b.syncDone = make(chan struct{}), make(chan struct{})
		go b.syncLoop()
	}
	go b.run()
	return b, nil
}

func (b *Batcher) syncLoop() {
	defer close(b.syncDone)
	t := time.NewTicker(b.cfg.SpoolSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.spool.sync()
		case <-b.syncStop:
			return
		}
	}
}

// Add queues records. It does not wait for the sink; it blocks only while
// the queue holds QueueSize records or more (the sink is slow or down), so
// that memory stays bounded and no record is dropped. With a spool it
// writes the records to the spool (one write(2), no fsync) before it
// returns. After Close, Add reports synchronously (one attempt) and logs
// what the sink refused.
func (b *Batcher) Add(recs ...Record) {
	if len(recs) == 0 {
		return
	}
	if b.spool != nil {
		b.addSpooled(recs)
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
		b.reportLate(recs)
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

func (b *Batcher) addSpooled(recs []Record) {
	for {
		b.spool.mu.Lock()
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			b.spool.mu.Unlock()
			b.reportLate(recs)
			return
		}
		if len(b.queue) < b.cfg.QueueSize {
			break
		}
		ch := b.progress
		b.mu.Unlock()
		b.spool.mu.Unlock()
		b.signal()
		<-ch
	}
	// Holding spool.mu keeps the queue in the order of the spool and Close
	// out; mu is released during the write so the worker can go on.
	b.mu.Unlock()
	first, _ := b.spool.append(recs)
	b.mu.Lock()
	b.queue = append(b.queue, recs...)
	for i := range recs {
		b.seqs = append(b.seqs, first+uint64(i))
	}
	b.added += uint64(len(recs))
	full := len(b.queue) >= b.cfg.BatchSize
	b.mu.Unlock()
	b.spool.mu.Unlock()
	if full {
		b.signal()
	}
}

// reportLate hands records added after Close to the sink directly.
func (b *Batcher) reportLate(recs []Record) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ReportTimeout)
	defer cancel()
	if err := b.sink.Report(ctx, recs...); err != nil {
		b.log.Error("usage records lost: reported after close and the sink refused them",
			"records", len(recs), "err", err)
	}
}

// SpoolErrors returns how many Add calls could not write their records to
// the spool (those records were kept in memory only); 0 without a spool.
func (b *Batcher) SpoolErrors() uint64 {
	if b.spool == nil {
		return 0
	}
	b.spool.mu.Lock()
	defer b.spool.mu.Unlock()
	return b.spool.errs
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
// returned error. With a spool they are not lost: they stay in the spool
// (logged) for the next Batcher on it, and Close returns nil; it then
// fsyncs the spool and releases its lock. Later calls return nil at once.
func (b *Batcher) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CloseTimeout)
	defer cancel()
	if b.spool != nil {
		b.spool.mu.Lock() // no Add is between its spool write and its queueing
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		if b.spool != nil {
			b.spool.mu.Unlock()
		}
		return nil
	}
	b.closed = true
	target := b.added
	b.broadcastLocked() // wake Adds blocked on a full queue: they now report directly
	b.mu.Unlock()
	if b.spool != nil {
		b.spool.mu.Unlock()
	}
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
	if b.spool != nil {
		close(b.syncStop)
		<-b.syncDone
		err := b.spool.close()
		if lost > 0 {
			b.log.Warn("usage records not yet accepted by the sink stay in the spool; the next start sends them",
				"records", lost, "dir", b.cfg.SpoolDir)
		}
		return err
	}
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
			var cursor uint64
			if b.spool != nil {
				cursor = b.seqs[n-1] + 1
				b.seqs = b.seqs[n:]
				if len(b.seqs) == 0 {
					b.seqs = nil
				}
			}
			b.mu.Unlock()
			if b.spool != nil {
				b.spool.ack(cursor)
			}
			b.mu.Lock()
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
