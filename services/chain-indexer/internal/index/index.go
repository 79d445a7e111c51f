// Package index is the chain indexer's view of the ledger: the current
// providers, regions, stacks and escrows as served, a bounded history of
// the events that changed them, numbered with one sequence, and the
// watchers those events fan out to. The view and its history persist in
// a directory, so a restarted indexer keeps its sequences and its
// watchers can resume.
package index

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
)

// Errors of Subscribe and Objects.
var (
	// ErrNotServing: the index has no view yet (nothing was loaded and
	// the ledger was never read).
	ErrNotServing = errors.New("index: no view yet")
	// ErrOutOfRange: the changes from the sequence asked for are not
	// retained (or were never issued by this index).
	ErrOutOfRange = errors.New("index: sequence not retained")
	// ErrTooManySubscribers: Config.MaxSubscribers watchers are open.
	ErrTooManySubscribers = errors.New("index: too many watchers")
	// ErrClosed: the index was closed.
	ErrClosed = errors.New("index: closed")
)

// Config configures an Index.
type Config struct {
	// Dir holds the view file and the sequence file; empty keeps the view
	// in memory only (sequences then start from the wall clock).
	Dir string
	// History is how many of the latest events are kept for resuming
	// watchers (at least 1).
	History int
	// MaxSubscribers bounds the open watchers (at least 1).
	MaxSubscribers int
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
}

// Position is a point in the index's history: every event up to Seq, seen
// at ledger slot Slot.
type Position struct {
	Seq  uint64
	Slot uint64
}

// Update is one object's new state, or its removal, observed at Slot.
type Update struct {
	Object
	Slot   uint64
	Delete bool
}

// gap is a range of sequences that a crashed run may have issued and whose
// events are lost: a watcher cannot resume from inside it.
type gap struct{ lo, hi uint64 }

// Index is the view. Its methods are safe for concurrent use; none blocks
// on a watcher: fan-out is non-blocking, and a watcher whose buffer is full
// is cut off (see Sub).
type Index struct {
	cfg Config

	mu       sync.RWMutex
	objects  map[Kind]map[string]*Event // current state by kind and key
	history  []*Event                   // every event with Seq > horizon, in order
	horizon  uint64                     // events up to here may have been dropped
	gaps     []gap                      // ranges above horizon that cannot be resumed from
	lastSeq  uint64                     // last sequence issued
	reserved uint64                     // sequences up to here are reserved in the sequence file
	slot     uint64                     // ledger slot the view reflects
	syncedAt time.Time                  // last successful read of the ledger
	serving  bool
	closed   bool
	gen      uint64 // counts changes of the persisted state
	subs     map[*Sub]struct{}

	writeMu sync.Mutex // serialises view file writes
	written uint64     // gen of the last view file written
}

// LoadInfo says what Open found in Dir.
type LoadInfo struct {
	// Loaded: a view was read from the view file.
	Loaded bool
	// Clean: the view file was written by Close, so no sequence beyond it
	// was issued.
	Clean bool
	// Problem describes a view or sequence file that could not be used
	// (it was set aside, or sequences restarted from the reservation or
	// the wall clock); empty when none.
	Problem string
}

// Open loads the view persisted in cfg.Dir (if any) and reserves the next
// sequences there before returning, so numbering continues above anything
// issued before: after a clean Close from the next sequence, after a crash
// above the reservation, and with no files at all from the wall clock in
// nanoseconds. A view file that cannot be read is renamed aside (see
// LoadInfo.Problem), never deleted. Open fails only when Dir cannot be
// used.
func Open(cfg Config) (*Index, LoadInfo, error) {
	if cfg.History < 1 {
		return nil, LoadInfo{}, fmt.Errorf("index: history %d: want at least 1", cfg.History)
	}
	if cfg.MaxSubscribers < 1 {
		return nil, LoadInfo{}, fmt.Errorf("index: max subscribers %d: want at least 1", cfg.MaxSubscribers)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	x := &Index{cfg: cfg, subs: map[*Sub]struct{}{}}
	x.resetObjects()
	var info LoadInfo
	var problems []string
	var v *viewFile
	resOK := false
	var res uint64
	if cfg.Dir != "" {
		var err error
		if v, err = loadView(cfg.Dir, cfg.Now()); err != nil {
			var bad *badFileError
			if !errors.As(err, &bad) {
				return nil, info, err
			}
			problems = append(problems, err.Error())
		}
		if res, err = loadReserve(cfg.Dir); err == nil {
			resOK = true
		} else if !errors.Is(err, errNoFile) {
			var bad *badFileError
			if !errors.As(err, &bad) {
				return nil, info, err
			}
			problems = append(problems, err.Error())
		}
	}
	clock := uint64(max(cfg.Now().UnixNano(), 1))
	switch {
	case v != nil:
		info.Loaded, info.Clean = true, v.clean
		x.install(v)
		if !v.clean {
			next := clock
			if resOK {
				next = res + 1
			}
			// Sequences from lastSeq+2 to next-1 may have been issued by the
			// run that crashed; their events are lost, so no watcher can
			// resume from inside them (lastSeq+1 is fine: every change
			// after the view is issued anew from next on).
			if next > x.lastSeq+1 {
				if next > x.lastSeq+2 {
					x.gaps = append(x.gaps, gap{x.lastSeq + 2, next - 1})
				}
				x.lastSeq = next - 1
			}
		}
	case resOK:
		x.lastSeq, x.horizon = res, res
	default:
		x.lastSeq, x.horizon = clock-1, clock-1
	}
	if len(problems) > 0 {
		info.Problem = fmt.Sprint(problems)
	}
	if cfg.Dir != "" {
		if err := x.reserve(x.lastSeq + reserveBlock); err != nil {
			return nil, info, err
		}
	}
	x.gen++ // the first Flush records the state Open settled on
	return x, info, nil
}

// reserveBlock is how many sequences one write of the sequence file
// reserves; a crash skips at most this many numbers.
const reserveBlock = 1 << 16

func (x *Index) resetObjects() {
	x.objects = make(map[Kind]map[string]*Event, len(Kinds))
	for _, k := range Kinds {
		x.objects[k] = map[string]*Event{}
	}
}

func (x *Index) install(v *viewFile) {
	x.resetObjects()
	for _, e := range v.current {
		x.objects[e.Kind()][e.Key()] = e
	}
	x.history = v.history
	x.horizon, x.gaps, x.lastSeq, x.slot, x.syncedAt = v.horizon, v.gaps, v.lastSeq, v.slot, v.syncedAt
	x.serving = true
	x.trim() // the history setting may have shrunk since the file was written
}

// reserve writes the sequence file with upTo; called with x.mu held (or
// before x is shared).
func (x *Index) reserve(upTo uint64) error {
	if err := writeReserve(x.cfg.Dir, upTo); err != nil {
		return err
	}
	x.reserved = upTo
	return nil
}

// Apply applies updates in order and moves the view to slot, returning
// the events issued: one per update that changes the served object (an
// unchanged object issues none). syncedAt records the ledger read that
// produced them. The events are fanned out to the watchers before Apply
// returns. An error (the sequence reservation could not be written)
// leaves the view unchanged.
func (x *Index) Apply(updates []Update, slot uint64, syncedAt time.Time) ([]*Event, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	staged := map[Kind]map[string]*Event{}
	cur := func(o Object) *Event {
		if m := staged[o.Kind()]; m != nil {
			if e, ok := m[o.Key()]; ok {
				return e
			}
		}
		return x.objects[o.Kind()][o.Key()]
	}
	var evs []*Event
	for _, u := range updates {
		if err := u.check(); err != nil {
			return nil, fmt.Errorf("index: update %d: %w", len(evs), err)
		}
		prev := cur(u.Object)
		e := diff(prev, u.Object, u.Slot, u.Delete)
		if e == nil {
			continue
		}
		evs = append(evs, e)
		if staged[u.Kind()] == nil {
			staged[u.Kind()] = map[string]*Event{}
		}
		if e.Delete {
			staged[u.Kind()][u.Key()] = nil
		} else {
			staged[u.Kind()][u.Key()] = e
		}
	}
	return evs, x.commit(evs, slot, syncedAt)
}

// Replace makes objs the whole view at slot: it issues an UPSERT for each
// object that is new or changed and a DELETE (with the last known state)
// for each object of the view that objs lacks, and returns them. It is
// how the indexer reconciles after reading the whole ledger; the first
// Replace of an index without a view starts serving.
func (x *Index) Replace(objs []Object, slot uint64, syncedAt time.Time) ([]*Event, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	seen := make(map[Kind]map[string]bool, len(Kinds))
	for _, k := range Kinds {
		seen[k] = map[string]bool{}
	}
	var evs []*Event
	for i, o := range objs {
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("index: object %d: %w", i, err)
		}
		if seen[o.Kind()][o.Key()] {
			return nil, fmt.Errorf("index: object %d: %s %x listed twice", i, o.Kind(), o.Key())
		}
		seen[o.Kind()][o.Key()] = true
		if e := diff(x.objects[o.Kind()][o.Key()], o, slot, false); e != nil {
			evs = append(evs, e)
		}
	}
	for _, k := range Kinds {
		var gone []*Event
		for key, e := range x.objects[k] {
			if !seen[k][key] {
				gone = append(gone, e)
			}
		}
		slices.SortFunc(gone, func(a, b *Event) int { return cmp.Compare(a.Key(), b.Key()) })
		for _, e := range gone {
			evs = append(evs, diff(e, e.Object, slot, true))
		}
	}
	return evs, x.commit(evs, slot, syncedAt)
}

// diff returns the event that turns prev (nil: absent) into o, or nil
// when nothing served changes.
func diff(prev *Event, o Object, slot uint64, del bool) *Event {
	e := &Event{Slot: slot, Delete: del}
	if del {
		if prev == nil {
			return nil
		}
		e.Object = prev.Object
	} else {
		if prev != nil && equal(prev.Object, o) {
			return nil
		}
		e.Object = o
	}
	if e.Provider != nil && prev != nil {
		e.PrevAuthorized = prev.Provider.GetAuthorized()
	}
	return e
}

func equal(a, b Object) bool {
	switch {
	case a.Provider != nil && b.Provider != nil:
		return proto.Equal(a.Provider, b.Provider)
	case a.Region != nil && b.Region != nil:
		return proto.Equal(a.Region, b.Region)
	case a.Stack != nil && b.Stack != nil:
		return proto.Equal(a.Stack, b.Stack)
	case a.Escrow != nil && b.Escrow != nil:
		return proto.Equal(a.Escrow, b.Escrow)
	}
	return false
}

// commit numbers evs, installs them and fans them out; x.mu is held.
func (x *Index) commit(evs []*Event, slot uint64, syncedAt time.Time) error {
	if n := uint64(len(evs)); x.cfg.Dir != "" && x.lastSeq+n > x.reserved {
		if err := x.reserve(x.lastSeq + n + reserveBlock); err != nil {
			return err
		}
	}
	for _, e := range evs {
		x.lastSeq++
		e.Seq = x.lastSeq
		if e.Delete {
			delete(x.objects[e.Kind()], e.Key())
		} else {
			x.objects[e.Kind()][e.Key()] = e
		}
		x.history = append(x.history, e)
	}
	x.trim()
	if len(evs) > 0 || slot != x.slot || !x.serving {
		x.gen++
	}
	x.slot = slot
	if syncedAt.After(x.syncedAt) {
		x.syncedAt = syncedAt
	}
	x.serving = true
	x.publish(evs)
	return nil
}

// trim drops the events beyond the retained history; x.mu is held.
func (x *Index) trim() {
	if drop := len(x.history) - x.cfg.History; drop > 0 {
		x.horizon = x.history[drop-1].Seq
		clear(x.history[:drop])
		x.history = x.history[drop:]
		x.gaps = slices.DeleteFunc(x.gaps, func(g gap) bool { return g.hi <= x.horizon })
	}
}

// Synced records a ledger read at now that found nothing new.
func (x *Index) Synced(now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if now.After(x.syncedAt) {
		x.syncedAt = now
	}
}

// Position is where the view is: the last sequence issued and the ledger
// slot it reflects.
func (x *Index) Position() Position {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Position{x.lastSeq, x.slot}
}

// Status is the index's state for GetStatus and metrics.
type Status struct {
	Position
	// OldestResumable is the smallest sequence a watcher may resume from.
	OldestResumable uint64
	// SyncedAt is the last successful read of the ledger (zero: never).
	SyncedAt    time.Time
	Serving     bool
	Subscribers int
	// Events is the number of retained events.
	Events int
}

// Status reports the index's state.
func (x *Index) Status() Status {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Status{
		Position:        Position{x.lastSeq, x.slot},
		OldestResumable: x.horizon + 1,
		SyncedAt:        x.syncedAt,
		Serving:         x.serving,
		Subscribers:     len(x.subs),
		Events:          len(x.history),
	}
}

// Objects returns the current objects of kind that match (nil: all),
// ordered by key, and the position they are current to.
func (x *Index) Objects(kind Kind, match func(*Event) bool) ([]*Event, Position, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.serving {
		return nil, Position{}, ErrNotServing
	}
	var out []*Event
	for _, e := range x.objects[kind] {
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *Event) int { return cmp.Compare(a.Key(), b.Key()) })
	return out, Position{x.lastSeq, x.slot}, nil
}

// Sub is one watcher: the events it matches arrive on C, in sequence
// order, through a buffer of fixed size. If the buffer is full when an
// event is published, the watcher is cut off: Cut is closed and nothing
// more is sent (the client resumes from its last sequence).
type Sub struct {
	x     *Index
	c     chan *Event
	cut   chan struct{}
	match func(*Event) bool
	pos   Position // under x.mu: every event up to pos.Seq was offered
	gone  bool     // under x.mu: cut off or closed
}

// Subscribe opens a watcher of the events for which match is true. With
// from = 0, initial is the current state (the objects for which
// snapshot, nil meaning match, is true) in sequence order, and at is the
// snapshot's position; with from > 0, initial is every retained matching
// event with Seq >= from, in order (ErrOutOfRange when some are not
// retained, or from is beyond the next sequence). Live events follow on
// the Sub's channel with no gap or repeat. buffer bounds the channel.
func (x *Index) Subscribe(from uint64, match, snapshot func(*Event) bool, buffer int) (sub *Sub, initial []*Event, at Position, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.closed:
		return nil, nil, at, ErrClosed
	case !x.serving:
		return nil, nil, at, ErrNotServing
	case len(x.subs) >= x.cfg.MaxSubscribers:
		return nil, nil, at, fmt.Errorf("%w: %d are open", ErrTooManySubscribers, len(x.subs))
	}
	at = Position{x.lastSeq, x.slot}
	if from == 0 {
		if snapshot == nil {
			snapshot = match
		}
		for _, k := range Kinds {
			for _, e := range x.objects[k] {
				if snapshot(e) {
					initial = append(initial, e)
				}
			}
		}
		slices.SortFunc(initial, func(a, b *Event) int { return cmp.Compare(a.Seq, b.Seq) })
	} else {
		if err := x.resumable(from); err != nil {
			return nil, nil, at, err
		}
		i := sort.Search(len(x.history), func(i int) bool { return x.history[i].Seq >= from })
		for _, e := range x.history[i:] {
			if match(e) {
				initial = append(initial, e)
			}
		}
	}
	sub = &Sub{x: x, c: make(chan *Event, buffer), cut: make(chan struct{}), match: match, pos: at}
	x.subs[sub] = struct{}{}
	return sub, initial, at, nil
}

func (x *Index) resumable(from uint64) error {
	if from <= x.horizon {
		return fmt.Errorf("%w: changes up to sequence %d are no longer kept; the oldest resumable is %d", ErrOutOfRange, x.horizon, x.horizon+1)
	}
	if from > x.lastSeq+1 {
		return fmt.Errorf("%w: sequence %d was never issued (the last is %d)", ErrOutOfRange, from, x.lastSeq)
	}
	for _, g := range x.gaps {
		if from >= g.lo && from <= g.hi {
			return fmt.Errorf("%w: sequences %d..%d were lost in a restart", ErrOutOfRange, g.lo, g.hi)
		}
	}
	return nil
}

// publish offers evs to every watcher; x.mu is held.
func (x *Index) publish(evs []*Event) {
	for s := range x.subs {
		for _, e := range evs {
			if !s.match(e) {
				continue
			}
			select {
			case s.c <- e:
			default:
				s.drop()
			}
			if s.gone {
				break
			}
		}
		s.pos = Position{x.lastSeq, x.slot}
	}
}

// drop cuts s off; x.mu is held.
func (s *Sub) drop() {
	if !s.gone {
		s.gone = true
		close(s.cut)
		delete(s.x.subs, s)
	}
}

// C delivers the watcher's events.
func (s *Sub) C() <-chan *Event { return s.c }

// Cut is closed when the watcher fell behind and was cut off.
func (s *Sub) Cut() <-chan struct{} { return s.cut }

// Idle reports whether every event offered to the watcher has been taken
// from C, and the position up to which it has been offered: a consumer
// that has handled every event it took is then up to date to pos.
func (s *Sub) Idle() (idle bool, pos Position) {
	s.x.mu.RLock()
	defer s.x.mu.RUnlock()
	return len(s.c) == 0 && !s.gone, s.pos
}

// Close ends the watcher. Safe to call twice, and after a cut.
func (s *Sub) Close() {
	s.x.mu.Lock()
	defer s.x.mu.Unlock()
	if !s.gone {
		s.gone = true
		delete(s.x.subs, s)
	}
}

// Flush writes the view file if the view changed since the last write.
// It blocks for the write (temp file, fsync, rename); the view keeps
// serving meanwhile. A no-op without a Dir.
func (x *Index) Flush() error { return x.flush(false) }

func (x *Index) flush(clean bool) error {
	if x.cfg.Dir == "" {
		return nil
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	x.mu.RLock()
	if !x.serving || (x.gen == x.written && !clean) {
		x.mu.RUnlock()
		return nil
	}
	v := x.snapshotLocked(clean)
	gen := x.gen
	x.mu.RUnlock()
	if err := writeView(x.cfg.Dir, v); err != nil {
		return err
	}
	x.written = gen
	return nil
}

// snapshotLocked gathers what the view file holds; x.mu is held.
func (x *Index) snapshotLocked(clean bool) *viewFile {
	v := &viewFile{
		clean: clean, slot: x.slot, lastSeq: x.lastSeq, horizon: x.horizon,
		gaps: slices.Clone(x.gaps), syncedAt: x.syncedAt,
		history: slices.Clone(x.history),
	}
	for _, k := range Kinds {
		for _, e := range x.objects[k] {
			v.current = append(v.current, e)
		}
	}
	slices.SortFunc(v.current, func(a, b *Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return v
}

// Close stops the index: watchers get nothing more (close their streams
// first), later Apply and Subscribe calls fail, and the view is written a
// last time, marked clean so the next Open continues with the next
// sequence. Safe to call twice.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	for s := range x.subs {
		s.gone = true
		delete(x.subs, s)
	}
	x.mu.Unlock()
	return x.flush(true) // a no-op when no view was ever loaded or read
}
