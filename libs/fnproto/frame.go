package fnproto

import (
	"encoding/binary"
	"math"
)

// DefaultMaxFrameSize is the frame limit used when a limit of 0 (or less)
// is given: the largest declared frame length (kind + body, excluding the
// 4-byte length itself) a reader accepts.
const DefaultMaxFrameSize = 8 << 20 // 8 MiB

// FrameSizeEnv is the environment variable in which the runtime gives every
// function instance its frame limit, in decimal bytes, so that the function
// bounds the frames it reads and writes as the runtime does, with no
// handshake.
const FrameSizeEnv = "MU_MAX_FRAME_SIZE"

const (
	lengthSize = 4 // u32 frame length
	kindSize   = 2 // u16 kind
	headerSize = lengthSize + kindSize
)

// AppendFrame appends one complete frame carrying m (length, kind and body)
// to dst and returns the extended slice. It allocates only when dst lacks
// room (and, for maps of more than 16 entries, to sort their keys). On
// error it returns dst unchanged; the error wraps ErrMalformed for a
// message that cannot be encoded (nil, invalid UTF-8, LogLevel out of
// range) or ErrFrameTooLarge for one whose lengths exceed the u32 range.
func AppendFrame(dst []byte, m Message) ([]byte, error) {
	if m == nil {
		return dst, errNilMessage()
	}
	start := len(dst)
	k := m.Kind()
	b := append(dst, 0, 0, 0, 0, byte(k), byte(k>>8))
	b, err := m.appendBody(b)
	if err != nil {
		return dst, withMessage(err, m.Direction(), k, true)
	}
	size := uint64(len(b) - start - lengthSize)
	if size > math.MaxUint32 {
		return dst, withMessage(newError(ErrFrameTooLarge, "frame of %d bytes exceeds the u32 range", size), m.Direction(), k, true)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(size))
	return b, nil
}

// Marshal returns the Borsh body of m, without the frame header.
func Marshal(m Message) ([]byte, error) {
	if m == nil {
		return nil, errNilMessage()
	}
	b, err := m.appendBody(nil)
	if err != nil {
		return nil, withMessage(err, m.Direction(), m.Kind(), true)
	}
	return b, nil
}

// Unmarshal decodes body as the message of the given direction and kind.
// The whole body must be consumed. The returned message does not alias
// body. Errors wrap ErrUnknownKind or ErrMalformed.
func Unmarshal(dir Direction, kind Kind, body []byte) (Message, error) {
	m := newMessage(dir, kind)
	if m == nil {
		return nil, errUnknownKind(dir, kind)
	}
	if err := m.decodeBody(body); err != nil {
		return nil, withMessage(err, dir, kind, false)
	}
	return m, nil
}

// ParseFrame decodes the first frame in buf, for callers that do their own
// buffering. It returns the message and n, the number of bytes the frame
// occupies. If buf holds only part of a frame it returns (nil, 0, nil) and
// the caller should read more. A declared length above maxFrame (0 or less
// means DefaultMaxFrameSize) fails with ErrFrameTooLarge, and one below 2
// with ErrMalformed, as soon as the 4 length bytes are present; n is then
// 0, since the stream cannot be resynchronised. When the frame is complete
// but its kind is unknown or its body malformed, ParseFrame returns the
// error together with the frame's size in n, so the caller may skip it.
// The returned message does not alias buf.
func ParseFrame(dir Direction, buf []byte, maxFrame int) (m Message, n int, err error) {
	if len(buf) < lengthSize {
		return nil, 0, nil
	}
	size := binary.LittleEndian.Uint32(buf)
	if err := checkFrameSize(size, maxFrame); err != nil {
		return nil, 0, err
	}
	if uint64(len(buf)-lengthSize) < uint64(size) {
		return nil, 0, nil
	}
	n = lengthSize + int(size)
	frame := buf[lengthSize:n]
	m, err = Unmarshal(dir, Kind(binary.LittleEndian.Uint16(frame)), frame[kindSize:])
	if err != nil {
		return nil, n, err
	}
	return m, n, nil
}

// checkFrameSize validates a declared frame length against the limit.
func checkFrameSize(size uint32, maxFrame int) error {
	limit := effectiveLimit(maxFrame)
	if uint64(size) > uint64(limit) {
		return errFrameTooLarge(uint64(size), limit)
	}
	if size < kindSize {
		return errShortFrame(size)
	}
	return nil
}

func effectiveLimit(maxFrame int) int {
	if maxFrame <= 0 {
		return DefaultMaxFrameSize
	}
	return maxFrame
}
