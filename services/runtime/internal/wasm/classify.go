package wasm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// fail records why the host is trapping the guest (the first reason wins)
// and returns the trap for a shadowed import to return; classify reports it.
func (i *Instance) fail(kind ErrorKind, format string, args ...any) *wasmtime.Trap {
	if i.trapReason == nil {
		i.trapReason = &CallError{Kind: kind, Message: fmt.Sprintf(format, args...)}
	}
	return wasmtime.NewTrap(i.trapReason.Message)
}

// classify turns what instantiating or entering the guest returned (_start,
// _initialize, mu_init, mu_serve) into a CallError. A nil err is _start
// returning of its own accord, which only a command can do.
func (i *Instance) classify(err error) *CallError {
	if i.trapReason != nil {
		return i.trapReason
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		if code := trap.Code(); code != nil {
			switch *code {
			case trapOutOfFuel:
				return &CallError{Kind: KindFuelExhausted, Message: "the call used its whole fuel budget"}
			case trapInterrupt:
				return &CallError{Kind: KindDeadline, Message: "the call ran past its wall-clock deadline"}
			}
		}
		if ce := i.memoryError(); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: "wasm trap: " + firstLine(trap.Message())}
	}
	var werr *wasmtime.Error
	if errors.As(err, &werr) {
		if status, ok := werr.ExitStatus(); ok {
			if ce := i.memoryError(); ce != nil {
				return ce
			}
			return &CallError{Kind: KindCrash, Message: fmt.Sprintf("function exited with status %d", status)}
		}
		if ce := i.memoryError(); ce != nil {
			return ce
		}
		return &CallError{Kind: KindCrash, Message: firstLine(werr.Error())}
	}
	if err != nil {
		return &CallError{Kind: KindCrash, Message: firstLine(err.Error())}
	}
	return &CallError{Kind: KindCrash, Message: "function returned from _start"}
}

// Trap codes as numbered by wasmtime's C API (wasmtime/trap.h). The Go
// binding's own constants stop before WASMTIME_TRAP_CODE_ALWAYS_TRAP_ADAPTER,
// so its OutOfFuel is off by one; these follow the header.
const (
	trapInterrupt wasmtime.TrapCode = 10
	trapOutOfFuel wasmtime.TrapCode = 12
)

// growSlack is how close to its limit an instance's memory must be for a
// crash to be reported as the memory limit: one allocation step of the Go
// runtime on wasm (4 MiB arenas) plus a page. wasmtime's C API gives no
// callback for a refused memory.grow, so this is the signal we have.
const growSlack = 4<<20 + 64<<10

func (i *Instance) memoryError() *CallError {
	if i.cfg.MemoryLimit == 0 || i.mem == nil {
		return nil
	}
	size := uint64(i.mem.DataSize(i.store))
	if size+growSlack > i.cfg.MemoryLimit {
		return &CallError{Kind: KindMemoryLimit, Message: fmt.Sprintf("linear memory reached %d bytes of its %d-byte limit (memory_limit)", size, i.cfg.MemoryLimit)}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		return s[:j]
	}
	return s
}
