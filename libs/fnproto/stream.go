package fnproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// retainBufferSize is the largest buffer a Reader or Writer keeps between
// frames. Bigger frames get a buffer of exactly their size that is dropped
// once the frame is handled, so a pool of idle instances does not pin one
// frame-limit-sized buffer each.
const retainBufferSize = 64 << 10

// Reader reads frames from an io.Reader and decodes them in one direction.
// It is not safe for concurrent use.
type Reader struct {
	r   io.Reader
	dir Direction
	max int
	hdr [lengthSize]byte
	buf []byte
	err error // sticky stream error
}

// NewReader returns a Reader that decodes dir messages from r and rejects
// frames whose declared length exceeds maxFrame bytes (0 or less means
// DefaultMaxFrameSize). The Reader does no read-ahead: it reads each frame's
// length and then exactly the rest of that frame, so it never consumes bytes
// of the next frame. Wrap r in a bufio.Reader to save read calls when r is an
// unbuffered pipe.
func NewReader(r io.Reader, dir Direction, maxFrame int) *Reader {
	return &Reader{r: r, dir: dir, max: effectiveLimit(maxFrame)}
}

// Read blocks until the next frame has arrived and returns its message.
//
// It returns io.EOF (unwrapped) when the stream ends cleanly between
// frames, and an error wrapping io.ErrUnexpectedEOF when it ends inside a
// frame. A declared length over the limit (ErrFrameTooLarge) or below 2
// (ErrMalformed) is reported before the body is read or allocated. These
// errors, and errors from the underlying reader, leave the stream out of
// step, so they are sticky: every later Read returns the same error.
//
// A frame whose kind is unknown (ErrUnknownKind) or whose body is malformed
// (ErrMalformed) has been consumed whole when the error is returned, so the
// caller may choose to continue with the next frame.
//
// The internal buffer is reused across frames and only grows to a declared,
// limit-checked length; the returned message never aliases it.
func (r *Reader) Read() (Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if n, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		switch {
		case err == io.EOF:
			r.err = io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			r.err = fmt.Errorf("fnproto: truncated frame length (%d of %d bytes): %w", n, lengthSize, io.ErrUnexpectedEOF)
		default:
			r.err = fmt.Errorf("fnproto: read frame length: %w", err)
		}
		return nil, r.err
	}
	size := binary.LittleEndian.Uint32(r.hdr[:])
	if err := checkFrameSize(size, r.max); err != nil {
		r.err = err
		return nil, err
	}
	frame := r.buf
	if uint64(cap(frame)) < uint64(size) {
		frame = make([]byte, size)
	}
	frame = frame[:size]
	if size <= retainBufferSize {
		r.buf = frame[:0]
	} else {
		r.buf = nil
	}
	if n, err := io.ReadFull(r.r, frame); err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			r.err = fmt.Errorf("fnproto: truncated frame (%d of %d bytes after the length): %w", n, size, io.ErrUnexpectedEOF)
		} else {
			r.err = fmt.Errorf("fnproto: read frame of %d bytes: %w", size, err)
		}
		return nil, r.err
	}
	return Unmarshal(r.dir, Kind(binary.LittleEndian.Uint16(frame)), frame[kindSize:])
}

// Writer writes messages as frames to an io.Writer. It is not safe for
// concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
	max int   // 0: only the u32 range limits a frame
	err error // sticky stream error
}

// NewWriter returns a Writer that writes frames to w. By default frames are
// limited only by the u32 length range; see SetMaxFrameSize.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// SetMaxFrameSize makes Write reject, with ErrFrameTooLarge and without
// writing anything, a message whose frame length (kind + body) exceeds n
// bytes, so a sender can fail early with the same limit its peer enforces.
// n <= 0 removes the limit.
func (w *Writer) SetMaxFrameSize(n int) {
	if n < 0 {
		n = 0
	}
	w.max = n
}

// Write encodes m and writes it as exactly one frame with a single Write
// call on the underlying writer. An encoding error leaves the stream
// untouched and is returned as is. A write error or short write may leave a
// partial frame behind, so it is sticky: every later Write returns it.
func (w *Writer) Write(m Message) error {
	if w.err != nil {
		return w.err
	}
	b, err := AppendFrame(w.buf[:0], m)
	if err != nil {
		return err
	}
	if cap(b) <= retainBufferSize {
		w.buf = b[:0]
	} else {
		w.buf = nil
	}
	if size := len(b) - lengthSize; w.max > 0 && size > w.max {
		return withMessage(errFrameTooLarge(uint64(size), w.max), m.Direction(), m.Kind(), true)
	}
	n, err := w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("fnproto: write %s frame (%d of %d bytes written): %w", KindName(m.Direction(), m.Kind()), n, len(b), err)
		return w.err
	}
	return nil
}
