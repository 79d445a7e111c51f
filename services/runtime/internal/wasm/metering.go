package wasm

import (
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Budgets and fuel accounting, shared by both modes and by the start-up:
// setBudget is the only place the store is given fuel and a deadline,
// fuelUsed the only place fuel is read back from it, and chargeHost the
// only place the host takes fuel for work it does on the guest's behalf.
//
// What a call is billed, by how it ended (see RATIONALE: "Every ending is
// billed at least what ran"):
//   - a result, a FatalError, anything the host ended from inside an import
//     (protocol errors, exit, host failures, deadlines seen by the host,
//     Close), unreachable, a stack overflow and running out of fuel: the
//     exact count (compiled code saves its fuel at every call, return,
//     unreachable and out-of-fuel check);
//   - the epoch deadline and any other trap: the call's whole budget, an
//     upper bound (the count since the trapping function's last call is
//     lost in a register, and the out-of-fuel check bounds it by the budget);
//   - a command-mode call abandoned at its grace timeout: its whole budget;
//
// each plus the start-up's fuel on an instance's first call, and plus the
// fuel the host charged for bytes it moved (chargeHost).

// setBudget gives the guest fuel and timeout from now on. The deadline is
// enforced three ways: by epoch interruption in compiled code, by the host's
// own checks (every shadowed import, sleep in poll_oneoff, a Handler's
// context) and, as the last resort, by the grace timer of a command-mode
// Call.
//
// Compiled code caches the epoch deadline it loaded on function entry and
// rereads the store's value only when that cached value has passed, so every
// function entered from here on sees the new deadline. In reactor mode that
// is every call: mu_serve is entered afresh. In command mode a loop already
// running in the parked _start is bounded by the deadline it loaded (the
// start-up's or the last call's) until it enters a function; that is why a
// command module's start-up deadline is capped at InstanceConfig.CallTimeout.
func (i *Instance) setBudget(fuel uint64, timeout time.Duration) *CallError {
	i.deadline = time.Now().Add(timeout)
	i.budget = fuel
	i.lost = false
	i.hostFuel = 0
	i.e.setEpochDeadline(i.store, timeout)
	if err := i.store.SetFuel(fuel); err != nil {
		return &CallError{Kind: KindUnavailable, Message: "set fuel: " + err.Error()}
	}
	return nil
}

// fuelUsed is the fuel the guest burnt out of the budget of the last
// setBudget: the store's count, or the whole budget when classify found
// the count lost, plus host charges not yet taken from the store.
func (i *Instance) fuelUsed() uint64 {
	if i.lost {
		return i.budget + i.hostFuel
	}
	remaining, _ := i.store.GetFuel()
	if remaining > i.budget {
		return i.hostFuel
	}
	return i.budget - remaining + i.hostFuel
}

// callFuel is the fuel to bill the current call, however it ended: what it
// burnt of its budget, plus the start-up's fuel if this is the instance's
// first call (see RATIONALE: start-up fuel is billed to the first call).
func (i *Instance) callFuel() uint64 {
	f := i.pendingStartup + i.fuelUsed()
	i.pendingStartup = 0
	return f
}

// hostSettleFuel is how much host-charged fuel may be owed before it is
// taken from the store (two cgo calls), so small reads and writes do not
// each pay for that.
const hostSettleFuel = 1 << 14

// chargeHost charges the guest cost units of fuel for work the host does
// for it (bytes moved by fd_read, fd_write, poll_oneoff, random_get). It
// runs inside an import, before the work: the trap it returns once the
// budget is spent ends the call as out of fuel.
func (i *Instance) chargeHost(cost uint64) *wasmtime.Trap {
	i.hostFuel += cost
	if i.hostFuel < hostSettleFuel {
		return nil
	}
	remaining, err := i.store.GetFuel()
	if err != nil {
		return i.fail(KindUnavailable, "get fuel: %v", err)
	}
	if remaining < i.hostFuel {
		i.hostFuel -= remaining
		_ = i.store.SetFuel(0)
		return i.fail(KindFuelExhausted, "the call used its whole fuel budget")
	}
	if err := i.store.SetFuel(remaining - i.hostFuel); err != nil {
		return i.fail(KindUnavailable, "set fuel: %v", err)
	}
	i.hostFuel = 0
	return nil
}

// bytesFuel is the price of n bytes moved by the host (BulkBytesPerFuel).
func (i *Instance) bytesFuel(n uint64) uint64 { return n / uint64(i.e.cfg.BulkBytesPerFuel) }

// checkDeadline fails the call from inside an import once its deadline has
// passed, so a guest that loops over host calls is stopped on time even
// when the epoch check in its own code is far apart.
func (i *Instance) checkDeadline(what string) *wasmtime.Trap {
	if i.deadline.IsZero() || time.Now().Before(i.deadline) {
		return nil
	}
	return i.fail(KindDeadline, "the call ran past its wall-clock deadline during %s", what)
}
