package logs

import (
	"testing"

	"github.com/muprotocol/mu/libs/ids"
)

func TestHub_FiltersAndCountsDrops(t *testing.T) {
	h := NewHub(2)
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
