package chainwatch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/muprotocol/mu/libs/chainwatch/chainwatchtest"
	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

var (
	regionA = key(0xa1)
	regionB = key(0xb1)
)

func key(b byte) []byte {
	k := make([]byte, 32)
	k[0], k[31] = b, 1
	return k
}

func stack(id byte, region []byte, rev uint64) *chainindexerv1.Stack {
	return &chainindexerv1.Stack{Id: key(id), Owner: key(0xee), RegionId: region, Revision: rev, Manifest: []byte(fmt.Sprintf("rev %d", rev)),
		State: chainindexerv1.StackState_STACK_STATE_ACTIVE, Enabled: true}
}

func deleted(s *chainindexerv1.Stack) *chainindexerv1.Stack {
	d := proto.CloneOf(s)
	d.State, d.Enabled = chainindexerv1.StackState_STACK_STATE_DELETED, false
	return d
}

// recorder is a Handler that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event[*chainindexerv1.Stack]
}

func (r *recorder) handle(_ context.Context, ev Event[*chainindexerv1.Stack]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) all() []Event[*chainindexerv1.Stack] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// from returns the events from index i on.
func (r *recorder) from(i int) []Event[*chainindexerv1.Stack] { return r.all()[i:] }

// waitFor polls cond until it holds; the deadline only bounds a test that
// would otherwise hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testBackoff retries fast, for the channel and the follower alike.
var testBackoff = Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond}

// follow starts a stack follower of region on x; it runs until the test ends.
func follow(t *testing.T, x *chainwatchtest.Indexer, region []byte, setup func(*Follower[*chainindexerv1.Stack])) (*Follower[*chainindexerv1.Stack], *recorder) {
	t.Helper()
	conn, err := Dial(x.Addr(), testBackoff, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rec := &recorder{}
	f := Stacks(conn, &chainindexerv1.WatchStacksRequest{RegionId: region}, rec.handle, Options{Backoff: testBackoff})
	if setup != nil {
		setup(f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f, rec
}

func lastIsBookmark(rec *recorder, seq uint64) func() bool {
	return func() bool {
		ev := rec.all()
		return len(ev) > 0 && ev[len(ev)-1].Type == chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK && ev[len(ev)-1].Sequence >= seq
	}
}

// describe renders events compactly for comparisons: type, stack id byte,
// revision, flags.
func describe(evs []Event[*chainindexerv1.Stack]) []string {
	var out []string
	for _, e := range evs {
		s := strings.TrimPrefix(e.Type.String(), "CHANGE_TYPE_")
		if e.Type != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			s += fmt.Sprintf(" %x r%d %s", e.Object.GetId()[0], e.Object.GetRevision(), strings.TrimPrefix(e.Object.GetState().String(), "STACK_STATE_"))
		}
		if e.Snapshot {
			s += " snapshot"
		}
		if e.Missed {
			s += " missed"
		}
		out = append(out, s)
	}
	return out
}

func TestFollower_SnapshotThenBookmarkThenLive(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutStack(stack(1, regionA, 1))
	x.PutStack(stack(2, regionA, 1))
	x.PutStack(stack(3, regionB, 1)) // another region: filtered out
	x.PutStack(stack(4, regionA, 1))
	x.PutStack(deleted(stack(4, regionA, 2))) // deleted: not in the snapshot
	snapSeq := x.PutStack(stack(1, regionA, 2))

	f, rec := follow(t, x, regionA, nil)
	waitFor(t, "the snapshot", f.Synced)
	got := describe(rec.all())
	want := []string{"UPSERT 2 r1 ACTIVE snapshot", "UPSERT 1 r2 ACTIVE snapshot", "BOOKMARK snapshot"}
	if !slices.Equal(got, want) {
		t.Fatalf("snapshot events\n got %q\nwant %q", got, want)
	}
	if f.Sequence() != snapSeq || rec.all()[2].Sequence != snapSeq {
		t.Fatalf("Sequence %d, bookmark %d, want %d", f.Sequence(), rec.all()[2].Sequence, snapSeq)
	}

	live := x.PutStack(stack(2, regionA, 2))
	gone := x.PutStack(deleted(stack(1, regionA, 3)))
	other := x.PutStack(stack(3, regionB, 2))
	x.Bookmark()
	waitFor(t, "the live changes", lastIsBookmark(rec, other))
	got = describe(rec.from(3))
	want = []string{"UPSERT 2 r2 ACTIVE", "UPSERT 1 r3 DELETED", "BOOKMARK"}
	if !slices.Equal(got, want) {
		t.Fatalf("live events\n got %q\nwant %q", got, want)
	}
	if ev := rec.from(3); ev[0].Sequence != live || ev[1].Sequence != gone || ev[2].Sequence != x.Sequence() {
		t.Fatalf("sequences %d %d %d, want %d %d %d", ev[0].Sequence, ev[1].Sequence, ev[2].Sequence, live, gone, x.Sequence())
	}
	if f.Sequence() != x.Sequence() {
		t.Fatalf("Sequence %d after the bookmark, want %d (past the other region's change)", f.Sequence(), x.Sequence())
	}
}

func TestFollower_ResumesAfterRestartsWithoutLossOrDuplicates(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutStack(stack(1, regionA, 1))
	f, rec := follow(t, x, regionA, nil)
	waitFor(t, "the snapshot", f.Synced)
	synced := len(rec.all())

	var want []uint64
	for round := range 5 {
		want = append(want, x.PutStack(stack(1, regionA, uint64(10*round+2))))
		waitFor(t, "the change before the stop", func() bool { return f.Sequence() == want[len(want)-1] })
		x.Stop()
		// Changes made while the follower cannot see them.
		want = append(want, x.PutStack(stack(2, regionA, uint64(10*round+3))))
		want = append(want, x.PutStack(stack(3, regionA, uint64(10*round+4))))
		x.PutStack(stack(9, regionB, uint64(round+1)))
		x.Restart()
		waitFor(t, "the changes made during the outage", func() bool { return f.Sequence() >= want[len(want)-1] })
	}
	var got []uint64
	for _, ev := range rec.from(synced) {
		if ev.Snapshot || ev.Missed || ev.Type != chainindexerv1.ChangeType_CHANGE_TYPE_UPSERT {
			t.Fatalf("unexpected event after the snapshot: %q", describe([]Event[*chainindexerv1.Stack]{ev}))
		}
		got = append(got, ev.Sequence)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("live sequences\n got %v\nwant %v", got, want)
	}
	// Every call after the first resumed from the sequence after the last
	// one handled; none asked for a snapshot again.
	for i, c := range x.Calls() {
		if i > 0 && c.From == 0 {
			t.Fatalf("call %d asked for a snapshot: %v", i, x.Calls())
		}
	}
}

func TestFollower_OutOfRangeStartsOverAndReportsWhatWasDeletedMeanwhile(t *testing.T) {
	x := chainwatchtest.New(t)
	a, b, c := stack(1, regionA, 1), stack(2, regionA, 1), stack(3, regionA, 1)
	x.PutStack(a)
	x.PutStack(b)
	last := x.PutStack(c)
	f, rec := follow(t, x, regionA, nil)
	waitFor(t, "the snapshot", f.Synced)
	before := len(rec.all())

	x.Stop()
	x.PutStack(deleted(stack(1, regionA, 2))) // deleted while unseen
	x.PutStack(stack(3, regionA, 2))          // changed while unseen
	x.PutStack(stack(5, regionA, 1))          // created while unseen
	x.Forget()                                // and the history of it lost
	x.Restart()
	waitFor(t, "the second snapshot", lastIsBookmark(rec, x.Sequence()))

	got := describe(rec.from(before))
	want := []string{"UPSERT 3 r2 ACTIVE snapshot", "UPSERT 5 r1 ACTIVE snapshot", "DELETE 1 r1 ACTIVE snapshot missed", "BOOKMARK snapshot"}
	if !slices.Equal(got, want) {
		t.Fatalf("events after OUT_OF_RANGE\n got %q\nwant %q (stack 2, unchanged, is not handed again)", got, want)
	}
	if missed := rec.from(before)[2].Object; !proto.Equal(missed, a) {
		t.Fatalf("the missed DELETE carries %v, want the last known state %v", missed, a)
	}
	if !f.Synced() || f.Sequence() != x.Sequence() {
		t.Fatalf("Synced %v Sequence %d, want true %d", f.Synced(), f.Sequence(), x.Sequence())
	}
	var froms []uint64
	for _, c := range x.Calls() {
		froms = append(froms, c.From)
	}
	// The first call, resumes that failed while stopped, the resume that
	// got OUT_OF_RANGE, then a snapshot.
	if froms[0] != 0 || froms[len(froms)-1] != 0 || froms[len(froms)-2] != last+1 {
		t.Fatalf("Watch calls from %v, want 0, %d…, then 0", froms, last+1)
	}
}

func TestFollower_OutageNeverReportsRemovals(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutStack(stack(1, regionA, 1))
	x.PutStack(stack(2, regionA, 1))
	var (
		mu       sync.Mutex
		retries  int
		unsynced bool
	)
	f, rec := follow(t, x, regionA, func(f *Follower[*chainindexerv1.Stack]) {
		f.wait = func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			retries++
			unsynced = unsynced || !f.Synced()
			mu.Unlock()
			return sleep(ctx, time.Millisecond)
		}
	})
	waitFor(t, "the snapshot", f.Synced)
	before := len(rec.all())
	x.Stop()
	waitFor(t, "retries against the stopped indexer", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return retries >= 5
	})
	if f.Connected() {
		t.Fatal("Connected while the indexer is stopped")
	}
	x.Restart()
	x.Bookmark()
	waitFor(t, "a bookmark after the restart", lastIsBookmark(rec, x.Sequence()))
	for _, ev := range rec.from(before) {
		if ev.Type != chainindexerv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			t.Fatalf("the outage produced %q", describe([]Event[*chainindexerv1.Stack]{ev}))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if unsynced {
		t.Fatal("Synced turned false during the outage")
	}
}

func TestFollower_BackoffGrowsToItsCapAndResetsAfterAnEvent(t *testing.T) {
	x := chainwatchtest.New(t)
	x.PutStack(stack(1, regionA, 1))
	const failures = 12
	x.FailWatches(failures, status.Error(codes.Unavailable, "not serving yet"))
	b := Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	var (
		mu     sync.Mutex
		delays []time.Duration
	)
	f, _ := follow(t, x, regionA, func(f *Follower[*chainindexerv1.Stack]) {
		f.backoff = b
		f.wait = func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
			return ctx.Err() == nil // no real waiting: the delays are what is checked
		}
	})
	waitFor(t, "the snapshot", f.Synced)
	mu.Lock()
	got := slices.Clone(delays)
	mu.Unlock()
	if len(got) != failures {
		t.Fatalf("%d waits for %d failed calls: %v", len(got), failures, got)
	}
	for i, d := range got {
		ceil := min(b.Initial<<i, b.Max)
		if d < ceil/2 || d > ceil {
			t.Errorf("wait %d is %v, want within [%v, %v]", i+1, d, ceil/2, ceil)
		}
	}

	// A stream that delivered resets the count: the next wait is short again.
	x.Stop()
	x.Restart()
	waitFor(t, "a wait after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delays) > failures
	})
	mu.Lock()
	defer mu.Unlock()
	if d := delays[failures]; d > b.Initial {
		t.Fatalf("first wait after a stream that delivered is %v, want at most %v", d, b.Initial)
	}
}

func TestFollower_RunReturnsOnlyWhenItsContextEnds(t *testing.T) {
	x := chainwatchtest.New(t)
	x.Stop() // never reachable
	conn, err := Dial(x.Addr(), testBackoff, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var (
		mu      sync.Mutex
		retries int
	)
	f := Stacks(conn, nil, func(context.Context, Event[*chainindexerv1.Stack]) { t.Error("an event from a stopped indexer") }, Options{})
	f.wait = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		retries++
		mu.Unlock()
		return sleep(ctx, time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	waitFor(t, "retries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return retries >= 10
	})
	select {
	case <-done:
		t.Fatal("Run returned while its context was live")
	default:
	}
	cancel()
	<-done
	if f.Synced() || f.Connected() || f.Sequence() != 0 {
		t.Fatalf("Synced %v Connected %v Sequence %d without ever reaching the indexer", f.Synced(), f.Connected(), f.Sequence())
	}
}

func TestFollower_CutOffSnapshotStartsOverWithoutRepeats(t *testing.T) {
	x := chainwatchtest.New(t)
	for i := range 3 {
		x.PutStack(stack(byte(i+1), regionA, 1))
	}
	// The first stream breaks after one event of its snapshot; stack 2
	// changes before the follower calls again.
	x.CutNextStream(1, status.Error(codes.Unavailable, "connection reset"))
	var once sync.Once
	rec := &recorder{}
	conn, err := Dial(x.Addr(), testBackoff, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := Stacks(conn, &chainindexerv1.WatchStacksRequest{RegionId: regionA}, func(ctx context.Context, ev Event[*chainindexerv1.Stack]) {
		rec.handle(ctx, ev)
		once.Do(func() { x.PutStack(stack(2, regionA, 2)) })
	}, Options{Backoff: testBackoff})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the snapshot", f.Synced)
	if froms := x.Calls(); len(froms) != 2 || froms[1].From != 0 {
		t.Fatalf("Watch calls %v, want two snapshots", froms)
	}
	got := describe(rec.all())
	// Stack 1 came before the cut; the new snapshot does not repeat it.
	want := []string{"UPSERT 1 r1 ACTIVE snapshot", "UPSERT 3 r1 ACTIVE snapshot", "UPSERT 2 r2 ACTIVE snapshot", "BOOKMARK snapshot"}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

func TestBackoff_DelayStaysWithinHalfItsCeilingAndTheCap(t *testing.T) {
	tests := []Backoff{
		{Initial: time.Millisecond, Max: time.Second},
		{Initial: 250 * time.Millisecond, Max: 30 * time.Second},
		{Initial: time.Second, Max: time.Second},
		{Initial: time.Hour, Max: 1<<63 - 1}, // doubling would overflow
	}
	for _, b := range tests {
		prev := time.Duration(0)
		for n := 1; n <= 100; n++ {
			ceil := b.Ceiling(n)
			if ceil < prev || ceil > b.Max || ceil < min(b.Initial, b.Max) {
				t.Fatalf("%+v: Ceiling(%d) = %v after %v", b, n, ceil, prev)
			}
			prev = ceil
			for _, r := range []float64{0, 0.5, 0.9999} {
				if d := b.delay(n, r); d < ceil/2 || d > ceil {
					t.Fatalf("%+v: delay(%d, %v) = %v, want within [%v, %v]", b, n, r, d, ceil/2, ceil)
				}
			}
		}
		if b.Ceiling(100) != b.Max {
			t.Errorf("%+v: Ceiling(100) = %v, want the cap", b, b.Ceiling(100))
		}
	}
}

func TestBackoff_ValidateNamesEveryBadField(t *testing.T) {
	tests := []struct {
		b    Backoff
		want []string
	}{
		{DefaultBackoff(), nil},
		{Backoff{}, []string{"chain_retry_initial: must be positive", "chain_retry_max: must be positive"}},
		{Backoff{Initial: time.Second, Max: time.Millisecond}, []string{"chain_retry_max: 1ms is below chain_retry_initial 1s"}},
	}
	for _, tc := range tests {
		err := tc.b.Validate()
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%+v: %v", tc.b, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v does not say %q", tc.b, err, w)
			}
		}
	}
}

func TestConfigDocs_DocumentBackoff(t *testing.T) {
	docs := ConfigDocs()
	for _, k := range []string{"Backoff.Initial", "Backoff.Max"} {
		if docs[k] == "" {
			t.Errorf("%s has no doc", k)
		}
	}
}
