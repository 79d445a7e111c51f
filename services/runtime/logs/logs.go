// Package logs fans function log lines out to subscribers (the StreamLogs
// RPC, `mu run`'s console). Publishing never blocks: a subscriber that does
// not keep up loses lines, and the number it lost is counted and reported
// to it in the next line it does get.
package logs

import (
	"sync"
	"time"

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

// Hub is safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	buf  int
}

// NewHub returns a hub whose subscribers buffer up to buf lines each.
func NewHub(buf int) *Hub {
	return &Hub{subs: make(map[*Subscription]struct{}), buf: max(buf, 1)}
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
	c := make(chan Entry, h.buf)
	s := &Subscription{C: c, c: c, filter: f, hub: h}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
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
