package mu_test

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

// fakeRuntime plays the runtime's side of Serve over two pipes.
type fakeRuntime struct {
	t      *testing.T
	stdin  *io.PipeWriter  // what the function reads
	stdout *io.PipeReader  // what the function writes
	frames *fnproto.Reader // decodes stdout
	writes atomic.Int64    // Write calls the function made on stdout
	done   chan error      // Serve's result
	result error           // Serve's result once received
	closed bool
	guard  *time.Timer
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.w.Write(p)
}

// serve starts app.Serve against a fake runtime. A watchdog breaks both
// pipes after 10s so a protocol bug fails the test instead of hanging it.
func serve(t *testing.T, app *mu.App) *fakeRuntime {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	rt := &fakeRuntime{
		t: t, stdin: inW, stdout: outR,
		frames: fnproto.NewReader(outR, fnproto.FromFunction, 0),
		done:   make(chan error, 1),
	}
	go func() {
		err := app.Serve(inR, countingWriter{w: outW, n: &rt.writes})
		outW.Close()
		rt.done <- err
	}()
	rt.guard = time.AfterFunc(10*time.Second, func() {
		inW.CloseWithError(errors.New("test watchdog"))
		outR.CloseWithError(errors.New("test watchdog"))
	})
	t.Cleanup(func() {
		rt.guard.Stop()
		if !rt.closed {
			inW.Close()
			outR.Close()
			<-rt.done
		}
	})
	return rt
}

// send writes m to the function's stdin as one frame.
func (rt *fakeRuntime) send(m fnproto.Message) {
	rt.t.Helper()
	frame, err := fnproto.AppendFrame(nil, m)
	if err != nil {
		rt.t.Fatalf("encode %T: %v", m, err)
	}
	rt.sendRaw(frame)
}

// sendAsync writes m from another goroutine, for frames the function may
// stop reading part-way (it then fails the stream); errors are ignored.
func (rt *fakeRuntime) sendAsync(m fnproto.Message) {
	frame, _ := fnproto.AppendFrame(nil, m)
	go rt.stdin.Write(frame)
}

func (rt *fakeRuntime) sendRaw(b []byte) {
	rt.t.Helper()
	if _, err := rt.stdin.Write(b); err != nil {
		rt.t.Fatalf("write to function stdin: %v", err)
	}
}

// recv reads the next frame the function wrote.
func (rt *fakeRuntime) recv() fnproto.Message {
	rt.t.Helper()
	m, err := rt.frames.Read()
	if err != nil {
		rt.t.Fatalf("read function stdout: %v", err)
	}
	return m
}

// exchange is what one request looked like from the runtime's side.
type exchange struct {
	end   fnproto.Message   // *fnproto.FunctionResult or *fnproto.FatalError
	logs  []*fnproto.Log    // Log frames, in order
	calls []fnproto.Message // db, storage and HTTP requests, in order
}

func (e exchange) result(t *testing.T) *fnproto.Response {
	t.Helper()
	r, ok := e.end.(*fnproto.FunctionResult)
	if !ok {
		t.Fatalf("request ended with %#v, want a FunctionResult", e.end)
	}
	return &r.Response
}

func (e exchange) fatal(t *testing.T) string {
	t.Helper()
	f, ok := e.end.(*fnproto.FatalError)
	if !ok {
		t.Fatalf("request ended with %#v, want a FatalError", e.end)
	}
	return f.Error
}

// call sends ExecuteFunction and serves the function until it ends the
// request. host answers each db/storage/HTTP request (nil: no host calls
// expected).
func (rt *fakeRuntime) call(function string, req fnproto.Request, host func(fnproto.Message) fnproto.Message) exchange {
	rt.t.Helper()
	rt.send(&fnproto.ExecuteFunction{Function: function, Request: req})
	return rt.serveCall(host)
}

func (rt *fakeRuntime) serveCall(host func(fnproto.Message) fnproto.Message) exchange {
	rt.t.Helper()
	var ex exchange
	for {
		m := rt.recv()
		switch m := m.(type) {
		case *fnproto.Log:
			ex.logs = append(ex.logs, m)
		case *fnproto.FunctionResult, *fnproto.FatalError:
			ex.end = m
			return ex
		default:
			ex.calls = append(ex.calls, m)
			if host == nil {
				rt.t.Fatalf("unexpected host call %#v", m)
			}
			rt.send(host(m))
		}
	}
}

// close closes the function's stdin and returns Serve's result.
func (rt *fakeRuntime) close() error {
	rt.t.Helper()
	rt.stdin.Close()
	return rt.wait()
}

// wait returns Serve's result without closing stdin.
func (rt *fakeRuntime) wait() error {
	rt.t.Helper()
	if rt.closed {
		return rt.result
	}
	// Drain whatever the function still writes, so it cannot block.
	go io.Copy(io.Discard, rt.stdout)
	rt.result = <-rt.done
	rt.closed = true
	rt.stdin.Close()
	return rt.result
}

// get is a GET request with path parameters.
func get(params map[string]string) fnproto.Request {
	return fnproto.Request{Method: "GET", PathParams: params}
}
