// Package chainwatchtest is a fake chain indexer for the tests of the
// services that follow it: a real gRPC ChainIndexerService on 127.0.0.1
// whose Watch rpcs keep the service's stream semantics over a history the
// test writes, and which the test can stop, restart on the same address,
// make forget its history or make refuse calls.
package chainwatchtest

import (
	"cmp"
	"context"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

// FirstSequence is the sequence of an Indexer's first change. It is not 1,
// so a follower that assumes sequences start at 1 shows.
const FirstSequence = 1001

// Kinds of objects, as Call.Kind names them.
const (
	KindStacks  = "stacks"
	KindRegions = "regions"
	KindEscrows = "escrows"
)

// Call is one Watch call the Indexer received.
type Call struct {
	Kind string
	From uint64
}

type change struct {
	seq  uint64
	kind string
	typ  chainindexerv1.ChangeType
	key  string
	obj  proto.Message
}

// Indexer is the fake ChainIndexerService. Its Watch rpcs answer
// from_sequence 0 with the current objects (for stacks, the active ones)
// in sequence order, each with the sequence of its last change, then a
// BOOKMARK; from_sequence N with every matching change from N on, or
// OUT_OF_RANGE when N is older than its history (Forget); then live
// changes, and a BOOKMARK per Bookmark call. Every method is safe for
// concurrent use; Put*, Delete*, Bookmark and Forget work while it is
// stopped too (the changes are served after Restart).
type Indexer struct {
	chainindexerv1.UnimplementedChainIndexerServiceServer

	t    testing.TB
	addr string

	mu        sync.Mutex
	srv       *grpc.Server
	seq       uint64
	oldest    uint64 // the smallest from_sequence that can be resumed
	history   []change
	current   map[string]change // kind + key → last change of that object
	wake      chan struct{}     // closed and replaced on every change or bookmark
	bookmarks uint64
	failures  int
	failErr   error
	cutAfter  int // the next stream fails with cutErr after this many events; -1: none
	cutErr    error
	calls     []Call
}

// New starts an Indexer on 127.0.0.1:0 and stops it when the test ends.
func New(t testing.TB) *Indexer {
	t.Helper()
	x := &Indexer{t: t, seq: FirstSequence - 1, oldest: 1, cutAfter: -1, current: map[string]change{}, wake: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.addr = lis.Addr().String()
	x.serve(lis)
	t.Cleanup(x.Stop)
	return x
}

func (x *Indexer) serve(lis net.Listener) {
	srv := grpc.NewServer()
	chainindexerv1.RegisterChainIndexerServiceServer(srv, x)
	x.mu.Lock()
	x.srv = srv
	x.mu.Unlock()
	go srv.Serve(lis)
}

// Addr is the host:port the Indexer serves on (the same after Restart).
func (x *Indexer) Addr() string { return x.addr }

// Stop stops serving at once: open streams fail with UNAVAILABLE and new
// calls cannot connect. Safe to call twice.
func (x *Indexer) Stop() {
	x.mu.Lock()
	srv := x.srv
	x.srv = nil
	x.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart serves again on the same address, with the history and objects
// the Indexer had (as a persistent indexer does).
func (x *Indexer) Restart() {
	x.t.Helper()
	x.Stop()
	lis, err := net.Listen("tcp", x.addr)
	if err != nil {
		x.t.Fatalf("chainwatchtest: listen again on %s: %v", x.addr, err)
	}
	x.serve(lis)
}

// Forget drops the history: a Watch that resumes from a sequence at or
// below the current one fails with OUT_OF_RANGE (from_sequence 0 still
// gets a snapshot). Call it while stopped: a stream open during Forget
// does not get the changes it had not sent yet.
func (x *Indexer) Forget() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.history = nil
	x.oldest = x.seq + 1
}

// FailWatches makes the next n Watch calls (of any kind) fail with err.
func (x *Indexer) FailWatches(n int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.failures, x.failErr = n, err
}

// CutNextStream makes the next Watch stream (of any kind) fail with err
// after it has sent n events, e.g. in the middle of its snapshot.
func (x *Indexer) CutNextStream(n int, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cutAfter, x.cutErr = n, err
}

// Calls returns the Watch calls received so far, in order.
func (x *Indexer) Calls() []Call {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.calls)
}

// Sequence is the sequence of the last change.
func (x *Indexer) Sequence() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.seq
}

// PutStack records an UPSERT of s (a stack deleted by its owner is an
// UPSERT with STACK_STATE_DELETED) and returns its sequence.
func (x *Indexer) PutStack(s *chainindexerv1.Stack) uint64 {
	return x.add(KindStacks, chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, string(s.GetId()), s)
}

// DeleteStack records a DELETE of s (its account closed) and returns its
// sequence.
func (x *Indexer) DeleteStack(s *chainindexerv1.Stack) uint64 {
	return x.add(KindStacks, chainindexerv1.ChangeType_CHANGE_TYPE_DELETE, string(s.GetId()), s)
}

// PutRegion records an UPSERT of r and returns its sequence.
func (x *Indexer) PutRegion(r *chainindexerv1.Region) uint64 {
	return x.add(KindRegions, chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, string(r.GetId()), r)
}

// PutEscrow records an UPSERT of e and returns its sequence.
func (x *Indexer) PutEscrow(e *chainindexerv1.Escrow) uint64 {
	return x.add(KindEscrows, chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT, string(e.GetDeveloper())+string(e.GetProviderId()), e)
}

// Bookmark sends every open stream a BOOKMARK at the current sequence,
// after the changes before it.
func (x *Indexer) Bookmark() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.bookmarks++
	x.notifyLocked()
}

func (x *Indexer) add(kind string, typ chainindexerv1.ChangeType, key string, obj proto.Message) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	c := change{seq: x.seq, kind: kind, typ: typ, key: key, obj: proto.Clone(obj)}
	x.history = append(x.history, c)
	if typ == chainindexerv1.ChangeType_CHANGE_TYPE_DELETE {
		delete(x.current, kind+key)
	} else {
		x.current[kind+key] = c
	}
	x.notifyLocked()
	return c.seq
}

func (x *Indexer) notifyLocked() {
	close(x.wake)
	x.wake = make(chan struct{})
}

// event is one event to send.
type event struct {
	meta *chainindexerv1.ChangeMeta
	obj  proto.Message
}

// watch serves one Watch of kind: match filters objects, send writes one
// event (obj nil for a BOOKMARK).
func (x *Indexer) watch(ctx context.Context, kind string, from uint64, match func(proto.Message) bool, send func(event) error) error {
	x.mu.Lock()
	x.calls = append(x.calls, Call{Kind: kind, From: from})
	if x.failures > 0 {
		x.failures--
		err := x.failErr
		x.mu.Unlock()
		return err
	}
	var out []event
	next := from // the sequence of the next change to send
	if from == 0 {
		var snap []change
		for _, c := range x.current {
			if c.kind != kind || !match(c.obj) {
				continue
			}
			if st, ok := c.obj.(*chainindexerv1.Stack); ok && st.GetState() == chainindexerv1.StackState_STACK_STATE_DELETED {
				continue // snapshots hold active stacks only
			}
			snap = append(snap, c)
		}
		slices.SortFunc(snap, func(a, b change) int { return cmp.Compare(a.seq, b.seq) })
		for _, c := range snap {
			out = append(out, event{&chainindexerv1.ChangeMeta{Type: c.typ, Sequence: c.seq, Slot: c.seq}, c.obj})
		}
		out = append(out, event{meta: &chainindexerv1.ChangeMeta{Type: chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK, Sequence: x.seq, Slot: x.seq}})
		next = x.seq + 1
	} else if from < x.oldest {
		x.mu.Unlock()
		return status.Errorf(codes.OutOfRange, "changes from sequence %d are no longer retained (oldest %d)", from, x.oldest)
	}
	bookmarks := x.bookmarks
	cutAfter, cutErr := x.cutAfter, x.cutErr
	x.cutAfter = -1
	x.mu.Unlock()
	sent := 0
	for {
		for _, e := range out {
			if sent == cutAfter {
				return cutErr
			}
			if err := send(e); err != nil {
				return err
			}
			sent++
		}
		out = out[:0]
		x.mu.Lock()
		pos, _ := slices.BinarySearchFunc(x.history, next, func(c change, seq uint64) int { return cmp.Compare(c.seq, seq) })
		for _, c := range x.history[pos:] {
			if c.kind == kind && match(c.obj) {
				out = append(out, event{&chainindexerv1.ChangeMeta{Type: c.typ, Sequence: c.seq, Slot: c.seq}, c.obj})
			}
		}
		next = x.seq + 1
		if x.bookmarks != bookmarks {
			bookmarks = x.bookmarks
			out = append(out, event{meta: &chainindexerv1.ChangeMeta{Type: chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK, Sequence: x.seq, Slot: x.seq}})
		}
		wake := x.wake
		x.mu.Unlock()
		if len(out) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// WatchStacks implements ChainIndexerServiceServer.
func (x *Indexer) WatchStacks(req *chainindexerv1.WatchStacksRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchStacksResponse]) error {
	match := func(m proto.Message) bool {
		s := m.(*chainindexerv1.Stack)
		if len(req.GetRegionId()) > 0 && string(req.GetRegionId()) != string(s.GetRegionId()) {
			return false
		}
		if len(req.GetOwner()) > 0 && string(req.GetOwner()) != string(s.GetOwner()) {
			return false
		}
		return len(req.GetStackIds()) == 0 || slices.ContainsFunc(req.GetStackIds(), func(id []byte) bool { return string(id) == string(s.GetId()) })
	}
	return x.watch(stream.Context(), KindStacks, req.GetFromSequence(), match, func(e event) error {
		r := &chainindexerv1.WatchStacksResponse{Change: e.meta}
		if e.obj != nil {
			r.Stack = e.obj.(*chainindexerv1.Stack)
		}
		return stream.Send(r)
	})
}

// WatchRegions implements ChainIndexerServiceServer.
func (x *Indexer) WatchRegions(req *chainindexerv1.WatchRegionsRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchRegionsResponse]) error {
	match := func(m proto.Message) bool {
		r := m.(*chainindexerv1.Region)
		return len(req.GetProviderId()) == 0 || string(req.GetProviderId()) == string(r.GetProviderId())
	}
	return x.watch(stream.Context(), KindRegions, req.GetFromSequence(), match, func(e event) error {
		r := &chainindexerv1.WatchRegionsResponse{Change: e.meta}
		if e.obj != nil {
			r.Region = e.obj.(*chainindexerv1.Region)
		}
		return stream.Send(r)
	})
}

// WatchEscrows implements ChainIndexerServiceServer.
func (x *Indexer) WatchEscrows(req *chainindexerv1.WatchEscrowsRequest, stream grpc.ServerStreamingServer[chainindexerv1.WatchEscrowsResponse]) error {
	match := func(m proto.Message) bool {
		e := m.(*chainindexerv1.Escrow)
		if len(req.GetDeveloper()) > 0 && string(req.GetDeveloper()) != string(e.GetDeveloper()) {
			return false
		}
		return len(req.GetProviderId()) == 0 || string(req.GetProviderId()) == string(e.GetProviderId())
	}
	return x.watch(stream.Context(), KindEscrows, req.GetFromSequence(), match, func(e event) error {
		r := &chainindexerv1.WatchEscrowsResponse{Change: e.meta}
		if e.obj != nil {
			r.Escrow = e.obj.(*chainindexerv1.Escrow)
		}
		return stream.Send(r)
	})
}
