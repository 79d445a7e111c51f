package wasm

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// fail records why the host is trapping the guest (the first reason wins)
// and returns the trap for a shadowed import to return; classify reports it.
// The guest is inside an import, where compiled code has saved its fuel, so
// the call's fuel stays exact.
func (i *Instance) fail(kind ErrorKind, format string, args ...any) *wasmtime.Trap {
	if i.trapReason == nil {
		i.trapReason = &CallError{Kind: kind, Message: fmt.Sprintf(format, args...)}
	}
	return wasmtime.NewTrap(i.trapReason.Message)
}

// classify turns what instantiating or entering the guest returned (_start,
// _initialize, mu_init, mu_serve) into a CallError. A nil err is _start
// returning of its own accord, which only a command can do.
//
// It also decides whether the fuel the store reports is still exact
// (i.lost, see metering.go): compiled code keeps the fuel it burns in a
// register and writes it back to the store only at calls, returns,
// unreachable and the out-of-fuel check. A trap anywhere else (the epoch
// deadline, an out-of-bounds access, a division by zero, ...) loses what the
// trapping function burnt since its last call, so the call is billed its
// whole budget instead.
func (i *Instance) classify(err error) *CallError {
	if i.trapReason != nil {
		return i.trapReason
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		code := trap.Code()
		if code == nil || (*code != trapUnreachable && *code != trapOutOfFuel && *code != trapStackOverflow) {
			i.lost = true
		}
		if code != nil {
			switch *code {
			case trapOutOfFuel:
				return &CallError{Kind: KindFuelExhausted, Message: "the call used its whole fuel budget"}
			case trapInterrupt:
				return &CallError{Kind: KindDeadline, Message: "the call ran past its wall-clock deadline"}
			}
		}
		msg := "wasm trap: " + trapCause(trap.Message()) + i.backtrace(trap)
		if ce := i.memoryError(msg); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: msg}
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok {
			msg := fmt.Sprintf("function exited with status %d", status)
			if ce := i.memoryError(msg); ce != nil {
				return ce
			}
			return &CallError{Kind: KindCrash, Message: msg, Exited: true}
		}
		msg := trapCause(werr.Error())
		if ce := i.memoryError(msg); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: msg}
	}
	if err != nil {
		return &CallError{Kind: KindCrash, Message: trapCause(err.Error())}
	}
	return &CallError{Kind: KindCrash, Message: "function returned from _start"}
}

// Trap codes as numbered by wasmtime's C API (wasmtime/trap.h). The Go
// binding's own constants stop before WASMTIME_TRAP_CODE_ALWAYS_TRAP_ADAPTER,
// so its OutOfFuel is off by one; these follow the header.
const (
	trapStackOverflow wasmtime.TrapCode = 0
	trapUnreachable   wasmtime.TrapCode = 9
	trapInterrupt     wasmtime.TrapCode = 10
	trapOutOfFuel     wasmtime.TrapCode = 12
)

// maxCauseBytes bounds the cause kept from a wasmtime error message.
const maxCauseBytes = 512

// trapCause extracts what went wrong from a wasmtime error message, which
// reads "error while executing at wasm backtrace:\n 0: ...\n\nCaused
// by:\n    wasm trap: call stack exhausted\n\nStack backtrace: ...": the
// first line (unless it only introduces a backtrace) and the lines under
// "Caused by:" (without their "0: " numbering and "wasm trap: " prefix, the
// caller adds its own), joined in one line; the engine's own stack
// backtrace is dropped.
var causeNumber = regexp.MustCompile(`^[0-9]+: `)

func trapCause(s string) string {
	s = strings.TrimSpace(s)
	s, _, _ = strings.Cut(s, "\n\nStack backtrace:")
	cause := s
	if head, after, ok := strings.Cut(s, "Caused by:"); ok {
		after, _, _ = strings.Cut(after, "\n\n")
		var parts []string
		if first, _, _ := strings.Cut(strings.TrimSpace(head), "\n"); first != "" && !strings.Contains(first, "wasm backtrace") {
			parts = append(parts, strings.TrimSuffix(first, ":"))
		}
		for _, l := range strings.Split(after, "\n") {
			if l = causeNumber.ReplaceAllString(strings.TrimSpace(l), ""); l != "" {
				parts = append(parts, strings.TrimPrefix(l, "wasm trap: "))
			}
		}
		cause = strings.Join(parts, ": ")
	} else if j := strings.IndexByte(s, '\n'); j >= 0 {
		cause = strings.TrimSpace(s[:j])
		cause = strings.TrimSuffix(cause, ":")
	}
	if len(cause) > maxCauseBytes {
		cause = cause[:maxCauseBytes] + "…"
	}
	if cause == "" {
		cause = "unknown error"
	}
	return cause
}

// backtrace renders the innermost MaxTrapFrames frames of trap as
// "; at name+0xoff < name+0xoff … (N more frames)".
func (i *Instance) backtrace(trap *wasmtime.Trap) string {
	max := i.e.cfg.MaxTrapFrames
	if max == 0 {
		return ""
	}
	frames := trap.Frames()
	if len(frames) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; at ")
	for k, f := range frames {
		if k == max {
			fmt.Fprintf(&b, " (%d more frames)", len(frames)-max)
			break
		}
		if k > 0 {
			b.WriteString(" < ")
		}
		name := fmt.Sprintf("func[%d]", f.FuncIndex())
		if n := f.FuncName(); n != nil && *n != "" {
			name = *n
			if len(name) > 64 {
				name = name[:64] + "…"
			}
		}
		if off := f.FuncOffset(); off != ^uint(0) { // the engine's "unknown"
			fmt.Fprintf(&b, "%s+0x%x", name, off)
		} else {
			b.WriteString(name)
		}
	}
	return b.String()
}

// memoryError reports a failure as the memory limit when the guest was
// refused a memory.grow or table.grow during the call (or start-up) that
// failed: the store limiter said no, the instrumented grow counted it in
// the module's growRefused global (instrument.go), and the guest then gave
// up (the Go runtime prints "fatal error: out of memory" and exits with
// status 2; Rust and C abort with unreachable). what is the failure's own
// description, kept in the message.
func (i *Instance) memoryError(what string) *CallError {
	if i.refusals() <= i.refusedAtStart {
		return nil
	}
	return &CallError{Kind: KindMemoryLimit, Message: fmt.Sprintf(
		"a memory.grow or table.grow was refused at the %d-byte limit (memory_limit; linear memory %d bytes, tables %d bytes), then: %s",
		i.memLimit, i.linearSize(), i.tableBytes(), what)}
}

// refusals is the module's count of refused grows.
func (i *Instance) refusals() int32 {
	if i.refused == nil {
		return 0
	}
	return i.refused.Get(i.store).I32()
}
