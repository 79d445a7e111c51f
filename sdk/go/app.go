package mu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/muprotocol/mu/libs/fnproto"
)

// HandlerFunc handles one request. ctx and req are valid until it returns.
// See the package documentation for how its results map onto the protocol.
type HandlerFunc func(ctx *Context, req *Request) (*Response, error)

// App is a set of named handlers and the loop that serves them. Handle may
// be called at any time, also while Serve runs; an App may serve several
// streams at once (each Serve call handles its own requests one at a time).
type App struct {
	maxFrame int
	level    slog.Leveler

	mu       sync.RWMutex
	handlers map[string]HandlerFunc
}

// DefaultApp is the App that Handle and Run use.
var DefaultApp = New()

// MinFrameSize is the smallest frame limit WithMaxFrameSize accepts.
const MinFrameSize = 256

// Option configures an App.
type Option func(*App)

// WithMaxFrameSize sets the largest frame, in bytes after the 4-byte length,
// that the App reads from or writes to the runtime (n <= 0 means
// fnproto.DefaultMaxFrameSize; values below MinFrameSize are raised to it, so
// that error reports always fit). It must match the runtime's limit: a larger
// incoming frame is a protocol error and ends Serve before anything is
// allocated for it; a larger response fails the request with a FatalError,
// and a larger database or storage request fails the call with an error
// wrapping fnproto.ErrFrameTooLarge.
func WithMaxFrameSize(n int) Option {
	return func(a *App) {
		switch {
		case n <= 0:
			n = fnproto.DefaultMaxFrameSize
		case n < MinFrameSize:
			n = MinFrameSize
		}
		a.maxFrame = n
	}
}

// WithLogLevel sets the least severe level that Context.Logger and
// Context.Log send to the runtime (slog.LevelInfo by default). A
// *slog.LevelVar may be given to change it while serving.
func WithLogLevel(l slog.Leveler) Option {
	return func(a *App) {
		if l == nil {
			l = slog.LevelInfo
		}
		a.level = l
	}
}

// FrameSizeEnv is the environment variable through which the runtime tells
// a function its frame limit; New uses it as the default.
const FrameSizeEnv = fnproto.FrameSizeEnv

// envFrameSize is the runtime's frame limit from FrameSizeEnv, or the default.
func envFrameSize() int {
	if n, err := strconv.Atoi(os.Getenv(FrameSizeEnv)); err == nil && n >= MinFrameSize {
		return n
	}
	return fnproto.DefaultMaxFrameSize
}

// New returns an App with no handlers. Its frame limit is the runtime's
// (FrameSizeEnv) unless WithMaxFrameSize says otherwise.
func New(opts ...Option) *App {
	a := &App{
		maxFrame: envFrameSize(),
		level:    slog.LevelInfo,
		handlers: make(map[string]HandlerFunc),
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Handle registers h under name, the function name that manifests route
// endpoints to ("<service>.<name>"). It panics if name is empty, h is nil or
// name is already registered: these are programming errors, found at start.
func (a *App) Handle(name string, h HandlerFunc) {
	if name == "" {
		panic("mu: Handle with an empty function name")
	}
	if h == nil {
		panic(fmt.Sprintf("mu: Handle(%q) with a nil HandlerFunc", name))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.handlers[name]; dup {
		panic(fmt.Sprintf("mu: function %q registered twice", name))
	}
	a.handlers[name] = h
}

// Handle registers h under name on DefaultApp.
func Handle(name string, h HandlerFunc) { DefaultApp.Handle(name, h) }

// Run serves DefaultApp over stdin and stdout until the runtime closes
// stdin. Call it at the end of main.
func Run() { DefaultApp.Run() }

// Run serves a over the process's stdin and stdout (file descriptor 1, kept
// for the protocol; os.Stdout is pointed at os.Stderr first) until the
// runtime closes stdin, then returns. If the stream breaks (see Serve) it
// writes the error to stderr and exits with status 1, since the instance
// cannot serve further requests.
func (a *App) Run() {
	if reactorMode {
		// Built as a reactor: the runtime calls mu_serve for each request;
		// main only had to register the handlers.
		reactorApp = a
		return
	}
	out := protocolStdout()
	if err := a.Serve(os.Stdin, out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Serve reads requests from in and writes protocol frames to out, one
// request at a time, until in reaches EOF between frames; it then returns
// nil. The caller provides in and out as the runtime would: in carries
// runtime → function frames, out receives function → runtime frames.
//
// Serve returns an error when the stream cannot go on: in ends inside a
// frame or fails, a frame exceeds the limit (the error wraps
// fnproto.ErrFrameTooLarge), the runtime sends a message of the wrong kind
// (ErrProtocol), or out fails. Before returning it tries to end the request
// in progress with a FatalError describing the problem. A frame that is
// complete but cannot be decoded as an ExecuteFunction is answered with a
// FatalError and skipped.
func (a *App) Serve(in io.Reader, out io.Writer) error {
	c := newConn(a, in, out)
	for {
		if err := c.step(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// step serves the next request on c. It returns nil after one request,
// io.EOF when in ended cleanly between frames (after flushing the logs
// written since the last request), or the error that broke the stream.
func (c *conn) step() error {
	m, stream, err := c.readFrame()
	if err == io.EOF {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.flushLocked(); err != nil {
			return err
		}
		return io.EOF
	}
	if err != nil {
		if stream {
			err = fmt.Errorf("%w: reading the next request: %w", ErrProtocol, err)
			c.abort(err)
			return err
		}
		// The frame was consumed whole: fail this request, keep serving.
		return c.finish(nil, fmt.Sprintf("mu: undecodable request: %v", err))
	}
	ef, ok := m.(*fnproto.ExecuteFunction)
	if !ok {
		err := fmt.Errorf("%w: expected ExecuteFunction, got %s", ErrProtocol, fnproto.KindName(fnproto.ToFunction, m.Kind()))
		c.abort(err)
		return err
	}
	return c.serveOne(ef)
}

// serveOne runs the handler for one ExecuteFunction and ends the request.
// It returns a non-nil error only when the stream is broken.
func (c *conn) serveOne(ef *fnproto.ExecuteFunction) error {
	c.function = ef.Function
	c.app.mu.RLock()
	h := c.app.handlers[ef.Function]
	c.app.mu.RUnlock()
	if h == nil {
		return c.finish(nil, c.app.unknown(ef.Function))
	}
	// One allocation for both; neither is reused after the handler returns.
	st := &struct {
		ctx Context
		req Request
	}{
		ctx: Context{c: c, function: ef.Function},
		req: Request{
			Method:      ef.Request.Method,
			PathParams:  ef.Request.PathParams,
			QueryParams: ef.Request.QueryParams,
			Headers:     ef.Request.Headers,
			Body:        ef.Request.Body,
		},
	}
	ctx, req := &st.ctx, &st.req
	ctx.db.ctx = ctx
	resp, panicked, err := invoke(h, ctx, req)

	c.mu.Lock()
	ctx.done = true
	c.mu.Unlock()

	switch {
	case panicked != nil:
		c.logPanic(ef.Function, panicked)
		return c.finish(nil, fmt.Sprintf("panic: %v", panicked.value))
	case err != nil:
		var se *StatusError
		if errors.As(err, &se) {
			return c.finish(Text(se.Status, se.Message), "")
		}
		msg := err.Error()
		if msg == "" {
			msg = fmt.Sprintf("%s: handler returned an error with an empty message (%T)", ef.Function, err)
		}
		return c.finish(nil, msg)
	case resp == nil:
		return c.finish(nil, fmt.Sprintf("%s: handler returned a nil *mu.Response and a nil error", ef.Function))
	}
	return c.finish(resp, "")
}

type panicValue struct {
	value any
	stack []byte
}

// invoke calls h, turning a panic into a panicValue.
func invoke(h HandlerFunc, ctx *Context, req *Request) (resp *Response, p *panicValue, err error) {
	defer func() {
		if v := recover(); v != nil {
			resp, p, err = nil, &panicValue{value: v, stack: debug.Stack()}, nil
		}
	}()
	resp, err = h(ctx, req)
	return resp, nil, err
}

// unknown describes a request for an unregistered function.
func (a *App) unknown(name string) string {
	a.mu.RLock()
	names := make([]string, 0, len(a.handlers))
	for n := range a.handlers {
		names = append(names, n)
	}
	a.mu.RUnlock()
	slices.Sort(names)
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return fmt.Sprintf("unknown function %q; registered: %s", name, list)
}
