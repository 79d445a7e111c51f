// Package logs fans function log lines out to subscribers (the StreamLogs
// RPC, `mu run`'s console). Publishing never blocks: a subscriber that does
// not keep up loses lines, and the number it lost is counted and reported
// to it in the next line it does get.
//
// The hub also keeps a bounded recent history (History): the last lines of
// each stack, each line's body cut to a byte limit, and all of them within a
// total byte budget, the oldest line of any stack going first when it is
// full. Forget drops a stack's history.
package logs

import (
	"sync"
	"time"
	"unicode/utf8"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
)

// Source tells where a line came from.
type Source int

const (
	SourceLog     Source = iota + 1 // a Log message of the protocol
	SourceStderr                    // a line the function wrote to stderr
	SourceRuntime                   // the runtime about the function (crashes, limits)
)

// Entry is one log line of a function.
type Entry struct {
	Stack    ids.StackID
	Function string // assembly (module) name, or assembly.function during a call
	Level    fnproto.LogLevel
	Body     string
	Time     time.Time
	Source   Source
	// TraceID is the hex trace id of the call that wrote the line, when
	// the call was traced; "" otherwise.
	TraceID string
	// Dropped is how many earlier lines this subscriber missed.
	Dropped uint64
}

// Filter selects entries; zero fields match everything.
type Filter struct {
	Stack    ids.StackID
	Function string
}

func (f Filter) match(e *Entry) bool {
	if !f.Stack.IsZero() && f.Stack != e.Stack {
		return false
	}
	return f.Function == "" || f.Function == e.Function || hasAssembly(e.Function, f.Function)
}

// hasAssembly reports whether fn ("assembly.function") belongs to assembly.
func hasAssembly(fn, assembly string) bool {
	return len(fn) > len(assembly) && fn[len(assembly)] == '.' && fn[:len(assembly)] == assembly
}

// History bounds the recent lines a Hub keeps. The zero value keeps none.
type History struct {
	// Lines is the most lines kept per stack; 0 keeps no history.
	Lines int
	// LineBytes is the most bytes of a line's body kept (cut at a UTF-8
	// boundary, with TruncatedMark in the limit); 0 or less keeps bodies
	// whole.
	LineBytes int
	// TotalBytes bounds the kept lines of all stacks together (bodies and
	// function names plus EntryOverhead each); past it the oldest line of
	// any stack is evicted. 0 or less: no total bound.
	TotalBytes int64
}

// EntryOverhead is what a kept line counts towards History.TotalBytes
// beyond its body and function name: its other fields and list links.
const EntryOverhead = 128

// TruncatedMark ends a kept body that was cut to History.LineBytes.
const TruncatedMark = " …[truncated]"

// Hub is safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	buf  int

	hist    History
	stacks  map[ids.StackID]*stackHistory
	oldest  *kept // the oldest kept line of all stacks
	newest  *kept
	bytes   int64 // what the kept lines count
	evicted uint64
}

// kept is one line of the history, on two lists: every stack's lines in
// publishing order (prev, next) and its own stack's (snext).
type kept struct {
	e          Entry
	size       int64
	prev, next *kept
	snext      *kept
	stack      *stackHistory
}

// stackHistory is one stack's kept lines, oldest first.
type stackHistory struct {
	id          ids.StackID
	first, last *kept
	n           int
}

// NewHub returns a hub whose subscribers buffer up to buf lines each and
// that keeps the recent lines hist allows.
func NewHub(buf int, hist History) *Hub {
	return &Hub{subs: make(map[*Subscription]struct{}), buf: max(buf, 1), hist: hist, stacks: map[ids.StackID]*stackHistory{}}
}

// Subscription receives entries on C until Close.
type Subscription struct {
	C       <-chan Entry
	c       chan Entry
	filter  Filter
	hub     *Hub
	dropped uint64
}

// Subscribe starts receiving entries that match f.
func (h *Hub) Subscribe(f Filter) *Subscription {
	s, _ := h.SubscribeTail(f, 0)
	return s
}

// SubscribeTail returns up to tail recent kept entries that match f,
// oldest first, and a subscription that receives every matching entry
// published after them: none is missed or repeated between the two.
func (h *Hub) SubscribeTail(f Filter, tail int) (*Subscription, []Entry) {
	c := make(chan Entry, h.buf)
	s := &Subscription{C: c, c: c, filter: f, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	return s, h.recentLocked(f, tail)
}

// Recent returns up to n recent kept entries that match f, oldest first.
func (h *Hub) Recent(f Filter, n int) []Entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.recentLocked(f, n)
}

func (h *Hub) recentLocked(f Filter, n int) []Entry {
	if n <= 0 {
		return nil
	}
	var out []Entry
	if !f.Stack.IsZero() {
		// One stack: its own list, oldest first, keeping the last n.
		sh := h.stacks[f.Stack]
		if sh == nil {
			return nil
		}
		for k := sh.first; k != nil; k = k.snext {
			if f.match(&k.e) {
				out = append(out, k.e)
			}
		}
		if len(out) > n {
			out = out[len(out)-n:]
		}
		return out
	}
	for k := h.newest; k != nil && len(out) < n; k = k.prev {
		if f.match(&k.e) {
			out = append(out, k.e)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Forget drops the kept lines of stack (it was undeployed from the node).
// Lines published for it later are kept again.
func (h *Hub) Forget(stack ids.StackID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sh := h.stacks[stack]
	if sh == nil {
		return
	}
	for k := sh.first; k != nil; k = k.snext {
		h.unlinkLocked(k)
	}
	delete(h.stacks, stack)
}

// HistoryStats reports the kept lines, the bytes they count and how many
// lines the total bound evicted so far.
func (h *Hub) HistoryStats() (lines int, bytes int64, evicted uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sh := range h.stacks {
		lines += sh.n
	}
	return lines, h.bytes, h.evicted
}

// keepLocked adds e to the history and evicts what the bounds require.
func (h *Hub) keepLocked(e Entry) {
	if h.hist.Lines <= 0 {
		return
	}
	e.Dropped = 0
	e.Body = truncate(e.Body, h.hist.LineBytes)
	k := &kept{e: e, size: int64(len(e.Body)+len(e.Function)) + EntryOverhead}
	sh := h.stacks[e.Stack]
	if sh == nil {
		sh = &stackHistory{id: e.Stack}
		h.stacks[e.Stack] = sh
	}
	k.stack = sh
	if sh.last == nil {
		sh.first = k
	} else {
		sh.last.snext = k
	}
	sh.last = k
	sh.n++
	k.prev = h.newest
	if h.newest == nil {
		h.oldest = k
	} else {
		h.newest.next = k
	}
	h.newest = k
	h.bytes += k.size
	if sh.n > h.hist.Lines {
		h.evictFirstLocked(sh)
	}
	for h.hist.TotalBytes > 0 && h.bytes > h.hist.TotalBytes && h.oldest != nil {
		h.evicted++
		h.evictFirstLocked(h.oldest.stack) // the oldest line is its stack's first
	}
}

// evictFirstLocked removes the oldest kept line of sh.
func (h *Hub) evictFirstLocked(sh *stackHistory) {
	k := sh.first
	sh.first = k.snext
	if sh.first == nil {
		sh.last = nil
		delete(h.stacks, sh.id)
	}
	sh.n--
	h.unlinkLocked(k)
}

// unlinkLocked takes k off the list of every stack's lines.
func (h *Hub) unlinkLocked(k *kept) {
	if k.prev == nil {
		h.oldest = k.next
	} else {
		k.prev.next = k.next
	}
	if k.next == nil {
		h.newest = k.prev
	} else {
		k.next.prev = k.prev
	}
	k.prev, k.next = nil, nil
	h.bytes -= k.size
}

// truncate cuts body to at most limit bytes, at a rune boundary, ending
// in TruncatedMark; limit 0 or less leaves it whole.
func truncate(body string, limit int) string {
	if limit <= 0 || len(body) <= limit {
		return body
	}
	cut := max(limit-len(TruncatedMark), 0)
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	if cut == 0 && limit < len(TruncatedMark) {
		return ""
	}
	return body[:cut] + TruncatedMark
}

// Close stops the subscription and closes C. Safe to call twice.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if _, ok := s.hub.subs[s]; ok {
		delete(s.hub.subs, s)
		close(s.c)
	}
}

// Subscribers is the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish delivers e to every matching subscriber without blocking.
func (h *Hub) Publish(e Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keepLocked(e)
	for s := range h.subs {
		if !s.filter.match(&e) {
			continue
		}
		out := e
		out.Dropped = s.dropped
		select {
		case s.c <- out:
			s.dropped = 0
		default:
			s.dropped++
		}
	}
}
