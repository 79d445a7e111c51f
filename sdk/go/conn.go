package mu

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/muprotocol/mu/libs/fnproto"
)

const (
	// readBufferSize is the input buffer: a frame up to this size is decoded
	// straight from it, usually after a single read of stdin.
	readBufferSize = 64 << 10
	// retainOutSize is the largest output buffer kept between flushes.
	retainOutSize = 64 << 10
	// flushThreshold makes a burst of logs reach the runtime before the
	// request ends once this many bytes are buffered.
	flushThreshold = 64 << 10
	// frameOverhead bounds the bytes a Log or FatalError frame adds to its
	// text (kind, string length, level), so texts are cut to fit the limit.
	frameOverhead = 16
)

// conn is one Serve call: the runtime stream and its buffers.
type conn struct {
	app    *App
	br     *bufio.Reader
	w      io.Writer
	max    int
	logger *slog.Logger

	// mu serialises everything that writes to the stream or reads a reply:
	// host calls from a handler's goroutines, logs, and the end of a request.
	mu       sync.Mutex
	out      []byte // frames not yet written
	rerr     error  // sticky: the input is out of step with the runtime
	werr     error  // sticky: writing to the runtime failed
	function string // the function being served, for error messages
	result   fnproto.FunctionResult
	log      fnproto.Log
}

func newConn(a *App, in io.Reader, out io.Writer) *conn {
	c := &conn{app: a, br: bufio.NewReaderSize(in, readBufferSize), w: out, max: a.maxFrame}
	c.logger = slog.New(&logHandler{c: c, level: a.level})
	return c
}

// readFrame reads and decodes the next runtime → function frame. stream
// reports whether an error leaves the stream out of step (EOF, a read
// error, a truncated or oversized frame); otherwise the frame was consumed
// whole and the caller may go on. A clean EOF between frames is io.EOF.
func (c *conn) readFrame() (m fnproto.Message, stream bool, err error) {
	hdr, err := c.br.Peek(4)
	if err != nil {
		switch {
		case len(hdr) == 0 && err == io.EOF:
			return nil, true, io.EOF
		case err == io.EOF:
			return nil, true, fmt.Errorf("mu: truncated frame length (%d of 4 bytes): %w", len(hdr), io.ErrUnexpectedEOF)
		}
		return nil, true, fmt.Errorf("mu: read frame length: %w", err)
	}
	size := binary.LittleEndian.Uint32(hdr)
	if uint64(size) > uint64(c.max) {
		return nil, true, fmt.Errorf("mu: frame of %d bytes exceeds limit of %d: %w", size, c.max, fnproto.ErrFrameTooLarge)
	}
	if size < 2 {
		return nil, true, fmt.Errorf("mu: frame length %d is shorter than the 2-byte kind: %w", size, fnproto.ErrMalformed)
	}
	_, _ = c.br.Discard(4) // cannot fail: the 4 bytes are buffered
	n := int(size)
	var frame []byte
	if n <= c.br.Size() {
		// Decode in place; Unmarshal never aliases its input.
		frame, err = c.br.Peek(n)
		if err == nil {
			defer c.br.Discard(n)
		}
	} else {
		frame = make([]byte, n) // limit-checked; dropped after this frame
		_, err = io.ReadFull(c.br, frame)
	}
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, true, fmt.Errorf("mu: truncated frame (%d bytes expected after the length): %w", n, io.ErrUnexpectedEOF)
		}
		return nil, true, fmt.Errorf("mu: read frame of %d bytes: %w", n, err)
	}
	m, err = fnproto.Unmarshal(fnproto.ToFunction, fnproto.Kind(binary.LittleEndian.Uint16(frame)), frame[2:])
	return m, false, err
}

// appendLocked appends m as one frame to the output buffer. An encoding
// error or a frame over the limit leaves the buffer unchanged.
func (c *conn) appendLocked(m fnproto.Message) error {
	start := len(c.out)
	b, err := fnproto.AppendFrame(c.out, m)
	if err != nil {
		return err
	}
	if size := len(b) - start - 4; size > c.max {
		c.out = b[:start]
		return fmt.Errorf("mu: %s frame of %d bytes exceeds limit of %d: %w",
			fnproto.KindName(fnproto.FromFunction, m.Kind()), size, c.max, fnproto.ErrFrameTooLarge)
	}
	c.out = b
	return nil
}

// flushLocked writes the buffered frames with a single Write. A write
// failure is sticky: later flushes drop their frames and return it.
func (c *conn) flushLocked() error {
	if c.werr != nil {
		c.out = c.out[:0]
		return c.werr
	}
	if len(c.out) == 0 {
		return nil
	}
	n, err := c.w.Write(c.out)
	if err == nil && n < len(c.out) {
		err = io.ErrShortWrite
	}
	if cap(c.out) > retainOutSize {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	if err != nil {
		c.werr = fmt.Errorf("mu: write to the runtime: %w", err)
		return c.werr
	}
	return nil
}

// brokenLocked returns the error that stopped the stream, if any.
func (c *conn) brokenLocked() error {
	if c.rerr != nil {
		return c.rerr
	}
	return c.werr
}

// fitText makes b valid UTF-8 and short enough to travel in one frame.
func (c *conn) fitText(b []byte) []byte {
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	limit := c.max - frameOverhead
	if len(b) <= limit {
		return b
	}
	const marker = " …[truncated]"
	k := max(limit-len(marker), 0)
	for k > 0 && !utf8.RuneStart(b[k]) {
		k--
	}
	return append(b[:k:k], marker...)
}

// writeLog buffers one Log frame, flushing once enough has accumulated.
func (c *conn) writeLog(level fnproto.LogLevel, body []byte) error {
	body = c.fitText(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	// AppendFrame copies the text at once, so the body need not be copied
	// into a string first.
	c.log.Body = unsafe.String(unsafe.SliceData(body), len(body))
	c.log.Level = level
	err := c.appendLocked(&c.log)
	c.log.Body = ""
	if err != nil {
		return err
	}
	if len(c.out) >= flushThreshold {
		return c.flushLocked()
	}
	return nil
}

// appendFatalLocked buffers a FatalError frame carrying msg.
func (c *conn) appendFatalLocked(msg string) {
	msg = string(c.fitText([]byte(msg)))
	_ = c.appendLocked(&fnproto.FatalError{Error: msg}) // valid and within the limit
}

// finish ends the current request with resp, or, when resp is nil, with a
// FatalError carrying fatal, and flushes. It returns an error only when the
// stream is broken; the request then ends with a FatalError describing that.
func (c *conn) finish(resp *Response, fatal string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.brokenLocked(); err != nil {
		c.appendFatalLocked(err.Error())
		_ = c.flushLocked()
		return err
	}
	if resp != nil {
		fatal = c.appendResultLocked(resp)
	}
	if fatal != "" {
		c.appendFatalLocked(fatal)
	}
	return c.flushLocked()
}

// appendResultLocked buffers the FunctionResult for resp, or returns why it
// cannot be sent.
func (c *conn) appendResultLocked(resp *Response) string {
	if resp.Status < 100 || resp.Status > 599 {
		return fmt.Sprintf("%s: invalid HTTP status %d (want 100..599)", c.function, resp.Status)
	}
	if need := len(resp.Body) + 64; need > retainOutSize/2 {
		// Grow once to the size needed rather than by doubling.
		for _, h := range resp.Headers {
			need += 8 + len(h.Name) + len(h.Value)
		}
		c.out = slices.Grow(c.out, need)
	}
	c.result.Response = fnproto.Response{Status: uint16(resp.Status), Headers: resp.Headers, Body: resp.Body}
	err := c.appendLocked(&c.result)
	c.result.Response = fnproto.Response{}
	if err != nil {
		return fmt.Sprintf("%s: cannot send the response: %v", c.function, err)
	}
	return ""
}

// abort ends the request in progress with a FatalError describing err, a
// stream error, and makes err sticky.
func (c *conn) abort(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rerr == nil {
		c.rerr = err
	}
	c.appendFatalLocked(err.Error())
	_ = c.flushLocked()
}

// logPanic sends the panic and its stack trace as an error-level log line.
func (c *conn) logPanic(function string, p *panicValue) {
	body := fmt.Appendf(nil, "panic in %s: %v\n%s", function, p.value, p.stack)
	_ = c.writeLog(fnproto.LogLevelError, body)
}

// exchange sends req and returns the runtime's reply. It fails without
// sending anything when ctx's handler has returned or req cannot be framed;
// a failure to write or read is sticky.
func (c *conn) exchange(ctx *Context, req fnproto.Message) (fnproto.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.done {
		return nil, ErrCallEnded
	}
	if err := c.brokenLocked(); err != nil {
		return nil, err
	}
	op := fnproto.KindName(fnproto.FromFunction, req.Kind())
	if err := c.appendLocked(req); err != nil {
		return nil, fmt.Errorf("mu: %s: %w", op, err)
	}
	if err := c.flushLocked(); err != nil {
		return nil, err
	}
	m, _, err := c.readFrame()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.rerr = fmt.Errorf("%w: reading the reply to %s: %w", ErrProtocol, op, err)
		return nil, c.rerr
	}
	return m, nil
}

// unexpected records that the reply m does not answer op: the stream is out
// of step from here on.
func (c *conn) unexpected(op fnproto.Kind, m fnproto.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := fmt.Errorf("%w: %s answered with %s", ErrProtocol,
		fnproto.KindName(fnproto.FromFunction, op), fnproto.KindName(fnproto.ToFunction, m.Kind()))
	if c.rerr == nil {
		c.rerr = err
	}
	return err
}

// protocolError records that a reply broke the protocol in a way its kind
// does not show (msg says how): the stream is out of step from here on.
func (c *conn) protocolError(msg string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := fmt.Errorf("%w: %s", ErrProtocol, msg)
	if c.rerr == nil {
		c.rerr = err
	}
	return err
}
