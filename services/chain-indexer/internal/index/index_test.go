package index

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chainindexerv1 "github.com/muprotocol/mu/proto/mu/chainindexer/v1"
)

func id(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func stack(b byte, rev uint64) Object {
	return Object{Stack: &chainindexerv1.Stack{
		Id: id(b), Owner: id(0xa0), RegionId: id(0xb0), Revision: rev,
		Manifest: []byte("name: s"), State: chainindexerv1.StackState_STACK_STATE_ACTIVE, Enabled: true,
	}}
}

func provider(b byte, authorized bool) Object {
	return Object{Provider: &chainindexerv1.Provider{Id: id(b), Owner: id(b + 1), Name: "p", Authorized: authorized}}
}

func escrow(dev, prov byte, balance uint64) Object {
	return Object{Escrow: &chainindexerv1.Escrow{Developer: id(dev), ProviderId: id(prov), Balance: balance}}
}

func open(t *testing.T, dir string, history int) *Index {
	t.Helper()
	x, _, err := Open(Config{Dir: dir, History: history, MaxSubscribers: 16})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func apply(t *testing.T, x *Index, slot uint64, objs ...Object) []*Event {
	t.Helper()
	us := make([]Update, len(objs))
	for i, o := range objs {
		us[i] = Update{Object: o, Slot: slot}
	}
	evs, err := x.Apply(us, slot, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func all(*Event) bool { return true }

func TestIndex_ApplyNumbersChangesAndSkipsUnchangedObjects(t *testing.T) {
	x := open(t, "", 100)
	before := x.Position().Seq
	evs := apply(t, x, 1, stack(1, 1), stack(2, 1), stack(1, 1), stack(1, 2))
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3 (the repeat of stack 1 revision 1 changes nothing)", len(evs))
	}
	for i, e := range evs {
		if e.Seq != before+1+uint64(i) {
			t.Errorf("event %d has sequence %d, want %d", i, e.Seq, before+1+uint64(i))
		}
	}
	if evs := apply(t, x, 2, stack(2, 1)); len(evs) != 0 {
		t.Errorf("an unchanged object issued %d events", len(evs))
	}
	if p := x.Position(); p.Seq != before+3 || p.Slot != 2 {
		t.Errorf("position %+v, want seq %d slot 2", p, before+3)
	}
}

func TestIndex_ReplaceUpsertsChangesAndDeletesMissingWithLastState(t *testing.T) {
	x := open(t, "", 100)
	apply(t, x, 1, stack(1, 1), stack(2, 1), escrow(5, 6, 10))
	evs, err := x.Replace([]Object{stack(1, 1), stack(3, 1), escrow(5, 6, 11)}, 9, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		s := e.Kind().String() + ":" + e.Type().String()
		if e.Stack != nil {
			s += ":" + string(rune('0'+e.Stack.Id[0]))
		}
		got = append(got, s)
		if e.Slot != 9 {
			t.Errorf("event slot %d, want 9", e.Slot)
		}
	}
	want := "stack:CHANGE_TYPE_UPSERT:3 escrow:CHANGE_TYPE_UPSERT stack:CHANGE_TYPE_DELETE:2"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if d := evs[2]; d.Stack.Revision != 1 || !bytes.Equal(d.Stack.Id, id(2)) {
		t.Errorf("delete carries %v, want the last state of stack 2", d.Stack)
	}
	objs, _, _ := x.Objects(KindStack, nil)
	if len(objs) != 2 {
		t.Errorf("%d stacks after replace, want 2", len(objs))
	}
}

func TestIndex_RejectsObjectsWithBadIDs(t *testing.T) {
	x := open(t, "", 100)
	bad := stack(1, 1)
	bad.Stack.Owner = []byte{1, 2}
	if _, err := x.Apply([]Update{{Object: bad, Slot: 1}}, 1, time.Now()); err == nil || !strings.Contains(err.Error(), "stack owner is 2 bytes") {
		t.Fatalf("got %v", err)
	}
	if p := x.Position(); p.Slot != 0 {
		t.Errorf("a rejected apply moved the view to slot %d", p.Slot)
	}
}

func TestIndex_NotServingUntilFirstRead(t *testing.T) {
	x := open(t, "", 100)
	if _, _, err := x.Objects(KindStack, nil); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Objects before any read: %v", err)
	}
	if _, _, _, err := x.Subscribe(0, all, nil, 8); !errors.Is(err, ErrNotServing) {
		t.Fatalf("Subscribe before any read: %v", err)
	}
	if _, err := x.Replace(nil, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !x.Status().Serving {
		t.Fatal("an empty ledger read does not start serving")
	}
}

func TestIndex_SnapshotIsInSequenceOrderThenLive(t *testing.T) {
	x := open(t, "", 100)
	apply(t, x, 1, stack(3, 1), stack(1, 1), stack(2, 1))
	apply(t, x, 2, stack(3, 2))
	sub, initial, at, err := x.Subscribe(0, all, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var order []byte
	for i, e := range initial {
		order = append(order, e.Stack.Id[0])
		if i > 0 && e.Seq <= initial[i-1].Seq {
			t.Errorf("snapshot not in sequence order: %d after %d", e.Seq, initial[i-1].Seq)
		}
	}
	if !bytes.Equal(order, []byte{1, 2, 3}) {
		t.Errorf("snapshot order %v, want 1 2 3 (stack 3 changed last)", order)
	}
	if at != x.Position() {
		t.Errorf("snapshot position %+v, want %+v", at, x.Position())
	}
	live := apply(t, x, 3, stack(4, 1))
	if e := <-sub.C(); e != live[0] {
		t.Errorf("live event %d, want %d", e.Seq, live[0].Seq)
	}
	if idle, pos := sub.Idle(); !idle || pos.Seq != live[0].Seq {
		t.Errorf("Idle = %v %+v, want true at %d", idle, pos, live[0].Seq)
	}
}

func TestIndex_ResumeReplaysRetainedAndRejectsTheRest(t *testing.T) {
	x := open(t, "", 3)
	evs := apply(t, x, 1, stack(1, 1), stack(2, 1), stack(3, 1), stack(4, 1), stack(5, 1))
	// Retained: the last 3 (stacks 3, 4, 5).
	if got := x.Status().OldestResumable; got != evs[2].Seq {
		t.Fatalf("oldest resumable %d, want %d", got, evs[2].Seq)
	}
	cases := []struct {
		name string
		from uint64
		want int // events replayed; -1 for out of range
	}{
		{"oldest retained", evs[2].Seq, 3},
		{"last", evs[4].Seq, 1},
		{"next", evs[4].Seq + 1, 0},
		{"dropped", evs[1].Seq, -1},
		{"never issued", evs[4].Seq + 2, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub, initial, _, err := x.Subscribe(c.from, all, nil, 8)
			if c.want < 0 {
				if !errors.Is(err, ErrOutOfRange) {
					t.Fatalf("got %v, want ErrOutOfRange", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if len(initial) != c.want {
				t.Fatalf("replayed %d, want %d", len(initial), c.want)
			}
		})
	}
}

func TestIndex_FullBufferCutsOnlyThatSubscriber(t *testing.T) {
	x := open(t, "", 100)
	apply(t, x, 1, stack(1, 1))
	slow, _, _, err := x.Subscribe(0, all, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _, err := x.Subscribe(0, all, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	for rev := uint64(2); rev < 10; rev++ {
		apply(t, x, rev, stack(1, rev))
		<-fast.C()
	}
	select {
	case <-slow.Cut():
	default:
		t.Fatal("a subscriber that took nothing was not cut off")
	}
	select {
	case <-fast.Cut():
		t.Fatal("the subscriber that kept up was cut off")
	default:
	}
	if n := x.Status().Subscribers; n != 1 {
		t.Errorf("%d subscribers left, want 1", n)
	}
}

func TestIndex_FilterAppliesToLiveAndReplay(t *testing.T) {
	x := open(t, "", 100)
	two := func(e *Event) bool { return e.Stack != nil && e.Stack.Id[0] == 2 }
	apply(t, x, 1, stack(1, 1), stack(2, 1))
	from := x.Position().Seq - 1
	sub, initial, _, err := x.Subscribe(from, two, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if len(initial) != 1 || initial[0].Stack.Id[0] != 2 {
		t.Fatalf("replay %v, want stack 2 only", initial)
	}
	apply(t, x, 2, stack(1, 2))
	if idle, pos := sub.Idle(); !idle || pos.Seq != x.Position().Seq {
		t.Errorf("filtered-out event: Idle = %v %+v, want idle at %d", idle, pos, x.Position().Seq)
	}
}

func TestIndex_ReopenAfterCloseKeepsSequencesAndHistory(t *testing.T) {
	dir := t.TempDir()
	x := open(t, dir, 100)
	evs := apply(t, x, 7, stack(1, 1), provider(9, true), escrow(5, 6, 3))
	pos := x.Position()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y, info, err := Open(Config{Dir: dir, History: 100, MaxSubscribers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if !info.Loaded || !info.Clean || info.Problem != "" {
		t.Fatalf("load info %+v", info)
	}
	if y.Position() != pos {
		t.Fatalf("position after reopen %+v, want %+v", y.Position(), pos)
	}
	sub, initial, _, err := y.Subscribe(evs[1].Seq, all, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if len(initial) != 2 || initial[0].Seq != evs[1].Seq || !initial[0].Provider.Authorized {
		t.Fatalf("replay after reopen: %v", initial)
	}
	next := apply(t, y, 8, stack(1, 2))
	if next[0].Seq != pos.Seq+1 {
		t.Errorf("first sequence after a clean reopen %d, want %d", next[0].Seq, pos.Seq+1)
	}
}

func TestIndex_ReopenAfterCrashNumbersAboveTheReservation(t *testing.T) {
	dir := t.TempDir()
	x := open(t, dir, 100)
	apply(t, x, 1, stack(1, 1))
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	persisted := x.Position().Seq
	lost := apply(t, x, 2, stack(1, 2), stack(2, 1)) // issued, never written: the process "crashes"
	y, info, err := Open(Config{Dir: dir, History: 100, MaxSubscribers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if !info.Loaded || info.Clean {
		t.Fatalf("load info %+v", info)
	}
	evs := apply(t, y, 2, stack(1, 2), stack(2, 1))
	if evs[0].Seq <= lost[1].Seq {
		t.Fatalf("sequence %d reissued after a crash (the lost run issued up to %d)", evs[0].Seq, lost[1].Seq)
	}
	// A watcher may resume just after the persisted view, or after any new
	// event, but not from inside what the crashed run issued.
	for _, c := range []struct {
		from uint64
		ok   bool
	}{{persisted + 1, true}, {lost[1].Seq, false}, {lost[1].Seq + 1, false}, {evs[0].Seq, true}} {
		sub, _, _, err := y.Subscribe(c.from, all, nil, 8)
		if c.ok != (err == nil) {
			t.Errorf("resume from %d: %v, want ok=%v", c.from, err, c.ok)
		}
		if sub != nil {
			sub.Close()
		}
	}
}

func TestIndex_LostFilesNumberAboveEverythingIssued(t *testing.T) {
	for _, lose := range [][]string{{ViewFile}, {ViewFile, SequenceFile}} {
		t.Run(strings.Join(lose, "+"), func(t *testing.T) {
			dir := t.TempDir()
			x := open(t, dir, 100)
			old := apply(t, x, 1, stack(1, 1))
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range lose {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			y := open(t, dir, 100)
			defer y.Close()
			if _, _, err := y.Objects(KindStack, nil); !errors.Is(err, ErrNotServing) {
				t.Fatalf("a lost view still serves: %v", err)
			}
			evs, err := y.Replace([]Object{stack(1, 1)}, 1, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if evs[0].Seq <= old[0].Seq {
				t.Fatalf("sequence %d after losing %v, not above the earlier %d", evs[0].Seq, lose, old[0].Seq)
			}
			if _, _, _, err := y.Subscribe(old[0].Seq, all, nil, 8); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("resume from a sequence of the lost view: %v, want ErrOutOfRange", err)
			}
		})
	}
}

func TestIndex_CorruptViewFileIsSetAside(t *testing.T) {
	dir := t.TempDir()
	x := open(t, dir, 100)
	apply(t, x, 1, stack(1, 1))
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ViewFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	y, info, err := Open(Config{Dir: dir, History: 100, MaxSubscribers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if info.Loaded || !strings.Contains(info.Problem, "checksum") {
		t.Fatalf("load info %+v", info)
	}
	matches, _ := filepath.Glob(path + ".bad-*")
	if len(matches) != 1 {
		t.Errorf("set-aside files %v, want one", matches)
	}
}

func TestIndex_FlushWritesOnlyAfterChanges(t *testing.T) {
	dir := t.TempDir()
	x := open(t, dir, 100)
	defer x.Close()
	apply(t, x, 1, stack(1, 1))
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(filepath.Join(dir, ViewFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ViewFile)); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ViewFile)); err == nil {
		t.Fatal("Flush rewrote an unchanged view")
	}
	apply(t, x, 2, stack(1, 2))
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	if st2, err := os.Stat(filepath.Join(dir, ViewFile)); err != nil || st2.Size() <= st1.Size() {
		t.Fatalf("after a change: %v (size %v vs %d)", err, st2, st1.Size())
	}
}

func TestDecodeView_RoundTripsAndRejectsDamage(t *testing.T) {
	x := open(t, "", 2)
	apply(t, x, 1, stack(1, 1), provider(2, false), escrow(3, 2, 5))
	apply(t, x, 2, provider(2, true), stack(1, 2))
	if _, err := x.Replace([]Object{provider(2, true), escrow(3, 2, 5)}, 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	x.mu.RLock()
	v := x.snapshotLocked(true)
	x.mu.RUnlock()
	b, err := encodeView(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeView(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.lastSeq != v.lastSeq || got.horizon != v.horizon || got.slot != 3 || !got.clean ||
		len(got.history) != len(v.history) || len(got.current) != len(v.current) {
		t.Fatalf("round trip: %+v, want %+v", got, v)
	}
	// The last 2 events are kept: stack 1 revision 2, then its delete.
	if h := got.history[1]; !h.Delete || h.Stack.GetRevision() != 2 || got.history[0].Delete {
		t.Errorf("history after round trip: %+v", got.history)
	}
	for i := range len(b) - 4 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x01
		if _, err := decodeView(bad); err == nil {
			t.Fatalf("a flipped bit at %d went unnoticed", i)
		}
	}
	for _, n := range []int{0, 10, headerSize, len(b) - 1} {
		if _, err := decodeView(b[:n]); err == nil {
			t.Errorf("a file cut to %d bytes decoded", n)
		}
	}
}
