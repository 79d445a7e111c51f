package wasm

import (
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// TapeEntry is one answer an instance got from WASI clock_time_get (Clock,
// in nanoseconds) or random_get (Random, the bytes; IsRandom set).
type TapeEntry struct {
	IsRandom bool
	Clock    uint64
	Random   []byte
}

// Tape makes an instance's clock and randomness reproducible. An instance
// started with a recording tape (NewRecordingTape) gets real clock and
// random values and appends each to the tape; one started with a replay
// tape (NewReplayTape) gets the recorded values back, in order, so that a
// deterministic function re-run on a fresh instance burns exactly the fuel
// it burnt the first time. A replayed instance that asks for something the
// tape does not hold next (a clock where random bytes were recorded, a
// different length, past the end) fails its call with KindCrash and a
// message saying where the tape diverged.
//
// A Tape is used by the goroutine inside its instance's guest; read it
// (Entries) only after the call that filled it has returned, and Stop it
// between calls. It is not safe for concurrent use otherwise.
type Tape struct {
	replay  bool
	stopped bool
	entries []TapeEntry
	pos     int
	note    func(input string)
	clock   bool // a clock value was noted
	random  bool // random bytes were noted
}

// NewRecordingTape returns a tape that records. note, if not nil, is
// called with "clock" or "random" the first time the instance reads each
// while the tape records, on the goroutine inside the guest.
func NewRecordingTape(note func(input string)) *Tape { return &Tape{note: note} }

// NewReplayTape returns a tape that answers entries in order.
func NewReplayTape(entries []TapeEntry) *Tape { return &Tape{replay: true, entries: entries} }

// Entries returns what the tape recorded (or replays).
func (t *Tape) Entries() []TapeEntry { return t.entries }

// Replayed is how many entries a replay tape has answered.
func (t *Tape) Replayed() int { return t.pos }

// Stop ends recording: the instance gets real values from then on and the
// tape keeps no more, so a sampled instance can go on serving as an
// ordinary warm one. Replay tapes are not affected.
func (t *Tape) Stop() { t.stopped = true }

func (t *Tape) recording() bool { return !t.replay && !t.stopped }

func (t *Tape) noteInput(random bool) {
	if t.note == nil {
		return
	}
	if random && !t.random {
		t.random = true
		t.note("random")
	} else if !random && !t.clock {
		t.clock = true
		t.note("clock")
	}
}

// WASI clock ids (preview 1).
const (
	clockMonotonic = 1
)

// clockTimeGet implements WASI clock_time_get for instances with a tape.
// Real values are the host's: the Unix time for the realtime clock, the
// time since the engine started (plus one, never zero) for the monotonic
// one; the CPU-time clocks are not supported (EBADF, as wasmtime's WASI).
// Like wasmtime's, it charges no fuel beyond the call itself, so a taped
// instance burns what an untaped one does.
func (i *Instance) clockTimeGet(caller *wasmtime.Caller, id int32, _ int64, out int32) (int32, *wasmtime.Trap) {
	mem := i.memory(caller)
	if out < 0 || int64(out)+8 > int64(len(mem)) {
		return errnoFault, nil
	}
	t := i.cfg.Tape
	var v uint64
	switch {
	case t.replay:
		if t.pos >= len(t.entries) {
			return 0, i.fail(KindCrash, "replay tape diverged: the guest read the clock after the tape's %d entries", len(t.entries))
		}
		e := t.entries[t.pos]
		if e.IsRandom {
			return 0, i.fail(KindCrash, "replay tape diverged at entry %d: the guest read the clock, the tape holds %d random bytes", t.pos, len(e.Random))
		}
		t.pos++
		v = e.Clock
	case id == clockRealtime:
		v = uint64(time.Now().UnixNano())
	case id == clockMonotonic:
		v = uint64(time.Since(i.e.start)) + 1 + i.clock.base
	default:
		return errnoBadf, nil
	}
	if t.recording() {
		t.entries = append(t.entries, TapeEntry{Clock: v})
		t.noteInput(false)
	}
	binary.LittleEndian.PutUint64(mem[out:], v)
	return errnoSuccess, nil
}

// randomGetTaped is randomGet for instances with a tape: the same bounds,
// deadline and fuel, then bytes from the host's source (recorded) or from
// the tape (replayed).
func (i *Instance) randomGetTaped(caller *wasmtime.Caller, buf, n int32) (int32, *wasmtime.Trap) {
	mem := i.memory(caller)
	if buf < 0 || n < 0 || int64(buf)+int64(n) > int64(len(mem)) {
		return errnoFault, nil
	}
	if trap := i.checkDeadline("random_get"); trap != nil {
		return 0, trap
	}
	if trap := i.chargeHost(uint64(n) / uint64(i.e.cfg.RandomBytesPerFuel)); trap != nil {
		return 0, trap
	}
	dst := mem[buf : buf+n]
	t := i.cfg.Tape
	if t.replay {
		if t.pos >= len(t.entries) {
			return 0, i.fail(KindCrash, "replay tape diverged: the guest read %d random bytes after the tape's %d entries", n, len(t.entries))
		}
		e := t.entries[t.pos]
		if !e.IsRandom || len(e.Random) != int(n) {
			return 0, i.fail(KindCrash, "replay tape diverged at entry %d: the guest read %d random bytes, the tape holds %s", t.pos, n, describeEntry(e))
		}
		t.pos++
		copy(dst, e.Random)
		return errnoSuccess, nil
	}
	_, _ = rand.Read(dst) // never fails (crypto/rand)
	if t.recording() {
		t.entries = append(t.entries, TapeEntry{IsRandom: true, Random: append([]byte(nil), dst...)})
		t.noteInput(true)
	}
	return errnoSuccess, nil
}

func describeEntry(e TapeEntry) string {
	if e.IsRandom {
		return strconv.Itoa(len(e.Random)) + " random bytes"
	}
	return "a clock value"
}
