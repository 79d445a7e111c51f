package wasm

import "time"

// Budgets and fuel accounting, shared by both modes and by the start-up:
// setBudget is the only place the store is given fuel and a deadline, and
// fuelUsed the only place fuel is read back from it.

// setBudget gives the guest fuel and timeout from now on. The deadline is
// enforced three ways: by epoch interruption in compiled code, by the host's
// own waits (sleep in poll_oneoff, a Handler's context) and, as the last
// resort, by the grace timer of a command-mode Call.
//
// Compiled code caches the epoch deadline it loaded on function entry and
// rereads the store's value only when that cached value has passed, so every
// function entered from here on sees the new deadline. In reactor mode that
// is every call: mu_serve is entered afresh. In command mode a loop already
// running in the parked _start is bounded by the deadline it loaded (the
// start-up's or the last call's) until it enters a function.
func (i *Instance) setBudget(fuel uint64, timeout time.Duration) *CallError {
	i.deadline = time.Now().Add(timeout)
	i.budget = fuel
	i.store.SetEpochDeadline(i.e.deadlineTicks(timeout))
	if err := i.store.SetFuel(fuel); err != nil {
		return &CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()}
	}
	return nil
}

// fuelUsed is the fuel the guest burnt out of the budget of the last
// setBudget, as the store reports it now.
func (i *Instance) fuelUsed() uint64 {
	remaining, _ := i.store.GetFuel()
	if remaining > i.budget {
		return 0
	}
	return i.budget - remaining
}

// callFuel is the fuel to bill the current call, however it ended: what it
// burnt of its budget, plus the start-up's fuel if this is the instance's
// first call (see RATIONALE: start-up fuel is billed to the first call).
func (i *Instance) callFuel() uint64 {
	f := i.pendingStartup + i.fuelUsed()
	i.pendingStartup = 0
	return f
}
