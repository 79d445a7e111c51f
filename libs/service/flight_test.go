package service

import "testing"

// TestFlight_ShutRefusesNewCallsAndWaitsForRunningOnes: the zero Flight
// admits calls; after Shut none enters, and every channel Shut returned
// closes only when the last running call leaves.
func TestFlight_ShutRefusesNewCallsAndWaitsForRunningOnes(t *testing.T) {
	var f Flight
	if !f.Enter() || !f.Enter() {
		t.Fatal("the zero Flight refused a call")
	}
	first, second := f.Shut(), f.Shut()
	if f.Enter() {
		t.Fatal("a call entered after Shut")
	}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if f.Count() != 2 {
		t.Fatalf("Count %d, want 2", f.Count())
	}
	f.Leave()
	if closed(first) || closed(second) {
		t.Fatal("Shut's channel closed with a call still running")
	}
	f.Leave()
	if !closed(first) || !closed(second) {
		t.Fatal("Shut's channels stayed open after the last call left")
	}
	if !closed(f.Shut()) {
		t.Fatal("Shut with no call running returned an open channel")
	}
}
