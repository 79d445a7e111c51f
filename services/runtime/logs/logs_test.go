package logs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/muprotocol/mu/libs/ids"
)

func TestHub_FiltersAndCountsDrops(t *testing.T) {
	h := NewHub(2, History{})
	a, b := ids.StackID{1}, ids.StackID{2}
	all := h.Subscribe(Filter{})
	onlyA := h.Subscribe(Filter{Stack: a, Function: "hello"})
	h.Publish(Entry{Stack: a, Function: "hello.greet", Body: "1"})
	h.Publish(Entry{Stack: b, Function: "hello.greet", Body: "2"})
	h.Publish(Entry{Stack: a, Function: "other.x", Body: "3"}) // all is full: dropped
	h.Publish(Entry{Stack: a, Function: "hello", Body: "4"})   // dropped again for all

	if e := <-onlyA.C; e.Body != "1" || e.Time.IsZero() {
		t.Fatalf("onlyA got %+v", e)
	}
	if e := <-onlyA.C; e.Body != "4" {
		t.Fatalf("onlyA got %+v", e)
	}
	if e := <-all.C; e.Body != "1" {
		t.Fatalf("all got %+v", e)
	}
	if e := <-all.C; e.Body != "2" {
		t.Fatalf("all got %+v", e)
	}
	h.Publish(Entry{Stack: b, Body: "5"})
	if e := <-all.C; e.Body != "5" || e.Dropped != 2 {
		t.Fatalf("all got %+v, want body 5 with 2 dropped", e)
	}
	if h.Subscribers() != 2 {
		t.Fatalf("subscribers %d", h.Subscribers())
	}
	all.Close()
	all.Close()
	if h.Subscribers() != 1 {
		t.Fatalf("subscribers after Close %d", h.Subscribers())
	}
	if _, ok := <-all.C; ok {
		t.Fatal("channel open after Close")
	}
	h.Publish(Entry{Stack: a, Function: "hello.x"}) // no panic on closed subscriber
}

func bodies(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Body
	}
	return out
}

func TestHub_HistoryKeepsTheLastLinesPerStack(t *testing.T) {
	h := NewHub(1, History{Lines: 3})
	a, b := ids.StackID{1}, ids.StackID{2}
	for i := range 5 {
		h.Publish(Entry{Stack: a, Function: "api.get", Body: fmt.Sprint("a", i)})
	}
	h.Publish(Entry{Stack: b, Function: "api.get", Body: "b0"})
	if got := bodies(h.Recent(Filter{Stack: a}, 10)); !slices.Equal(got, []string{"a2", "a3", "a4"}) {
		t.Fatalf("stack a keeps %v", got)
	}
	if got := bodies(h.Recent(Filter{Stack: a}, 2)); !slices.Equal(got, []string{"a3", "a4"}) {
		t.Fatalf("tail 2 of a: %v", got)
	}
	if got := bodies(h.Recent(Filter{}, 2)); !slices.Equal(got, []string{"a4", "b0"}) {
		t.Fatalf("tail 2 of every stack: %v", got)
	}
	if lines, _, _ := h.HistoryStats(); lines != 4 {
		t.Fatalf("%d lines kept, want 4", lines)
	}
}

func TestHub_HistoryBoundsLineAndTotalBytes(t *testing.T) {
	const line = 64
	h := NewHub(1, History{Lines: 100, LineBytes: line, TotalBytes: 4 * (line + EntryOverhead)})
	hostile, quiet := ids.StackID{1}, ids.StackID{2}
	h.Publish(Entry{Stack: quiet, Body: "q"})
	big := strings.Repeat("é", 1000) // 2 bytes a rune: the cut must not split one
	for range 50 {
		h.Publish(Entry{Stack: hostile, Body: big})
	}
	lines, bytes, evicted := h.HistoryStats()
	if bytes > 4*(line+EntryOverhead) || lines != 4 || evicted != 47 {
		t.Fatalf("kept %d lines of %d bytes, evicted %d", lines, bytes, evicted)
	}
	for _, e := range h.Recent(Filter{Stack: hostile}, 100) {
		if len(e.Body) > line || !utf8.ValidString(e.Body) || !strings.HasSuffix(e.Body, TruncatedMark) {
			t.Fatalf("kept body of %d bytes: %q", len(e.Body), e.Body)
		}
	}
	if got := h.Recent(Filter{Stack: quiet}, 10); len(got) != 0 {
		t.Fatalf("the quiet stack's oldest line outlived the total bound: %v", got)
	}
}

func TestHub_SubscribeTailHandsOverWithoutGapOrRepeat(t *testing.T) {
	h := NewHub(8, History{Lines: 10})
	a := ids.StackID{1}
	h.Publish(Entry{Stack: a, Function: "api.get", Body: "1"})
	h.Publish(Entry{Stack: a, Function: "other.x", Body: "skip"})
	h.Publish(Entry{Stack: a, Function: "api.put", Body: "2"})
	sub, recent := h.SubscribeTail(Filter{Stack: a, Function: "api"}, 5)
	defer sub.Close()
	if got := bodies(recent); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("recent %v", got)
	}
	h.Publish(Entry{Stack: a, Function: "api.get", Body: "3"})
	if e := <-sub.C; e.Body != "3" {
		t.Fatalf("live %+v", e)
	}
	if _, recent := h.SubscribeTail(Filter{Stack: a}, 0); recent != nil {
		t.Fatalf("tail 0 sent %v", recent)
	}
}

func TestHub_ForgetDropsAStacksHistory(t *testing.T) {
	h := NewHub(1, History{Lines: 10, TotalBytes: 1 << 20})
	a, b := ids.StackID{1}, ids.StackID{2}
	h.Publish(Entry{Stack: a, Body: "a"})
	h.Publish(Entry{Stack: b, Body: "b"})
	h.Publish(Entry{Stack: a, Body: "a2"})
	h.Forget(a)
	h.Forget(a)
	if got := bodies(h.Recent(Filter{}, 10)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after Forget: %v", got)
	}
	if lines, bytes, _ := h.HistoryStats(); lines != 1 || bytes != int64(1+EntryOverhead) {
		t.Fatalf("after Forget: %d lines, %d bytes", lines, bytes)
	}
}
