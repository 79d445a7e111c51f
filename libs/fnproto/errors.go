package fnproto

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Every error this package returns for bad frames or bad
// messages wraps exactly one of them; match with errors.Is. The error text
// itself names the message kind, the field and the sizes involved.
var (
	// ErrFrameTooLarge reports a frame whose declared length exceeds the
	// configured limit, or a message too large to be framed at all (a
	// length over the u32 range, or over a Writer's limit).
	ErrFrameTooLarge = errors.New("fnproto: frame too large")

	// ErrUnknownKind reports a (direction, kind) pair that names no message,
	// or an invalid Direction.
	ErrUnknownKind = errors.New("fnproto: unknown message kind")

	// ErrMalformed reports a frame or body that breaks the framing or Borsh
	// rules: a length or count past the end of the frame, an option tag or
	// bool other than 0 and 1, an enum out of range, invalid UTF-8, unsorted
	// or duplicate map keys, trailing bytes, a frame length below 2, or, when
	// encoding, a message that cannot be represented (invalid UTF-8, an enum
	// out of range, a nil message).
	ErrMalformed = errors.New("fnproto: malformed message")
)

// codecError is the concrete error for every codec failure. It is built only
// on failure paths, so successful encodes and decodes never allocate for it.
type codecError struct {
	sentinel error
	encode   bool   // failure while encoding rather than decoding
	msg      string // message type name, "" for framing errors
	field    string // field path inside the message, e.g. "request.headers[2].name"
	detail   string
}

func (e *codecError) Error() string {
	s := "fnproto: "
	if e.encode {
		s += "encode "
	}
	switch {
	case e.msg != "" && e.field != "":
		s += e.msg + "." + e.field + ": "
	case e.msg != "":
		s += e.msg + ": "
	case e.field != "":
		s += e.field + ": "
	}
	return s + e.detail
}

func (e *codecError) Unwrap() error { return e.sentinel }

// within prefixes the field path with the enclosing field's name.
func (e *codecError) within(parent string) {
	if e.field == "" {
		e.field = parent
	} else {
		e.field = parent + "." + e.field
	}
}

// withinIndex prefixes the field path with parent[i].
func (e *codecError) withinIndex(parent string, i int) {
	e.within(parent + "[" + strconv.Itoa(i) + "]")
}

func newError(sentinel error, format string, args ...any) *codecError {
	return &codecError{sentinel: sentinel, detail: fmt.Sprintf(format, args...)}
}

// withMessage names the message in err if err is a codecError and does not
// name one yet.
func withMessage(err error, dir Direction, k Kind, encode bool) error {
	var ce *codecError
	if errors.As(err, &ce) && ce.msg == "" {
		ce.msg = KindName(dir, k)
		ce.encode = encode
	}
	return err
}

func errFrameTooLarge(size uint64, limit int) error {
	return newError(ErrFrameTooLarge, "frame of %d bytes exceeds limit of %d", size, limit)
}

func errShortFrame(size uint32) error {
	return newError(ErrMalformed, "frame length %d is shorter than the 2-byte kind", size)
}

func errUnknownKind(dir Direction, k Kind) error {
	if dir != ToFunction && dir != FromFunction {
		return newError(ErrUnknownKind, "invalid direction %d (kind %d)", uint8(dir), uint16(k))
	}
	return newError(ErrUnknownKind, "unknown %s kind %d", dir, uint16(k))
}

func errNilMessage() error {
	return newError(ErrMalformed, "nil message")
}
