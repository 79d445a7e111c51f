package gateway

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

var hour0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func TestResponseRing_CountsByClassInTheHour(t *testing.T) {
	r := newResponseRing(24 * time.Hour)
	at := hour0.Add(59*time.Minute + 59*time.Second)
	for _, s := range []int{200, 204, 299, 301, 304, 400, 402, 404, 499, 500, 503, 599, 100, 199, 600, 0, -1} {
		r.add(at, s)
	}
	want := []ResponseBucket{{Start: "2026-01-02T03:00:00Z", C2xx: 3, C3xx: 2, C4xx: 4, C5xx: 3}}
	if got := r.snapshot(at); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestResponseRing_RollsOverHourlyOldestFirst(t *testing.T) {
	r := newResponseRing(3 * time.Hour)
	r.add(hour0, 200)
	r.add(hour0.Add(time.Hour), 500)
	r.add(hour0.Add(time.Hour+30*time.Minute), 500)
	// hour0+2h answers nothing: no bucket for it.
	now := hour0.Add(2*time.Hour + time.Minute)
	want := []ResponseBucket{
		{Start: "2026-01-02T03:00:00Z", C2xx: 1},
		{Start: "2026-01-02T04:00:00Z", C5xx: 2},
	}
	if got := r.snapshot(now); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// One hour on, hour0 is out of the window of 3 hours even before its
	// bucket is reused ...
	now = now.Add(time.Hour)
	if got := r.snapshot(now); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("an hour later: got %+v, want %+v", got, want[1:])
	}
	// ... and a request now takes its bucket over, from zero.
	r.add(now, 404)
	want = []ResponseBucket{{Start: "2026-01-02T04:00:00Z", C5xx: 2}, {Start: "2026-01-02T06:00:00Z", C4xx: 1}}
	if got := r.snapshot(now); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the turn: got %+v, want %+v", got, want)
	}
	// A late answer for an hour whose bucket a newer hour has taken is
	// dropped, not counted in the newer hour.
	r.add(hour0, 200)
	if got := r.snapshot(now); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a stale add: got %+v, want %+v", got, want)
	}
	// A whole window later nothing is left.
	if got := r.snapshot(now.Add(3 * time.Hour)); len(got) != 0 || got == nil {
		t.Fatalf("a window later: %#v, want []", got)
	}
}

func TestResponseRing_WindowBoundsTheBuckets(t *testing.T) {
	r := newResponseRing(24 * time.Hour)
	if len(r.buckets) != 24 {
		t.Fatalf("%d buckets for 24h", len(r.buckets))
	}
	start := hour0
	for h := range 100 { // four windows and more: the ring does not grow
		r.add(start.Add(time.Duration(h)*time.Hour), 200)
	}
	if len(r.buckets) != 24 {
		t.Fatalf("%d buckets after 100 hours", len(r.buckets))
	}
	now := start.Add(99 * time.Hour)
	got := r.snapshot(now)
	if len(got) != 24 {
		t.Fatalf("%d buckets in the window, want 24", len(got))
	}
	if first, last := got[0].Start, got[23].Start; first != now.Add(-23*time.Hour).Format(time.RFC3339) ||
		last != now.Format(time.RFC3339) {
		t.Fatalf("window %s .. %s, want the 24 hours to %s", first, last, now.Format(time.RFC3339))
	}
	for _, b := range got {
		if b != (ResponseBucket{Start: b.Start, C2xx: 1}) {
			t.Fatalf("bucket %+v", b)
		}
	}
}

func TestResponseRing_OffIsNilAndEmpty(t *testing.T) {
	if r := newResponseRing(0); r != nil {
		t.Fatal("a ring for 0")
	}
	var r *responseRing
	if got := r.snapshot(hour0); got == nil || len(got) != 0 {
		t.Fatalf("%#v, want []", got)
	}
}

func TestResponseRing_AddDoesNotAllocate(t *testing.T) {
	r := newResponseRing(24 * time.Hour)
	at := hour0
	if n := testing.AllocsPerRun(1000, func() {
		r.add(at, 200)
		at = at.Add(time.Minute) // turning buckets too
	}); n != 0 {
		t.Fatalf("%v allocations per add", n)
	}
}

// TestResponseRing_ConcurrentAddsAcrossATurn counts from many goroutines
// while the hour turns (under -race: the atomics and the turn's lock).
func TestResponseRing_ConcurrentAddsAcrossATurn(t *testing.T) {
	r := newResponseRing(2 * time.Hour)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				at := hour0
				if i >= each/2 {
					at = hour0.Add(time.Hour)
				}
				r.add(at, 200+100*(w%4))
				if i%50 == 0 {
					r.snapshot(at)
				}
			}
		})
	}
	wg.Wait()
	got := r.snapshot(hour0.Add(time.Hour))
	per := uint64(workers / 4 * each / 2)
	want := []ResponseBucket{
		{Start: "2026-01-02T03:00:00Z", C2xx: per, C3xx: per, C4xx: per, C5xx: per},
		{Start: "2026-01-02T04:00:00Z", C2xx: per, C3xx: per, C4xx: per, C5xx: per},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func BenchmarkResponseRing_Add(b *testing.B) {
	r := newResponseRing(24 * time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.add(time.Now(), 200)
		}
	})
}
