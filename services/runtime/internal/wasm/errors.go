package wasm

import (
	"errors"
	"fmt"
)

// ErrRequestTooLarge is returned by Call when the encoded request does not fit in one frame.
var ErrRequestTooLarge = errors.New("wasm: request exceeds the maximum frame size")

// ErrorKind classifies why a call failed.
type ErrorKind int

const (
	// KindFuelExhausted: the call burnt its whole fuel budget.
	KindFuelExhausted ErrorKind = iota + 1
	// KindDeadline: the call ran past its wall-clock deadline.
	KindDeadline
	// KindMemoryLimit: the instance hit its memory limit.
	KindMemoryLimit
	// KindCrash: the instance trapped or exited.
	KindCrash
	// KindProtocol: the instance broke the stdio protocol (garbage, oversized frame, unexpected message).
	KindProtocol
	// KindFunctionError: the function reported a failure itself (FatalError); the instance lives on.
	KindFunctionError
	// KindUnavailable: the instance could not take the call (closed, start-up failed, host shutting down).
	KindUnavailable
)

func (k ErrorKind) String() string {
	switch k {
	case KindFuelExhausted:
		return "fuel exhausted"
	case KindDeadline:
		return "deadline exceeded"
	case KindMemoryLimit:
		return "memory limit exceeded"
	case KindCrash:
		return "crash"
	case KindProtocol:
		return "protocol error"
	case KindFunctionError:
		return "function error"
	case KindUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// CallError is the typed error of a failed call. Fuel is what the call burnt
// before it failed, so it can still be billed.
type CallError struct {
	Kind    ErrorKind
	Message string
	Fuel    uint64
	// Exited marks a KindCrash that is the guest calling proc_exit, not a
	// trap (receipts tell the two apart).
	Exited bool
}

func (e *CallError) Error() string { return e.Kind.String() + ": " + e.Message }

// Fatal reports whether the instance that produced the error must be discarded.
func (e *CallError) Fatal() bool { return e.Kind != KindFunctionError }

// AsCallError returns err's *CallError, if it has one.
func AsCallError(err error) (*CallError, bool) {
	var ce *CallError
	ok := errors.As(err, &ce)
	return ce, ok
}
