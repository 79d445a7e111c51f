package mu_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

func TestServe_SeveralRequestsInTurn(t *testing.T) {
	app := mu.New()
	n := 0
	app.Handle("greet", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.Text(200, "Hello, "+req.Param("name")+"!"), nil
	})
	app.Handle("count", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		n++
		return mu.Text(200, fmt.Sprint(n)), nil
	})
	rt := serve(t, app)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("user%d", i)
		got := rt.call("greet", get(map[string]string{"name": name}), nil).result(t)
		if want := "Hello, " + name + "!"; got.Status != 200 || string(got.Body) != want {
			t.Fatalf("greet %d = %d %q, want 200 %q", i, got.Status, got.Body, want)
		}
		got = rt.call("count", get(nil), nil).result(t)
		if string(got.Body) != fmt.Sprint(i) {
			t.Fatalf("count = %q, want %d (state kept across requests)", got.Body, i)
		}
	}
	if err := rt.close(); err != nil {
		t.Fatalf("Serve after EOF = %v, want nil", err)
	}
}

func TestServe_RequestPassthrough(t *testing.T) {
	app := mu.New()
	var seen *mu.Request
	app.Handle("echo", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		seen = req
		var in struct{ N int }
		if err := req.JSON(&in); err != nil {
			return nil, err
		}
		return mu.JSON(201, map[string]any{
			"fn":     ctx.Function(),
			"method": req.Method,
			"id":     req.Param("id"),
			"q":      req.Query("q"),
			"ct":     req.Header("content-type"),
			"tags":   req.HeaderValues("X-TAG"),
			"n":      in.N,
		})
	})
	rt := serve(t, app)
	req := fnproto.Request{
		Method:      "POST",
		PathParams:  map[string]string{"id": "42"},
		QueryParams: map[string]string{"q": "go wasm", "empty": ""},
		Headers: []fnproto.Header{
			{Name: "Content-Type", Value: "application/json"},
			{Name: "X-Tag", Value: "a"},
			{Name: "x-tag", Value: "b"},
		},
		Body: []byte(`{"N": 7}`),
	}
	resp := rt.call("echo", req, nil).result(t)
	want := `{"ct":"application/json","fn":"echo","id":"42","method":"POST","n":7,"q":"go wasm","tags":["a","b"]}`
	if resp.Status != 201 || string(resp.Body) != want {
		t.Fatalf("response = %d %s\nwant 201 %s", resp.Status, resp.Body, want)
	}
	if !reflect.DeepEqual(resp.Headers, []fnproto.Header{{Name: "Content-Type", Value: "application/json"}}) {
		t.Errorf("headers = %v", resp.Headers)
	}
	if !reflect.DeepEqual(seen.Headers, req.Headers) || !bytes.Equal(seen.Body, req.Body) ||
		!reflect.DeepEqual(seen.QueryParams, req.QueryParams) {
		t.Errorf("request fields not passed through: %+v", seen)
	}
	if seen.Param("missing") != "" || seen.Query("missing") != "" || seen.Header("Missing") != "" || seen.HeaderValues("Missing") != nil {
		t.Error("missing names must give empty results")
	}
}

func TestRequest_JSONErrorNamesTheBody(t *testing.T) {
	req := &mu.Request{Body: []byte("{")}
	var v any
	err := req.JSON(&v)
	if err == nil || !strings.Contains(err.Error(), "decode JSON request body") {
		t.Fatalf("JSON = %v", err)
	}
}

func TestResponseHelpers_OnTheWire(t *testing.T) {
	ct := func(v string) []fnproto.Header { return []fnproto.Header{{Name: "Content-Type", Value: v}} }
	mustJSON := func(status int, v any) *mu.Response {
		r, err := mu.JSON(status, v)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name string
		resp *mu.Response
		want fnproto.Response
	}{
		{"Text", mu.Text(200, "héllo"), fnproto.Response{Status: 200, Headers: ct("text/plain; charset=utf-8"), Body: []byte("héllo")}},
		{"JSON", mustJSON(201, map[string]int{"b": 2, "a": 1}), fnproto.Response{Status: 201, Headers: ct("application/json"), Body: []byte(`{"a":1,"b":2}`)}},
		{"Bytes", mu.Bytes(200, "image/png", []byte{0x89, 'P'}), fnproto.Response{Status: 200, Headers: ct("image/png"), Body: []byte{0x89, 'P'}}},
		{"BytesNoType", mu.Bytes(200, "", []byte("x")), fnproto.Response{Status: 200, Body: []byte("x")}},
		{"Status", mu.Status(204), fnproto.Response{Status: 204}},
		{"WithHeaderReplaces", mu.Text(200, "x").WithHeader("content-type", "text/html").WithHeader("Cache-Control", "no-store"),
			fnproto.Response{Status: 200, Headers: []fnproto.Header{{Name: "content-type", Value: "text/html"}, {Name: "Cache-Control", Value: "no-store"}}, Body: []byte("x")}},
		{"AddHeaderRepeats", mu.Status(302).AddHeader("Set-Cookie", "a=1").AddHeader("Set-Cookie", "b=2").WithHeader("Location", "/"),
			fnproto.Response{Status: 302, Headers: []fnproto.Header{{Name: "Set-Cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}, {Name: "Location", Value: "/"}}}},
	}
	app := mu.New()
	for _, tt := range tests {
		resp := tt.resp
		app.Handle(tt.name, func(*mu.Context, *mu.Request) (*mu.Response, error) { return resp, nil })
	}
	rt := serve(t, app)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rt.call(tt.name, get(nil), nil).result(t)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestJSON_UnencodableValueIsError(t *testing.T) {
	if _, err := mu.JSON(200, func() {}); err == nil || !strings.Contains(err.Error(), "encode JSON response") {
		t.Fatalf("JSON(func) = %v", err)
	}
}

func TestServe_HandlerOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		h         mu.HandlerFunc
		wantFatal string            // substring of the FatalError; "" = a response
		want      *fnproto.Response // when no FatalError
	}{
		{name: "error", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return nil, errors.New("db down") }, wantFatal: "db down"},
		{name: "error with response", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Text(200, "x"), errors.New("both") }, wantFatal: "both"},
		{name: "status error", h: func(*mu.Context, *mu.Request) (*mu.Response, error) {
			return nil, fmt.Errorf("lookup: %w", mu.Errorf(404, "no todo %q", "x"))
		}, want: &fnproto.Response{Status: 404, Headers: []fnproto.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}, Body: []byte(`no todo "x"`)}},
		{name: "status error with bad status", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return nil, mu.Errorf(42, "no") }, wantFatal: "invalid HTTP status 42"},
		{name: "nil response", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return nil, nil }, wantFatal: "nil response: handler returned a nil *mu.Response and a nil error"},
		{name: "status 99", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(99), nil }, wantFatal: "status 99: invalid HTTP status 99 (want 100..599)"},
		{name: "status 600", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(600), nil }, wantFatal: "invalid HTTP status 600"},
		{name: "status 70000", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(70000), nil }, wantFatal: "invalid HTTP status 70000"},
		{name: "status 100", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(100), nil }, want: &fnproto.Response{Status: 100}},
		{name: "status 599", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(599), nil }, want: &fnproto.Response{Status: 599}},
		{name: "invalid UTF-8 header", h: func(*mu.Context, *mu.Request) (*mu.Response, error) {
			return mu.Status(200).WithHeader("X", "\xff"), nil
		}, wantFatal: "invalid UTF-8"},
		{name: "empty error", h: func(*mu.Context, *mu.Request) (*mu.Response, error) { return nil, errors.New("") }, wantFatal: "empty message"},
	}
	app := mu.New()
	for _, tt := range tests {
		app.Handle(tt.name, tt.h)
	}
	app.Handle("ok", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Text(200, "ok"), nil })
	rt := serve(t, app)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := rt.call(tt.name, get(nil), nil)
			if tt.wantFatal != "" {
				if msg := ex.fatal(t); !strings.Contains(msg, tt.wantFatal) {
					t.Errorf("FatalError %q, want it to contain %q", msg, tt.wantFatal)
				}
			} else if got := ex.result(t); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("response %+v, want %+v", got, tt.want)
			}
			// The instance keeps serving.
			if got := rt.call("ok", get(nil), nil).result(t); string(got.Body) != "ok" {
				t.Errorf("next request = %q", got.Body)
			}
		})
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestServe_PanicIsFatalErrorAndServingContinues(t *testing.T) {
	app := mu.New()
	app.Handle("boom", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		ctx.Logger().Info("before")
		var m map[string]int
		m["x"] = 1 // nil map write
		return nil, nil
	})
	app.Handle("ok", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Text(200, "fine"), nil })
	rt := serve(t, app)
	for range 2 {
		ex := rt.call("boom", get(nil), nil)
		if msg := ex.fatal(t); msg != "panic: assignment to entry in nil map" {
			t.Errorf("FatalError = %q", msg)
		}
		if len(ex.logs) != 2 || ex.logs[0].Body != "before" {
			t.Fatalf("logs = %+v, want the handler's line then the panic", ex.logs)
		}
		p := ex.logs[1]
		if p.Level != fnproto.LogLevelError || !strings.HasPrefix(p.Body, "panic in boom: assignment to entry in nil map\n") ||
			!strings.Contains(p.Body, "goroutine ") || !strings.Contains(p.Body, "app_test.go") {
			t.Errorf("panic log = %v %q", p.Level, p.Body)
		}
		if got := rt.call("ok", get(nil), nil).result(t); string(got.Body) != "fine" {
			t.Errorf("after panic: %q", got.Body)
		}
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestServe_UnknownFunctionNamesRegisteredOnes(t *testing.T) {
	app := mu.New()
	for _, n := range []string{"b", "a"} {
		app.Handle(n, func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(204), nil })
	}
	rt := serve(t, app)
	if msg := rt.call("zzz", get(nil), nil).fatal(t); msg != `unknown function "zzz"; registered: a, b` {
		t.Errorf("FatalError = %q", msg)
	}
	if got := rt.call("a", get(nil), nil).result(t); got.Status != 204 {
		t.Errorf("next request status %d", got.Status)
	}

	rt = serve(t, mu.New())
	if msg := rt.call("x", get(nil), nil).fatal(t); msg != `unknown function "x"; registered: none` {
		t.Errorf("FatalError = %q", msg)
	}
}

func TestHandle_ProgrammingErrorsPanic(t *testing.T) {
	ok := func(*mu.Context, *mu.Request) (*mu.Response, error) { return nil, nil }
	for name, f := range map[string]func(a *mu.App){
		"empty name": func(a *mu.App) { a.Handle("", ok) },
		"nil":        func(a *mu.App) { a.Handle("x", nil) },
		"duplicate":  func(a *mu.App) { a.Handle("x", ok); a.Handle("x", ok) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(mu.New())
		})
	}
}

func TestServe_EOFEndsServeWithNil(t *testing.T) {
	if err := mu.New().Serve(bytes.NewReader(nil), io.Discard); err != nil {
		t.Fatalf("Serve(empty) = %v", err)
	}
	rt := serve(t, mu.New())
	if err := rt.close(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServe_OversizedFrameIsErrorNotAllocation(t *testing.T) {
	hostile := binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF)
	hostile = append(hostile, 1, 0) // kind ExecuteFunction; no body follows

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	var out bytes.Buffer
	err := mu.New().Serve(bytes.NewReader(hostile), &out)
	runtime.ReadMemStats(&ms1)
	if !errors.Is(err, fnproto.ErrFrameTooLarge) || !errors.Is(err, mu.ErrProtocol) {
		t.Fatalf("Serve = %v, want ErrFrameTooLarge and ErrProtocol", err)
	}
	if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("Serve allocated %d bytes for a hostile frame", alloc)
	}
	// The request in progress ends with a FatalError naming the problem.
	m, err := fnproto.NewReader(&out, fnproto.FromFunction, 0).Read()
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.(*fnproto.FatalError); !ok || !strings.Contains(f.Error, "frame of 4294967295 bytes exceeds limit of 8388608") {
		t.Errorf("wrote %#v", m)
	}
}

func TestServe_FrameOverConfiguredLimitIsError(t *testing.T) {
	app := mu.New(mu.WithMaxFrameSize(1024))
	app.Handle("f", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(200), nil })
	rt := serve(t, app)
	if got := rt.call("f", fnproto.Request{Body: make([]byte, 900)}, nil).result(t); got.Status != 200 {
		t.Fatal("a frame within the limit must be served")
	}
	rt.sendAsync(&fnproto.ExecuteFunction{Function: "f", Request: fnproto.Request{Body: make([]byte, 2000)}})
	if msg := rt.serveCall(nil).fatal(t); !strings.Contains(msg, "exceeds limit of 1024") {
		t.Errorf("FatalError = %q", msg)
	}
	if err := rt.wait(); !errors.Is(err, fnproto.ErrFrameTooLarge) {
		t.Errorf("Serve = %v, want ErrFrameTooLarge", err)
	}
}

func TestServe_LargeFramesWithinTheLimitAreServed(t *testing.T) {
	app := mu.New()
	app.Handle("echo", func(_ *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.Bytes(200, "", req.Body), nil
	})
	rt := serve(t, app)
	body := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB, beyond the read buffer
	for range 2 {
		if got := rt.call("echo", fnproto.Request{Body: body}, nil).result(t); !bytes.Equal(got.Body, body) {
			t.Fatalf("echoed %d bytes, want %d", len(got.Body), len(body))
		}
	}
}

func TestServe_ResponseOverFrameLimitIsFatalError(t *testing.T) {
	app := mu.New(mu.WithMaxFrameSize(1024))
	app.Handle("big", func(*mu.Context, *mu.Request) (*mu.Response, error) {
		return mu.Bytes(200, "", make([]byte, 2000)), nil
	})
	app.Handle("ok", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(204), nil })
	rt := serve(t, app)
	if msg := rt.call("big", get(nil), nil).fatal(t); !strings.Contains(msg, "big: cannot send the response: mu: FunctionResult frame of 2") ||
		!strings.Contains(msg, "exceeds limit of 1024") {
		t.Errorf("FatalError = %q", msg)
	}
	if got := rt.call("ok", get(nil), nil).result(t); got.Status != 204 {
		t.Error("instance must keep serving")
	}
}

func TestServe_TruncatedFrameIsError(t *testing.T) {
	frame, _ := fnproto.AppendFrame(nil, &fnproto.ExecuteFunction{Function: "f"})
	for _, cut := range []int{2, len(frame) - 1} {
		err := mu.New().Serve(bytes.NewReader(frame[:cut]), io.Discard)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, mu.ErrProtocol) {
			t.Errorf("Serve(%d of %d bytes) = %v, want ErrUnexpectedEOF", cut, len(frame), err)
		}
	}
}

func TestServe_UndecodableRequestIsSkipped(t *testing.T) {
	app := mu.New()
	app.Handle("f", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Text(200, "ok"), nil })
	rt := serve(t, app)
	// Kind ExecuteFunction with a body that is not one; then an unknown kind.
	for _, bad := range [][]byte{{3, 0, 0, 0, 1, 0, 0xff}, {2, 0, 0, 0, 0x39, 0x30}} {
		rt.sendRaw(bad)
		if msg := rt.serveCall(nil).fatal(t); !strings.HasPrefix(msg, "mu: undecodable request: fnproto:") {
			t.Errorf("FatalError = %q", msg)
		}
		if got := rt.call("f", get(nil), nil).result(t); string(got.Body) != "ok" {
			t.Error("instance must keep serving")
		}
	}
	if err := rt.close(); err != nil {
		t.Fatal(err)
	}
}

func TestServe_ReplyOutsideARequestIsProtocolError(t *testing.T) {
	rt := serve(t, mu.New())
	rt.sendAsync(&fnproto.EmptyResult{})
	if msg := rt.serveCall(nil).fatal(t); !strings.Contains(msg, "expected ExecuteFunction, got EmptyResult") {
		t.Errorf("FatalError = %q", msg)
	}
	if err := rt.wait(); !errors.Is(err, mu.ErrProtocol) {
		t.Errorf("Serve = %v, want ErrProtocol", err)
	}
}

func TestServe_WriteErrorStopsServing(t *testing.T) {
	app := mu.New()
	app.Handle("f", func(*mu.Context, *mu.Request) (*mu.Response, error) { return mu.Status(200), nil })
	frame, _ := fnproto.AppendFrame(nil, &fnproto.ExecuteFunction{Function: "f"})
	in := bytes.NewReader(append(append([]byte(nil), frame...), frame...))
	err := app.Serve(in, failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "write to the runtime: disk on fire") {
		t.Fatalf("Serve = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestServe_OneWritePerFrameBatch(t *testing.T) {
	app := mu.New()
	app.Handle("logs", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		for i := range 5 {
			ctx.Logger().Info("line", "i", i)
		}
		return mu.Text(200, "ok"), nil
	})
	app.Handle("db", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		ctx.Logger().Info("before")
		if _, _, err := ctx.Table("t").Get([]byte("k")); err != nil {
			return nil, err
		}
		ctx.Logger().Info("after")
		return mu.Text(200, "ok"), nil
	})
	rt := serve(t, app)
	w0 := rt.writes.Load()
	if ex := rt.call("logs", get(nil), nil); len(ex.logs) != 5 {
		t.Fatalf("%d logs", len(ex.logs))
	}
	if n := rt.writes.Load() - w0; n != 1 {
		t.Errorf("5 logs + result took %d writes, want 1", n)
	}
	w0 = rt.writes.Load()
	ex := rt.call("db", get(nil), func(fnproto.Message) fnproto.Message { return &fnproto.SingleResult{} })
	if len(ex.logs) != 2 || len(ex.calls) != 1 {
		t.Fatalf("exchange %+v", ex)
	}
	if n := rt.writes.Load() - w0; n != 2 {
		t.Errorf("log+Get, log+result took %d writes, want 2", n)
	}
}

func TestContext_HostCallAfterHandlerReturnedFails(t *testing.T) {
	app := mu.New()
	var kept *mu.Context
	app.Handle("keep", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		kept = ctx
		return mu.Status(204), nil
	})
	app.Handle("use", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		_, _, err := kept.Table("t").Get([]byte("k"))
		return mu.Text(200, fmt.Sprint(errors.Is(err, mu.ErrCallEnded))), nil
	})
	rt := serve(t, app)
	rt.call("keep", get(nil), nil)
	ex := rt.call("use", get(nil), nil) // fails the test if a Get is sent
	if got := ex.result(t); string(got.Body) != "true" {
		t.Errorf("host call on an ended Context: ErrCallEnded = %s", got.Body)
	}
}

func TestContext_HostCallsFromGoroutinesAreSerialised(t *testing.T) {
	app := mu.New()
	app.Handle("fan", func(ctx *mu.Context, _ *mu.Request) (*mu.Response, error) {
		const n = 8
		errs := make(chan error, n)
		for i := range n {
			go func() {
				key := fmt.Sprint(i)
				v, ok, err := ctx.Table("t").Get([]byte(key))
				if err == nil && (!ok || string(v) != "v"+key) {
					err = fmt.Errorf("Get(%s) = %q, %v", key, v, ok)
				}
				ctx.Log(mu.LevelTrace, "done", "key", key)
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				return nil, err
			}
		}
		return mu.Status(204), nil
	})
	rt := serve(t, app)
	ex := rt.call("fan", get(nil), func(m fnproto.Message) fnproto.Message {
		v := append([]byte("v"), m.(*fnproto.Get).Key...)
		return &fnproto.SingleResult{Item: &v}
	})
	if got := ex.result(t); got.Status != 204 || len(ex.calls) != 8 {
		t.Errorf("status %d after %d calls", got.Status, len(ex.calls))
	}
}

func TestWithMaxFrameSize_TinyLimitStillReportsErrors(t *testing.T) {
	app := mu.New(mu.WithMaxFrameSize(1))
	app.Handle("f", func(*mu.Context, *mu.Request) (*mu.Response, error) {
		return nil, errors.New(strings.Repeat("long error ", 100))
	})
	rt := serve(t, app)
	msg := rt.call("f", get(nil), nil).fatal(t)
	if len(msg) > mu.MinFrameSize || !strings.HasPrefix(msg, "long error") || !strings.HasSuffix(msg, "…[truncated]") {
		t.Errorf("FatalError (%d bytes) = %q", len(msg), msg)
	}
}
