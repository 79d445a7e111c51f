package mu_test

import (
	"bytes"
	"io"
	"testing"

	mu "github.com/muprotocol/mu/sdk/go"

	"github.com/muprotocol/mu/libs/fnproto"
)

// loopReader replays one script b.N times, then reports EOF.
type loopReader struct {
	script []byte
	left   int
	r      bytes.Reader
}

func newLoopReader(n int, msgs ...fnproto.Message) *loopReader {
	l := &loopReader{script: scripted(msgs...).Bytes(), left: n}
	l.r.Reset(nil)
	return l
}

func (l *loopReader) Read(p []byte) (int, error) {
	if l.r.Len() == 0 {
		if l.left == 0 {
			return 0, io.EOF
		}
		l.left--
		l.r.Reset(l.script)
	}
	return l.r.Read(p)
}

func benchServe(b *testing.B, app *mu.App, msgs ...fnproto.Message) {
	b.Helper()
	b.ReportAllocs()
	in := newLoopReader(b.N, msgs...)
	b.ResetTimer()
	if err := app.Serve(in, io.Discard); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkServe_Text(b *testing.B) {
	app := mu.New()
	app.Handle("greet_user", greetUser)
	benchServe(b, app, &fnproto.ExecuteFunction{Function: "greet_user", Request: fnproto.Request{
		Method:     "GET",
		PathParams: map[string]string{"name": "Ann"},
		Headers:    []fnproto.Header{{Name: "Accept", Value: "*/*"}, {Name: "User-Agent", Value: "bench"}},
	}})
}

func BenchmarkServe_ThreeLogs(b *testing.B) {
	app := mu.New()
	app.Handle("greet_user", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		log := ctx.Logger()
		log.Info("start", "name", req.Param("name"))
		ctx.Log(mu.LevelTrace, "dropped")
		ctx.Log(0, "middle", "n", 1)
		log.Warn("end")
		return greetUser(ctx, req)
	})
	benchServe(b, app, request("greet_user", map[string]string{"name": "Ann"}))
}

func BenchmarkServe_TableGet(b *testing.B) {
	app := mu.New()
	app.Handle("get", func(ctx *mu.Context, req *mu.Request) (*mu.Response, error) {
		v, _, err := ctx.Table("t").Get([]byte(req.Param("k")))
		if err != nil {
			return nil, err
		}
		return mu.Bytes(200, "application/octet-stream", v), nil
	})
	v := bytes.Repeat([]byte("v"), 100)
	benchServe(b, app, request("get", map[string]string{"k": "key"}), &fnproto.SingleResult{Item: &v})
}

func BenchmarkServe_Body64KiB(b *testing.B) {
	app := mu.New()
	app.Handle("echo", func(_ *mu.Context, req *mu.Request) (*mu.Response, error) {
		return mu.Bytes(200, "", req.Body), nil
	})
	msg := &fnproto.ExecuteFunction{Function: "echo", Request: fnproto.Request{Method: "POST", Body: make([]byte, 64<<10)}}
	b.SetBytes(64 << 10)
	benchServe(b, app, msg)
}
