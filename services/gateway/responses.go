package gateway

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ResponseBucket is one hour of a stack's answered requests, by status
// class, in StackStatus.Responses.
type ResponseBucket struct {
	// Start is the hour the bucket counts, RFC 3339 in UTC
	// ("2026-01-02T03:00:00Z"); it counts the requests answered from
	// Start to Start plus one hour.
	Start string `json:"start"`
	C2xx  uint64 `json:"2xx"`
	C3xx  uint64 `json:"3xx"`
	C4xx  uint64 `json:"4xx"`
	C5xx  uint64 `json:"5xx"`
}

// maxResponseHistory bounds Config.ResponseHistory: 7 days, 168 buckets
// of 40 bytes a stack.
const maxResponseHistory = 7 * 24 * time.Hour

// secondsPerHour is the width of a response bucket.
const secondsPerHour = int64(time.Hour / time.Second)

// hourOf is t's hour, in hours since the Unix epoch (UTC).
func hourOf(t time.Time) int64 {
	s := t.Unix()
	h := s / secondsPerHour
	if s%secondsPerHour < 0 { // floor, for times before 1970
		h--
	}
	return h
}

// responseRing counts one stack's answered requests by status class
// (2xx..5xx) in hourly buckets over a fixed window: len(buckets) hours,
// the current one and those before it. The bucket of hour h is
// buckets[h mod len]: a request in a new hour takes over the bucket of
// the hour one window earlier, so the ring never grows and an hour older
// than the window is gone. Its size is fixed when the stack is first
// installed.
//
// add is safe for concurrent use and does not allocate; it takes the
// ring's own mutex only to turn a bucket over to a new hour (once an hour
// at most), never a lock shared between stacks. A request that stalls for
// a whole window between reading a bucket's hour and counting may be
// counted in the newer hour; nothing else is lost or misplaced.
type responseRing struct {
	mu      sync.Mutex // held to turn a bucket over and to read the ring
	buckets []responseCounts
}

// responseCounts is one bucket: its hour and the counts of 2xx, 3xx, 4xx
// and 5xx answers in it.
type responseCounts struct {
	hour   atomic.Int64
	counts [4]atomic.Uint64
}

// newResponseRing returns a ring for a window of history, rounded up to
// whole hours, or nil when history is not positive (counting off).
func newResponseRing(history time.Duration) *responseRing {
	if history <= 0 {
		return nil
	}
	n := int((history + time.Hour - 1) / time.Hour)
	return &responseRing{buckets: make([]responseCounts, n)}
}

// add counts one answer of status at t. Statuses outside 200..599 are not
// counted.
func (r *responseRing) add(t time.Time, status int) {
	if status < 200 || status > 599 {
		return
	}
	h := hourOf(t)
	b := &r.buckets[r.slot(h)]
	if b.hour.Load() != h && !r.turn(b, h) {
		return
	}
	b.counts[status/100-2].Add(1)
}

func (r *responseRing) slot(h int64) int {
	i := h % int64(len(r.buckets))
	if i < 0 {
		i += int64(len(r.buckets))
	}
	return int(i)
}

// turn makes b the bucket of hour h, unless another add did so meanwhile.
// It reports false when b already counts a later hour: h is then older
// than the window (the clock went back, or a request took a window).
func (r *responseRing) turn(b *responseCounts, h int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch cur := b.hour.Load(); {
	case cur == h:
		return true
	case cur > h:
		return false
	}
	for i := range b.counts {
		b.counts[i].Store(0)
	}
	b.hour.Store(h)
	return true
}

// snapshot returns the buckets of the window that ends with now's hour
// that have any count, oldest first, never nil. Safe for concurrent use
// with add; a nil ring (counting off) has none.
func (r *responseRing) snapshot(now time.Time) []ResponseBucket {
	if r == nil {
		return []ResponseBucket{}
	}
	cur := hourOf(now)
	oldest := cur - int64(len(r.buckets)) + 1
	type hourCounts struct {
		hour int64
		c    [4]uint64
	}
	found := make([]hourCounts, 0, len(r.buckets))
	r.mu.Lock()
	for i := range r.buckets {
		b := &r.buckets[i]
		hc := hourCounts{hour: b.hour.Load()}
		if hc.hour < oldest || hc.hour > cur {
			continue
		}
		some := false
		for j := range b.counts {
			hc.c[j] = b.counts[j].Load()
			some = some || hc.c[j] > 0
		}
		if some {
			found = append(found, hc)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(found, func(a, b hourCounts) int { return int(a.hour - b.hour) })
	out := make([]ResponseBucket, len(found))
	for i, hc := range found {
		out[i] = ResponseBucket{
			Start: time.Unix(hc.hour*secondsPerHour, 0).UTC().Format(time.RFC3339),
			C2xx:  hc.c[0], C3xx: hc.c[1], C4xx: hc.c[2], C5xx: hc.c[3],
		}
	}
	return out
}
