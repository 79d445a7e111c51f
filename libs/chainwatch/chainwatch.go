// Package chainwatch follows the chain indexer's Watch streams
// (mu.chainindexer.v1.ChainIndexerService) for the services that act on the
// marketplace's state: runtimes and gateways learn stacks, regions and
// escrow balances through it.
//
// A Follower keeps one Watch stream of one kind open for as long as its Run
// runs, and hands every event to a Handler, in stream order, from Run's
// goroutine. What it guarantees:
//
//   - It starts with from_sequence 0: the handler gets the snapshot's
//     UPSERTs (Event.Snapshot), then its BOOKMARK; from then on Synced is
//     true and live changes follow.
//   - After any stream error (the indexer unreachable, restarting, closing
//     the stream with UNAVAILABLE, a broken connection) it calls again with
//     from_sequence = Sequence()+1 after a capped exponential backoff with
//     jitter (Backoff), so the handler gets every change exactly once and in
//     order: none is lost across the gap and none is repeated (live events
//     at or below the last sequence handled are dropped). A stream cut off
//     before its snapshot's BOOKMARK starts over from 0.
//   - When the indexer no longer holds the changes from that sequence on
//     (OUT_OF_RANGE), it starts over from 0 at once and reconciles: objects
//     of the new snapshot that are unchanged from what the handler was last
//     given are not handed again; objects the handler knew (last given
//     alive) that are missing from the new snapshot were deleted while the
//     follower could not see it, and the handler gets a DELETE for each
//     with their last known state (Event.Missed), after the snapshot's
//     UPSERTs and before its BOOKMARK. That is the only time the follower
//     reports a change the indexer did not send.
//   - An indexer that is unreachable, slow or restarting never makes the
//     follower report a deletion or anything else: the handler simply gets
//     no events until the stream is back. Synced stays true through an
//     outage (what the handler has is the ledger's state as of Sequence),
//     and turns false only while a snapshot that replaces it is under way.
//   - Run returns only when its context ends.
//
// The handler runs on Run's goroutine, one event at a time; while it runs,
// the stream is not read (gRPC flow control holds the indexer back), so a
// handler that has slow work to do queues it and returns.
package chainwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mr-tron/base58"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// Event is one change handed to a Handler.
type Event[T proto.Message] struct {
	// Type is UPSERT, DELETE or BOOKMARK (never UNSPECIFIED).
	Type chainindexerv1.ChangeType
	// Sequence is the indexer's sequence of the change; for a BOOKMARK,
	// the sequence the handler is now current to. A Missed DELETE carries
	// the sequence of the snapshot that showed the object gone.
	Sequence uint64
	// Slot is the ledger slot of the change (informational).
	Slot uint64
	// Object is the object's new state, or its last known state for a
	// DELETE; nil for a BOOKMARK.
	Object T
	// Snapshot is true for the events of a snapshot (from_sequence 0): its
	// UPSERTs, the DELETEs it implies (Missed) and the BOOKMARK that ends
	// it, after which Synced is true.
	Snapshot bool
	// Missed is true for a DELETE the follower inferred: the object was
	// known but is missing from the snapshot taken after the indexer
	// answered OUT_OF_RANGE, so it was deleted while its changes were
	// missed.
	Missed bool
}

// Handler receives a Follower's events, one at a time, in order, on the
// goroutine of the Follower's Run. ctx is Run's context. It should return
// promptly (see the package documentation).
type Handler[T proto.Message] func(ctx context.Context, ev Event[T])

// Options tune a Follower.
type Options struct {
	// Backoff spaces the attempts to reach the indexer after failures.
	// The zero value means DefaultBackoff().
	Backoff Backoff
	// Logger receives the follower's logs (stream errors at warn,
	// snapshots and OUT_OF_RANGE restarts at info); nil discards them.
	Logger *slog.Logger
}

// kind is what differs between the Watch rpcs.
type kind[T proto.Message] struct {
	name string
	// open starts a Watch from sequence from; recv returns its next event.
	open func(ctx context.Context, c chainindexerv1.ChainIndexerServiceClient, from uint64) (recv func() (*chainindexerv1.ChangeMeta, T, error), err error)
	// key identifies an object; an error means it cannot be (a malformed
	// event).
	key func(T) (string, error)
	// alive reports whether a fresh snapshot would contain the object:
	// stacks in STACK_STATE_DELETED are not in one.
	alive func(T) bool
}

// Follower follows one Watch stream. Create it with Stacks, Regions or
// Escrows and call Run. Synced, Sequence and Connected are safe for
// concurrent use; Run must not run twice at once.
type Follower[T proto.Message] struct {
	kind    kind[T]
	client  chainindexerv1.ChainIndexerServiceClient
	handle  Handler[T]
	backoff Backoff
	log     *slog.Logger
	// wait sleeps d or until ctx ends (false); tests replace it.
	wait func(ctx context.Context, d time.Duration) bool

	running   atomic.Bool
	seq       atomic.Uint64
	synced    atomic.Bool
	connected atomic.Bool

	// Owned by Run's goroutine.
	known   map[string]T // objects last handed alive, by key
	current bool         // seq is a resume point (a snapshot was completed since the last OUT_OF_RANGE)
}

func newFollower[T proto.Message](k kind[T], conn grpc.ClientConnInterface, h Handler[T], opts Options) *Follower[T] {
	b := opts.Backoff
	if b == (Backoff{}) {
		b = DefaultBackoff()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower[T]{
		kind:    k,
		client:  chainindexerv1.NewChainIndexerServiceClient(conn),
		handle:  h,
		backoff: b,
		log:     log.With("watch", k.name),
		wait:    sleep,
		known:   map[string]T{},
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Stacks follows WatchStacks with filter's region_id, owner and stack_ids
// (its from_sequence is ignored; nil watches every stack).
func Stacks(conn grpc.ClientConnInterface, filter *chainindexerv1.WatchStacksRequest, h Handler[*chainindexerv1.Stack], opts Options) *Follower[*chainindexerv1.Stack] {
	req := &chainindexerv1.WatchStacksRequest{}
	if filter != nil {
		req = proto.CloneOf(filter)
	}
	return newFollower(kind[*chainindexerv1.Stack]{
		name: "stacks",
		open: func(ctx context.Context, c chainindexerv1.ChainIndexerServiceClient, from uint64) (func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Stack, error), error) {
			r := proto.CloneOf(req)
			r.FromSequence = from
			st, err := c.WatchStacks(ctx, r)
			if err != nil {
				return nil, err
			}
			return func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Stack, error) {
				m, err := st.Recv()
				return m.GetChange(), m.GetStack(), err
			}, nil
		},
		key: func(s *chainindexerv1.Stack) (string, error) { return key32("stack.id", s.GetId()) },
		alive: func(s *chainindexerv1.Stack) bool {
			return s.GetState() != chainindexerv1.StackState_STACK_STATE_DELETED
		},
	}, conn, h, opts)
}

// Regions follows WatchRegions with filter's provider_id (its
// from_sequence is ignored; nil watches every region).
func Regions(conn grpc.ClientConnInterface, filter *chainindexerv1.WatchRegionsRequest, h Handler[*chainindexerv1.Region], opts Options) *Follower[*chainindexerv1.Region] {
	req := &chainindexerv1.WatchRegionsRequest{}
	if filter != nil {
		req = proto.CloneOf(filter)
	}
	return newFollower(kind[*chainindexerv1.Region]{
		name: "regions",
		open: func(ctx context.Context, c chainindexerv1.ChainIndexerServiceClient, from uint64) (func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Region, error), error) {
			r := proto.CloneOf(req)
			r.FromSequence = from
			st, err := c.WatchRegions(ctx, r)
			if err != nil {
				return nil, err
			}
			return func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Region, error) {
				m, err := st.Recv()
				return m.GetChange(), m.GetRegion(), err
			}, nil
		},
		key:   func(r *chainindexerv1.Region) (string, error) { return key32("region.id", r.GetId()) },
		alive: func(*chainindexerv1.Region) bool { return true },
	}, conn, h, opts)
}

// Escrows follows WatchEscrows with filter's developer and provider_id (its
// from_sequence is ignored; nil watches every escrow).
func Escrows(conn grpc.ClientConnInterface, filter *chainindexerv1.WatchEscrowsRequest, h Handler[*chainindexerv1.Escrow], opts Options) *Follower[*chainindexerv1.Escrow] {
	req := &chainindexerv1.WatchEscrowsRequest{}
	if filter != nil {
		req = proto.CloneOf(filter)
	}
	return newFollower(kind[*chainindexerv1.Escrow]{
		name: "escrows",
		open: func(ctx context.Context, c chainindexerv1.ChainIndexerServiceClient, from uint64) (func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Escrow, error), error) {
			r := proto.CloneOf(req)
			r.FromSequence = from
			st, err := c.WatchEscrows(ctx, r)
			if err != nil {
				return nil, err
			}
			return func() (*chainindexerv1.ChangeMeta, *chainindexerv1.Escrow, error) {
				m, err := st.Recv()
				return m.GetChange(), m.GetEscrow(), err
			}, nil
		},
		key: func(e *chainindexerv1.Escrow) (string, error) {
			d, err := key32("escrow.developer", e.GetDeveloper())
			if err != nil {
				return "", err
			}
			p, err := key32("escrow.provider_id", e.GetProviderId())
			return d + p, err
		},
		alive: func(*chainindexerv1.Escrow) bool { return true },
	}, conn, h, opts)
}

func key32(field string, b []byte) (string, error) {
	if len(b) != 32 {
		return "", fmt.Errorf("%s is %d bytes, want 32", field, len(b))
	}
	return string(b), nil
}

// Synced reports whether the handler has been given a whole snapshot (its
// BOOKMARK included) and, since, every change up to Sequence. It stays true
// while the indexer is unreachable and is false before the first snapshot
// and while one that follows an OUT_OF_RANGE is under way.
func (f *Follower[T]) Synced() bool { return f.synced.Load() }

// Sequence is the indexer sequence the handler is current to: that of the
// last live event or BOOKMARK it has returned from (0 before the first
// snapshot's BOOKMARK). The next stream resumes from Sequence()+1.
func (f *Follower[T]) Sequence() uint64 { return f.seq.Load() }

// Connected reports whether the current stream has delivered an event
// (false while the follower waits to retry or has not reached the indexer
// yet).
func (f *Follower[T]) Connected() bool { return f.connected.Load() }

// Run follows the stream until ctx ends and then returns; it never returns
// earlier, whatever the indexer does. It blocks. A second Run while one is
// running returns at once without doing anything; a Run after an earlier
// one returned resumes where it stopped.
func (f *Follower[T]) Run(ctx context.Context) {
	if !f.running.CompareAndSwap(false, true) {
		f.log.Error("chainwatch: Run called while already running; ignored")
		return
	}
	defer f.running.Store(false)
	failures := 0
	for ctx.Err() == nil {
		from := uint64(0)
		if f.current {
			from = f.seq.Load() + 1
		}
		delivered, err := f.stream(ctx, from)
		f.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			failures = 0
		}
		if status.Code(err) == codes.OutOfRange && from > 0 {
			f.log.Info("the indexer no longer has the changes to resume from; starting over with a snapshot", "from_sequence", from)
			f.current = false
			f.synced.Store(false)
			continue
		}
		failures++
		d := f.backoff.Delay(failures)
		f.log.Warn("watch failed; retrying", "from_sequence", from, "failures", failures, "retry_in", d, "err", err)
		if !f.wait(ctx, d) {
			return
		}
	}
}

// errEnded is a stream that ended without an error, which a Watch never
// does on its own.
var errEnded = errors.New("the indexer ended the stream")

// stream runs one Watch from sequence from until it fails; delivered
// reports whether it brought any event.
func (f *Follower[T]) stream(ctx context.Context, from uint64) (delivered bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv, err := f.kind.open(sctx, f.client, from)
	if err != nil {
		return false, err
	}
	var seen map[string]bool // keys of the snapshot under way; nil when live
	if from == 0 {
		seen = map[string]bool{}
	}
	for {
		meta, obj, err := recv()
		if errors.Is(err, io.EOF) {
			return delivered, errEnded
		}
		if err != nil {
			return delivered, err
		}
		delivered = true
		f.connected.Store(true)
		if seen != nil {
			if f.snapshotEvent(ctx, meta, obj, seen) {
				seen = nil
			}
			continue
		}
		f.liveEvent(ctx, meta, obj)
	}
}

// snapshotEvent handles an event of a snapshot; it reports whether it was
// the BOOKMARK that ends it.
func (f *Follower[T]) snapshotEvent(ctx context.Context, meta *chainindexerv1.ChangeMeta, obj T, seen map[string]bool) (done bool) {
	switch meta.GetType() {
	case chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK:
		for k, old := range f.known {
			if !seen[k] {
				delete(f.known, k)
				f.log.Info("an object known before is missing from the new snapshot: it was deleted while its changes were missed", "key", base58.Encode([]byte(k)), "sequence", meta.GetSequence())
				f.handle(ctx, Event[T]{Type: chainindexerv1.ChangeType_CHANGE_TYPE_DELETE, Sequence: meta.GetSequence(), Slot: meta.GetSlot(), Object: old, Snapshot: true, Missed: true})
			}
		}
		f.handle(ctx, Event[T]{Type: meta.GetType(), Sequence: meta.GetSequence(), Slot: meta.GetSlot(), Snapshot: true})
		f.seq.Store(meta.GetSequence())
		f.current = true
		f.synced.Store(true)
		f.log.Info("snapshot complete", "sequence", meta.GetSequence(), "objects", len(f.known))
		return true
	case chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, chainindexerv1.ChangeType_CHANGE_TYPE_DELETE:
		k, err := f.kind.key(obj)
		if err != nil {
			f.log.Warn("ignoring a malformed snapshot event", "type", meta.GetType(), "sequence", meta.GetSequence(), "err", err)
			return false
		}
		seen[k] = true
		if old, ok := f.known[k]; ok && meta.GetType() == chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT && proto.Equal(old, obj) {
			return false // the handler has it already
		}
		f.remember(k, meta.GetType(), obj)
		f.handle(ctx, Event[T]{Type: meta.GetType(), Sequence: meta.GetSequence(), Slot: meta.GetSlot(), Object: obj, Snapshot: true})
	default:
		f.log.Warn("ignoring an event of unknown type", "type", meta.GetType(), "sequence", meta.GetSequence())
	}
	return false
}

// liveEvent handles an event after the snapshot.
func (f *Follower[T]) liveEvent(ctx context.Context, meta *chainindexerv1.ChangeMeta, obj T) {
	seq := meta.GetSequence()
	if seq <= f.seq.Load() {
		if meta.GetType() != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			f.log.Debug("dropping a change already handled", "type", meta.GetType(), "sequence", seq, "current", f.seq.Load())
		}
		return
	}
	switch meta.GetType() {
	case chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK:
		f.handle(ctx, Event[T]{Type: meta.GetType(), Sequence: seq, Slot: meta.GetSlot()})
	case chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, chainindexerv1.ChangeType_CHANGE_TYPE_DELETE:
		k, err := f.kind.key(obj)
		if err != nil {
			f.log.Warn("ignoring a malformed event", "type", meta.GetType(), "sequence", seq, "err", err)
			break
		}
		f.remember(k, meta.GetType(), obj)
		f.handle(ctx, Event[T]{Type: meta.GetType(), Sequence: seq, Slot: meta.GetSlot(), Object: obj})
	default:
		f.log.Warn("ignoring an event of unknown type", "type", meta.GetType(), "sequence", seq)
	}
	f.seq.Store(seq)
}

// remember records what the handler is about to be given under key k.
func (f *Follower[T]) remember(k string, t chainindexerv1.ChangeType, obj T) {
	if t == chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT && f.kind.alive(obj) {
		f.known[k] = obj
		return
	}
	delete(f.known, k)
}

// minConnectTimeout is the least time one connection attempt gets: gRPC's
// own default, which WithConnectParams would otherwise set to zero.
const minConnectTimeout = 20 * time.Second

// Dial returns a client connection to the chain indexer at addr (host:port)
// whose reconnection backoff is b, so that after an outage the connection
// is retried as often as the Follower retries its stream. It connects
// lazily: an unreachable indexer fails the Watch calls, not Dial. extra
// options come last and must give the transport credentials (a service's
// TLS.DialOption(certs.RoleChainIndexer)), then message size limits,
// interceptors.
func Dial(addr string, b Backoff, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if b == (Backoff{}) {
		b = DefaultBackoff()
	}
	opts := append([]grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: b.Initial, Multiplier: 2, Jitter: 0.25, MaxDelay: b.Max},
			MinConnectTimeout: minConnectTimeout,
		}),
	}, extra...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("chainwatch: chain indexer %q: %w", addr, err)
	}
	return conn, nil
}
